package ratelimit

import (
	"context"
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

const shardCount = 64

// shard is one slice of the pipe table. Padding keeps two shards' locks
// off one cache line, so parallel Allow calls on different pipes do not
// contend.
type shard struct {
	mu    sync.RWMutex
	pipes map[string]*pipe
	_     [40]byte
}

// Limiter admits or refuses calls per named pipe. It is safe for concurrent
// use; Allow takes no lock but a read lock on one of 64 shards of the pipe
// table and allocates nothing for a pipe that exists.
type Limiter struct {
	cfg   Config
	epoch time.Time
	// monotonic: Config.Now was left to its default, so now() may read
	// only the monotonic clock (time.Since), half the cost of time.Now's
	// wall and monotonic reads.
	monotonic bool
	seed      maphash.Seed
	shards    [shardCount]shard
	npipes    atomic.Int64
	closed    atomic.Bool

	cl *clusterState // nil in node-local mode

	rejectedNew atomic.Uint64 // calls refused because the pipe could not be made

	quit      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New starts a limiter. In cluster mode (cfg.Transport set) it registers
// its handler on cluster.ChannelRatelimit and starts exchanging demand.
func New(cfg Config) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	monotonic := cfg.Now == nil
	cfg = cfg.withDefaults()
	l := &Limiter{cfg: cfg, epoch: cfg.Now(), monotonic: monotonic, seed: maphash.MakeSeed(), quit: make(chan struct{})}
	for i := range l.shards {
		l.shards[i].pipes = make(map[string]*pipe)
	}
	if cfg.Transport != nil {
		l.cl = newClusterState(l)
		cfg.Transport.Handle(chRatelimit, l.cl)
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.loop()
	}()
	return l, nil
}

// Close stops the exchange and the expiry of pipes and waits for the
// limiter's goroutine. In cluster mode it tells the peers this node is
// leaving, so they take its share at once. A closed limiter admits nothing.
// Close is idempotent.
func (l *Limiter) Close() error {
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		close(l.quit)
		l.wg.Wait()
		if l.cl != nil {
			l.cfg.Transport.Handle(chRatelimit, nil)
			l.cl.sayGoodbye()
		}
	})
	return nil
}

// now is the limiter's time: ns since it started, by the injected clock.
func (l *Limiter) now() int64 {
	if l.monotonic {
		return int64(time.Since(l.epoch))
	}
	return int64(l.cfg.Now().Sub(l.epoch))
}

// Allow reports whether one call on pipe may go ahead now.
func (l *Limiter) Allow(pipe string) bool { return l.AllowN(pipe, 1) }

// AllowN reports whether n calls on pipe may go ahead now; it takes all n
// or none. Every call asked for counts as demand, admitted or not.
func (l *Limiter) AllowN(pipe string, n int) bool {
	p := l.pipe(pipe)
	if p == nil || l.closed.Load() {
		return false
	}
	return p.allow(l.now(), n)
}

// AllowBytes is Allow for a pipe name held in bytes (a header value read
// from a packet): it does not allocate for a pipe that exists, where
// Allow(string(b)) would copy the name on every call.
func (l *Limiter) AllowBytes(pipe []byte) bool {
	sh := &l.shards[maphash.Bytes(l.seed, pipe)%shardCount]
	sh.mu.RLock()
	p := sh.pipes[string(pipe)]
	sh.mu.RUnlock()
	if p == nil {
		p = l.newPipe(sh, string(pipe))
	}
	if p == nil || l.closed.Load() {
		return false
	}
	return p.allow(l.now(), 1)
}

// Reserve takes n calls from a TokenBucket (or RED) pipe and returns how long the
// caller must wait before placing them; a B2BUA queues the call for that
// long instead of rejecting it. When the wait would exceed maxWait nothing
// is taken and the error wraps ErrLimited. Pipes of other algorithms give
// ErrNoReserve.
func (l *Limiter) Reserve(pipe string, n int, maxWait time.Duration) (time.Duration, error) {
	if l.closed.Load() {
		return 0, ErrClosed
	}
	p := l.pipe(pipe)
	if p == nil {
		return 0, fmt.Errorf("pipe %q: %w", pipe, ErrPipeRefused)
	}
	if !p.bucket() && !p.unlimited {
		return 0, fmt.Errorf("pipe %q: %w", pipe, ErrNoReserve)
	}
	wait, ok := p.reserve(l.now(), int64(n), maxWait)
	if !ok {
		return wait, fmt.Errorf("pipe %q needs a wait of %v: %w", pipe, wait, ErrLimited)
	}
	return wait, nil
}

