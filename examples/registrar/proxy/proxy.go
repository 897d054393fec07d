package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/dialog"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/ratelimit"
	"github.com/sipha/sipha/usrloc"
)

// ErrConfig reports an invalid Config, StackConfig or Blocks.
var ErrConfig = errors.New("proxy: invalid config")

// CPSPipe is the ratelimit pipe every new INVITE is counted in: the cluster-wide
// calls-per-second limit.
const CPSPipe = "cps"

// Profile names the dialog profiles the proxy puts each call in.
const (
	ProfileAll          = "all"           // every call, no value
	ProfileCallerDomain = "caller-domain" // valued by the From URI's host
)

// Blocks are the sipha blocks a Proxy serves SIP with. The proxy uses them and
// reads their stats; it does not close them (Stack does). VIP is optional.
type Blocks struct {
	Transport  *cluster.TCP
	Ownership  ownership.Manager
	Store      *usrloc.Store
	Replicator *usrloc.Replicator
	Registrar  *usrloc.Registrar
	Dialogs    *dialog.Tracker
	Limiter    *ratelimit.Limiter
	CDR        *CDRSink
	VIP        VIPStats
}

// VIPStats is what the proxy reads of a VIP manager (vip.Manager has it).
type VIPStats interface{ Healthy() bool }

// Config configures a Proxy. Listen is required; the zero value of every
// other field means its default.
type Config struct {
	// Listen is the SIP address, served on UDP and TCP ("127.0.0.1:5060";
	// port 0 picks one free on both).
	Listen string
	// Advertise is the host:port put in Record-Route and Via; default the
	// bound listen address, which must then be a specific one. Set it to the VIP when there is one, so
	// in-dialog requests follow the address to whichever node holds it.
	Advertise string
	// Domain, when set, looks every Request-URI up as user@Domain: a
	// single-domain registrar whose users dial any node's address.
	Domain string
	// UA is the sipgo user agent to serve on; nil: the proxy makes one and
	// closes it on Close. A UA the proxy makes hands the responses that
	// match no transaction to ForwardStray; give yours
	// sip.WithTransactionLayerUnhandledResponseHandler with a function
	// that calls ForwardStray once New returned.
	UA *sipgo.UserAgent
	// RetryAfter is sent with a CPS rejection; default 1 s.
	RetryAfter time.Duration
	// InviteTimeout bounds a forwarded INVITE waiting for its final
	// response; default 3 min (Timer C).
	InviteTimeout time.Duration
	// KeepaliveInterval, when positive, sends NAT keepalive OPTIONS to the
	// UDP bindings that registered through this proxy's socket (usrloc's
	// Pinger; see startKeepalives). KeepaliveMaxFailures unregisters a
	// binding after that many keepalives in a row went unanswered; 0 never.
	KeepaliveInterval    time.Duration
	KeepaliveMaxFailures int
	// NoCallTracking forwards calls without telling the dialog tracker
	// (no profiles, no CDRs, no dialog timers) and without the CPS
	// limiter: the baseline regbench -calls measures tracking against.
	NoCallTracking bool
	Logger         *slog.Logger
}

// Proxy is a record-routing stateful SIP proxy and registrar over sipha's
// blocks. See the package documentation.
type Proxy struct {
	b      Blocks
	calls  callTracker // b.Dialogs, or untracked
	cfg    Config
	log    *slog.Logger
	ua     *sipgo.UserAgent
	ownUA  bool
	srv    *sipgo.Server
	cli    *sipgo.Client
	udp    net.PacketConn
	tcp    net.Listener
	self   map[string]bool // host:port values that name this proxy in a Route
	rr     sip.Uri         // this proxy's Record-Route URI
	stopW  func()          // ownership watch
	pinger *usrloc.Pinger  // nil without keepalives
	held   sync.Map        // resource → ownership.Epoch, what this node holds
	ctx    context.Context // ends on Close: in-flight transactions give up
	cancel context.CancelFunc
	wg     sync.WaitGroup // serve loops and background work
	mu     sync.Mutex     // guards closed against hwg.Add
	closed bool
	hwg    sync.WaitGroup // running handlers
	once   sync.Once

	m counters
}

