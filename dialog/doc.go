// Package dialog tracks SIP dialogs for proxies and B2BUAs built on sipgo,
// counts them in named profiles cluster-wide, and replicates them so that
// a BYE, ACK or re-INVITE landing on any node of a cluster finds its dialog.
//
// # Tracking
//
// A [Tracker] keys dialogs by [ID]: the Call-ID and the caller's From tag.
// A proxy feeds it the messages it routes:
//
//	id, err := tr.Invite(req)   // initial INVITE: state Early
//	tr.Response(res)            // 2xx: Confirmed (first fork wins); ≥300: Terminated
//	tr.Request(req)             // ACK, BYE (who hung up), CANCEL
//
// or calls [Tracker.Begin], [Tracker.Answer], [Tracker.Ack],
// [Tracker.Bye], [Tracker.Reject] directly. Forking is handled: several
// early forks share the dialog, the first 2xx fixes the callee's tag, and
// a BYE on a losing fork matches nothing. Timers end a dialog with no final
// response (EarlyTimeout), no ACK after its 2xx (AckTimeout) or past its
// maximum duration (MaxDuration, per dialog with SetMaxDuration).
// Config.OnState sees every state change; Config.OnTerminate gets a
// [TerminateEvent] with what a CDR needs (setup time, answer and end
// times, reason, who hung up) and a stable EventID to de-duplicate on.
// [Tracker.SetVar] keeps per-dialog variables, replicated.
//
// # Profiles
//
// [Tracker.AddProfile] puts a dialog in a profile, with a value or without
// ("calls-per-tenant"/"acme"); [Tracker.Count] is the number of live
// dialogs in it across the cluster, [Tracker.LocalCount] those that came
// through this node, [Tracker.Members] lists them. [Tracker.Limit] is
// sipgo middleware that refuses an INVITE when its tenant is at its limit.
// Counts are not kept by increments and decrements that messages carry:
// they are derived from the replicated dialogs themselves, so a dialog
// leaves each profile exactly once on every node, whichever node saw its
// end; an attempted decrement below zero would be a bug and is counted in
// [Stats].Underflows, never clamped silently.
//
// # Cluster
//
// With Config.Transport (a cluster.Transport) every node holds every
// dialog. Each change broadcasts the dialog's whole replicated state on
// cluster.ChannelDialog, and receivers merge it by rules that do not
// depend on order or repetition (states only advance, sets only grow, ties
// break by a total order), so lost, duplicated or reordered updates and a
// resync overlapping live traffic all end in the same table. A sequence gap
// or a restarted peer (cluster.Message.Missed, Restarted) triggers a
// resync with that peer, verified by a record count; a heartbeat makes a
// gap show within Config.Heartbeat even when no call changes. A starting
// node pulls every peer's table; [Tracker.Synced] tells when that is done.
//
// Consistency under partition: each side counts the dialogs it knows (all
// dialogs from before the split, plus its own since); the sides converge
// when the partition heals. A limit may be exceeded during a partition by
// as much as the sides admit independently.
//
// Each dialog has an origin (the node its INVITE went through). The holder
// of the origin's ownership resource (ownership.NodeResource, registered
// Preferred with this node first and its peers after: it comes back to the
// node once the node is back and healthy, so a peer that took it while
// the node was down, or before the node first held a lease, does not keep
// running the node's dialogs and posting their CDRs) runs the dialog's timers
// and fires its terminate hook; when a node dies the next candidate
// acquires its resource, adopts its dialogs (stamping the new epoch on
// them, so a late timer action of the deposed owner is fenced) and fires
// any terminate hooks the dead node had not reported. A dialog is counted
// once throughout: it is one record, keyed by its ID, on every node.
// Hooks are at-least-once; duplicates carry the same EventID.
//
// Without a Transport and an ownership Manager the tracker is a one-node
// tracker that owns everything (ownership.Single).
package dialog
