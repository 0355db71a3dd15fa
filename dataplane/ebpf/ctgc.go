package ebpf

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Conntrack expiry, the userspace half of the lifetimes in bpf/lib/maps.h
// (docs/decisions/0004-conntrack-lifetimes.md). The datapath notes in each
// entry what TCP flags it saw and when it last saw a packet; the provider's
// GC deletes a pair once neither entry has seen a packet for the pair's
// lifetime, which frees the pair's SNAT port, and deletes an entry whose
// other half is gone (LRU eviction), since half a pair cannot translate a
// working flow.

// ctPartner returns the key of the other entry of v's pair: the reverse
// of the tuple v rewrites to.
func ctPartner(k CTKey, v CTVal) CTKey {
	return CTKey{Saddr: v.NatDaddr, Daddr: v.NatSaddr, Sport: v.NatDport, Dport: v.NatSport, Proto: k.Proto}
}

// ctPaired reports whether two entries are the two halves of one pair.
func ctPaired(k CTKey, v CTVal, pk CTKey, pv CTVal) bool {
	return v.Kind != pv.Kind && ctPartner(k, v) == pk && ctPartner(pk, pv) == k
}

// ctClosed mirrors ct_closed: a RST either way or a FIN both ways.
func ctClosed(a, b uint8) bool {
	return (a|b)&CTSeenRST != 0 || a&b&CTSeenFIN != 0
}

// ctLifetime mirrors ct_lifetime: how long a pair whose entries saw a and
// b lives after its last packet.
func ctLifetime(proto uint8, a, b uint8) time.Duration {
	switch {
	case proto != protoTCP:
		return CTUDPTimeout
	case ctClosed(a, b):
		return CTCloseTimeout
	case (a|b)&CTSeenEst != 0:
		return CTEstTimeout
	default:
		return CTSynTimeout
	}
}

// ctIdle reports whether an entry saw no packet for longer than d.
func ctIdle(v CTVal, now uint64, d time.Duration) bool {
	return now > v.LastNs && time.Duration(now-v.LastNs) > d
}

// ctPairExpired reports whether the pair (a, b) has outlived its lifetime.
func ctPairExpired(proto uint8, a, b CTVal, now uint64) bool {
	last := a
	if b.LastNs > a.LastNs {
		last = b
	}
	return ctIdle(last, now, ctLifetime(proto, a.Seen, b.Seen))
}

// ctDoomed is a pair (n = 2) or a lone entry (n = 1) to delete, with the
// values it was judged by.
type ctDoomed struct {
	n    int
	keys [2]CTKey
	vals [2]CTVal
}

// ctExpired judges the entries in old, those idle for longer than the
// shortest lifetime (no other entry can belong to an expired pair), and
// returns what must go. lookup reads an entry that is not in old.
func ctExpired(old map[CTKey]CTVal, lookup func(CTKey) (CTVal, bool, error), now uint64) ([]ctDoomed, error) {
	var out []ctDoomed
	for k, v := range old {
		pk := ctPartner(k, v)
		if pv, ok := old[pk]; ok && ctPaired(k, v, pk, pv) {
			// Judged once, at the forward entry.
			if v.Kind == CTForward && ctPairExpired(k.Proto, v, pv, now) {
				out = append(out, ctDoomed{n: 2, keys: [2]CTKey{k, pk}, vals: [2]CTVal{v, pv}})
			}
			continue
		}
		pv, ok, err := lookup(pk)
		if err != nil {
			return nil, err
		}
		if ok && ctPaired(k, v, pk, pv) {
			continue // the other half saw a packet lately: the pair lives
		}
		out = append(out, ctDoomed{n: 1, keys: [2]CTKey{k}, vals: [2]CTVal{v}})
	}
	return out, nil
}

// monotonicNow is CLOCK_MONOTONIC in nanoseconds, the conntrack clock
// (bpf_ktime_get_coarse_ns reads the same clock at tick granularity).
func monotonicNow() (uint64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, fmt.Errorf("clock_gettime: %w", err)
	}
	return uint64(ts.Nano()), nil
}
