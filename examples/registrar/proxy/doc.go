// Package proxy is the HA registrar and record-routing SIP proxy of
// examples/registrar, built from sipha's blocks so another program (the demo,
// a test) can run it in-process.
//
// Start builds one node's blocks (a Stack): the cluster TCP transport, Raft
// ownership on the same port, the replicated location store with its
// registrar, the dialog tracker whose terminate hook posts CDRs through a
// durable spool, the cluster-wide CPS limiter and, optionally, a floating IP.
// New serves SIP over them on UDP and TCP:
//
//	st, err := proxy.Start(ctx, proxy.StackConfig{ID: "a", ClusterAddr: "10.0.0.1:7946",
//		Peers: peers, Secret: secret, DataDir: "/var/lib/sipha", CPS: 50,
//		CDRURLs: []string{"http://cdr1/cdr"}})
//	p, err := proxy.New(st.Blocks(), proxy.Config{Listen: "10.0.0.1:5060"})
//	http.ListenAndServe(":9090", p.HTTPHandler()) // /healthz, /metrics
//	...
//	p.Close()
//	st.Close()
//
// What it does with each request:
//
//   - REGISTER goes to usrloc's registrar; the binding is replicated to every
//     node, so any node can reach the UA.
//   - An initial INVITE passes the cluster-wide CPS limit (503 with
//     Retry-After over it), is looked up in the location store (404 for an
//     unknown user, 480 when no binding is reachable from this node), is
//     tracked as a dialog in the profiles "all" and "caller-domain", and is
//     forwarded statefully to the best binding (its Path as Route, else the
//     address its REGISTER came from, for NAT) with this proxy's
//     Record-Route. Responses are relayed back; a CANCEL is passed on.
//   - ACK, BYE and other in-dialog requests are loose-routed by their Route
//     set, so they pass this proxy and the dialog tracker sees them.
//   - OPTIONS outside a dialog is answered 200 (a keepalive or health ping).
//   - A request that parses but lacks what the proxy needs gets 400 (or 416,
//     483) with a reason phrase; a panic in a handler is answered 500.
//
// When a dialog ends, the owner of its origin node's resource (the node
// itself, or whoever took its dialogs over after it died) posts a CDR whose ID
// is CDRID of the dialog, so a duplicate post after a failover carries the same
// ID and the collector keeps one.
package proxy
