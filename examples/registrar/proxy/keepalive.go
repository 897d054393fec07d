package proxy

import (
	"context"
	"net"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/usrloc"
)

// socketResource names the ownership resource of this proxy's UDP socket,
// as usrloc's Pinger names it from a binding's socket ("udp:ip:port",
// what the registrar stores).
func socketResource(udp net.Addr) string { return "socket/udp:" + udp.String() }

// startKeepalives runs usrloc's Pinger over the proxy's client, so the UDP
// bindings that registered through this node's socket get an OPTIONS every
// cfg.KeepaliveInterval from the address their NAT expects. The socket's
// resource lists only this node: another node's packets would come from
// another address, so when this node dies nobody pings its bindings (their
// UAs re-register; with a VIP the address moves and so would the pinging,
// which this example does not do yet). A proxy listening on an unspecified
// address (0.0.0.0) has no socket name of its own and pings nothing.
func (p *Proxy) startKeepalives() error {
	ua := p.udp.LocalAddr().(*net.UDPAddr)
	if p.cfg.KeepaliveInterval <= 0 {
		return nil
	}
	if ua.IP.IsUnspecified() {
		p.log.Warn("proxy: no NAT keepalives from an unspecified listen address", "listen", ua.String())
		return nil
	}
	res := socketResource(ua)
	pg, err := usrloc.NewPinger(p.b.Store, usrloc.PingerConfig{
		Owner:       usrloc.ManagerOwner(p.b.Ownership, "socket/"),
		Send:        usrloc.SipgoKeepalive(p.cli),
		Interval:    p.cfg.KeepaliveInterval,
		MaxFailures: p.cfg.KeepaliveMaxFailures,
		Logger:      p.log,
	})
	if err != nil {
		return err
	}
	p.pinger = pg
	spec := ownership.Spec{Name: res, Candidates: []cluster.NodeID{p.b.Ownership.LocalID()}, Policy: ownership.Sticky}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		// Registered through Raft, so it waits for a leader; retried until
		// it is committed or the proxy closes.
		for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, 2*time.Second) {
			ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
			err := p.b.Ownership.Ensure(ctx, spec)
			cancel()
			if err == nil {
				return
			}
			p.log.Debug("proxy: registering the socket resource", "resource", res, "err", err)
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(backoff):
			}
		}
	}()
	return nil
}
