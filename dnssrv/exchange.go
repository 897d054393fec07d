package dnssrv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/miekg/dns"
)

// serversFrom returns the configured servers or those of resolv.conf.
func serversFrom(cfg Config) ([]string, error) {
	if len(cfg.Servers) > 0 {
		return append([]string(nil), cfg.Servers...), nil
	}
	if _, err := os.Stat(cfg.ResolvConf); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoServers, err)
	}
	cc, err := dns.ClientConfigFromFile(cfg.ResolvConf)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNoServers, cfg.ResolvConf, err)
	}
	var out []string
	for _, s := range cc.Servers {
		out = append(out, dnsJoin(s, cc.Port))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: none in %s", ErrNoServers, cfg.ResolvConf)
	}
	return out, nil
}

func dnsJoin(host, port string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

// exchange asks the servers one question, round-robin for cfg.Attempts
// rounds, over UDP and again over TCP when the UDP answer is truncated. It
// returns an answer whose rcode is NOERROR or NXDOMAIN; anything else,
// and answers to another question, count as a failure of that server.
func (r *Resolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(r.cfg.UDPSize, false)
	var lastErr error
	for range r.cfg.Attempts {
		for _, srv := range r.servers {
			r.stats.queries.Add(1)
			resp, err := r.exchangeOne(ctx, m, srv)
			if err == nil {
				return resp, nil
			}
			lastErr = err
			r.cfg.Logger.Debug("dnssrv: query failed", "server", srv, "name", name,
				"type", dns.TypeToString[qtype], "err", err)
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w: %s %s: %w", ErrServerFailure, name, dns.TypeToString[qtype], ctx.Err())
			}
			if isHostile(err) {
				// An answer that is too large or malformed will not get
				// better on retry; say so now instead of after every timeout.
				return nil, err
			}
		}
	}
	return nil, fmt.Errorf("%w: %s %s: %w", ErrServerFailure, name, dns.TypeToString[qtype], lastErr)
}

func isHostile(err error) bool {
	return errors.Is(err, ErrTooManyRecords)
}

func (r *Resolver) exchangeOne(ctx context.Context, m *dns.Msg, srv string) (*dns.Msg, error) {
	qctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	c := dns.Client{Net: "udp", UDPSize: r.cfg.UDPSize, Timeout: r.cfg.Timeout}
	resp, _, err := c.ExchangeContext(qctx, m, srv)
	if resp != nil && resp.Truncated {
		r.stats.tcpFallbacks.Add(1)
		c.Net = "tcp"
		resp, _, err = c.ExchangeContext(qctx, m, srv)
		if err == nil && resp.Truncated {
			return nil, fmt.Errorf("%w: truncated over TCP", ErrBadAnswer)
		}
	}
	if err != nil {
		return nil, err
	}
	return resp, r.checkAnswer(m, resp)
}

// checkAnswer rejects answers that do not answer our question (spoofing or
// a broken server) and answers too large to process.
func (r *Resolver) checkAnswer(q, resp *dns.Msg) error {
	if len(resp.Question) != 1 || resp.Question[0].Qtype != q.Question[0].Qtype ||
		!strings.EqualFold(resp.Question[0].Name, q.Question[0].Name) {
		return fmt.Errorf("%w: answer to another question", ErrBadAnswer)
	}
	if !resp.Response {
		return fmt.Errorf("%w: QR bit not set", ErrBadAnswer)
	}
	if n := len(resp.Answer) + len(resp.Ns); n > r.cfg.MaxRecords {
		return fmt.Errorf("%w: %d records in %s", ErrTooManyRecords, n, q.Question[0].Name)
	}
	switch resp.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
		return nil
	default:
		return fmt.Errorf("%w: rcode %s", ErrServerFailure, dns.RcodeToString[resp.Rcode])
	}
}
