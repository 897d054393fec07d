package main

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/sipha/sipha/cdr"
)

// collector is an in-process CDR collector: a real HTTP server on loopback
// with cdr.Receiver, which de-duplicates by CDR ID. It can be stopped and
// started again on the same address, as a collector that goes down would.
type collector struct {
	name string
	addr string
	url  string
	rc   *cdr.Receiver

	mu  sync.Mutex
	ids map[string]callCDR // by CDR ID
	srv *http.Server
}

func startCollector(name, addr string) (*collector, error) {
	c := &collector{name: name, ids: map[string]callCDR{}}
	rc, err := cdr.NewReceiver(cdr.ReceiverConfig{}, func(_ context.Context, rec cdr.Record) error {
		var f callCDR
		f.callID, _ = rec.Fields["call_id"].(string)
		f.firedBy, _ = rec.Fields["fired_by"].(string)
		f.reason, _ = rec.Fields["reason"].(string)
		c.mu.Lock()
		c.ids[rec.ID] = f
		c.mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.rc = rc
	c.addr = addr
	if err := c.restart(); err != nil {
		return nil, err
	}
	c.url = "http://" + c.addr + "/cdr"
	return c, nil
}

// restart listens again on the collector's address.
func (c *collector) restart() error {
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	c.addr = ln.Addr().String()
	srv := &http.Server{Handler: c.rc, ReadHeaderTimeout: 5 * time.Second}
	c.mu.Lock()
	c.srv = srv
	c.mu.Unlock()
	go srv.Serve(ln)
	return nil
}

// stop closes the server and every open connection at once.
func (c *collector) stop() {
	c.mu.Lock()
	srv := c.srv
	c.srv = nil
	c.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

func (c *collector) close() { c.stop() }

func (c *collector) has(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.ids[id]
	return ok
}

func (c *collector) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids)
}

func (c *collector) dups() uint64 { return c.rc.Stats().Duplicates }

// callCDR is what the demo reads of a collected CDR: the fields
// proxy.CDRFields gives a SIP call (all "" for the synthetic CDRs).
type callCDR struct{ callID, firedBy, reason string }

// find returns the CDR with id from the first collector that has it.
func find(id string, cs ...*collector) (callCDR, bool) {
	for _, c := range cs {
		c.mu.Lock()
		f, ok := c.ids[id]
		c.mu.Unlock()
		if ok {
			return f, true
		}
	}
	return callCDR{}, false
}

// cdrsByCall maps the Call-ID of every SIP call with a CDR at any of the
// collectors to the distinct CDR IDs they hold for it.
func cdrsByCall(cs ...*collector) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, c := range cs {
		c.mu.Lock()
		for id, f := range c.ids {
			if f.callID == "" {
				continue
			}
			if out[f.callID] == nil {
				out[f.callID] = map[string]bool{}
			}
			out[f.callID][id] = true
		}
		c.mu.Unlock()
	}
	return out
}

// missing lists the posted CDR IDs that no collector has.
func missing(posted map[string]bool, cs ...*collector) []string {
	var out []string
	for id := range posted {
		found := false
		for _, c := range cs {
			if c.has(id) {
				found = true
				break
			}
		}
		if !found {
			out = append(out, id)
		}
	}
	return out
}
