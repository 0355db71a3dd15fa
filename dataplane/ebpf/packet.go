package ebpf

import (
	"encoding/binary"
	"net/netip"
)

// Packet building for BPF_PROG_TEST_RUN (packet tests and the lb
// benchmark): Ethernet, IPv4 without options, TCP or UDP, with checksums
// computed from scratch.

// TestPacket returns an Ethernet/IPv4 TCP (SYN when tcpFlags is 0) or UDP
// packet from src to dst with payload and valid checksums.
func TestPacket(src, dst netip.AddrPort, proto uint8, tcpFlags uint8, payload []byte) []byte {
	return buildPacket(pktSpec{src: src.Addr(), dst: dst.Addr(), sport: src.Port(), dport: dst.Port(), proto: proto,
		tcpFlags: tcpFlags, payload: payload})
}

// Protocol numbers for TestPacket.
const (
	ProtoTCP = protoTCP
	ProtoUDP = protoUDP
)

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
