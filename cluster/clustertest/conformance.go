package clustertest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
)

// Factory starts one transport per ID, each knowing every other as a peer,
// and returns them in the order of ids. It registers their cleanup with t;
// the suite may also Close them itself (Close is idempotent).
type Factory func(t *testing.T, ids []cluster.NodeID) []cluster.Transport

// RunTransport checks that a Transport keeps the delivery contract written
// on cluster.Transport. Run it from a test of your own implementation:
//
//	func TestMyTransport(t *testing.T) { clustertest.RunTransport(t, newMyCluster) }
func RunTransport(t *testing.T, newCluster Factory) {
	t.Run("SendReceive", func(t *testing.T) { testSendReceive(t, newCluster) })
	t.Run("FIFOPerPeer", func(t *testing.T) { testFIFO(t, newCluster) })
	t.Run("Broadcast", func(t *testing.T) { testBroadcast(t, newCluster) })
	t.Run("PayloadCopied", func(t *testing.T) { testPayloadCopied(t, newCluster) })
	t.Run("ConcurrentSenders", func(t *testing.T) { testConcurrent(t, newCluster) })
	t.Run("UnknownChannelDropped", func(t *testing.T) { testUnknownChannel(t, newCluster) })
	t.Run("UnknownPeer", func(t *testing.T) { testUnknownPeer(t, newCluster) })
	t.Run("Members", func(t *testing.T) { testMembers(t, newCluster) })
	t.Run("NeverBlocksAndGapsAreSeen", func(t *testing.T) { testNonBlocking(t, newCluster) })
	t.Run("Close", func(t *testing.T) { testClose(t, newCluster) })
}

// waitTimeout bounds every wait in the suite; the contract is about what
// arrives, not how fast, so it is generous.
const waitTimeout = 10 * time.Second

// Eventually polls cond until it holds or the timeout passes, then fails t
// with msg.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: "+msg, append([]any{timeout}, args...)...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// WaitUp waits until every transport sees every other one up.
func WaitUp(t testing.TB, trs []cluster.Transport) {
	t.Helper()
	Eventually(t, waitTimeout, func() bool {
		for _, tr := range trs {
			up := 0
			for _, m := range tr.Members() {
				if m.State == cluster.StateUp {
					up++
				}
			}
			if up < len(trs)-1 {
				return false
			}
		}
		return true
	}, "not every transport sees every peer up")
}

// recorder keeps copies of the messages a handler got.
type recorder struct {
	mu   sync.Mutex
	msgs []cluster.Message
}

func (r *recorder) HandleMessage(m cluster.Message) {
	m.Payload = bytes.Clone(m.Payload)
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []cluster.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]cluster.Message(nil), r.msgs...)
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

func ids(n int) []cluster.NodeID {
	out := make([]cluster.NodeID, n)
	for i := range out {
		out[i] = cluster.NodeID(fmt.Sprintf("n%d", i+1))
	}
	return out
}

