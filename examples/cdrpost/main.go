// Command cdrpost reads CDRs as NDJSON (one JSON object per line) from
// stdin and posts them with package cdr: each record is fsynced to a local
// spool, then delivered to the first healthy URL in failover order. It exits
// when stdin is done and every record is delivered, or when -wait runs out
// with the rest safely spooled; the next run (even with empty stdin)
// delivers those first.
//
//	cdrpost -url http://cdr1:8080/cdr -url http://cdr2:8080/cdr -spool /var/spool/cdrpost -batch 200 < cdrs.ndjson
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sipha/sipha/cdr"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "cdrpost:", err)
		os.Exit(1)
	}
}

type urlList []string

func (u *urlList) String() string     { return strings.Join(*u, ",") }
func (u *urlList) Set(s string) error { *u = append(*u, s); return nil }

func paths(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func run(ctx context.Context, args []string, stdin io.Reader, stderr io.Writer) error {
	fs := flag.NewFlagSet("cdrpost", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: cdrpost -url URL [-url URL2 ...] -spool DIR [flags] < cdrs.ndjson\n\n"+
			"Posts NDJSON CDRs from stdin to the URLs in failover order through a durable spool.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var urls urlList
	fs.Var(&urls, "url", "collector URL; repeat in failover order")
	spool := fs.String("spool", "", "spool directory (required)")
	batch := fs.Int("batch", 1, "records per request; more than 1 posts NDJSON batches")
	format := fs.String("format", "", "json, ndjson or form (default: json, or ndjson when -batch > 1)")
	linger := fs.Duration("linger", 0, "how long a batch waits to fill up")
	gz := fs.Bool("gzip", false, "gzip request bodies")
	timeout := fs.Duration("timeout", 10*time.Second, "timeout of one attempt")
	retries := fs.Int("retries", 0, "retries on one URL before failing over")
	wait := fs.Duration("wait", 30*time.Second, "after stdin ends, how long to wait for delivery before leaving the rest spooled")
	workers := fs.Int("workers", 64, "concurrent posts (they share fsyncs)")
	caFile := fs.String("ca", "", "PEM file of CA certificates to trust for HTTPS")
	user := fs.String("user", "", "HTTP basic auth user")
	pass := fs.String("pass", "", "HTTP basic auth password")
	token := fs.String("token", "", "HTTP bearer token")
	idField := fs.String("id-field", "cdr_id", "JSON field carrying the record ID; lines that have it keep their ID")
	keep := fs.String("keep", "", "comma-separated field paths to keep (a.b.c); empty keeps all")
	drop := fs.String("drop", "", "comma-separated field paths to drop")
	redact := fs.String("redact", "", "comma-separated field paths to redact")
	verbose := fs.Bool("v", false, "log delivery failures")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *workers < 1 {
		return errors.New("-workers must be at least 1")
	}
	f := cdr.FormatJSON
	if *batch > 1 {
		f = cdr.FormatNDJSON
	}
	if *format != "" {
		var err error
		if f, err = cdr.ParseFormat(*format); err != nil {
			return err
		}
	}
	level := slog.LevelError
	if *verbose {
		level = slog.LevelWarn
	}
	cfg := cdr.Config{SpoolDir: *spool, Format: f, BatchSize: *batch, Linger: *linger, Gzip: *gz,
		Timeout: *timeout, Retries: *retries, IDField: *idField,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))}
	if f != cdr.FormatNDJSON && *batch == 1 {
		cfg.BatchSize = 0
	}
	if *keep != "" || *drop != "" || *redact != "" {
		cfg.Filter = &cdr.Filter{Keep: paths(*keep), Drop: paths(*drop), Redact: paths(*redact)}
	}
	for _, u := range urls {
		cfg.Endpoints = append(cfg.Endpoints, cdr.Endpoint{URL: u, Username: *user, Password: *pass, BearerToken: *token})
	}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s: no PEM certificates", *caFile)
		}
		cfg.TLS = &tls.Config{RootCAs: pool}
	}
	p, err := cdr.New(cfg)
	if err != nil {
		return err
	}
	defer p.Close()

	posted, bad, failed := postAll(ctx, p, stdin, *workers, stderr)
	wctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	flushErr := p.Flush(wctx)
	st := p.Stats()
	left := "none left in the spool"
	if flushErr != nil {
		left = fmt.Sprintf("the rest stays in %s for the next run (%d bytes)", *spool, st.SpoolBytes)
	}
	fmt.Fprintf(stderr, "cdrpost: %d posted, %d delivered, %s\n", posted, st.Delivered, left)
	if bad+failed > 0 {
		return fmt.Errorf("%d bad lines and %d failed posts", bad, failed)
	}
	return nil
}

type line struct {
	n    int
	text []byte
}

// postAll decodes and posts every line; bad lines are reported and skipped.
func postAll(ctx context.Context, p *cdr.Poster, stdin io.Reader, workers int, stderr io.Writer) (posted, bad, failed int64) {
	var nPosted, nBad, nFailed atomic.Int64
	var errMu sync.Mutex
	report := func(format string, args ...any) {
		errMu.Lock()
		defer errMu.Unlock()
		fmt.Fprintf(stderr, "cdrpost: "+format+"\n", args...)
	}
	lines := make(chan line, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l := range lines {
				// Post validates the line; without a filter it is spooled
				// without being decoded.
				_, err := p.Post(ctx, cdr.Record{JSON: l.text})
				switch {
				case errors.Is(err, cdr.ErrBadRecord):
					nBad.Add(1)
					report("line %d: %v", l.n, err)
					continue
				case err != nil:
					nFailed.Add(1)
					report("line %d: %v", l.n, err)
					continue
				}
				nPosted.Add(1)
			}
		}()
	}
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan() && ctx.Err() == nil; n++ {
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		lines <- line{n: n, text: append([]byte(nil), sc.Bytes()...)}
	}
	close(lines)
	wg.Wait()
	if err := sc.Err(); err != nil {
		nBad.Add(1)
		report("reading stdin: %v", err)
	}
	return nPosted.Load(), nBad.Load(), nFailed.Load()
}
