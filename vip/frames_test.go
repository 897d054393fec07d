package vip

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

var testMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x20, 0x30}

func TestARPAnnouncementLayout(t *testing.T) {
	b := arpAnnouncement(testMAC, netip.MustParseAddr("198.51.100.100"))
	want := []byte{0, 1, 8, 0, 6, 4, 0, 1, // Ethernet/IPv4 request
		0x02, 0x00, 0x5e, 0x10, 0x20, 0x30, 198, 51, 100, 100, // sender
		0, 0, 0, 0, 0, 0, 198, 51, 100, 100} // target
	if !bytes.Equal(b, want) {
		t.Fatalf("frame\n%x\nwant\n%x", b, want)
	}
}

// The NA is checked with golang.org/x/net's parsers and by recomputing the
// checksum over the whole message, which must come out as zero.
func TestUnsolicitedNA(t *testing.T) {
	ip := netip.MustParseAddr("2001:db8::100")
	b := unsolicitedNA(testMAC, ip)
	h, err := ipv6.ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.Version != 6 || h.NextHeader != 58 || h.HopLimit != 255 || h.PayloadLen != 32 ||
		!h.Src.Equal(net.IP(ip.AsSlice())) || !h.Dst.Equal(net.ParseIP("ff02::1")) {
		t.Fatalf("header %+v", h)
	}
	m, err := icmp.ParseMessage(58, b[40:])
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != ipv6.ICMPTypeNeighborAdvertisement || m.Code != 0 {
		t.Fatalf("type %v code %d", m.Type, m.Code)
	}
	body := b[40:]
	if body[4] != 0x20 {
		t.Fatalf("flags %#x, want Override only", body[4])
	}
	if !bytes.Equal(body[8:24], ip.AsSlice()) || body[24] != 2 || body[25] != 1 || !bytes.Equal(body[26:32], testMAC) {
		t.Fatalf("target or option wrong: %x", body)
	}
	if sum := icmpv6Checksum(ip.As16(), netip.MustParseAddr("ff02::1").As16(), body); sum != 0 {
		t.Fatalf("checksum does not verify: residue %#x", sum)
	}
}
