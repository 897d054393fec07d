package vip

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
)

// EtherType values of the frames the announcer sends.
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
	ipv6HeaderLen = 40
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
// hop limit 255, Override set, Solicited clear, with the target link-layer
// address option.
func unsolicitedNA(mac net.HardwareAddr, ip netip.Addr) []byte {
	b := make([]byte, ipv6HeaderLen+naPayloadLen)
	b[0] = 6 << 4
	binary.BigEndian.PutUint16(b[4:], uint16(naPayloadLen))
	b[6] = 58  // ICMPv6
	b[7] = 255 // hop limit, as RFC 4861 requires
	src, dst := ip.As16(), allNodesIPv6.As16()
	copy(b[8:24], src[:])
	copy(b[24:40], dst[:])
	na := b[ipv6HeaderLen:]
	na[0] = 136  // neighbour advertisement
	na[4] = 0x20 // Override
	copy(na[8:24], src[:])
	na[24], na[25] = 2, 1 // target link-layer address, 8 bytes
	copy(na[26:32], mac)
	binary.BigEndian.PutUint16(na[2:], icmpv6Checksum(src, dst, na))
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
	l[7] = 58
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
