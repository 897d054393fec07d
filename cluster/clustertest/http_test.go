package clustertest

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestHTTPOverNetwork runs the standard library's HTTP server and client over
// the network: a real protocol stack with keep-alive connections, deadlines
// and an accept loop, through a partition and a kill.
func TestHTTPOverNetwork(t *testing.T) {
	CheckLeaks(t)
	n := newNet(t, Config{Seed: 50})
	n.SetDelay(time.Millisecond)
	l, err := n.Host("srv").Listen(context.Background(), "srv:80")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from "+r.Host)
	})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
		return n.Host("cli").Dial(ctx, addr)
	}}
	defer tr.CloseIdleConnections()
	cli := &http.Client{Transport: tr}

	// get GETs with a timeout that only a broken network reaches.
	get := func(timeout time.Duration) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://srv:80/", nil)
		resp, err := cli.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	for range 3 { // the later ones reuse the keep-alive connection
		if body, err := get(10 * time.Second); err != nil || body != "hello from srv:80" {
			t.Fatalf("GET = %q, %v", body, err)
		}
	}
	if n.Delivered("cli", "srv") == 0 || n.Delivered("srv", "cli") == 0 {
		t.Fatalf("stats show no traffic: %+v", n.Stats())
	}

	n.Partition([]string{"cli"}, []string{"srv"})
	before := n.Delivered("cli", "srv")
	if _, err := get(100 * time.Millisecond); err == nil {
		t.Fatal("GET across a partition succeeded")
	}
	if d := n.Delivered("cli", "srv"); d != before {
		t.Fatalf("%d bytes crossed the partition", d-before)
	}
	n.Heal()
	if body, err := get(10 * time.Second); err != nil || body != "hello from srv:80" {
		t.Fatalf("GET after heal = %q, %v", body, err)
	}

	n.Kill("srv")
	if err := <-served; err == nil || errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve after kill returned %v, want the listener's error", err)
	}
	if _, err := get(10 * time.Second); err == nil {
		t.Fatal("GET to a killed server succeeded")
	}
	srv.Close()
}
