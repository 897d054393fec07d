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

func TestARPProbe(t *testing.T) {
	ip := netip.MustParseAddr("198.51.100.100")
	b := arpProbe(testMAC, ip)
	want := []byte{0, 1, 8, 0, 6, 4, 0, 1, // Ethernet/IPv4 request
		0x02, 0x00, 0x5e, 0x10, 0x20, 0x30, 0, 0, 0, 0, // sender: our MAC, no address (RFC 5227)
		0, 0, 0, 0, 0, 0, 198, 51, 100, 100} // target: the VIP
	if !bytes.Equal(b, want) {
		t.Fatalf("probe\n%x\nwant\n%x", b, want)
	}
	other := net.HardwareAddr{0x02, 0, 0, 0, 0, 9}
	reply := arpAnnouncement(other, ip) // sender address = the VIP, from another MAC
	reply[7] = 2
	for _, tc := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"reply from the holder", reply, true},
		{"announcement from the holder", arpAnnouncement(other, ip), true},
		{"our own probe", b, false},
		{"our own announcement", arpAnnouncement(testMAC, ip), false},
		{"another address", arpAnnouncement(other, netip.MustParseAddr("198.51.100.7")), false},
		{"another host probing", arpProbe(other, ip), false},
		{"truncated", reply[:20], false},
		{"not IPv4", append([]byte{0, 1, 0x86, 0xdd}, reply[4:]...), false},
	} {
		if got := probeAnswer(tc.b, testMAC, ip); got != tc.want {
			t.Errorf("%s: probeAnswer = %v, want %v", tc.name, got, tc.want)
		}
	}
}
