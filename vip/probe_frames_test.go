package vip

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

var (
	testVIP6  = netip.MustParseAddr("2001:db8::100")
	otherMAC6 = net.HardwareAddr{0x02, 0, 0, 0, 0, 9}
)

// xnetND is the ICMPv6 message golang.org/x/net/icmp encodes, checksum
// included: an encoder independent of ours to compare with.
func xnetND(t testing.TB, typ ipv6.ICMPType, src, dst netip.Addr, body []byte) []byte {
	t.Helper()
	m := icmp.Message{Type: typ, Body: &icmp.RawBody{Data: body}}
	b, err := m.Marshal(icmp.IPv6PseudoHeader(src.AsSlice(), dst.AsSlice()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The DAD solicitation of RFC 4862 §5.4.2, checked against x/net's header
// parser and ICMP encoder: from ::, to the solicited-node group on its
// multicast MAC, hop limit 255, target the VIP, no options.
func TestDADSolicitation(t *testing.T) {
	pf := newProbeFrame(testMAC, testVIP6)
	if pf.etherType != etherTypeIPv6 || pf.dst.String() != "33:33:ff:00:01:00" {
		t.Fatalf("ethertype %#x to %s, want IPv6 to 33:33:ff:00:01:00", pf.etherType, pf.dst)
	}
	if g := solicitedNode(netip.MustParseAddr("2001:db8::abcd:1234:5678")); g.String() != "ff02::1:ff34:5678" {
		t.Fatalf("solicited-node group %s", g)
	}
	b := pf.payload
	h, err := ipv6.ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.Version != 6 || h.NextHeader != 58 || h.HopLimit != 255 || h.PayloadLen != 24 || len(b) != 64 ||
		!h.Src.Equal(net.IPv6unspecified) || !h.Dst.Equal(net.ParseIP("ff02::1:ff00:100")) {
		t.Fatalf("header %+v, length %d", h, len(b))
	}
	body := append(make([]byte, 4), testVIP6.AsSlice()...) // reserved, target
	want := xnetND(t, ipv6.ICMPTypeNeighborSolicitation, netip.IPv6Unspecified(), solicitedNode(testVIP6), body)
	if !bytes.Equal(b[40:], want) {
		t.Fatalf("solicitation\n%x\nx/net encodes\n%x", b[40:], want)
	}
}

// The unsolicited NA is what a Linux holder sends in answer to a DAD
// solicitation too (to all nodes, Override, target link-layer address),
// so it serves as the answer here; the other cases are what must not
// count.
func TestNAAnswer(t *testing.T) {
	answer := unsolicitedNA(otherMAC6, testVIP6)
	if want := xnetND(t, ipv6.ICMPTypeNeighborAdvertisement, testVIP6, allNodesIPv6, answer[44:]); !bytes.Equal(answer[40:], want) {
		t.Fatalf("NA\n%x\nx/net encodes\n%x", answer[40:], want)
	}
	// nd builds an NA for target with the given flags and options.
	nd := func(typ, code byte, target netip.Addr, opts ...byte) []byte {
		msg := make([]byte, ndMessageLen, ndMessageLen+len(opts))
		msg[0], msg[1], msg[4] = typ, code, 0x20
		copy(msg[8:], target.AsSlice())
		return ndPacket(testVIP6, allNodesIPv6, append(msg, opts...))
	}
	with := func(b []byte, f func([]byte)) []byte {
		b = bytes.Clone(b)
		f(b)
		return b
	}
	pf := newProbeFrame(testMAC, testVIP6)
	for _, tc := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"advertisement from the holder", answer, true},
		{"without link-layer option", nd(136, 0, testVIP6), true},
		{"with Ethernet padding", append(bytes.Clone(answer), 0, 0, 0, 0), true},
		{"with an unknown option first", nd(136, 0, testVIP6, 99, 1, 0, 0, 0, 0, 0, 0, 2, 1, 2, 0, 0, 0, 0, 9), true},
		{"our own advertisement", unsolicitedNA(testMAC, testVIP6), false},
		{"another target", unsolicitedNA(otherMAC6, netip.MustParseAddr("2001:db8::7")), false},
		{"our probe", pf.payload, false},
		{"a solicitation for the target", nd(135, 0, testVIP6), false},
		{"code not 0", nd(136, 1, testVIP6), false},
		{"option of length 0", nd(136, 0, testVIP6, 2, 0, 0, 0, 0, 0, 0, 0), false},
		{"option past the end", nd(136, 0, testVIP6, 2, 2, 0, 0, 0, 0, 0, 9), false},
		{"routed (hop limit 254)", with(answer, func(b []byte) { b[7] = 254 }), false},
		{"bad checksum", with(answer, func(b []byte) { b[45] ^= 1 }), false},
		{"truncated", answer[:len(answer)-1], false},
		{"payload length too short", with(answer, func(b []byte) { binary.BigEndian.PutUint16(b[4:], 20) }), false},
		{"not ICMPv6", with(answer, func(b []byte) { b[6] = 17 }), false},
		{"not IPv6", arpAnnouncement(otherMAC6, netip.MustParseAddr("198.51.100.100")), false},
		{"empty", nil, false},
	} {
		if got := pf.answers(tc.b); got != tc.want {
			t.Errorf("%s: answers = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// runFilter reports whether the probe's socket filter passes b, run in
// golang.org/x/net/bpf's VM (which, like the kernel, drops a frame on a
// load past its end).
func runFilter(t testing.TB, pf probeFrame, b []byte) bool {
	t.Helper()
	vm, err := bpf.NewVM(pf.filter)
	if err != nil {
		t.Fatal(err)
	}
	n, err := vm.Run(b)
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// The IPv6 probe's filter passes neighbour advertisements only; the
// IPv4 one passes all ARP.
func TestProbeFilter(t *testing.T) {
	v6 := newProbeFrame(testMAC, testVIP6)
	udp := bytes.Clone(unsolicitedNA(otherMAC6, testVIP6))
	udp[6] = 17
	for _, tc := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"advertisement", unsolicitedNA(otherMAC6, testVIP6), true},
		{"our own advertisement (the decoder drops it)", unsolicitedNA(testMAC, testVIP6), true},
		{"solicitation", dadSolicitation(testVIP6), false},
		{"UDP", udp, false},
		{"header only", unsolicitedNA(otherMAC6, testVIP6)[:40], false},
	} {
		if got := runFilter(t, v6, tc.b); got != tc.want {
			t.Errorf("IPv6 filter, %s: pass = %v, want %v", tc.name, got, tc.want)
		}
	}
	v4 := newProbeFrame(testMAC, netip.MustParseAddr("198.51.100.100"))
	if !runFilter(t, v4, arpProbe(otherMAC6, netip.MustParseAddr("198.51.100.7"))) {
		t.Error("IPv4 filter dropped ARP")
	}
}

// FuzzProbeAnswers feeds arbitrary frames to both families' answer
// decoders: they must not panic, and what they accept must parse as an
// answer with x/net's parsers (an IPv6 NA for the VIP whose checksum x/net
// computes alike, which the socket filter passes) or, for ARP, carry the
// VIP as sender from another MAC.
func FuzzProbeAnswers(f *testing.F) {
	f.Add(unsolicitedNA(otherMAC6, testVIP6))
	f.Add(unsolicitedNA(testMAC, testVIP6))
	f.Add(dadSolicitation(testVIP6))
	f.Add(arpAnnouncement(otherMAC6, netip.MustParseAddr("198.51.100.100")))
	f.Add([]byte{0x60})
	v4 := newProbeFrame(testMAC, netip.MustParseAddr("198.51.100.100"))
	v6 := newProbeFrame(testMAC, testVIP6)
	f.Fuzz(func(t *testing.T, b []byte) {
		if v4.answers(b) && (!bytes.Equal(b[14:18], []byte{198, 51, 100, 100}) || bytes.Equal(b[8:14], testMAC)) {
			t.Fatalf("ARP answer accepted: %x", b)
		}
		if !v6.answers(b) {
			return
		}
		if !runFilter(t, v6, b) {
			t.Fatalf("the socket filter drops an answer: %x", b)
		}
		h, err := ipv6.ParseHeader(b)
		if err != nil || h.HopLimit != 255 || h.NextHeader != 58 {
			t.Fatalf("accepted %x: header %+v, %v", b, h, err)
		}
		msg := b[40 : 40+h.PayloadLen]
		m, err := icmp.ParseMessage(58, msg)
		if err != nil || m.Type != ipv6.ICMPTypeNeighborAdvertisement || !bytes.Equal(msg[8:24], testVIP6.AsSlice()) {
			t.Fatalf("accepted %x: %+v, %v", b, m, err)
		}
		src, _ := netip.AddrFromSlice(b[8:24])
		dst, _ := netip.AddrFromSlice(b[24:40])
		if want := xnetND(t, ipv6.ICMPTypeNeighborAdvertisement, src, dst, msg[4:]); !bytes.Equal(msg[2:4], want[2:4]) {
			t.Fatalf("accepted %x with checksum %x, x/net computes %x", b, msg[2:4], want[2:4])
		}
	})
}
