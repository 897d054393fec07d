package proxy

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
)

// HTTPHandler serves /healthz and /metrics.
//
// /healthz answers 200 "ok" when the node is fit to take traffic: it sees a
// majority of the cluster, the ownership layer has granted it a lease, and
// its location store and dialog table are synced; otherwise 503 with the
// first reason that fails. A load balancer or the VIP's health check reads it.
//
// /metrics is the Prometheus text exposition format (version 0.0.4).
func (p *Proxy) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", p.serveHealth)
	mux.HandleFunc("/metrics", p.serveMetrics)
	return mux
}

// Health returns "" when the node is healthy, else why not.
func (p *Proxy) Health() string {
	if p.isClosed() {
		return "proxy closed"
	}
	members := p.b.Transport.Members()
	alive := 1 // this node
	for _, m := range members {
		if m.State.Alive() {
			alive++
		}
	}
	if alive*2 <= len(members)+1 {
		return fmt.Sprintf("cluster: %d of %d nodes reachable", alive, len(members)+1)
	}
	// The limiter's own Quorum reads true while it still waits to hear
	// from its peers, so count the peers it heard from.
	if ls := p.b.Limiter.Stats(); !ls.Quorum || (ls.PeersInContact+1)*2 <= len(members)+1 {
		return fmt.Sprintf("ratelimit: %d of %d peers in contact", ls.PeersInContact, len(members))
	}
	if r, ok := p.b.Ownership.(interface{ Ready() bool }); ok && !r.Ready() {
		return "ownership: no lease"
	}
	select {
	case <-p.b.Replicator.Synced():
	default:
		return "usrloc: not synced"
	}
	select {
	case <-p.b.Dialogs.Synced():
	default:
		return "dialog: not synced"
	}
	if p.b.VIP != nil && !p.b.VIP.Healthy() {
		return "vip: health check failing"
	}
	return ""
}

func (p *Proxy) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

func (p *Proxy) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if why := p.Health(); why != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, why+"\n")
		return
	}
	io.WriteString(w, "ok\n")
}

// metricWriter writes the text exposition format: one HELP and TYPE per
// family, then its samples.
type metricWriter struct {
	b strings.Builder
}

func (m *metricWriter) family(name, typ, help string) {
	fmt.Fprintf(&m.b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func (m *metricWriter) sample(name string, v float64, labels ...string) {
	m.b.WriteString(name)
	if len(labels) > 0 {
		m.b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				m.b.WriteByte(',')
			}
			m.b.WriteString(labels[i])
			m.b.WriteString(`="`)
			m.b.WriteString(labelEscaper.Replace(labels[i+1]))
			m.b.WriteByte('"')
		}
		m.b.WriteByte('}')
	}
	fmt.Fprintf(&m.b, " %g\n", v)
}

func (m *metricWriter) one(name, typ, help string, v float64) {
	m.family(name, typ, help)
	m.sample(name, v)
}

