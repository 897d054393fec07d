package main

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/sipha/sipha/cdr"
	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/ratelimit"
	"github.com/sipha/sipha/siphatest"
)

// acmeCPS is the cluster-wide calls-per-second limit of tenant acme.
const acmeCPS = 50

// startCluster starts the demo's three nodes with siphatest on loopback:
// the real TCP transport and Raft on temporary directories, with usrloc,
// dialog, ratelimit and a CDR poster on every node posting to collectors in
// failover order. The VIP resource is placed on the ownership layer alone:
// the harness's VIP block would wait for the address's lifetime on a crash
// (see package siphatest), and the demo times the ownership failover.
func startCluster(tb siphatest.TB, collectors []string, verbose io.Writer) *siphatest.Cluster {
	level := slog.LevelWarn + 100 // silent unless -v
	if verbose != nil {
		level = slog.LevelInfo
	} else {
		verbose = io.Discard
	}
	var eps []cdr.Endpoint
	for _, u := range collectors {
		eps = append(eps, cdr.Endpoint{URL: u, Timeout: 500 * time.Millisecond})
	}
	return siphatest.NewCluster(tb, 3, siphatest.Options{
		Loopback: true,
		Disable:  siphatest.BlockVIPs | siphatest.BlockPartitions,
		Limits:   map[string]ratelimit.Limit{"acme": {Rate: acmeCPS}},
		Logger:   slog.New(slog.NewTextHandler(verbose, &slog.HandlerOptions{Level: level})),
		Tune: func(_ cluster.NodeID, c *siphatest.Configs) {
			c.CDR.Endpoints = eps
		},
	})
}

// holder reports which running node holds a resource now, and how many do
// (more than one would be a split brain).
func holder(c *siphatest.Cluster, res string) (cluster.NodeID, ownership.Epoch, int) {
	h := c.Holders(res)
	if len(h) == 0 {
		return "", 0, 0
	}
	epoch, _ := c.Node(h[len(h)-1]).Ownership.Held(res)
	return h[len(h)-1], epoch, len(h)
}

// waitFor polls cond every 5 ms until it holds or the timeout passes.
func waitFor(timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}
