package ebpf

import (
	"fmt"
	"maps"
	"sync"
)

// Fake is an in-memory Maps with the same capacities as the real maps, for
// tests without privileges. It records how many entries each call touched,
// so tests can check that a sync did work proportional to what changed.
type Fake struct {
	mu    sync.Mutex
	sizes MapSizes

	Services  map[SvcKey]SvcVal
	Slots     map[SlotKey]uint32
	Backends  map[uint32]Backend
	Maglev    map[uint32][]uint32
	Conntrack map[CTKey]CTVal
	Affinity  map[AffKey]AffVal
	NetNS     map[uint64]uint32
	SetCount  map[uint32]Counter
	BECount   map[uint32]Counter
	// DropCount stands for the datapath's drop counters.
	DropCount [len(DropReasons)]uint64
	// Destroyed records DestroySockets calls: the pairs, and the backends
	// as pairs with set 0.
	Destroyed [][2]uint32

	// Ops counts entries written or deleted per map since the last
	// ResetOps.
	Ops map[string]int
}

var _ Maps = (*Fake)(nil)

// NewFake returns empty fake maps with the given capacities (zero fields
// take the defaults).
func NewFake(sizes MapSizes) *Fake {
	return &Fake{
		sizes:     sizes.withDefaults(),
		Services:  map[SvcKey]SvcVal{},
		Slots:     map[SlotKey]uint32{},
		Backends:  map[uint32]Backend{},
		Maglev:    map[uint32][]uint32{},
		Conntrack: map[CTKey]CTVal{},
		Affinity:  map[AffKey]AffVal{},
		NetNS:     map[uint64]uint32{},
		SetCount:  map[uint32]Counter{},
		BECount:   map[uint32]Counter{},
		Ops:       map[string]int{},
	}
}

// ResetOps clears the operation counts.
func (f *Fake) ResetOps() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Ops = map[string]int{}
}

// OpsTotal returns the sum of all operation counts.
func (f *Fake) OpsTotal() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, v := range f.Ops {
		n += v
	}
	return n
}

func (f *Fake) UpdateServices(keys []SvcKey, vals []SvcVal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, k := range keys {
		if _, ok := f.Services[k]; !ok && len(f.Services) >= f.sizes.Services {
			return mapFull(MapServices, fmt.Errorf("%d entries", len(f.Services)))
		}
		f.Services[k] = vals[i]
		f.Ops[MapServices]++
	}
	return nil
}

func (f *Fake) DeleteServices(keys []SvcKey) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		delete(f.Services, k)
		f.Ops[MapServices]++
	}
	return nil
}

func (f *Fake) UpdateSlots(keys []SlotKey, vals []uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, k := range keys {
		if _, ok := f.Slots[k]; !ok && len(f.Slots) >= f.sizes.Slots {
			return mapFull(MapSlots, fmt.Errorf("%d entries", len(f.Slots)))
		}
		f.Slots[k] = vals[i]
		f.Ops[MapSlots]++
	}
	return nil
}

func (f *Fake) DeleteSlots(keys []SlotKey) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		delete(f.Slots, k)
		f.Ops[MapSlots]++
	}
	return nil
}

func (f *Fake) UpdateBackends(ids []uint32, vals []Backend) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, id := range ids {
		if id == 0 || int(id) >= f.sizes.Backends {
			return fmt.Errorf("%s: backend id %d out of range", MapBackends, id)
		}
		if vals[i] == (Backend{}) {
			delete(f.Backends, id)
		} else {
			f.Backends[id] = vals[i]
		}
		f.Ops[MapBackends]++
	}
	return nil
}

func (f *Fake) SetMaglev(id uint32, table []uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if int(id) >= f.sizes.Sets {
		return fmt.Errorf("%s: set id %d out of range", MapMaglev, id)
	}
	f.Maglev[id] = append([]uint32(nil), table...)
	f.Ops[MapMaglev]++
	return nil
}

func (f *Fake) DeleteMaglev(ids []uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		delete(f.Maglev, id)
		f.Ops[MapMaglev]++
	}
	return nil
}

func (f *Fake) ResetCounters(setIDs, backendIDs []uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range setIDs {
		delete(f.SetCount, id)
	}
	for _, id := range backendIDs {
		delete(f.BECount, id)
	}
	return nil
}

func (f *Fake) DeleteConntrack(match func(CTKey, CTVal) bool) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for k, v := range f.Conntrack {
		if match(k, v) {
			delete(f.Conntrack, k)
			f.Ops[MapConntrack]++
			n++
		}
	}
	for k, v := range f.Affinity {
		if match(CTKey{}, CTVal{BackendId: v.BackendId, SvcId: k.Id}) {
			delete(f.Affinity, k)
			f.Ops[MapAffinity]++
		}
	}
	return n, nil
}

func (f *Fake) ExpireConntrack(now uint64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := map[CTKey]CTVal{}
	for k, v := range f.Conntrack {
		if ctIdle(v, now, CTCloseTimeout) {
			old[k] = v
		}
	}
	doomed, err := ctExpired(old, func(k CTKey) (CTVal, bool, error) {
		v, ok := f.Conntrack[k]
		return v, ok, nil
	}, now)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range doomed {
		for _, k := range d.keys[:d.n] {
			delete(f.Conntrack, k)
			f.Ops[MapConntrack]++
			n++
		}
	}
	return n, nil
}

func (f *Fake) Snapshot() (*Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := &Snapshot{
		Services: maps.Clone(f.Services),
		Slots:    maps.Clone(f.Slots),
		Backends: maps.Clone(f.Backends),
		Maglev:   map[uint32]bool{},
	}
	for id := range f.Maglev {
		s.Maglev[id] = true
	}
	return s, nil
}

func (f *Fake) SetCounters(ids []uint32) (map[uint32]Counter, error) {
	return f.counters(f.SetCount, ids), nil
}

func (f *Fake) BackendCounters(ids []uint32) (map[uint32]Counter, error) {
	return f.counters(f.BECount, ids), nil
}

func (f *Fake) counters(m map[uint32]Counter, ids []uint32) map[uint32]Counter {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[uint32]Counter, len(ids))
	for _, id := range ids {
		out[id] = m[id]
	}
	return out
}

func (f *Fake) DestroySockets(pairs [][2]uint32, backends []uint32) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Destroyed = append(f.Destroyed, pairs...)
	for _, id := range backends {
		f.Destroyed = append(f.Destroyed, [2]uint32{0, id})
	}
	return 0, nil
}

func (f *Fake) Drops() ([len(DropReasons)]uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.DropCount, nil
}

func (f *Fake) ConntrackEntries() (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.Conntrack), nil
}

func (f *Fake) AddNetNS(cookie uint64, owner uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.NetNS[cookie] = owner
	return nil
}

func (f *Fake) DeleteNetNS(cookie uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.NetNS, cookie)
	return nil
}
