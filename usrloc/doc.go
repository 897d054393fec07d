// Package usrloc is sipha's location service: a replicated store of SIP
// registrations (address of record → bindings), an RFC 3261 §10.3
// registrar handler for sipgo, and NAT keepalives sent only by the node
// that owns a binding's socket.
//
// # Store
//
// A [Store] holds every binding in memory, sharded by an xxhash of the AOR
// into 4096 shards. Reads take one shard read lock and append into the
// caller's slice, so a lookup allocates nothing:
//
//	st, _ := usrloc.New(usrloc.Config{Node: "n1"})
//	defer st.Close()
//	buf = st.Lookup("sip:alice@example.com", buf[:0]) // best first: q, then newest
//
// Each binding is packed into one string blob plus a small fixed record,
// kept with the AOR's bytes in the shard's table when the AOR is short;
// repeated strings (User-Agent, Path, socket, node) are interned. Expiry is
// driven by per-shard min-heaps, not by scanning. [Store.Watch] delivers
// changes of one AOR or of all.
//
// # Registrar
//
// [Registrar.Handle] has sipgo's handler shape:
//
//	reg, _ := usrloc.NewRegistrar(st, usrloc.RegistrarConfig{})
//	srv.OnRegister(reg.Handle)
//
// It reads every Contact header (not only the last, as sipgo's
// req.Contact() would), honours the expires parameter and the Expires
// header within Min/Max, answers 423 with Min-Expires, handles "Contact: *"
// with "Expires: 0", enforces Call-ID/CSeq ordering, answers a REGISTER
// without Contact with the current bindings, and lists every binding with
// its remaining expiry and a Date header in the 200. Authentication is a
// hook ([Authenticator]). A malformed REGISTER gets a 400 with the reason
// and changes nothing.
//
// # Replication
//
// A [Replicator] keeps the store equal on every node over one
// cluster.Transport channel (full sharing):
//
//   - Local changes are broadcast in batches: by default the writer that
//     finds no broadcast in progress sends at once and the changes made
//     meanwhile leave together next (group commit); BatchInterval and
//     BatchBytes trade latency for fewer, larger messages.
//   - A version is ordered by Call-ID/CSeq when both versions share the
//     Call-ID (RFC 3261), else by a hybrid logical clock, then node ID, so
//     every node picks the same winner without trusting wall clocks. Expiry
//     travels as the time left.
//   - A deletion is a tombstone kept for Config.TombstoneTTL, which must
//     cover the longest expiry the registrar grants. A peer silent for
//     longer than that cannot resurrect a deleted binding: its versions
//     older than its silence that this node lacks are refused for a
//     TombstoneTTL, and a node that was cut off from every peer that long
//     pulls every bucket again from a synced peer and drops its own older
//     versions that the donor did not send (a full resync, not a merge);
//     so does a node restarted from a Persister file older than that
//     (ReplicatorConfig.StateAsOf). A node that is not synced refuses to
//     be anyone's donor.
//   - A gap in a peer's messages (the transport's Message.Missed or
//     Restarted) triggers an anti-entropy round with that peer.
//   - Anti-entropy compares the 4096 bucket digests (count and sum of
//     xxhash of every version) with one peer per interval; both sides then
//     pull the buckets that differ.
//   - A joining or restarted node pulls every bucket from a donor in
//     flow-controlled chunks (at most Window chunks ahead of its
//     acknowledgements), merging live updates as they arrive (a merge is
//     commutative and idempotent, so applying an update before or after
//     the snapshot chunk that holds an older version gives the same
//     result; buffering them would only cost memory), resumes with
//     another donor where a dead or silent one stopped, and reports
//     [Replicator.Synced] only after verification: every bucket's count and
//     checksum matches the donor's, or, where live writes keep a bucket
//     moving, the node holds every version the donor sent at the same or a
//     newer version.
//
// All bucket transfers (join, verification, repair) go through the same
// flow-controlled pull, so a repair cannot flood a peer's queue.
//
// # NAT keepalives
//
// A [Pinger] sends OPTIONS to the UDP bindings whose socket this node owns,
// as told by an [Owner] (the ownership layer's resource for the socket or
// VIP), so one node pings each contact, from the address its NAT expects,
// and a new owner starts within one interval. TCP and TLS flows cannot move
// between nodes: sipgo answers RFC 5626 CRLFCRLF pings with CRLF on the
// node holding the flow, and such UAs re-register after a failover.
package usrloc
