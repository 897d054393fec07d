package raftowner_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/ownership/raftowner"
)

// silentNet is the operating system's TCP with a switch that makes a node
// a silent blackhole: everything it writes is discarded, everything it
// reads is thrown away, new dials hang. Sockets stay open, so peers see no
// reset, only silence. (A kernel blackhole would need iptables and root.)
type silentNet struct {
	silent atomic.Bool
}

func (s *silentNet) Listen(ctx context.Context, addr string) (net.Listener, error) {
	l, err := cluster.TCPNetwork{}.Listen(ctx, addr)
	if err != nil {
		return nil, err
	}
	return &silentListener{Listener: l, s: s}, nil
}

func (s *silentNet) Dial(ctx context.Context, addr string) (net.Conn, error) {
	if s.silent.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	c, err := cluster.TCPNetwork{}.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return &silentConn{Conn: c, s: s}, nil
}

type silentListener struct {
	net.Listener
	s *silentNet
}

func (l *silentListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &silentConn{Conn: c, s: l.s}, nil
}

type silentConn struct {
	net.Conn
	s *silentNet
}

func (c *silentConn) Write(b []byte) (int, error) {
	if c.s.silent.Load() {
		return len(b), nil
	}
	return c.Conn.Write(b)
}

func (c *silentConn) Read(b []byte) (int, error) {
	for {
		n, err := c.Conn.Read(b)
		if err != nil || !c.s.silent.Load() {
			return n, err
		}
	}
}

type benchNode struct {
	id   cluster.NodeID
	addr string
	dir  string
	net  *silentNet
	tcp  *cluster.TCP
	node *raftowner.Node
}

type benchCluster struct {
	b     *testing.B
	nodes []*benchNode
	peers []raftowner.Peer
}

func newBenchCluster(b *testing.B) *benchCluster {
	c := &benchCluster{b: b}
	dir := b.TempDir()
	for i := 1; i <= 3; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		id := cluster.NodeID(fmt.Sprintf("n%d", i))
		c.nodes = append(c.nodes, &benchNode{id: id, addr: addr, dir: filepath.Join(dir, string(id))})
		c.peers = append(c.peers, raftowner.Peer{ID: id, Addr: addr})
	}
	for _, n := range c.nodes {
		c.start(n)
	}
	return c
}

func (c *benchCluster) start(n *benchNode) {
	var cp []cluster.Peer
	for _, p := range c.peers {
		if p.ID != n.id {
			cp = append(cp, cluster.Peer{ID: p.ID, Addr: p.Addr})
		}
	}
	n.net = &silentNet{}
	quiet := slog.New(slog.DiscardHandler)
	var err error
	for try := 0; ; try++ { // the port may linger a moment after a close
		n.tcp, err = cluster.NewTCP(context.Background(), cluster.Config{ID: n.id, Listen: n.addr, Peers: cp,
			Secret: []byte("bench-secret-0123456789"), Network: n.net, Logger: quiet})
		if err == nil || try > 100 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		c.b.Fatal(err)
	}
	rt, err := raftowner.NewStreamTransport(n.tcp, 0, nil)
	if err != nil {
		c.b.Fatal(err)
	}
	n.node, err = raftowner.New(n.tcp, rt, raftowner.Config{ID: n.id, Addr: n.addr, DataDir: n.dir, Peers: c.peers, Logger: quiet})
	if err != nil {
		c.b.Fatal(err)
	}
}

func (c *benchCluster) stop(n *benchNode) {
	if n.node != nil {
		n.node.Close()
		n.tcp.Close()
		n.node, n.tcp = nil, nil
	}
}

func (c *benchCluster) close() {
	for _, n := range c.nodes {
		c.stop(n)
	}
}

