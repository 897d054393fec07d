// Command cdrcollector is a small CDR collector: it accepts what a
// cdr.Poster sends (JSON, NDJSON batches, mod_json_cdr's form cdr=, gzip),
// drops records whose ID it has already stored, and appends each new record
// as one JSON line, as it was sent, to a file, fsyncing before it answers 2xx.
//
//	cdrcollector -listen 127.0.0.1:8080 -out /var/lib/cdr/cdrs.ndjson -token s3cret
//
// Point FreeSWITCH's mod_json_cdr (url=http://host:8080/cdr) or
// examples/cdrpost at it. GET /metrics serves its counters for Prometheus.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sipha/sipha/cdr"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "cdrcollector:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends. ready, if set, is told the listening address.
func run(ctx context.Context, args []string, stderr io.Writer, ready func(addr string)) error {
	fs := flag.NewFlagSet("cdrcollector", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: cdrcollector [flags]\n\nReceives CDRs over HTTP POST, de-duplicates them by ID and appends them\nto a file as JSON lines. GET /metrics serves counters in the Prometheus\ntext format.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on")
	path := fs.String("path", "/cdr", "URL path to accept CDRs on")
	out := fs.String("out", "cdrs.ndjson", "file to append records to")
	dedup := fs.Int("dedup", 100000, "how many recent record IDs to remember for de-duplication")
	idField := fs.String("id-field", "cdr_id", "JSON field holding the record ID")
	user := fs.String("user", "", "require HTTP basic auth with this user")
	pass := fs.String("pass", "", "password for -user")
	token := fs.String("token", "", "require this bearer token")
	cert := fs.String("tls-cert", "", "serve HTTPS with this certificate file")
	key := fs.String("tls-key", "", "private key file for -tls-cert")
	verbose := fs.Bool("v", false, "log every refused request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if (*cert == "") != (*key == "") {
		return errors.New("-tls-cert and -tls-key go together")
	}
	level := slog.LevelError
	if *verbose {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	f, err := os.OpenFile(*out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 256<<10)
	// Raw mode: records are stored exactly as sent, without decoding them.
	store := func(_ context.Context, rec cdr.Record) error {
		if _, err := w.Write(rec.JSON); err != nil {
			return err
		}
		return w.WriteByte('\n')
	}
	commit := func(context.Context) error {
		if err := w.Flush(); err != nil {
			return err
		}
		return f.Sync()
	}
	rcv, err := cdr.NewReceiver(cdr.ReceiverConfig{IDField: *idField, DedupWindow: *dedup, Username: *user,
		Password: *pass, BearerToken: *token, Commit: commit, Raw: true, Logger: log}, store)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle(*path, rcv)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) { writeMetrics(w, rcv.Stats()) })
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if ready != nil {
		ready(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() {
		if *cert != "" {
			errc <- srv.ServeTLS(ln, *cert, *key)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdown)
	<-errc
	st := rcv.Stats()
	fmt.Fprintf(stderr, "cdrcollector: %d requests, %d records stored, %d duplicates dropped, %d refused\n",
		st.Requests, st.Accepted, st.Duplicates, st.Rejected)
	return err
}

// writeMetrics writes the counters in the Prometheus text exposition format,
// by hand to keep the example free of dependencies.
func writeMetrics(w http.ResponseWriter, st cdr.ReceiverStats) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	for _, m := range []struct {
		name, help string
		v          uint64
	}{
		{"cdrcollector_requests_total", "HTTP requests received.", st.Requests},
		{"cdrcollector_records_stored_total", "Records appended to the output file.", st.Accepted},
		{"cdrcollector_duplicates_total", "Records dropped as already stored.", st.Duplicates},
		{"cdrcollector_refused_total", "Requests answered 4xx.", st.Rejected},
	} {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", m.name, m.help, m.name, m.name, m.v)
	}
}
