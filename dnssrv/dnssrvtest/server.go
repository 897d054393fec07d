// Package dnssrvtest runs DNS servers for tests of code that uses dnssrv:
// an in-process server (miekg/dns) answering from a zone given as text,
// listening on UDP and TCP on one loopback port, and a helper that starts
// a real dnsmasq on loopback.
package dnssrvtest

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Server is an in-process DNS server on 127.0.0.1 answering from a zone.
// It behaves like a recursive server that knows only that zone: it follows
// CNAMEs inside the zone, answers NXDOMAIN or NODATA with the zone's SOA,
// and truncates UDP answers larger than the client's buffer.
type Server struct {
	Addr string // host:port, the same for UDP and TCP

	udp, tcp *dns.Server
	wg       sync.WaitGroup
	queries  atomic.Int64
	mu       sync.Mutex
	rrs      []dns.RR
	soa      *dns.SOA
	handler  dns.HandlerFunc
	delay    time.Duration
	closed   bool
}

// DefaultSOA is used for negative answers until the zone has its own.
const DefaultSOA = "example.com. 300 IN SOA ns.example.com. admin.example.com. 1 3600 600 86400 30"

// NewServer starts a server with the given records, in zone-file syntax
// ("_sip._udp.example.com. 60 IN SRV 10 60 5060 sip1.example.com.").
func NewServer(records ...string) (*Server, error) {
	s := &Server{}
	if err := s.Add(DefaultSOA); err != nil {
		return nil, err
	}
	if err := s.Add(records...); err != nil {
		return nil, err
	}
	h := dns.HandlerFunc(s.serve)
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			lastErr = err
			continue
		}
		s.Addr = pc.LocalAddr().String()
		s.udp = &dns.Server{PacketConn: pc, Handler: h}
		s.tcp = &dns.Server{Listener: l, Handler: h}
		started := make(chan struct{}, 2)
		s.udp.NotifyStartedFunc = func() { started <- struct{}{} }
		s.tcp.NotifyStartedFunc = func() { started <- struct{}{} }
		for _, srv := range []*dns.Server{s.udp, s.tcp} {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				_ = srv.ActivateAndServe()
			}()
		}
		<-started
		<-started
		return s, nil
	}
	return nil, fmt.Errorf("dnssrvtest: no free port for UDP and TCP: %w", lastErr)
}

// Add puts records into the zone. An SOA replaces the zone's SOA.
func (s *Server) Add(records ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, text := range records {
		rr, err := dns.NewRR(text)
		if err != nil {
			return fmt.Errorf("dnssrvtest: %q: %w", text, err)
		}
		if rr == nil {
			continue
		}
		if soa, ok := rr.(*dns.SOA); ok {
			s.soa = soa
			continue
		}
		s.rrs = append(s.rrs, rr)
	}
	return nil
}

// Reset empties the zone (the SOA stays).
func (s *Server) Reset() {
	s.mu.Lock()
	s.rrs = nil
	s.mu.Unlock()
}

// Handle replaces the zone with a handler of the caller's, for answers no
// zone can produce (wrong IDs, garbage, silence). Nil restores the zone.
// The handler is called concurrently.
func (s *Server) Handle(h dns.HandlerFunc) {
	s.mu.Lock()
	s.handler = h
	s.mu.Unlock()
}

// SetDelay makes the zone answer each query after d, so that tests can
// have lookups overlap.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// Queries counts the questions received.
func (s *Server) Queries() int { return int(s.queries.Load()) }

// Close stops the server and waits for its goroutines. It is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	err := errors.Join(s.udp.Shutdown(), s.tcp.Shutdown())
	s.wg.Wait()
	return err
}

func (s *Server) serve(w dns.ResponseWriter, q *dns.Msg) {
	s.queries.Add(1)
	s.mu.Lock()
	h, delay := s.handler, s.delay
	s.mu.Unlock()
	time.Sleep(delay)
	if h != nil {
		h(w, q)
		return
	}
	m := s.Answer(q)
	if w.RemoteAddr().Network() == "udp" {
		size := dns.MinMsgSize
		if o := q.IsEdns0(); o != nil {
			size = int(o.UDPSize())
		}
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}

// Answer is what the zone says to q.
func (s *Server) Answer(q *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(q)
	m.RecursionAvailable = true
	if len(q.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return m
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	name, qtype := q.Question[0].Name, q.Question[0].Qtype
	for hop := 0; hop < 16; hop++ {
		var found, cname []dns.RR
		exists := false
		for _, rr := range s.rrs {
			h := rr.Header()
			if !strings.EqualFold(h.Name, name) {
				continue
			}
			exists = true
			switch {
			case h.Rrtype == qtype:
				found = append(found, rr)
			case h.Rrtype == dns.TypeCNAME:
				cname = append(cname, rr)
			}
		}
		switch {
		case len(found) > 0:
			m.Answer = append(m.Answer, found...)
			return m
		case len(cname) > 0:
			m.Answer = append(m.Answer, cname[0])
			name = cname[0].(*dns.CNAME).Target
			continue
		}
		if !exists {
			m.Rcode = dns.RcodeNameError
		}
		m.Ns = append(m.Ns, s.soa)
		return m
	}
	return m // a CNAME loop: the chain so far, as a real server might
}
