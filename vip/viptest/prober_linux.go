package viptest

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Prober sends a datagram ("ping") to an address every 5 ms from a host's
// namespace and records who answered when: an answerer names itself in
// the first word of its reply. It shows when clients reach a moved address
// again. Its methods are safe for concurrent use; it stops when the test
// ends.
type Prober struct {
	conn    *net.UDPConn
	mu      sync.Mutex
	replies []reply
	stop    chan struct{}
	wg      sync.WaitGroup
}

type reply struct {
	at time.Time
	id string
}

// Probe starts a Prober from host h to the UDP address to.
func (tp *Topo) Probe(h string, to netip.AddrPort) *Prober {
	tp.T.Helper()
	p := &Prober{stop: make(chan struct{})}
	if err := tp.In(h, func() (err error) {
		p.conn, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
		return err
	}); err != nil {
		tp.T.Fatal(err)
	}
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.conn.Write([]byte("ping"))
			}
		}
	}()
	go func() {
		defer p.wg.Done()
		buf := make([]byte, 1500)
		for {
			n, err := p.conn.Read(buf)
			if err != nil {
				select {
				case <-p.stop:
					return
				default:
					continue // ICMP unreachable while nobody holds the address
				}
			}
			id, _, _ := strings.Cut(string(buf[:n]), " ")
			p.mu.Lock()
			p.replies = append(p.replies, reply{time.Now(), id})
			p.mu.Unlock()
		}
	}()
	tp.T.Cleanup(func() {
		close(p.stop)
		p.conn.Close()
		p.wg.Wait()
	})
	return p
}

// FirstFrom returns when id first answered at or after from.
func (p *Prober) FirstFrom(id string, from time.Time) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.replies {
		if r.id == id && !r.at.Before(from) {
			return r.at, true
		}
	}
	return time.Time{}, false
}
