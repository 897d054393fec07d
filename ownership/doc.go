// Package ownership decides which node owns which named resource, with
// epochs (fencing tokens) and leases, behind a small interface the blocks
// depend on.
//
// A resource is a name such as "vip/198.51.100.100", "node/n2" or
// "tenant/acme" ([VIPResource], [NodeResource], [TenantResource]). A block
// registers it with [Manager.Ensure], giving its ordered candidates and a
// [Policy], then acts as owner only while [Manager.Held] says so, passing the
// returned [Epoch] with every action so a downstream can reject a stale
// owner:
//
//	m.Ensure(ctx, ownership.Spec{Name: "vip/198.51.100.100",
//		Candidates: []cluster.NodeID{"n1", "n2"}, Policy: ownership.Preferred})
//	stop := m.Watch("vip/", func(e ownership.Event) {
//		switch e.Kind {
//		case ownership.Acquired: // start acting, tag actions with e.Claim.Epoch
//		case ownership.Lost:     // stop at once
//		}
//	})
//
// A Manager may also be a [MemberLister]: the committed membership (roles,
// weights, health) with change notification, for placement functions that
// every node must compute alike.
//
// [Check] is the owner side of fencing (the epoch to send, or ErrNotOwner)
// and [Fence] the downstream side (refuse an epoch below one already seen).
//
// Two implementations: [Single] for a one-node setup (this node owns all),
// and package raftowner, which runs hashicorp/raft so a cluster agrees on
// owners and never lets two nodes hold a resource at once. Blocks import
// only this package, never raft; [Spec.Place] lets a block (partition)
// supply its placement function without the ownership layer importing it.
package ownership
