package ebpf

import "fmt"

// idAlloc hands out ids in [1, max): the most recently released id first,
// then fresh ones. Ids are stable for as long as their owner exists.
type idAlloc struct {
	name  string
	max   uint32
	next  uint32
	free  []uint32 // released ids, used LIFO
	used  []uint64 // bitmap
	count int
}

func newIDAlloc(name string, max int) *idAlloc {
	return &idAlloc{name: name, max: uint32(max), next: 1, used: make([]uint64, (max+63)/64)}
}

func (a *idAlloc) isUsed(id uint32) bool {
	return id < a.max && a.used[id/64]&(1<<(id%64)) != 0
}

func (a *idAlloc) mark(id uint32, on bool) {
	if on == a.isUsed(id) {
		return
	}
	if on {
		a.used[id/64] |= 1 << (id % 64)
		a.count++
	} else {
		a.used[id/64] &^= 1 << (id % 64)
		a.count--
	}
}

func (a *idAlloc) alloc() (uint32, error) {
	for len(a.free) > 0 {
		id := a.free[len(a.free)-1]
		a.free = a.free[:len(a.free)-1]
		if !a.isUsed(id) {
			a.mark(id, true)
			return id, nil
		}
	}
	for a.next < a.max {
		id := a.next
		a.next++
		if !a.isUsed(id) {
			a.mark(id, true)
			return id, nil
		}
	}
	return 0, mapFull(a.name, fmt.Errorf("all %d ids in use", a.max-1))
}

// claim marks an id found in the maps as used (restart reconciliation).
func (a *idAlloc) claim(id uint32) error {
	if id == 0 || id >= a.max {
		return fmt.Errorf("%s: id %d out of range", a.name, id)
	}
	a.mark(id, true)
	return nil
}

func (a *idAlloc) release(id uint32) {
	if !a.isUsed(id) {
		return
	}
	a.mark(id, false)
	if id == a.next-1 {
		a.next--
		return
	}
	a.free = append(a.free, id)
}

func (a *idAlloc) inUse() int { return a.count }
