package vip

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"

	"golang.org/x/net/bpf"
)

// EtherType values of the frames the announcer and the prober send.
const (
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd
)

var (
	broadcastMAC  = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	allNodesMAC   = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1} // ff02::1
	allNodesIPv6  = netip.MustParseAddr("ff02::1")
	arpFrameLen   = 28
	naPayloadLen  = 32 // NA (24) + target link-layer address option (8)
	ndMessageLen  = 24 // NS or NA without options: type .. target
	ipv6HeaderLen = 40
)

// ICMPv6 numbers (RFC 4443, RFC 4861).
const (
	protoICMPv6               = 58
	icmpNeighborSolicitation  = 135
	icmpNeighborAdvertisement = 136
	ndOptTargetLinkLayerAddr  = 2
	ndHopLimit                = 255
)

// arpAnnouncement is the ARP payload of a gratuitous ARP in the form of
// RFC 5227 §2.3 (an ARP Announcement): a request whose sender and target
// protocol addresses are both the VIP. Linux, BSD and switches take it as a
// hint to update an existing entry (Linux overrides its locktime for it).
func arpAnnouncement(mac net.HardwareAddr, ip netip.Addr) []byte {
	b := make([]byte, arpFrameLen)
	binary.BigEndian.PutUint16(b[0:], 1)      // hardware: Ethernet
	binary.BigEndian.PutUint16(b[2:], 0x0800) // protocol: IPv4
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:], 1) // request
	copy(b[8:14], mac)
	a := ip.As4()
	copy(b[14:18], a[:])
	// target hardware address stays zero
	copy(b[24:28], a[:])
	return b
}

// unsolicitedNA is an IPv6 packet (header included) carrying an unsolicited
// neighbour advertisement for ip (RFC 4861 §7.2.6): from ip to all nodes,
// Override set, Solicited clear, with the target link-layer address option.
func unsolicitedNA(mac net.HardwareAddr, ip netip.Addr) []byte {
	na := make([]byte, naPayloadLen)
	na[0] = icmpNeighborAdvertisement
	na[4] = 0x20 // Override
	a := ip.As16()
	copy(na[8:24], a[:])
	na[24], na[25] = ndOptTargetLinkLayerAddr, 1 // 1 × 8 bytes
	copy(na[26:32], mac)
	return ndPacket(ip, allNodesIPv6, na)
}

// ndPacket wraps a neighbour discovery message (checksum field zero) in an
// IPv6 header and fills in the checksum. The hop limit is 255, which
// receivers check (RFC 4861) so that ND cannot come from off-link.
func ndPacket(src, dst netip.Addr, msg []byte) []byte {
	b := make([]byte, ipv6HeaderLen+len(msg))
	b[0] = 6 << 4
	binary.BigEndian.PutUint16(b[4:], uint16(len(msg)))
	b[6] = protoICMPv6
	b[7] = ndHopLimit
	s, d := src.As16(), dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	copy(b[ipv6HeaderLen:], msg)
	binary.BigEndian.PutUint16(b[ipv6HeaderLen+2:], icmpv6Checksum(s, d, b[ipv6HeaderLen:]))
	return b
}