// counters are the proxy's own metrics.
type counters struct {
	invites, cpsAllowed, cpsDenied, notFound, unavailable atomic.Uint64
	forwarded, inDialog, badRequests, options             atomic.Uint64
}

// New binds cfg.Listen on UDP and TCP and starts serving SIP over b.
func New(b Blocks, cfg Config) (*Proxy, error) {
	if b.Transport == nil || b.Ownership == nil || b.Store == nil || b.Replicator == nil ||
		b.Registrar == nil || b.Dialogs == nil || b.Limiter == nil || b.CDR == nil {
		return nil, fmt.Errorf("%w: every block but VIP is required", ErrConfig)
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Proxy{b: b, calls: b.Dialogs, cfg: cfg, log: cfg.Logger, ua: cfg.UA, self: map[string]bool{}}
	if cfg.NoCallTracking {
		p.calls = untracked{}
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	var err error
	if p.udp, p.tcp, err = listenBoth(cfg.Listen); err != nil {
		return nil, err
	}
	bound := p.udp.LocalAddr().(*net.UDPAddr)
	adv := cfg.Advertise
	if adv == "" {
		if bound.IP.IsUnspecified() {
			p.udp.Close()
			p.tcp.Close()
			return nil, fmt.Errorf("%w: listening on %s needs Advertise (the address in Record-Route)", ErrConfig, bound)
		}
		adv = bound.String()
	}
	host, port, _ := splitHostPort(adv) // Validate checked a given one
	p.self[net.JoinHostPort(host, strconv.Itoa(port))] = true
	p.self[bound.String()] = true
	p.rr = sip.Uri{Scheme: "sip", Host: host, Port: port, UriParams: sip.NewParams()}
	p.rr.UriParams.Add("lr", "")
	if p.ua == nil {
		if p.ua, err = sipgo.NewUA(sipgo.WithUserAgent("sipha-registrar"), sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerUnhandledResponseHandler(p.ForwardStray))); err != nil {
			p.udp.Close()
			p.tcp.Close()
			return nil, err
		}
		p.ownUA = true
	}
	p.srv, _ = sipgo.NewServer(p.ua, sipgo.WithServerLogger(p.log))
	// Requests leave from the listening port, so a NAT that let the UA's
	// REGISTER in lets the proxy's INVITE in too.
	p.cli, err = sipgo.NewClient(p.ua, sipgo.WithClientHostname(host), sipgo.WithClientPort(bound.Port),
		sipgo.WithClientLogger(p.log))
	if err != nil {
		p.Close()
		return nil, err
	}
	limit, err := ratelimit.Middleware(b.Limiter, ratelimit.MiddlewareConfig{
		Pipe:       func(*sip.Request) string { return CPSPipe },
		Methods:    []sip.RequestMethod{sip.INVITE},
		RetryAfter: cfg.RetryAfter,
		OnReject:   func(*sip.Request, string) { p.m.cpsDenied.Add(1) },
	})
	if err != nil {
		p.Close()
		return nil, err
	}
	p.srv.OnRegister(p.guard(b.Registrar.Handle))
	if cfg.NoCallTracking {
		p.srv.OnInvite(p.guard(p.onInvite))
	} else {
		p.srv.OnInvite(p.guard(limit(p.onInvite)))
	}
	p.srv.OnAck(p.onAck)
	p.srv.OnCancel(p.guard(p.onCancel))
	p.srv.OnOptions(p.guard(p.onOptions))
	for _, m := range []sip.RequestMethod{sip.BYE, sip.INFO, sip.UPDATE, sip.PRACK, sip.REFER,
		sip.NOTIFY, sip.SUBSCRIBE, sip.MESSAGE} {
		p.srv.OnRequest(m, p.guard(p.onRouted))
	}
	p.stopW = b.Ownership.Watch("", p.onOwnership)
	if err := p.startKeepalives(); err != nil {
		p.Close()
		return nil, err
	}
	p.wg.Add(2)
	go func() { defer p.wg.Done(); p.srv.ServeUDP(p.udp) }()
	go func() { defer p.wg.Done(); p.srv.ServeTCP(p.tcp) }()
	return p, nil
}

// listenBoth binds addr on UDP, then the same port on TCP (retrying a few
// free ports when addr's port is 0 and TCP's twin is taken).
func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("proxy: listen udp %s: %w", addr, err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		lastErr = err
		if _, port, _ := net.SplitHostPort(addr); port != "0" {
			break
		}
	}
	return nil, nil, fmt.Errorf("proxy: listen tcp %s: %w", addr, lastErr)
}

