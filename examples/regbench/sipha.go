package main

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/sipha/sipha/cluster/clustertest"
)

// buildRegistrar builds examples/registrar into dir.
func buildRegistrar(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "registrar")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/sipha/sipha/examples/registrar").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build examples/registrar: %v: %s", err, out)
	}
	return bin, nil
}

// startSipha starts one examples/registrar, or a replicating pair, each
// with extra flags.
func startSipha(ctx context.Context, dir, bin, countMetric string, pair bool, extra ...string) (*system, error) {
	n := 1
	s := &system{name: "sipha registrar"}
	if pair {
		n, s.name = 2, "sipha registrar pair"
	}
	ports, err := clustertest.FreeLoopbackPorts(3 * n)
	if err != nil {
		return nil, err
	}
	cluster := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[n+i]) }
	var urls []string
	for i := range n {
		var peers []string
		for j := range n {
			if j != i {
				peers = append(peers, fmt.Sprintf("n%d=%s", j, cluster(j)))
			}
		}
		httpAddr := fmt.Sprintf("127.0.0.1:%d", ports[2*n+i])
		args := []string{"-id", fmt.Sprintf("n%d", i), "-sip", fmt.Sprintf("127.0.0.1:%d", ports[i]),
			"-cluster", cluster(i), "-http", httpAddr, "-data", filepath.Join(dir, fmt.Sprintf("n%d", i)),
			"-secret", "regbench-cluster-secret-0123456789"}
		if len(peers) > 0 {
			args = append(args, "-peers", strings.Join(peers, ","))
		}
		args = append(args, extra...)
		cmd := exec.Command(bin, args...)
		if err := start(cmd, filepath.Join(dir, fmt.Sprintf("n%d.log", i))); err != nil {
			s.stop()
			return nil, err
		}
		url := "http://" + httpAddr
		urls = append(urls, url)
		s.nodes = append(s.nodes, &node{cmd: cmd, sip: fmt.Sprintf("127.0.0.1:%d", ports[i]),
			count: func(ctx context.Context) (int, error) {
				v, err := metric(ctx, url+"/metrics", countMetric)
				return int(v), err
			}})
	}
	for _, u := range urls {
		err := waitFor(ctx, "sipha registrar healthy", func() error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u+"/healthz", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("healthz %s", resp.Status)
			}
			return nil
		})
		if err != nil {
			s.stop()
			return nil, err
		}
	}
	return s, nil
}