// icmpv6Checksum is the RFC 4443 checksum over the IPv6 pseudo-header and
// the message (whose checksum field is zero).
func icmpv6Checksum(src, dst [16]byte, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	var l [8]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(msg)))
	l[7] = protoICMPv6
	add(l[:])
	add(msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// arpProbe is the ARP payload of an RFC 5227 §2.1.1 probe: a request for
// ip with an all-zero sender protocol address, so no host's cache learns
// anything from it. A host holding ip answers it (Linux replies to a
// zero-sender request for a local address, for duplicate detection).
func arpProbe(mac net.HardwareAddr, ip netip.Addr) []byte {
	b := arpAnnouncement(mac, ip)
	clear(b[14:18])
	return b
}

// probeAnswer reports whether an ARP payload shows a host other than mac
// using ip: any ARP packet whose sender protocol address is ip.
func probeAnswer(b []byte, mac net.HardwareAddr, ip netip.Addr) bool {
	if len(b) < arpFrameLen || binary.BigEndian.Uint16(b[2:]) != 0x0800 || b[4] != 6 || b[5] != 4 {
		return false
	}
	a := ip.As4()
	return bytes.Equal(b[14:18], a[:]) && !bytes.Equal(b[8:14], mac)
}

// probeFrame is what a probe for one address family sends, where to, and
// how an answer looks: for IPv4 the RFC 5227 ARP probe, broadcast, answered
// by any ARP packet from the address; for IPv6 the RFC 4862 §5.4 duplicate
// address detection solicitation, to the address's solicited-node
// multicast group, answered by a neighbour advertisement for it.
type probeFrame struct {
	etherType uint16
	dst       net.HardwareAddr
	payload   []byte
	answers   func(b []byte) bool
	// filter is the socket filter for the listening window, run by the
	// kernel on each frame from its network header on.
	filter []bpf.Instruction
}

func newProbeFrame(mac net.HardwareAddr, ip netip.Addr) probeFrame {
	if ip.Is4() {
		return probeFrame{etherTypeARP, broadcastMAC, arpProbe(mac, ip),
			func(b []byte) bool { return probeAnswer(b, mac, ip) }, acceptAll()}
	}
	g := solicitedNode(ip).As16()
	// RFC 2464 §7: the group's Ethernet address is 33:33 and its last
	// four bytes.
	dst := net.HardwareAddr{0x33, 0x33, g[12], g[13], g[14], g[15]}
	return probeFrame{etherTypeIPv6, dst, dadSolicitation(ip),
		func(b []byte) bool { return naAnswer(b, mac, ip) }, onlyNA()}
}

// acceptAll passes every frame: ARP traffic is light.
func acceptAll() []bpf.Instruction { return []bpf.Instruction{bpf.RetConstant{Val: 0xffff}} }

// onlyNA passes only ICMPv6 neighbour advertisements (without extension
// headers, as RFC 4861 traffic comes): bound to IPv6, the probe socket would
// otherwise copy all of a busy host's IPv6 traffic for ProbeWait, and a
// full receive buffer could drop the answer.
func onlyNA() []bpf.Instruction {
	return []bpf.Instruction{
		bpf.LoadAbsolute{Off: 6, Size: 1}, // next header
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: protoICMPv6, SkipTrue: 3},
		bpf.LoadAbsolute{Off: 40, Size: 1}, // ICMPv6 type, after the fixed header
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: icmpNeighborAdvertisement, SkipTrue: 1},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	}
}

// solicitedNode is ip's solicited-node multicast address (RFC 4291 §2.7.1),
// ff02::1:ffXX:XXXX with ip's low 24 bits: the group every host holding ip
// has joined, also when the address was added without DAD.
func solicitedNode(ip netip.Addr) netip.Addr {
	a := ip.As16()
	g := [16]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff, 13: a[13], 14: a[14], 15: a[15]}
	return netip.AddrFrom16(g)
}

// dadSolicitation is an IPv6 packet carrying the neighbour solicitation of
// duplicate address detection for ip (RFC 4862 §5.4.2): from the
// unspecified address, so no host's neighbour cache learns from it and
// without the source link-layer address option (RFC 4861 §7.1.1 forbids
// it there), to ip's solicited-node group. A host that has ip up answers
// with a neighbour advertisement to all nodes (Linux does so also for an
// address added with nodad).
func dadSolicitation(ip netip.Addr) []byte {
	ns := make([]byte, ndMessageLen)
	ns[0] = icmpNeighborSolicitation
	a := ip.As16()
	copy(ns[8:24], a[:])
	return ndPacket(netip.IPv6Unspecified(), solicitedNode(ip), ns)
}

// naAnswer reports whether an IPv6 packet is a valid neighbour
// advertisement for ip from a host other than mac: the RFC 4861 §7.1.2
// checks (hop limit 255, checksum, code 0, length, options of non-zero
// length), target ip, and a target link-layer address option, when there
// is one, that is not mac (our own announcements).
func naAnswer(b []byte, mac net.HardwareAddr, ip netip.Addr) bool {
	if len(b) < ipv6HeaderLen+ndMessageLen || b[0]>>4 != 6 || b[6] != protoICMPv6 || b[7] != ndHopLimit {
		return false
	}
	n := int(binary.BigEndian.Uint16(b[4:]))
	if n < ndMessageLen || ipv6HeaderLen+n > len(b) {
		return false
	}
	msg := b[ipv6HeaderLen : ipv6HeaderLen+n]
	a := ip.As16()
	if msg[0] != icmpNeighborAdvertisement || msg[1] != 0 || !bytes.Equal(msg[8:24], a[:]) {
		return false
	}
	if icmpv6Checksum([16]byte(b[8:24]), [16]byte(b[24:40]), msg) != 0 {
		return false
	}
	for opts := msg[ndMessageLen:]; len(opts) > 0; {
		if len(opts) < 8 || opts[1] == 0 || int(opts[1])*8 > len(opts) {
			return false
		}
		l := int(opts[1]) * 8
		if opts[0] == ndOptTargetLinkLayerAddr && bytes.Equal(opts[2:min(l, 8)], mac) {
			return false
		}
		opts = opts[l:]
	}
	return true
}
