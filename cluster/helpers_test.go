package cluster_test

import (
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
)

// quietLogger logs to the test log only when -v is set, at debug level when
// SIPHA_DEBUG is set.
func quietLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	level := slog.LevelInfo
	if os.Getenv("SIPHA_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(string(b[:len(b)-1]))
	return len(b), nil
}

// freeLoopbackAddrs reserves n loopback ports. The ports are released before
// use, so another process could take one in between; on a test machine that
// race is remote, and a clash fails loudly in NewTCP.
func freeLoopbackAddrs(t testing.TB, n int) []string {
	t.Helper()
	var out []string
	var lns []net.Listener
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}
