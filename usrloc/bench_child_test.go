package usrloc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/sipha/sipha/cluster"
)

// Benchmarks that need nodes in processes of their own (as deployed: a
// heap, a collector and a scheduler each) start this test binary again
// with envChild set: TestMain then runs that process's part instead of
// the tests.
const envChild = "USRLOC_BENCH_CHILD"

func TestMain(m *testing.M) {
	var err error
	switch os.Getenv(envChild) {
	case "":
		os.Exit(m.Run())
	case "donor":
		n, _ := strconv.Atoi(os.Getenv(envDonorN))
		err = runDonor(os.Getenv(envDonorAddr), n)
	case "lag":
		err = runLagNode()
	default:
		err = fmt.Errorf("unknown %s", envChild)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchmark process:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// child is a benchmark's helper process: it reads stdin until it closes,
// and speaks in lines on stdout.
type child struct {
	stdin io.WriteCloser
	out   *bufio.Reader
}

// startChild starts the test binary as a helper process of kind with the
// given environment; it is stopped when the benchmark ends.
func startChild(b *testing.B, kind string, env ...string) *child {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), envChild+"="+kind), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	return &child{stdin: stdin, out: bufio.NewReader(stdout)}
}

func (c *child) waitLine(b *testing.B, want string) {
	b.Helper()
	line, err := c.out.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != want {
		b.Fatalf("benchmark process said %q (%v), want %q", line, err, want)
	}
}

// childNode starts a replicating node (a first node: it joins no one) in
// a helper process, without logs; stop ends it.
func childNode(id cluster.NodeID, addr string, peers []cluster.Peer) (tr *cluster.TCP, st *Store, stop func(), err error) {
	log := slog.New(slog.DiscardHandler)
	tr, err = cluster.NewTCP(context.Background(), cluster.Config{ID: id, Listen: addr, Peers: peers, Secret: testSecret, Logger: log})
	if err != nil {
		return nil, nil, nil, err
	}
	if st, err = New(Config{Node: id, Logger: log}); err != nil {
		tr.Close()
		return nil, nil, nil, err
	}
	rp, err := NewReplicator(st, tr, ReplicatorConfig{NoJoin: true, Logger: log})
	if err != nil {
		st.Close()
		tr.Close()
		return nil, nil, nil, err
	}
	return tr, st, func() { rp.Close(); tr.Close(); st.Close() }, nil
}
