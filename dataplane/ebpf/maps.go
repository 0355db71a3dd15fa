package ebpf

import (
	"errors"
	"fmt"
)

// ErrMapFull is returned (wrapped, naming the map) when a map or an id
// space has no room left for an entry. Sync reports it and counts it in a
// metric; nothing is dropped silently.
var ErrMapFull = errors.New("bpf map full")

// Map names: the pin names in the node's pin directory. The _vN suffix is
// the layout version (see bpf/lib/maps.h).
const (
	MapServices     = "skf_svc_v1"
	MapSlots        = "skf_slot_v1"
	MapBackends     = "skf_be_v1"
	MapConntrack    = "skf_ct_v2"
	MapAffinity     = "skf_aff_v1"
	MapSockets      = "skf_sk_v1"
	MapNetNS        = "skf_netns_v1"
	MapSvcCounters  = "skf_svccnt_v1"
	MapBackendCount = "skf_becnt_v1"
	MapMaglev       = "skf_mglv_v3"
	MapDrops        = "skf_drop_v1"
	MapSocketGC     = "skf_sockgc_v1"
)

// DropReasons names the datapath's drop counters by index (DROP_* in
// bpf/lib/maps.h); index 0 is unused.
var DropReasons = [...]string{
	1: "no_backend",        // the chosen backend was deleted meanwhile
	2: "conntrack_insert",  // the conntrack insert failed
	3: "snat_ports",        // XDP: no free SNAT port for a remote backend
	4: "no_node_ip",        // XDP: a remote backend, but no node address
	5: "no_route",          // XDP: no route to the backend
	6: "rewrite",           // rewriting the packet or building a refusal failed
	7: "no_local_endpoint", // a Local traffic policy and no local endpoint
}

// Maps is the reconciler's view of the BPF maps: batched writes of the
// load balancer state, the conntrack and affinity clean-up that backend
// removal needs, and reads for restart reconciliation and metrics. Bpf
// implements it on the pinned maps; Fake in memory.
type Maps interface {
	// UpdateServices writes frontend entries (insert or replace).
	UpdateServices(keys []SvcKey, vals []SvcVal) error
	DeleteServices(keys []SvcKey) error
	// UpdateSlots writes backend slots of backend sets.
	UpdateSlots(keys []SlotKey, vals []uint32) error
	DeleteSlots(keys []SlotKey) error
	// UpdateBackends writes backends by id; a zero Backend deletes one.
	UpdateBackends(ids []uint32, vals []Backend) error
	// SetMaglev installs (atomically replaces) the Maglev table of a set.
	SetMaglev(id uint32, table []uint32) error
	DeleteMaglev(ids []uint32) error
	// ResetCounters zeroes the counters of newly allocated ids.
	ResetCounters(setIDs, backendIDs []uint32) error
	// DeleteConntrack deletes every conntrack entry (and affinity
	// record) for which match returns true; it returns how many
	// conntrack entries went.
	DeleteConntrack(match func(CTKey, CTVal) bool) (int, error)
	// ExpireConntrack deletes the conntrack pairs that expired by now
	// (CLOCK_MONOTONIC nanoseconds) and the entries that lost their
	// other half, and returns how many entries went. See ctExpiry.
	ExpireConntrack(now uint64) (int, error)
	// Snapshot reads the load balancer state (not conntrack).
	Snapshot() (*Snapshot, error)
	// SetCounters returns the counters of backend sets, summed over CPUs.
	SetCounters(ids []uint32) (map[uint32]Counter, error)
	// BackendCounters returns the counters of backends, summed over CPUs.
	BackendCounters(ids []uint32) (map[uint32]Counter, error)
	// ConntrackEntries counts conntrack entries.
	ConntrackEntries() (int, error)
	// Drops returns the datapath's drop counters, summed over CPUs and
	// indexed like DropReasons.
	Drops() ([len(DropReasons)]uint64, error)
	// DestroySockets destroys the node's UDP sockets connected through
	// the socket hooks to an ended (set, backend) pair or to a removed
	// backend, and returns how many went.
	DestroySockets(pairs [][2]uint32, backends []uint32) (int, error)
	// AddNetNS and DeleteNetNS maintain the namespaces this node owns
	// (owner NetNSHost or NetNSPod).
	AddNetNS(cookie uint64, owner uint32) error
	DeleteNetNS(cookie uint64) error
}

// Snapshot is the load balancer content of the maps.
type Snapshot struct {
	Services map[SvcKey]SvcVal
	Slots    map[SlotKey]uint32
	Backends map[uint32]Backend // non-zero entries only
	Maglev   map[uint32]bool    // sets with a Maglev table
}

func mapFull(name string, err error) error {
	return fmt.Errorf("%s: %w: %w", name, ErrMapFull, err)
}