func (c *benchCluster) waitReady() {
	deadline := time.Now().Add(30 * time.Second)
	for {
		leaders, ready := 0, 0
		for _, n := range c.nodes {
			if n.node.IsLeader() {
				leaders++
			}
			if n.node.Ready() {
				ready++
			}
		}
		if leaders == 1 && ready == len(c.nodes) {
			return
		}
		if time.Now().After(deadline) {
			c.b.Fatal("cluster not ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkFailover measures owner death → the new owner's Acquired
// callback on three nodes over loopback TCP with bolt stores and the LAN
// profile. The dead owner is the Raft leader or a follower; death is a
// closed process or a silent blackhole. As the baseline from the same run,
// the leader cases also time hashicorp/raft's own election (leader death →
// another node is leader). Run with -benchtime=50x for 50 trials per case.
func BenchmarkFailover(b *testing.B) {
	for _, tc := range []struct {
		name           string
		leader, silent bool
	}{
		{"leader/closed", true, false},
		{"leader/blackhole", true, true},
		{"follower/closed", false, false},
		{"follower/blackhole", false, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := newBenchCluster(b)
			defer c.close()
			var failover, election, afterElection []time.Duration
			for i := 0; i < b.N; i++ {
				tw := time.Now()
				c.waitReady()
				if testing.Verbose() {
					b.Logf("trial %d: ready after %v", i, time.Since(tw))
				}
				var victim, standby *benchNode
				for _, n := range c.nodes {
					if n.node.IsLeader() == tc.leader && victim == nil {
						victim = n
					}
				}
				for _, n := range c.nodes {
					if n != victim {
						standby = n
						break
					}
				}
				res := fmt.Sprintf("vip/t%d", i)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				if err := standby.node.Ensure(ctx, ownership.Spec{Name: res, Candidates: []cluster.NodeID{victim.id, standby.id}}); err != nil {
					b.Fatal(err)
				}
				cancel()
				for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
					if _, ok := victim.node.Held(res); ok {
						break
					}
					if time.Now().After(deadline) {
						b.Fatalf("%s never held %s", victim.id, res)
					}
				}
				acquired := make(chan time.Time, 1)
				stop := standby.node.Watch(res, func(e ownership.Event) {
					if e.Kind == ownership.Acquired {
						select {
						case acquired <- time.Now():
						default:
						}
					}
				})
				var elected atomic.Int64
				var wg sync.WaitGroup
				quit := make(chan struct{})
				others := slices.DeleteFunc(slices.Clone(c.nodes), func(n *benchNode) bool { return n == victim })
				t0 := time.Now()
				if tc.leader {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							for _, n := range others {
								if n.node.IsLeader() {
									elected.Store(int64(time.Since(t0)))
									return
								}
							}
							select {
							case <-quit:
								return
							case <-time.After(time.Millisecond):
							}
						}
					}()
				}
				if tc.silent {
					victim.net.silent.Store(true)
				} else {
					c.stop(victim)
				}
				select {
				case at := <-acquired:
					failover = append(failover, at.Sub(t0))
				case <-time.After(30 * time.Second):
					b.Fatalf("trial %d: %s never acquired %s", i, standby.id, res)
				}
				close(quit)
				wg.Wait()
				if e := time.Duration(elected.Load()); e > 0 {
					election = append(election, e)
					afterElection = append(afterElection, failover[len(failover)-1]-e)
				}
				stop()
				tStop := time.Now()
				c.stop(victim)
				tStart := time.Now()
				c.start(victim)
				if testing.Verbose() {
					b.Logf("trial %d: failover %v, stop %v, start %v", i, failover[len(failover)-1], tStart.Sub(tStop), time.Since(tStart))
				}
			}
			b.StopTimer()
			report(b, "failover", failover)
			if len(election) > 0 {
				report(b, "raft-election", election)
				report(b, "after-election", afterElection)
				b.ReportMetric(float64(pct(failover, 50))/float64(pct(election, 50)), "failover/election-p50")
			}
		})
	}
}

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

func report(b *testing.B, name string, ds []time.Duration) {
	b.ReportMetric(float64(pct(ds, 50).Microseconds())/1000, name+"-p50-ms")
	b.ReportMetric(float64(pct(ds, 99).Microseconds())/1000, name+"-p99-ms")
	b.ReportMetric(float64(slices.Max(ds).Microseconds())/1000, name+"-max-ms")
}

// BenchmarkIdleElections checks that the LAN timings are stable: three
// nodes over loopback TCP with bolt stores sit idle (each renewing its
// lease) for one second per iteration, and the benchmark reports how many
// Raft elections started meanwhile (term increments per minute). Anything
// above zero is a spurious election: a lease blip on every node.
func BenchmarkIdleElections(b *testing.B) {
	c := newBenchCluster(b)
	defer c.close()
	c.waitReady()
	term := func() uint64 {
		var t uint64
		for _, n := range c.nodes {
			t = max(t, n.node.Stats().Term)
		}
		return t
	}
	t0 := term()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		time.Sleep(time.Second)
	}
	b.StopTimer()
	elapsed := time.Since(start)
	b.ReportMetric(float64(term()-t0)/elapsed.Minutes(), "elections/min")
}
