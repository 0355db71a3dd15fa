package ebpf

import "fmt"

// idAlloc hands out ids in [1, max): the lowest released id first, then
// fresh ones. Ids are stable for as long as their owner exists.
type idAlloc struct {
	name string
	max  uint32
	next uint32
	free []uint32 // released ids, used LIFO
	used map[uint32]bool
}

func newIDAlloc(name string, max int) *idAlloc {
	return &idAlloc{name: name, max: uint32(max), next: 1, used: map[uint32]bool{}}
}

func (a *idAlloc) alloc() (uint32, error) {
	for len(a.free) > 0 {
		id := a.free[len(a.free)-1]
		a.free = a.free[:len(a.free)-1]
		if !a.used[id] {
			a.used[id] = true
			return id, nil
		}
	}
	for a.next < a.max {
		id := a.next
		a.next++
		if !a.used[id] {
			a.used[id] = true
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
	a.used[id] = true
	return nil
}

func (a *idAlloc) release(id uint32) {
	if !a.used[id] {
		return
	}
	delete(a.used, id)
	if id == a.next-1 {
		a.next--
		return
	}
	a.free = append(a.free, id)
}

func (a *idAlloc) inUse() int { return len(a.used) }
