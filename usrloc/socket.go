package usrloc

import (
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// socketNames is the registrar's default RegistrarConfig.Socket: the
// transport and the local address of the connection a request came in on.
//
// A socket bound to a wildcard address (0.0.0.0, ::) reports that
// address as its own, and sipgo reads datagrams without IP_PKTINFO, so it
// cannot tell which of the host's addresses a datagram was sent to.
// "udp:0.0.0.0:5060" would name the same socket on every node, and
// neither keepalive ownership nor a proxy could tell them apart. Such a
// socket is named instead by the address the kernel sends from when it
// answers the UA: where the 200 OK and every later request or keepalive
// from that socket come from. It is the address the UA registered to
// unless the host holds several addresses on one route (a VIP beside the
// primary address): then bind the socket to the address, or set Socket.
type socketNames struct {
	mu    sync.Mutex
	route map[string]routedFrom // remote IP → local IP the kernel sends from
	now   func() time.Time
}

type routedFrom struct {
	ip string
	at time.Time
}

// Routes change rarely; a lookup costs a socket and two system calls.
const (
	routeTTL     = time.Minute
	routeEntries = 4096
)

func newSocketNames(now func() time.Time) *socketNames {
	return &socketNames{route: map[string]routedFrom{}, now: now}
}

func (n *socketNames) name(req *sip.Request, tx sip.ServerTransaction) string {
	tp := strings.ToLower(req.Transport())
	c, ok := tx.(interface{ Connection() sip.Connection })
	if !ok || c.Connection() == nil || c.Connection().LocalAddr() == nil {
		return tp
	}
	return n.nameOf(tp, c.Connection().LocalAddr().String(), req.Source())
}

// nameOf names the socket local ("ip:port") of transport tp that a
// request from source came in on.
func (n *socketNames) nameOf(tp, local, source string) string {
	host, port, err := net.SplitHostPort(local)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsUnspecified() {
		return tp + ":" + local
	}
	if from := n.sendsFrom(source); from != "" {
		return tp + ":" + net.JoinHostPort(from, port)
	}
	return tp + ":" + local
}

// sendsFrom returns the local address the kernel picks to reach remote
// ("ip:port"), or "" when there is no route.
func (n *socketNames) sendsFrom(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return ""
	}
	now := n.now()
	n.mu.Lock()
	e, ok := n.route[host]
	n.mu.Unlock()
	if ok && now.Sub(e.at) < routeTTL {
		return e.ip
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return ""
	}
	// Connecting a UDP socket sends nothing; it only looks the route up.
	c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: ip, Port: 9})
	if err != nil {
		return ""
	}
	local := c.LocalAddr().(*net.UDPAddr).IP.String()
	c.Close()
	n.mu.Lock()
	if len(n.route) >= routeEntries {
		clear(n.route) // bounded; the busy ones come back at once
	}
	n.route[host] = routedFrom{ip: local, at: now}
	n.mu.Unlock()
	return local
}
