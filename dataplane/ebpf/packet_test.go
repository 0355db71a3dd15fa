package ebpf

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// Packet building and checking for the BPF_PROG_TEST_RUN tests: Ethernet,
// IPv4 (no options) and TCP or UDP, with checksums computed from scratch.

type pktSpec struct {
	srcMAC, dstMAC [6]byte
	src, dst       netip.Addr
	sport, dport   uint16
	proto          uint8
	tcpFlags       uint8 // default SYN for TCP
	seq, ack       uint32
	payload        []byte
	noUDPCsum      bool
}

func csum16(b []byte, initial uint32) uint16 {
	s := initial
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

func pseudoSum(src, dst netip.Addr, proto uint8, l4len int) uint32 {
	s, d := src.As4(), dst.As4()
	var sum uint32
	sum += uint32(binary.BigEndian.Uint16(s[0:])) + uint32(binary.BigEndian.Uint16(s[2:]))
	sum += uint32(binary.BigEndian.Uint16(d[0:])) + uint32(binary.BigEndian.Uint16(d[2:]))
	sum += uint32(proto) + uint32(l4len)
	return sum
}

func buildPacket(s pktSpec) []byte {
	l4len := 8
	if s.proto == protoTCP {
		l4len = 20
	}
	l4len += len(s.payload)
	b := make([]byte, 14+20+l4len)
	copy(b[0:6], s.dstMAC[:])
	copy(b[6:12], s.srcMAC[:])
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+l4len))
	binary.BigEndian.PutUint16(ip[4:], 0x1234)
	ip[8] = 64
	ip[9] = s.proto
	src, dst := s.src.As4(), s.dst.As4()
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	binary.BigEndian.PutUint16(ip[10:], csum16(ip, 0))
	l4 := b[34:]
	binary.BigEndian.PutUint16(l4[0:], s.sport)
	binary.BigEndian.PutUint16(l4[2:], s.dport)
	if s.proto == protoTCP {
		binary.BigEndian.PutUint32(l4[4:], s.seq)
		binary.BigEndian.PutUint32(l4[8:], s.ack)
		l4[12] = 5 << 4
		l4[13] = s.tcpFlags
		if s.tcpFlags == 0 {
			l4[13] = 0x02
		}
		binary.BigEndian.PutUint16(l4[14:], 65535)
		copy(l4[20:], s.payload)
		binary.BigEndian.PutUint16(l4[16:], csum16(l4, pseudoSum(s.src, s.dst, s.proto, len(l4))))
	} else {
		binary.BigEndian.PutUint16(l4[4:], uint16(l4len))
		copy(l4[8:], s.payload)
		if !s.noUDPCsum {
			c := csum16(l4, pseudoSum(s.src, s.dst, s.proto, len(l4)))
			if c == 0 {
				c = 0xffff
			}
			binary.BigEndian.PutUint16(l4[6:], c)
		}
	}
	return b
}

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
