package dnssrvtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// ErrNoDnsmasq means the dnsmasq binary is not installed.
var ErrNoDnsmasq = errors.New("dnssrvtest: dnsmasq not found (apt-get install dnsmasq)")

// Dnsmasq is a dnsmasq process serving on 127.0.0.1, UDP and TCP.
type Dnsmasq struct {
	Addr string
	cmd  *exec.Cmd
	out  lockedBuffer
	once sync.Once
	done chan struct{}
}

// StartDnsmasq starts dnsmasq in the foreground on a free loopback port
// with no upstream servers, no /etc/hosts and no config file, plus args
// (--naptr-record=..., --srv-host=..., --host-record=..., --local=/d/).
// It returns once dnsmasq answers queries.
func StartDnsmasq(ctx context.Context, args ...string) (*Dnsmasq, error) {
	bin, err := exec.LookPath("dnsmasq")
	if err != nil {
		for _, p := range []string{"/usr/sbin/dnsmasq", "/sbin/dnsmasq"} {
			if _, e := exec.LookPath(p); e == nil {
				bin, err = p, nil
				break
			}
		}
		if err != nil {
			return nil, ErrNoDnsmasq
		}
	}
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		d := &Dnsmasq{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), done: make(chan struct{})}
		base := []string{"-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
			"--bind-interfaces", "--listen-address=127.0.0.1", "--port=" + strconv.Itoa(port),
			"--pid-file", "--user=root", "--log-facility=-"}
		d.cmd = exec.Command(bin, append(base, args...)...)
		d.cmd.Stdout, d.cmd.Stderr = &d.out, &d.out
		if err := d.cmd.Start(); err != nil {
			return nil, fmt.Errorf("dnssrvtest: start dnsmasq: %w", err)
		}
		go func() { _ = d.cmd.Wait(); close(d.done) }()
		if err := d.waitReady(ctx); err != nil {
			d.Close()
			lastErr = fmt.Errorf("%w; output: %s", err, d.out.String())
			continue // most likely the port was taken in between
		}
		return d, nil
	}
	return nil, lastErr
}

func (d *Dnsmasq) waitReady(ctx context.Context) error {
	c := dns.Client{Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion("ready.invalid.", dns.TypeA)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			return errors.New("dnssrvtest: dnsmasq exited")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if _, _, err := c.ExchangeContext(ctx, m, d.Addr); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("dnssrvtest: dnsmasq did not answer within 5s")
}

// Close stops dnsmasq and waits for it. It is idempotent.
func (d *Dnsmasq) Close() error {
	d.once.Do(func() {
		_ = d.cmd.Process.Kill()
		<-d.done
	})
	return nil
}

// Output is what dnsmasq logged so far.
func (d *Dnsmasq) Output() string { return d.out.String() }

// lockedBuffer lets exec's copying goroutine write while a test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// freePort finds a port free for both UDP and TCP on 127.0.0.1.
func freePort() (int, error) {
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		pc.Close()
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, errors.New("dnssrvtest: no free port")
}
