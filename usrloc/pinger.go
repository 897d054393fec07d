package usrloc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Owner says whether this node acts for a named resource: the socket or
// VIP a binding registered through. Only the owner sends NAT keepalives
// from it; another node's packets would leave from another address and be
// dropped by the UA's NAT (and every node pinging every contact is the
// traffic OpenSIPS issue 1372 and Kamailio issue 1299 complain of).
//
// ManagerOwner adapts an ownership.Manager to it.
type Owner interface {
	// Owns reports whether this node holds resource now.
	Owns(resource string) bool
	// Watch calls fn after any change of what this node holds, until stop.
	// fn must not block.
	Watch(fn func()) (stop func())
}

// PingerConfig configures a Pinger. The zero value of every field but
// Owner and Send means its default.
type PingerConfig struct {
	// Owner decides which bindings this node pings; required.
	Owner Owner
	// Resource names the ownership resource of a binding's socket;
	// default "socket/" + the socket ("socket/udp:203.0.113.10:5060").
	Resource func(socket string) string
	// Send sends one keepalive (an OPTIONS) to the binding from its socket
	// and returns an error when no answer came. Required.
	//
	// Concurrency: called from the pinger's goroutine, one at a time per
	// pass, with a context that ends at the next pass.
	Send func(ctx context.Context, b Binding) error
	// Interval is the time between two keepalives to one binding; default
	// 30 s. A binding whose socket this node acquires is pinged within one
	// Interval.
	Interval time.Duration
	// MaxFailures removes a binding (cluster-wide) after that many
	// keepalives in a row failed; 0 never removes.
	MaxFailures int
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Pinger sends NAT keepalives to the UDP bindings whose socket this node
// owns. TCP and TLS flows end on the node that holds the connection and
// cannot move: their UAs keep them alive with RFC 5626 CRLFCRLF pings,
// which sipgo's stream transports answer with CRLF, and re-register after
// a failover.
type Pinger struct {
	store *Store
	cfg   PingerConfig
	fails map[string]int // AOR + "\x00" + contact → failures in a row

	mu    sync.Mutex
	stats PingerStats

	wake      chan struct{}
	quit      chan struct{}
	wg        sync.WaitGroup
	stopWatch func()
	closeOnce sync.Once
}

// PingerStats counts the pinger's work.
type PingerStats struct {
	Passes, Sent, Failed, Removed, NotOwned uint64
}

// slices a pass is cut into, so keepalives spread over the interval.
const pingSlices = 64

// NewPinger starts a pinger over store.
func NewPinger(store *Store, cfg PingerConfig) (*Pinger, error) {
	if cfg.Owner == nil || cfg.Send == nil {
		return nil, errors.New("usrloc: PingerConfig needs Owner and Send")
	}
	if cfg.Interval == 0 {
		cfg.Interval = 30 * time.Second
	}
	if cfg.Interval < pingSlices*time.Millisecond || cfg.MaxFailures < 0 {
		return nil, errors.New("usrloc: Pinger Interval below 64ms or negative MaxFailures")
	}
	if cfg.Resource == nil {
		cfg.Resource = func(socket string) string { return "socket/" + socket }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Pinger{store: store, cfg: cfg, fails: map[string]int{}, wake: make(chan struct{}, 1), quit: make(chan struct{})}
	p.stopWatch = cfg.Owner.Watch(func() {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	})
	p.wg.Add(1)
	go p.run()
	return p, nil
}

// Close stops the pinger and waits for it. It is idempotent.
func (p *Pinger) Close() error {
	p.closeOnce.Do(func() {
		p.stopWatch()
		close(p.quit)
		p.wg.Wait()
	})
	return nil
}

// Stats returns the counters.
func (p *Pinger) Stats() PingerStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// run walks the store slice by slice: a full pass per Interval. An
// ownership change restarts the walk at once, so a new owner starts within
// a slice, well within one interval.
func (p *Pinger) run() {
	defer p.wg.Done()
	step := p.cfg.Interval / pingSlices
	t := time.NewTicker(step)
	defer t.Stop()
	slice := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.Interval)
		p.pingSlice(ctx, slice)
		cancel()
		slice = (slice + 1) % pingSlices
		if slice == 0 {
			p.mu.Lock()
			p.stats.Passes++
			p.mu.Unlock()
		}
		select {
		case <-p.quit:
			return
		case <-t.C:
		case <-p.wake:
		}
	}
}

func (p *Pinger) pingSlice(ctx context.Context, slice int) {
	per := nBuckets / pingSlices
	var bs []Binding
	owned := map[string]bool{}
	for b := slice * per; b < (slice+1)*per; b++ {
		bs = p.store.appendBucketBindings(b, bs[:0])
		for i := range bs {
			bd := &bs[i]
			if !strings.HasPrefix(bd.Socket, "udp:") {
				continue
			}
			own, ok := owned[bd.Socket]
			if !ok {
				own = p.cfg.Owner.Owns(p.cfg.Resource(bd.Socket))
				owned[bd.Socket] = own
			}
			if !own {
				p.mu.Lock()
				p.stats.NotOwned++
				p.mu.Unlock()
				continue
			}
			p.ping(ctx, bd)
		}
	}
}

func (p *Pinger) ping(ctx context.Context, b *Binding) {
	err := p.cfg.Send(ctx, *b)
	key := b.AOR + "\x00" + b.Contact
	p.mu.Lock()
	p.stats.Sent++
	if err == nil {
		delete(p.fails, key)
		p.mu.Unlock()
		return
	}
	p.stats.Failed++
	p.fails[key]++
	n := p.fails[key]
	p.mu.Unlock()
	if p.cfg.MaxFailures == 0 || n < p.cfg.MaxFailures {
		return
	}
	// A Call-ID of its own, so the UA's next REGISTER (its Call-ID, any
	// CSeq) is never refused as out of order.
	_, rerr := p.store.Register(Registration{AOR: b.AOR, CallID: "sipha-keepalive-removal", CSeq: 1,
		Contacts: []ContactUpdate{{URI: b.Contact, Instance: b.Instance, RegID: b.RegID}}}, nil)
	p.mu.Lock()
	delete(p.fails, key)
	if rerr == nil {
		p.stats.Removed++
	}
	p.mu.Unlock()
	p.cfg.Logger.Info("usrloc: binding removed after failed keepalives", "aor", b.AOR, "contact", b.Contact, "failures", n, "err", rerr)
}

// SipgoKeepalive returns a PingerConfig.Send that sends an OPTIONS to the
// binding's contact through client, addressed to the source the binding
// registered from (its NAT mapping), and succeeds on any final response.
// Build client on the UserAgent whose server listens on the binding's
// socket, with sipgo.WithClientAddr set to that socket's address, so the
// keepalive leaves from the address the NAT expects.
func SipgoKeepalive(client *sipgo.Client) func(ctx context.Context, b Binding) error {
	return func(ctx context.Context, b Binding) error {
		var uri sip.Uri
		if err := sip.ParseUri(b.Contact, &uri); err != nil {
			return fmt.Errorf("usrloc: contact %q: %w", b.Contact, err)
		}
		req := sip.NewRequest(sip.OPTIONS, uri)
		if b.Received != "" {
			req.SetDestination(b.Received)
		}
		req.SetTransport("UDP")
		res, err := client.Do(ctx, req)
		if err != nil {
			return err
		}
		if res.StatusCode < 200 {
			return fmt.Errorf("usrloc: keepalive answered %d", res.StatusCode)
		}
		return nil
	}
}