// Wait blocks until one call on pipe may go ahead, or fails at once with
// ErrLimited when that would be after ctx's deadline. The call taken is
// not given back when ctx ends during the wait.
func (l *Limiter) Wait(ctx context.Context, pipe string) error {
	maxWait := time.Duration(1<<63 - 1)
	if dl, ok := ctx.Deadline(); ok {
		maxWait = dl.Sub(l.cfg.Now())
	}
	wait, err := l.Reserve(pipe, 1, maxWait)
	if err != nil || wait <= 0 {
		return err
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pipe finds or makes the named pipe; nil when it may not be made.
func (l *Limiter) pipe(name string) *pipe {
	sh := &l.shards[maphash.String(l.seed, name)%shardCount]
	sh.mu.RLock()
	p := sh.pipes[name]
	sh.mu.RUnlock()
	if p != nil {
		return p
	}
	return l.newPipe(sh, name)
}

func (l *Limiter) newPipe(sh *shard, name string) *pipe {
	if len(name) > l.cfg.MaxPipeName || len(name) == 0 {
		l.rejectedNew.Add(1)
		return nil
	}
	if l.npipes.Load() >= int64(l.cfg.MaxPipes) {
		l.rejectedNew.Add(1)
		return nil
	}
	// The pipe is made before taking the shard's lock: the cluster state's
	// lock is taken by initShare, and the loop takes the two the other way.
	lim, err := l.cfg.limitOf(name)
	now := l.now()
	p := newPipe(name, lim, now)
	if err != nil {
		l.cfg.Logger.Warn("ratelimit: bad limit for pipe; refusing its calls", "pipe", name, "err", err)
		p.deny, p.unlimited = true, false
	}
	if l.cl != nil {
		l.cl.initShare(p, now)
	} else {
		p.safe = lim.Rate
		p.setShare(lim.Rate, float64(lim.Burst), now)
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if q := sh.pipes[name]; q != nil {
		return q
	}
	sh.pipes[name] = p
	l.npipes.Add(1)
	return p
}

// forEachPipe calls fn for every pipe; fn may return true to delete it.
// Only the loop goroutine calls it.
func (l *Limiter) forEachPipe(fn func(p *pipe) (remove bool)) {
	var remove []*pipe
	for i := range l.shards {
		sh := &l.shards[i]
		remove = remove[:0]
		sh.mu.RLock()
		for _, p := range sh.pipes {
			if fn(p) {
				remove = append(remove, p)
			}
		}
		sh.mu.RUnlock()
		if len(remove) == 0 {
			continue
		}
		sh.mu.Lock()
		for _, p := range remove {
			// A concurrent Allow may still hold p and count one call on
			// it after it is gone; the next call makes a fresh pipe.
			if sh.pipes[p.name] == p {
				delete(sh.pipes, p.name)
				l.npipes.Add(-1)
			}
		}
		sh.mu.Unlock()
	}
}

// loop is the limiter's one goroutine: every Interval it measures each
// pipe's demand, expires idle pipes and, in cluster mode, runs a round of
// the demand exchange.
func (l *Limiter) loop() {
	t := time.NewTicker(l.cfg.Interval)
	defer t.Stop()
	last := l.now()
	for {
		select {
		case <-l.quit:
			return
		case <-t.C:
		}
		now := l.now()
		l.tick(now, now-last)
		last = now
	}
}

func (l *Limiter) tick(now, elapsed int64) {
	if elapsed <= 0 {
		elapsed = int64(l.cfg.Interval)
	}
	secs := time.Duration(elapsed).Seconds()
	alpha := l.cfg.Smoothing
	idle := int64(l.cfg.IdleTimeout)
	if l.cl != nil {
		l.cl.beginRound(now)
		defer l.cl.endRound()
	}
	l.forEachPipe(func(p *pipe) bool {
		asked := p.asked.Load()
		n := asked - p.lastAsked
		p.lastAsked = asked
		p.demand = alpha*float64(n)/secs + (1-alpha)*p.demand
		p.demandBits.Store(math.Float64bits(p.demand))
		if n > 0 {
			p.lastActive = now
		} else if now-p.lastActive >= idle {
			return true
		}
		if l.cl != nil {
			l.cl.update(p, now)
		}
		return false
	})
}

// Stats is a snapshot of a limiter's counters, for metrics.
type Stats struct {
	Pipes        int    // live pipes
	RefusedPipes uint64 // calls refused because a new pipe could not be made (MaxPipes, bad name)
	// Cluster mode only.
	MessagesSent      uint64
	MessagesReceived  uint64
	MessagesMalformed uint64
	SendErrors        uint64 // messages a peer's full queue dropped
	PeersInContact    int    // counted peers heard from within Silence
	Quorum            bool   // this node and the peers in contact are a majority
}

// Stats returns the limiter's counters.
func (l *Limiter) Stats() Stats {
	s := Stats{Pipes: int(l.npipes.Load()), RefusedPipes: l.rejectedNew.Load(), Quorum: true}
	if cl := l.cl; cl != nil {
		s.MessagesSent = cl.msgsSent.Load()
		s.MessagesReceived = cl.msgsRecv.Load()
		s.MessagesMalformed = cl.msgsBad.Load()
		s.SendErrors = cl.sendErrs.Load()
		s.PeersInContact = int(cl.freshPeers.Load())
		s.Quorum = cl.quorum.Load()
	}
	return s
}

// PipeStats describes one pipe on this node.
type PipeStats struct {
	Limit    Limit   // the pipe's (cluster-wide) limit
	Share    float64 // calls/s this node may admit now
	Demand   float64 // smoothed calls/s asked for on this node
	Asked    uint64  // calls asked for since the pipe was made
	Admitted uint64  // calls admitted since the pipe was made
}

// Pipe returns the stats of a live pipe; ok is false if it does not exist.
// It does not make the pipe.
func (l *Limiter) Pipe(name string) (ps PipeStats, ok bool) {
	sh := &l.shards[maphash.String(l.seed, name)%shardCount]
	sh.mu.RLock()
	p := sh.pipes[name]
	sh.mu.RUnlock()
	if p == nil {
		return PipeStats{}, false
	}
	return PipeStats{
		Limit:    p.limit,
		Share:    math.Float64frombits(p.shareBits.Load()),
		Demand:   math.Float64frombits(p.demandBits.Load()),
		Asked:    p.asked.Load(),
		Admitted: p.admitted.Load(),
	}, true
}
