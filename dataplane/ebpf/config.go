package ebpf

// MapSizes are the capacities of the maps (max_entries). Zero fields take
// the defaults. Changing a size of an existing pinned map makes the loader
// fail with an incompatible-map error: Cleanup first.
type MapSizes struct {
	// Services is the number of frontend entries (address, port,
	// protocol, scope); each ClusterIP port takes one, each external
	// frontend two.
	Services int
	// Sets is the number of backend sets (each ServicePort has one, two
	// under a Local traffic policy); it sizes the per-set counters and
	// the Maglev outer map.
	Sets int
	// Slots is the total number of backend slots over all sets.
	Slots int
	// Backends is the number of distinct backends (ip, port, protocol);
	// it sizes the per-backend counters too.
	Backends int
	// Conntrack, Affinity and Sockets size the LRU maps.
	Conntrack int
	Affinity  int
	Sockets   int
	// NetNS is the number of network namespaces (node and pods).
	NetNS int
}

// DefaultMapSizes returns the sizes used for zero fields.
func DefaultMapSizes() MapSizes {
	return MapSizes{
		Services:  65536,
		Sets:      65536,
		Slots:     262144,
		Backends:  262144,
		Conntrack: 262144,
		Affinity:  65536,
		Sockets:   262144,
		NetNS:     4096,
	}
}

func (s MapSizes) withDefaults() MapSizes {
	d := DefaultMapSizes()
	set := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&s.Services, d.Services)
	set(&s.Sets, d.Sets)
	set(&s.Slots, d.Slots)
	set(&s.Backends, d.Backends)
	set(&s.Conntrack, d.Conntrack)
	set(&s.Affinity, d.Affinity)
	set(&s.Sockets, d.Sockets)
	set(&s.NetNS, d.NetNS)
	return s
}
