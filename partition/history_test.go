package partition_test

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
)

// farmLog records every ownership event each node of a farm delivers, and
// how late the test process's goroutines ran: when a tenant moves where it
// should not, the failure shows the resource's history and whether the
// host broke the timing assumptions (a pause longer than MaxPause makes a
// live node's lease lapse, which the ownership layer must treat as death).
type farmLog struct {
	start time.Time
	quit  chan struct{}
	done  chan struct{}

	mu     sync.Mutex
	lines  []string
	stall  time.Duration // longest late wake-up of a 5 ms timer
	closed bool
}

// newFarmLog starts the probe; leader, polled by it, names the Raft
// leader.
func newFarmLog(leader func() cluster.NodeID) *farmLog {
	l := &farmLog{start: time.Now(), quit: make(chan struct{}), done: make(chan struct{})}
	go l.probe(leader)
	return l
}

// probe measures scheduling delay: a timer set for 5 ms that fires late
// means every goroutine of the cluster (all nodes run in this process)
// could have been held up as long.
func (l *farmLog) probe(leader func() cluster.NodeID) {
	defer close(l.done)
	var lead cluster.NodeID
	const tick = 5 * time.Millisecond
	t := time.NewTimer(tick)
	defer t.Stop()
	for {
		at := time.Now()
		select {
		case <-l.quit:
			return
		case <-t.C:
		}
		if late := time.Since(at) - tick; late > 0 {
			l.mu.Lock()
			l.stall = max(l.stall, late)
			l.mu.Unlock()
		}
		if id := leader(); id != lead {
			l.add("MARK leader %q", id)
			lead = id
		}
		t.Reset(tick)
	}
}

func (l *farmLog) add(format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.lines = append(l.lines, fmt.Sprintf("%9.1fms ", float64(time.Since(l.start).Microseconds())/1000)+fmt.Sprintf(format, a...))
	}
}

// watch records node id's events until the returned stop is called.
func (l *farmLog) watch(id cluster.NodeID, m ownership.Manager) (stop func()) {
	return m.Watch("", func(e ownership.Event) {
		l.add("%s %s %s %s@%d removed=%v", id, e.Kind, e.Resource, e.Claim.Node, e.Claim.Epoch, e.Removed)
	})
}

// history returns the recorded lines mentioning resource, and the marks
// (lines with no resource: kills, restarts).
func (l *farmLog) history(resource string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, s := range l.lines {
		if strings.Contains(s, resource+" ") || strings.Contains(s, "MARK ") {
			b.WriteString(s)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// longestStall is the largest scheduling delay seen so far.
func (l *farmLog) longestStall() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stall
}

func (l *farmLog) close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.mu.Unlock()
	close(l.quit)
	<-l.done
}