func testSendReceive(t *testing.T, newCluster Factory) {
	trs := newCluster(t, ids(2))
	WaitUp(t, trs)
	var rec recorder
	trs[1].Handle(cluster.ChannelUser, &rec)
	if err := trs[0].Send(trs[1].LocalID(), cluster.ChannelUser, []byte("hello")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	Eventually(t, waitTimeout, func() bool { return rec.len() == 1 }, "message not delivered")
	m := rec.snapshot()[0]
	if m.From != trs[0].LocalID() || m.Channel != cluster.ChannelUser || string(m.Payload) != "hello" {
		t.Fatalf("got %+v, want from %s on channel %d with payload hello", m, trs[0].LocalID(), cluster.ChannelUser)
	}
	if m.Seq != 1 || m.Missed != 0 {
		t.Fatalf("first message has Seq %d Missed %d, want 1 and 0", m.Seq, m.Missed)
	}
}

func testFIFO(t *testing.T, newCluster Factory) {
	trs := newCluster(t, ids(2))
	WaitUp(t, trs)
	const n = 20000
	chans := []cluster.Channel{cluster.ChannelUser, cluster.ChannelUser + 1}
	recs := make([]*recorder, len(chans))
	for i, ch := range chans {
		recs[i] = &recorder{}
		trs[1].Handle(ch, recs[i])
	}
	var buf [8]byte
	for i := 0; i < n; i++ {
		binary.BigEndian.PutUint64(buf[:], uint64(i))
		ch := chans[i%len(chans)]
		if err := trs[0].Send(trs[1].LocalID(), ch, buf[:]); err != nil {
			// 20k small messages are less than any queue must hold.
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	Eventually(t, waitTimeout, func() bool { return recs[0].len()+recs[1].len() == n }, "not all %d messages arrived", n)
	for ci, rec := range recs {
		next := uint64(ci)
		for j, m := range rec.snapshot() {
			got := binary.BigEndian.Uint64(m.Payload)
			if got != next {
				t.Fatalf("channel %d message %d carries %d, want %d: order broken", chans[ci], j, got, next)
			}
			if m.Seq != uint64(j+1) || m.Missed != 0 {
				t.Fatalf("channel %d message %d has Seq %d Missed %d, want %d and 0", chans[ci], j, m.Seq, m.Missed, j+1)
			}
			next += uint64(len(chans))
		}
	}
}

func testBroadcast(t *testing.T, newCluster Factory) {
	trs := newCluster(t, ids(3))
	WaitUp(t, trs)
	recs := make([]*recorder, len(trs))
	for i, tr := range trs {
		recs[i] = &recorder{}
		tr.Handle(cluster.ChannelUser, recs[i])
	}
	if err := trs[0].Broadcast(cluster.ChannelUser, []byte("all")); err != nil {
		t.Fatalf("Broadcast: %v", err)
	}
	Eventually(t, waitTimeout, func() bool { return recs[1].len() == 1 && recs[2].len() == 1 }, "broadcast did not reach every peer")
	time.Sleep(50 * time.Millisecond) // a duplicate or a self-delivery would show by now
	if recs[0].len() != 0 {
		t.Fatalf("the sender got its own broadcast")
	}
	for i := 1; i < 3; i++ {
		if msgs := recs[i].snapshot(); len(msgs) != 1 || string(msgs[0].Payload) != "all" {
			t.Fatalf("peer %d got %d messages, want exactly one 'all'", i, len(msgs))
		}
	}
}

func testPayloadCopied(t *testing.T, newCluster Factory) {
	trs := newCluster(t, ids(2))
	WaitUp(t, trs)
	var rec recorder
	trs[1].Handle(cluster.ChannelUser, &rec)
	buf := []byte("first")
	if err := trs[0].Send(trs[1].LocalID(), cluster.ChannelUser, buf); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXX") // the caller may reuse its buffer at once
	if err := trs[0].Broadcast(cluster.ChannelUser, []byte("second")); err != nil {
		t.Fatal(err)
	}
	Eventually(t, waitTimeout, func() bool { return rec.len() == 2 }, "messages not delivered")
	if got := string(rec.snapshot()[0].Payload); got != "first" {
		t.Fatalf("got %q: the transport did not copy the payload", got)
	}
}

func testConcurrent(t *testing.T, newCluster Factory) {
	trs := newCluster(t, ids(3))
	WaitUp(t, trs)
	var rec recorder
	trs[2].Handle(cluster.ChannelUser, &rec)
	const senders, each = 8, 500
	var accepted atomic.Int64
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			from := trs[s%2]
			for i := 0; i < each; i++ {
				msg := fmt.Appendf(nil, "%d/%d", s, i)
				if err := from.Send(trs[2].LocalID(), cluster.ChannelUser, msg); err == nil {
					accepted.Add(1)
				}
			}
		}(s)
	}
	wg.Wait()
	Eventually(t, waitTimeout, func() bool { return int64(rec.len()) == accepted.Load() }, "accepted messages not all delivered")
	seen := map[string]bool{}
	lastSeq := map[cluster.NodeID]uint64{}
	for _, m := range rec.snapshot() {
		if seen[string(m.Payload)] {
			t.Fatalf("message %q delivered twice", m.Payload)
		}
		seen[string(m.Payload)] = true
		if m.Seq <= lastSeq[m.From] {
			t.Fatalf("sequence from %s went from %d to %d", m.From, lastSeq[m.From], m.Seq)
		}
		lastSeq[m.From] = m.Seq
	}
}

func testUnknownChannel(t *testing.T, newCluster Factory) {
	trs := newCluster(t, ids(2))
	WaitUp(t, trs)
	if err := trs[0].Send(trs[1].LocalID(), cluster.ChannelUser+7, []byte("nobody listens")); err != nil {
		t.Fatal(err)
	}
	var rec recorder
	trs[1].Handle(cluster.ChannelUser, &rec)
	// A later message on a handled channel still arrives: the connection
	// survived the unhandled one.
	Eventually(t, waitTimeout, func() bool {
		trs[0].Send(trs[1].LocalID(), cluster.ChannelUser, []byte("x"))
		return rec.len() > 0
	}, "messages stopped after one for an unhandled channel")
	trs[1].Handle(cluster.ChannelUser, nil)
	trs[0].Send(trs[1].LocalID(), cluster.ChannelUser, []byte("after removal"))
	time.Sleep(50 * time.Millisecond)
	for _, m := range rec.snapshot() {
		if string(m.Payload) == "after removal" {
			t.Fatal("a removed handler still got a message")
		}
	}
}

func testUnknownPeer(t *testing.T, newCluster Factory) {
	trs := newCluster(t, ids(2))
	err := trs[0].Send("no-such-node", cluster.ChannelUser, []byte("x"))
	if !errors.Is(err, cluster.ErrUnknownPeer) {
		t.Fatalf("Send to an unknown peer returned %v, want ErrUnknownPeer", err)
	}
}

func testMembers(t *testing.T, newCluster Factory) {
	all := ids(3)
	trs := newCluster(t, all)
	WaitUp(t, trs)
	for i, tr := range trs {
		if tr.LocalID() != all[i] {
			t.Fatalf("transport %d has ID %s, want %s", i, tr.LocalID(), all[i])
		}
		for _, m := range tr.Members() {
			if m.ID == tr.LocalID() {
				t.Fatalf("%s lists itself among its members", tr.LocalID())
			}
		}
	}
}

// testNonBlocking stalls a receiver's handler while the sender sends far
// more than any queue holds: Send must keep returning, and once the handler
// runs again the sequence numbers must account for every message that did
// not arrive.
func testNonBlocking(t *testing.T, newCluster Factory) {
	trs := newCluster(t, ids(2))
	WaitUp(t, trs)
	release := make(chan struct{})
	var mu sync.Mutex
	var got []cluster.Message
	trs[1].Handle(cluster.ChannelUser, cluster.HandlerFunc(func(m cluster.Message) {
		<-release
		m.Payload = nil
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	}))
	payload := make([]byte, 16<<10)
	const n = 4000 // 64 MiB: more than any sane queue plus socket buffers
	done := make(chan int)
	go func() {
		full := 0
		for i := 0; i < n; i++ {
			if err := trs[0].Send(trs[1].LocalID(), cluster.ChannelUser, payload); errors.Is(err, cluster.ErrQueueFull) {
				full++
			}
		}
		done <- full
	}()
	var full int
	select {
	case full = <-done:
	case <-time.After(30 * time.Second):
		close(release)
		t.Fatal("Send blocked while the receiver stalled")
	}
	close(release)
	if full == 0 {
		t.Fatalf("%d messages of %d bytes all fit: the queue is not bounded", n, len(payload))
	}
	// The last message may itself have been dropped; send a marker that fits.
	Eventually(t, waitTimeout, func() bool {
		return trs[0].Send(trs[1].LocalID(), cluster.ChannelUser, []byte("end")) == nil
	}, "queue never drained")
	Eventually(t, waitTimeout, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0 && got[len(got)-1].Seq > n
	}, "the marker after the stall never arrived")
	mu.Lock()
	defer mu.Unlock()
	var prev uint64
	for _, m := range got {
		if m.Seq != prev+m.Missed+1 {
			t.Fatalf("Seq %d after %d with Missed %d: a gap went unreported", m.Seq, prev, m.Missed)
		}
		prev = m.Seq
	}
	t.Logf("%d of %d sends refused as queue full; %d delivered", full, n, len(got))
}

func testClose(t *testing.T, newCluster Factory) {
	trs := newCluster(t, ids(2))
	WaitUp(t, trs)
	for _, tr := range trs {
		if err := tr.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := tr.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	}
	if err := trs[0].Send(trs[1].LocalID(), cluster.ChannelUser, []byte("x")); !errors.Is(err, cluster.ErrClosed) {
		t.Fatalf("Send after Close returned %v, want ErrClosed", err)
	}
	if err := trs[0].Broadcast(cluster.ChannelUser, []byte("x")); !errors.Is(err, cluster.ErrClosed) {
		t.Fatalf("Broadcast after Close returned %v, want ErrClosed", err)
	}
}
