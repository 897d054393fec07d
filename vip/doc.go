// Package vip moves a floating IP address (a VIP) between the nodes of a
// sipha cluster: the node that holds the VIP's ownership resource puts the
// address on its interface and announces it; every other node keeps it off.
// It is sipha's answer to keepalived VRRP and Pacemaker's IPaddr2, with the
// decision made by the ownership layer (Raft, leases, epochs) instead of by
// the two nodes alone, so two nodes that lose sight of each other do not
// both take the address while a third voter (an arbiter) sees either.
//
// A SIP server needs this because NAT pinholes accept packets only from the
// address a client registered to: after a failover the standby must answer
// and send from the very same address.
//
// # Use
//
//	be, _ := vip.NewNetlink() // Linux: rtnetlink + AF_PACKET
//	m, err := vip.New(ctx, ownershipNode, be, vip.Config{
//		VIPs: []vip.VIP{{
//			Prefix:     netip.MustParsePrefix("198.51.100.100/24"),
//			Interface:  "eth0",
//			Candidates: []cluster.NodeID{"sip1", "sip2"},
//		}},
//		Checks: []vip.Check{{Name: "sip", Run: pingLocalSIP, Fall: 3, Rise: 2}},
//		Hook:   func(c vip.Change) { /* start or stop NAT keepalives */ },
//	})
//
// One ownership resource per VIP ("vip/198.51.100.100"), so several VIPs
// can live on different nodes (active/active) and move one by one.
//
// # What the holder does
//
// On Acquired (and on every look, since ownership.Manager.Held is the
// authority): add the address with a kernel valid lifetime (valid_lft,
// Config.Lifetime, default 2 s), IPv6 with nodad; send a burst of
// gratuitous ARPs or unsolicited neighbour advertisements (keepalived's
// defaults: 5 back to back, 5 more after 5 s); then run the hook. While
// Held stays true it renews the lifetime every RenewEvery, so a process
// that is killed or hangs leaves an address that the kernel removes by
// itself within Lifetime + 1 s. On Lost it removes the address first and
// runs the hook after. At start-up it removes stale copies of its VIPs.
//
// The lifetime is the backstop for a holder that cannot act: a SIGKILLed
// process on a live host keeps answering at the VIP until it expires,
// while the ownership layer may hand the VIP on after its lease (about
// 200 ms on a LAN). So a backend that can ([Prober]; [Netlink] does) first
// probes for the address, an RFC 5227 ARP probe for IPv4 or an RFC 4862
// duplicate address detection neighbour solicitation for IPv6, and the new
// holder waits while the old holder's kernel answers (Config.ProbeWait).
// That probe is also why IPv6 addresses go up with nodad: the kernel's own
// DAD would only repeat it, slower. Where even a probe's best effort is not
// enough (a lost answer lets an overlap through), raise the ownership
// layer's ReassignDelay above Lifetime + 1 s.
//
// # Health
//
// Checks have keepalived vrrp_script semantics (interval, timeout, rise,
// fall). A failing check, or SetMaintenance(true), makes the node report
// itself unhealthy through HealthSetter (raftowner.Node implements it): the
// ownership layer moves its VIPs to healthy candidates, releasing each
// before the next node takes it, and makes it no one's standby. A VIP
// stays on an unhealthy node while no healthy candidate exists.
//
// # Backends
//
// [Netlink] for Linux hosts; [FuncBackend] for cloud APIs that move an
// address between instances; package viptest has a recording fake for unit
// tests and, on Linux, the network-namespace topology for tests on a real
// kernel.
package vip
