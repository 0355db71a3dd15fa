package ebpf

// idTable maps small dense ids (backend set and backend ids) to values: a
// slice, not a hash map, because a full sync of tens of thousands of
// Services spent much of its time growing and hashing maps.
type idTable[T any] struct {
	items []*T
	n     int
}

func (t *idTable[T]) get(id uint32) *T {
	if int(id) < len(t.items) {
		return t.items[id]
	}
	return nil
}

func (t *idTable[T]) set(id uint32, v *T) {
	if int(id) >= len(t.items) {
		n := max(2*len(t.items), int(id)+1, 64)
		items := make([]*T, n)
		copy(items, t.items)
		t.items = items
	}
	if t.items[id] == nil && v != nil {
		t.n++
	} else if t.items[id] != nil && v == nil {
		t.n--
	}
	t.items[id] = v
}

func (t *idTable[T]) del(id uint32) { t.set(id, nil) }

// reserve makes room for ids below n.
func (t *idTable[T]) reserve(n int) {
	if n > len(t.items) {
		items := make([]*T, n)
		copy(items, t.items)
		t.items = items
	}
}

func (t *idTable[T]) len() int { return t.n }

// each calls fn for every id with a value; fn may delete entries.
func (t *idTable[T]) each(fn func(uint32, *T)) {
	for id, v := range t.items {
		if v != nil {
			fn(uint32(id), v)
		}
	}
}
