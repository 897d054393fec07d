package siphatest

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
)

// TB is the part of testing.TB the harness uses. *testing.T and
// *testing.B satisfy it; programs that are not tests (a demo, an Example)
// use Standalone.
//
// Fatalf must not return: testing's stops the test's goroutine, and
// Standalone's panics.
type TB interface {
	Helper()
	Name() string
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

// Standalone is a TB for code that is not a test: it collects cleanups and
// failures, and Close runs the cleanups and returns the failures. Its
// Fatalf panics with a *Failure. It is safe for concurrent use.
type Standalone struct {
	name string
	log  io.Writer

	mu       sync.Mutex
	cleanups []func()
	errs     []error
	closed   bool
}

// Failure is what Standalone's Fatalf panics with.
type Failure struct{ Msg string }

func (f *Failure) Error() string { return f.Msg }

// NewStandalone returns a TB named name that writes Logf lines to log
// (nil: discarded).
func NewStandalone(name string, log io.Writer) *Standalone {
	if log == nil {
		log = io.Discard
	}
	return &Standalone{name: name, log: log}
}

// Helper does nothing.
func (s *Standalone) Helper() {}

// Name returns the name given to NewStandalone.
func (s *Standalone) Name() string { return s.name }

// Logf writes one line to the log.
func (s *Standalone) Logf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.log, format+"\n", args...)
}

// Errorf records a failure.
func (s *Standalone) Errorf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = append(s.errs, fmt.Errorf(format, args...))
}

// Fatalf records a failure and panics with it.
func (s *Standalone) Fatalf(format string, args ...any) {
	f := &Failure{Msg: fmt.Sprintf(format, args...)}
	s.mu.Lock()
	s.errs = append(s.errs, f)
	s.mu.Unlock()
	panic(f)
}

// Cleanup registers f to run at Close, last registered first.
func (s *Standalone) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

// TempDir makes a directory that Close removes.
func (s *Standalone) TempDir() string {
	dir, err := os.MkdirTemp("", "siphatest-")
	if err != nil {
		s.Fatalf("siphatest: %v", err)
	}
	s.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Close runs the cleanups, last registered first, and returns every
// failure recorded (nil when none). Later calls return the same.
func (s *Standalone) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		for len(s.cleanups) > 0 {
			f := s.cleanups[len(s.cleanups)-1]
			s.cleanups = s.cleanups[:len(s.cleanups)-1]
			s.mu.Unlock()
			f()
			s.mu.Lock()
		}
	}
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

// TestLogger returns a logger writing to t's log, one line per record at
// level and above.
func TestLogger(t TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{t}, &slog.HandlerOptions{Level: level}))
}

type tbWriter struct{ t TB }

func (w tbWriter) Write(b []byte) (int, error) {
	n := len(b)
	if n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	w.t.Logf("%s", b)
	return n, nil
}
