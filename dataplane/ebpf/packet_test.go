package ebpf

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// Packet building and checking for the BPF_PROG_TEST_RUN tests: Ethernet,
// IPv4 (no options) and TCP or UDP, with checksums computed from scratch.

// parsed is a decoded packet.
type parsed struct {
	srcMAC, dstMAC [6]byte
	src, dst       netip.Addr
	proto          uint8
	sport, dport   uint16
	tcpFlags       uint8
	seq, ack       uint32
	udpCsum        uint16
	icmpType       uint8
	icmpCode       uint8
	quoted         []byte // ICMP payload: the quoted IP header + 8 bytes
	ttl            uint8
}

// parsePacket decodes b and fails the test when a checksum is wrong
// (every checksum is recomputed from scratch).
func parsePacket(t *testing.T, b []byte) parsed {
	t.Helper()
	if len(b) < 34 {
		t.Fatalf("packet of %d bytes", len(b))
	}
	var p parsed
	copy(p.dstMAC[:], b[0:6])
	copy(p.srcMAC[:], b[6:12])
	ip := b[14:]
	ihl := int(ip[0]&0xf) * 4
	tot := int(binary.BigEndian.Uint16(ip[2:]))
	if tot > len(ip) {
		t.Fatalf("ip total length %d > %d bytes", tot, len(ip))
	}
	if c := csum16(ip[:ihl], 0); c != 0 {
		t.Errorf("bad IPv4 header checksum (residue %#x)", c)
	}
	p.ttl = ip[8]
	p.proto = ip[9]
	p.src = netip.AddrFrom4([4]byte(ip[12:16]))
	p.dst = netip.AddrFrom4([4]byte(ip[16:20]))
	l4 := ip[ihl:tot]
	switch p.proto {
	case protoTCP:
		p.sport = binary.BigEndian.Uint16(l4[0:])
		p.dport = binary.BigEndian.Uint16(l4[2:])
		p.seq = binary.BigEndian.Uint32(l4[4:])
		p.ack = binary.BigEndian.Uint32(l4[8:])
		p.tcpFlags = l4[13]
		if c := csum16(l4, pseudoSum(p.src, p.dst, p.proto, len(l4))); c != 0 {
			t.Errorf("bad TCP checksum (residue %#x)", c)
		}
	case protoUDP:
		p.sport = binary.BigEndian.Uint16(l4[0:])
		p.dport = binary.BigEndian.Uint16(l4[2:])
		p.udpCsum = binary.BigEndian.Uint16(l4[6:])
		if p.udpCsum != 0 {
			if c := csum16(l4, pseudoSum(p.src, p.dst, p.proto, len(l4))); c != 0 {
				t.Errorf("bad UDP checksum (residue %#x)", c)
			}
		}
	case 1:
		p.icmpType, p.icmpCode = l4[0], l4[1]
		if c := csum16(l4, 0); c != 0 {
			t.Errorf("bad ICMP checksum (residue %#x)", c)
		}
		p.quoted = append([]byte(nil), l4[8:]...)
	}
	return p
}

func TestPacketHelpers(t *testing.T) {
	// The helpers themselves: a built packet parses back with valid
	// checksums, and a corrupted one is caught.
	for _, proto := range []uint8{protoTCP, protoUDP} {
		b := buildPacket(pktSpec{src: netip.MustParseAddr("10.1.2.3"), dst: netip.MustParseAddr("10.9.8.7"),
			sport: 1234, dport: 80, proto: proto, payload: []byte("hello")})
		ft := &testing.T{}
		p := parsePacket(ft, b)
		if ft.Failed() || p.sport != 1234 || p.dport != 80 {
			t.Fatalf("proto %d: round trip failed: %+v", proto, p)
		}
		b[len(b)-1] ^= 0xff
		if csum16(b[34:], pseudoSum(p.src, p.dst, proto, len(b)-34)) == 0 {
			t.Errorf("proto %d: corrupted payload still checksums", proto)
		}
	}
}
