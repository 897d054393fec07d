package ratelimit

import (
	"math"
	"time"
)

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
