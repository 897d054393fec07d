package siphatest

import (
	"context"
	"net/http/httptest"
	"sync"

	"github.com/sipha/sipha/cdr"
)

// Collector is the cluster's CDR collector: cdr.Receiver on a real HTTP
// server on loopback, keeping every record it accepted (duplicates by ID
// are dropped by the receiver). Its methods are safe for concurrent use.
type Collector struct {
	// URL is where the nodes' posters send records.
	URL string

	srv *httptest.Server
	rc  *cdr.Receiver

	mu   sync.Mutex
	recs []cdr.Record
	ids  map[string]bool
}

func startCollector() (*Collector, error) {
	c := &Collector{ids: map[string]bool{}}
	rc, err := cdr.NewReceiver(cdr.ReceiverConfig{}, func(_ context.Context, rec cdr.Record) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.recs = append(c.recs, rec)
		c.ids[rec.ID] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.rc = rc
	c.srv = httptest.NewServer(rc)
	c.URL = c.srv.URL + "/cdr"
	return c, nil
}

// Records returns the records received, in arrival order.
func (c *Collector) Records() []cdr.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]cdr.Record(nil), c.recs...)
}

// Has reports whether a record with this ID arrived.
func (c *Collector) Has(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ids[id]
}

// Len is the number of distinct records received.
func (c *Collector) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.recs)
}

// Stats are the receiver's counters (duplicates dropped, bad requests).
func (c *Collector) Stats() cdr.ReceiverStats { return c.rc.Stats() }

func (c *Collector) close() { c.srv.Close() }
