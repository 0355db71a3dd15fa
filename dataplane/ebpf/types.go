package ebpf

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// Go names for the bpf2go-generated mirrors of the structs in
// bpf/lib/maps.h. Addresses and ports are kept in network byte order in
// memory (as the programs read them from packets): use the helpers below
// rather than converting by hand.
type (
	SvcKey  = lxcLbSvcKey  // struct lb_svc_key
	SvcVal  = lxcLbSvcVal  // struct lb_svc_val
	SlotKey = lxcLbSlotKey // struct lb_slot_key
	Backend = lxcLbBackend // struct lb_backend
	CTKey   = lxcCtKey     // struct ct_key
	CTVal   = lxcCtVal     // struct ct_val
	AffKey  = lxcLbAffKey  // struct lb_aff_key
	AffVal  = lxcLbAffVal  // struct lb_aff_val
	SockKey = lxcSkKey     // struct sk_key
	SockVal = lxcSkVal     // struct sk_val
	Counter = lxcLbCounter // struct lb_counter

	SockGCKey = lxcSockgcKey // struct sockgc_key
)

// Constants mirrored from bpf/lib/maps.h (#defines carry no BTF; the packet
// tests exercise each of them).
const (
	ScopeInternal = 0 // SCOPE_INTERNAL: socket hooks and TC
	ScopeExternal = 1 // SCOPE_EXTERNAL: XDP

	SvcFlagExternal = 0x01 // SVC_F_EXTERNAL
	SvcFlagAffinity = 0x02 // SVC_F_AFFINITY
	SvcFlagLocal    = 0x04 // SVC_F_LOCAL
	SvcFlagDrop     = 0x08 // SVC_F_DROP
	SvcFlagMaglev   = 0x10 // SVC_F_MAGLEV

	BackendFlagLocal = 0x01 // BE_F_LOCAL

	CTForward = 1 // CT_FWD
	CTReverse = 2 // CT_REV

	CTFlagHairpin = 0x01 // CT_F_HAIRPIN
	CTFlagXDP     = 0x02 // CT_F_XDP
	CTFlagFIB     = 0x04 // CT_F_FIB
	CTFlagSNAT    = 0x08 // CT_F_SNAT

	CTSeenSYN = 0x01 // CT_SEEN_SYN
	CTSeenEst = 0x02 // CT_SEEN_EST
	CTSeenFIN = 0x04 // CT_SEEN_FIN
	CTSeenRST = 0x08 // CT_SEEN_RST

	NetNSHost = 1 // NETNS_HOST: the node's own namespace
	NetNSPod  = 2 // NETNS_POD: a pod's namespace

	AffNetNS = 1 // AFF_NETNS
	AffAddr  = 2 // AFF_ADDR

	protoTCP = 6
	protoUDP = 17
)

// Conntrack lifetimes and refresh interval, mirrored from bpf/lib/maps.h
// (CT_*_NS; docs/decisions/0004-conntrack-lifetimes.md).
const (
	CTRefresh      = time.Second      // CT_REFRESH_NS
	CTSynTimeout   = 60 * time.Second // CT_SYN_TIMEOUT_NS
	CTEstTimeout   = 6 * time.Hour    // CT_EST_TIMEOUT_NS
	CTCloseTimeout = 10 * time.Second // CT_CLOSE_TIMEOUT_NS
	CTUDPTimeout   = 60 * time.Second // CT_UDP_TIMEOUT_NS
)

// be32 returns the uint32 whose in-memory (little-endian host) bytes are
// the address in network order, as the programs compare it.
func be32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.NativeEndian.Uint32(b[:])
}

// addrFromBE32 is the inverse of be32.
func addrFromBE32(v uint32) netip.Addr {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// be16 returns the uint16 whose in-memory bytes are port in network order.
func be16(port uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], port)
	return binary.NativeEndian.Uint16(b[:])
}

// portFromBE16 is the inverse of be16.
func portFromBE16(v uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], v)
	return binary.BigEndian.Uint16(b[:])
}
