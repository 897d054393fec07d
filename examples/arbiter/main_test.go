package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/ownership/raftowner"
)

func TestHelpDocumentsFlags(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-h"}, &out, nil)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("run -h = %v", err)
	}
	for _, f := range []string{"-id", "-listen", "-advertise", "-peers", "-data", "-secret-file", "-profile", "-insecure"} {
		if !strings.Contains(out.String(), f) {
			t.Errorf("-h does not document %s:\n%s", f, out.String())
		}
	}
}

func TestBadFlags(t *testing.T) {
	cases := [][]string{
		{},
		{"-id", "a", "-listen", "127.0.0.1:0", "-data", "x"},
		{"-id", "a", "-listen", "127.0.0.1:0", "-data", "x", "-peers", "a"},
		{"-id", "a", "-listen", "127.0.0.1:0", "-data", "x", "-peers", "a=127.0.0.1:1", "-profile", "moon"},
		{"-id", "a", "-listen", "127.0.0.1:0", "-data", "x", "-peers", "a=127.0.0.1:1", "extra"},
	}
	for _, args := range cases {
		var out bytes.Buffer
		if err := run(context.Background(), args, &out, nil); err == nil {
			t.Errorf("run %q: no error", args)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Two SIP nodes and the arbiter binary's run, on loopback TCP with a shared
// secret: killing the arbiter moves nothing; killing a SIP node moves
// everything to the other.
func TestTwoNodesAndArbiter(t *testing.T) {
	clustertest.CheckLeaks(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := map[cluster.NodeID]string{"sip1": freeAddr(t), "sip2": freeAddr(t), "arb": freeAddr(t)}
	var peers []raftowner.Peer
	var list []string
	for _, id := range []cluster.NodeID{"sip1", "sip2", "arb"} {
		peers = append(peers, raftowner.Peer{ID: id, Addr: addr[id]})
		list = append(list, string(id)+"="+addr[id])
	}
	// startArb runs the arbiter as main would and returns its stop.
	startArb := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		ready := make(chan struct{})
		go func() {
			done <- run(ctx, []string{"-id", "arb", "-listen", addr["arb"], "-data", filepath.Join(dir, "arb"),
				"-peers", strings.Join(list, ","), "-secret-file", secret}, io.Discard, func(*raftowner.Node) { close(ready) })
		}()
		select {
		case <-ready:
		case err := <-done:
			t.Fatalf("arbiter: %v", err)
		}
		var stopped bool
		return func() {
			if stopped {
				return
			}
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("arbiter: %v", err)
			}
		}
	}
	stopArb := startArb()
	defer func() { stopArb() }()

	type sip struct {
		tcp  *cluster.TCP
		node *raftowner.Node
	}
	nodes := map[cluster.NodeID]*sip{}
	for _, id := range []cluster.NodeID{"sip1", "sip2"} {
		var cp []cluster.Peer
		for _, p := range peers {
			if p.ID != id {
				cp = append(cp, cluster.Peer{ID: p.ID, Addr: p.Addr})
			}
		}
		tcp, err := cluster.NewTCP(context.Background(), cluster.Config{ID: id, Listen: addr[id], Peers: cp, Secret: []byte("0123456789abcdef0123"), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		rt, err := raftowner.NewStreamTransport(tcp, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		n, err := raftowner.New(tcp, rt, raftowner.Config{ID: id, Addr: addr[id], DataDir: filepath.Join(dir, string(id)), Peers: peers})
		if err != nil {
			t.Fatal(err)
		}
		nodes[id] = &sip{tcp, n}
		defer func() { n.Close(); tcp.Close() }()
	}
	holder := func(res string) (cluster.NodeID, ownership.Epoch, int) {
		var id cluster.NodeID
		var e ownership.Epoch
		c := 0
		for x, s := range nodes {
			if ep, ok := s.node.Held(res); ok {
				id, e = x, ep
				c++
			}
		}
		return id, e, c
	}
	waitHolder := func(res string, want cluster.NodeID) ownership.Epoch {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			id, e, c := holder(res)
			if c == 1 && id == want {
				return e
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: holder %s (%d holders), want %s", res, id, c, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	ectx, ecancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer ecancel()
	for _, s := range nodes {
		for !s.node.Ready() && ectx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
	}
	res := map[string]cluster.NodeID{"vip/198.51.100.100": "sip1", "node/sip2": "sip2"}
	for name, primary := range res {
		other := cluster.NodeID("sip2")
		if primary == "sip2" {
			other = "sip1"
		}
		if err := nodes["sip1"].node.Ensure(ectx, ownership.Spec{Name: name, Candidates: []cluster.NodeID{primary, other}}); err != nil {
			t.Fatal(err)
		}
	}
	epochs := map[string]ownership.Epoch{}
	for name, primary := range res {
		epochs[name] = waitHolder(name, primary)
	}

	stopArb()
	time.Sleep(3 * nodes["sip1"].node.Config().ReassignDelay)
	// Had the arbiter been leading, leases lapse until the SIP nodes have a
	// leader; then each resource is held by the same node at the same epoch.
	for name, primary := range res {
		if e := waitHolder(name, primary); e != epochs[name] {
			t.Fatalf("%s moved when the arbiter stopped: epoch %d → %d", name, epochs[name], e)
		}
	}
	// Restart the arbiter from its data directory, then kill sip1.
	stopArb = startArb()
	time.Sleep(nodes["sip1"].node.Config().ReassignDelay)
	nodes["sip1"].node.Close()
	nodes["sip1"].tcp.Close()
	delete(nodes, "sip1")
	for name := range res {
		waitHolder(name, "sip2")
	}
}
