// Package partition places keys — tenants, SIP domains, AORs, conferences —
// on the nodes of a farm, with ordered standbys and spare nodes, and routes
// SIP requests to the node that owns their key.
//
// It is the partitioned FreeSWITCH farm of FOSDEM 2017 (each domain served
// by one machine, a spare ready to take a failed machine's role) and the
// N+1 plan of mod_ha_cluster (every node knows the primary, secondary and
// tertiary standby), built on the ownership layer so two nodes never serve
// one tenant.
//
// # Placement
//
// [Build] computes a [Placement]: a pure function of the membership (node
// IDs, weights, active or spare role), the committed key set and
// [Options], so every node that applied the same committed state computes
// the same answer ([Placement.Fingerprint] tells). A key's ranking is
//
//	owner, the spares in the order they stand in for that owner, the other active nodes
//
// The owner is chosen by weighted rendezvous hashing (xxhash of the key
// mixed with each node's ID hash; score w/−ln(u)). Removing a node moves
// only its keys, each to its next-ranked node; adding one moves only the
// keys it wins. With Options.LoadFactor c the committed keys are assigned
// in hash order to the first node of their ranking below c × its fair
// share (bounded loads), which keeps max/mean ≤ c but lets a change also
// move some keys between nodes it did not touch. Spares own nothing until
// an active node fails; its keys then go, as one block, to the spare that
// ranks first for that node, and back when it returns.
//
// Lookups of committed keys read a table built once per placement and do
// not allocate; other keys are hashed on the fly.
//
// # Cluster integration
//
// A [Partitioner] registers each key as an ownership resource
// ("tenant/acme.example") with the Placed policy and this package's
// placement, so the ownership layer's leader commits each key's owner,
// moves it to the next candidate (the spare first) when the owner fails,
// and back after the hold-down ([FailbackPreferred], the default) or not
// at all ([FailbackSticky]: the spare keeps it, the returning node stands
// by). Sticky keys carry their candidate list explicitly, so when the
// committed membership changes (a node joins or leaves, a role or weight
// changes; health does not count) the Partitioners re-place them: each
// node re-ensures the keys it owns or whose new ranking names it first, so
// a node that joined becomes a standby of existing keys and a removed one
// leaves their lists, and no key whose owner is alive and still a member
// moves. [Partitioner.Watch] reports the keys this
// node gained and lost (start or stop serving a tenant's conferences and
// queues); [Partitioner.Held] is the authority to act, with the epoch as
// fencing token.
//
//	p, _ := partition.New(manager, nil, partition.Config{}) // nil: the manager's committed membership
//	p.Add(ctx, "acme.example")
//	stop := p.Watch(func(c partition.Change) { start(c.Gained); stop(c.Lost) })
//
// # Routing
//
// [Router] is sipgo middleware: a request whose key (default: the To
// domain) this node holds goes to the next handler, any other is proxied
// statefully to the committed owner's SIP address (sipgo adds Via and
// Record-Route, Max-Forwards is decremented). When the owner does not
// answer the router replies 503 with Retry-After: it never picks a standby
// on its own guess of liveness; the standby gets the tenant's requests once
// the ownership layer has committed it at a new epoch. A request is
// forwarded by key at most once inside the farm (a Via parameter marks
// it), so nodes whose views of a fresh commit differ cannot bounce it.
//
// Requests inside a dialog (To tag) and requests with a route set are not
// routed by key but loosely, as RFC 3261 §16.4 and §16.12 say: the router
// pops its own Route entry and forwards to the next one, or, with none
// left, to the dialog's target (the Contact of the node that answered),
// and serves the request itself when that target is this node. A BYE thus
// reaches the node that holds the call even after the tenant moved. Strict
// routers (a next Route without ;lr) are refused with 400, and an
// in-dialog request that reaches a node on neither its route nor its
// target with 403, so the farm relays nothing for strangers.
package partition