func (p *Proxy) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	var m metricWriter
	node := string(p.b.Store.Node())
	m.one("sipha_registrations", "gauge", "Live bindings in the location store (cluster-wide copy).", float64(p.b.Store.Len()))
	rs := p.b.Replicator.Stats()
	m.one("sipha_usrloc_synced", "gauge", "1 when the location store holds a verified copy of the cluster's.", b2f(rs.Synced))
	m.one("sipha_dialogs_live", "gauge", "Dialogs not yet ended, cluster-wide.", float64(p.b.Dialogs.Len()))
	m.family("sipha_dialog_profile", "gauge", "Live dialogs per profile, cluster-wide.")
	m.sample("sipha_dialog_profile", float64(p.b.Dialogs.Count(ProfileAll, "")), "profile", ProfileAll, "value", "")
	ds := p.b.Dialogs.Stats()
	m.one("sipha_dialog_hooks_fired_total", "counter", "Terminate hooks fired on this node.", float64(ds.HooksFired))
	m.one("sipha_dialog_underflows_total", "counter", "Profile decrements below zero (a bug if not 0).", float64(ds.Underflows))
	m.one("sipha_invites_total", "counter", "Initial INVITEs admitted by the CPS limit.", float64(p.m.invites.Load()))
	m.family("sipha_cps_total", "counter", "Initial INVITEs by the cluster-wide CPS limit's decision.")
	m.sample("sipha_cps_total", float64(p.m.cpsAllowed.Load()), "decision", "allowed")
	m.sample("sipha_cps_total", float64(p.m.cpsDenied.Load()), "decision", "denied")
	if ps, ok := p.b.Limiter.Pipe(CPSPipe); ok {
		m.one("sipha_cps_share", "gauge", "Calls per second this node may admit now.", ps.Share)
		m.one("sipha_cps_limit", "gauge", "Cluster-wide calls per second limit.", ps.Limit.Rate)
	}
	m.family("sipha_sip_responses_total", "counter", "Requests the proxy answered itself, by reason.")
	m.sample("sipha_sip_responses_total", float64(p.m.notFound.Load()), "code", "404")
	m.sample("sipha_sip_responses_total", float64(p.m.unavailable.Load()), "code", "480")
	m.sample("sipha_sip_responses_total", float64(p.m.badRequests.Load()), "code", "4xx-malformed")
	m.sample("sipha_sip_responses_total", float64(p.m.options.Load()), "code", "200-options")
	m.one("sipha_forwarded_total", "counter", "INVITEs forwarded to a binding.", float64(p.m.forwarded.Load()))
	m.one("sipha_in_dialog_total", "counter", "In-dialog requests routed.", float64(p.m.inDialog.Load()))
	if p.pinger != nil {
		ks := p.pinger.Stats()
		m.family("sipha_keepalives_total", "counter", "NAT keepalive OPTIONS by outcome.")
		m.sample("sipha_keepalives_total", float64(ks.Sent-ks.Failed), "outcome", "answered")
		m.sample("sipha_keepalives_total", float64(ks.Failed), "outcome", "failed")
		m.one("sipha_keepalive_removed_total", "counter", "Bindings removed after too many failed keepalives.", float64(ks.Removed))
	}
	cs := p.b.CDR.Stats()
	m.family("sipha_cdr_total", "counter", "CDRs by stage: spooled by this node, failed to spool, discarded (no collector configured), delivered to a collector.")
	m.sample("sipha_cdr_total", float64(cs.Posted), "stage", "spooled")
	m.sample("sipha_cdr_total", float64(cs.Failed), "stage", "failed")
	m.sample("sipha_cdr_total", float64(cs.Discarded), "stage", "discarded")
	m.sample("sipha_cdr_total", float64(cs.Poster.Delivered), "stage", "delivered")
	m.one("sipha_cdr_spool_bytes", "gauge", "Bytes in the CDR spool not yet delivered.", float64(cs.Poster.SpoolBytes))
	m.family("sipha_cluster_peer_state", "gauge", "1 for each peer's current liveness state.")
	members := p.b.Transport.Members()
	sort.Slice(members, func(i, j int) bool { return members[i].ID < members[j].ID })
	for _, mb := range members {
		for _, st := range []cluster.State{cluster.StateUnknown, cluster.StateUp, cluster.StateSuspect, cluster.StateDown, cluster.StateLeft} {
			m.sample("sipha_cluster_peer_state", b2f(mb.State == st), "peer", string(mb.ID), "state", st.String())
		}
	}
	ts := p.b.Transport.Stats()
	m.one("sipha_cluster_messages_sent_total", "counter", "Cluster messages queued for peers.", float64(ts.MessagesSent))
	m.one("sipha_cluster_messages_dropped_total", "counter", "Cluster messages dropped (full queue or peer down).",
		float64(ts.DroppedQueueFull+ts.DroppedPeerDown))
	m.family("sipha_ownership_held", "gauge", "Resources this node holds, with the epoch it holds them at.")
	var held []string
	p.held.Range(func(k, _ any) bool { held = append(held, k.(string)); return true })
	sort.Strings(held)
	for _, res := range held {
		if e, ok := p.b.Ownership.Held(res); ok {
			m.sample("sipha_ownership_held", float64(e), "resource", res)
		}
	}
	m.one("sipha_ownership_held_resources", "gauge", "Number of resources this node holds.", float64(countHeld(p.b.Ownership, held)))
	m.one("sipha_healthy", "gauge", "1 when /healthz answers 200.", b2f(p.Health() == ""))
	m.family("sipha_node_info", "gauge", "This node's ID.")
	m.sample("sipha_node_info", 1, "node", node)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	io.WriteString(w, m.b.String())
}

func countHeld(own ownership.Manager, names []string) int {
	n := 0
	for _, res := range names {
		if _, ok := own.Held(res); ok {
			n++
		}
	}
	return n
}

// labelEscaper escapes a label value as the exposition format requires.
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