func splitHostPort(hp string) (string, int, error) {
	h, ps, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", ps)
	}
	return h, port, nil
}

// Addr is the bound SIP address (UDP and TCP share the port).
func (p *Proxy) Addr() string { return p.udp.LocalAddr().String() }

// onOwnership keeps the set of resources this node holds, for /metrics.
func (p *Proxy) onOwnership(e ownership.Event) {
	switch e.Kind {
	case ownership.Acquired:
		p.held.Store(e.Resource, e.Claim.Epoch)
	case ownership.Lost:
		p.held.Delete(e.Resource)
	}
}

// guard keeps a handler from running after Close and answers a request it
// finds malformed with 400 before the handler sees it; a panic in a handler
// becomes a 500 instead of killing the node.
func (p *Proxy) guard(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		if !p.enter() {
			p.respond(tx, req, 503, "Shutting Down")
			return
		}
		defer p.hwg.Done()
		defer func() {
			if r := recover(); r != nil {
				p.log.Error("proxy: handler panic", "method", req.Method, "panic", r)
				p.respond(tx, req, 500, "Server Internal Error")
			}
		}()
		if code, reason := validate(req); code != 0 {
			p.m.badRequests.Add(1)
			p.respond(tx, req, code, reason)
			return
		}
		h(req, tx)
	}
}

// enter counts a running handler, or reports false after Close.
func (p *Proxy) enter() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.hwg.Add(1)
	return true
}

// respond answers req on tx, logging a failure.
func (p *Proxy) respond(tx sip.ServerTransaction, req *sip.Request, code int, reason string) {
	if err := tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil)); err != nil {
		p.log.Debug("proxy: respond", "code", code, "err", err)
	}
}

func (p *Proxy) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	if hasTag(req.To()) {
		p.onRouted(req, tx) // in a dialog: for the other party
		return
	}
	p.m.options.Add(1)
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, PRACK, REFER, NOTIFY, SUBSCRIBE, MESSAGE"))
	if err := tx.Respond(res); err != nil {
		p.log.Debug("proxy: respond OPTIONS", "err", err)
	}
}

// Close stops serving: new requests get 503, in-flight transactions give
// up (a forwarded INVITE is cancelled), the listeners close, every
// goroutine the proxy started is waited for, and a UA it made is closed.
// The blocks stay up (Stack closes them). It is idempotent.
func (p *Proxy) Close() error {
	p.once.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		p.cancel()
		if p.stopW != nil {
			p.stopW()
		}
		if p.pinger != nil {
			p.pinger.Close()
		}
		// The handlers end first, while the listening socket still
		// sends their CANCELs from the address the callee knows.
		p.hwg.Wait()
		p.udp.Close()
		p.tcp.Close()
		// Then the CANCEL senders and serve loops, before the UA: a
		// request sipgo sends once its listener is gone goes out on a
		// socket it opens, which only closing the UA closes again. One
		// opened after that would be read by a goroutine for ever.
		p.wg.Wait()
		if p.ownUA {
			p.ua.Close()
		}
	})
	return nil
}
