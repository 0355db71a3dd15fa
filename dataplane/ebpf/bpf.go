package ebpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// loadOptions configure one node's BPF objects.
type loadOptions struct {
	PinPath    string // directory the maps are pinned in
	Sizes      MapSizes
	NodeIP     netip.Addr // SNAT source for NodePort traffic to remote backends
	MaglevSize uint32
	SNATMin    uint16
	SNATMax    uint16
}

// objects are the loaded programs of the four BPF objects and the shared
// pinned maps.
type objects struct {
	colls  []*ebpf.Collection
	progs  map[string]*ebpf.Program
	maps   map[string]*ebpf.Map
	inner  *ebpf.MapSpec // Maglev inner map template
	pinDir string
	// iterErr says why the socket clean-up iterator (optional: it needs
	// bpf_sock_destroy, Linux 6.5) did not load.
	iterErr error
}

// Program names (the C function names).
const (
	progFromPod     = "skiff_from_pod"
	progToPod       = "skiff_to_pod"
	progXDP         = "skiff_xdp"
	progUplink      = "skiff_uplink"
	progConnect4    = "skiff_connect4"
	progSendmsg4    = "skiff_sendmsg4"
	progRecvmsg4    = "skiff_recvmsg4"
	progGetpeername = "skiff_getpeername4"
	progUDPGC       = "skiff_udp_gc"
)

func (o loadOptions) maxEntries(name string) (uint32, bool) {
	s := o.Sizes.withDefaults()
	m := map[string]int{
		MapServices:     s.Services,
		MapSlots:        s.Slots,
		MapBackends:     s.Backends,
		MapBackendCount: s.Backends,
		MapConntrack:    s.Conntrack,
		MapAffinity:     s.Affinity,
		MapSockets:      s.Sockets,
		MapNetNS:        s.NetNS,
		MapSvcCounters:  s.Sets,
		MapMaglev:       s.Sets,
	}
	v, ok := m[name]
	return uint32(v), ok
}

// loadObjects loads the lxc, xdp, host and sock objects with their maps
// pinned in o.PinPath: the first load creates and pins the maps, later
// loads (and restarted agents) reuse them. A pinned map whose layout or
// size differs fails the load (ebpf.ErrMapIncompatible).
func loadObjects(o loadOptions) (*objects, error) {
	if err := os.MkdirAll(o.PinPath, 0o700); err != nil {
		return nil, fmt.Errorf("create pin directory: %w", err)
	}
	if o.MaglevSize == 0 {
		o.MaglevSize = DefaultMaglevSize
	}
	if o.SNATMin == 0 || o.SNATMax < o.SNATMin {
		o.SNATMin, o.SNATMax = 40000, 60999
	}
	objs := &objects{progs: map[string]*ebpf.Program{}, maps: map[string]*ebpf.Map{}, pinDir: o.PinPath}
	loaders := []struct {
		name     string
		load     func() (*ebpf.CollectionSpec, error)
		optional bool
	}{
		{"lxc", loadLxc, false}, {"xdp", loadXdp, false}, {"host", loadHost, false}, {"sock", loadSock, false},
		{"iter", loadIter, true},
	}
	for _, l := range loaders {
		spec, err := l.load()
		if err != nil {
			objs.close()
			return nil, fmt.Errorf("load %s spec: %w", l.name, err)
		}
		for name, ms := range spec.Maps {
			if n, ok := o.maxEntries(name); ok {
				ms.MaxEntries = n
			}
			if name == MapMaglev && ms.InnerMap != nil {
				ms.InnerMap.MaxEntries = o.MaglevSize
				objs.inner = ms.InnerMap.Copy()
			}
		}
		vars := map[string]any{
			"cfg_snat_min": uint32(o.SNATMin),
			"cfg_snat_max": uint32(o.SNATMax),
		}
		if o.NodeIP.Is4() {
			vars["cfg_node_ip"] = be32(o.NodeIP)
		}
		for name, v := range vars {
			if vs, ok := spec.Variables[name]; ok {
				if err := vs.Set(v); err != nil {
					objs.close()
					return nil, fmt.Errorf("set %s in %s: %w", name, l.name, err)
				}
			}
		}
		coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
			Maps: ebpf.MapOptions{PinPath: o.PinPath},
		})
		if err != nil && l.optional {
			objs.iterErr = fmt.Errorf("load %s objects: %w", l.name, err)
			continue
		}
		if err != nil {
			objs.close()
			return nil, fmt.Errorf("load %s objects: %w", l.name, err)
		}
		objs.colls = append(objs.colls, coll)
		for n, p := range coll.Programs {
			objs.progs[n] = p
		}
		for n, m := range coll.Maps {
			if _, ok := objs.maps[n]; !ok {
				objs.maps[n] = m
			}
		}
	}
	if err := migrateConntrackV1(o.PinPath, objs.maps[MapConntrack]); err != nil {
		objs.close()
		return nil, err
	}
	return objs, nil
}

// mapConntrackV1 is the pin name of the conntrack map before TCP state
// and lifetimes (its value had created_ns where v2 has last_ns, and
// padding where v2 has seen).
const mapConntrackV1 = "skf_ct_v1"

// migrateConntrackV1 copies the entries of a v1 conntrack map that an
// agent of the previous version left pinned into ct, so that an upgrade
// keeps the node's translated flows (TC and XDP would balance their next
// packets afresh otherwise), and removes the v1 pin. The old entries are
// taken for established flows seen now: the GC then treats them as any
// other. Flows the old programs record between this copy and the link
// updates that follow are not carried over.
func migrateConntrackV1(pinDir string, ct *ebpf.Map) error {
	path := filepath.Join(pinDir, mapConntrackV1)
	old, err := ebpf.LoadPinnedMap(path, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", mapConntrackV1, err)
	}
	defer old.Close()
	if ct == nil {
		return fmt.Errorf("migrate %s: %s missing from objects", mapConntrackV1, MapConntrack)
	}
	if old.KeySize() != uint32(unsafe.Sizeof(CTKey{})) || old.ValueSize() != uint32(unsafe.Sizeof(CTVal{})) {
		return fmt.Errorf("migrate %s: key/value sizes %d/%d, want %d/%d", mapConntrackV1, old.KeySize(), old.ValueSize(),
			unsafe.Sizeof(CTKey{}), unsafe.Sizeof(CTVal{}))
	}
	now, err := monotonicNow()
	if err != nil {
		return err
	}
	var keys []CTKey
	var vals []CTVal
	if err := forEach(old, func(k CTKey, v CTVal) {
		// Same offsets up to flags; v1's padding byte is v2's seen and
		// its created_ns v2's last_ns.
		v.Seen, v.Pad, v.LastNs = 0, 0, now
		if k.Proto == protoTCP {
			v.Seen = CTSeenSYN | CTSeenEst
		}
		keys = append(keys, k)
		vals = append(vals, v)
	}); err != nil {
		return fmt.Errorf("read %s: %w", mapConntrackV1, err)
	}
	if len(keys) > 0 {
		if _, err := ct.BatchUpdate(keys, vals, nil); err != nil {
			return fmt.Errorf("migrate %s: %w", mapConntrackV1, wrapUpdate(MapConntrack, err))
		}
	}
	if err := old.Unpin(); err != nil {
		return fmt.Errorf("unpin %s: %w", mapConntrackV1, err)
	}
	return nil
}

func (o *objects) close() {
	for _, c := range o.colls {
		c.Close()
	}
}

// DefaultMaglevSize is the Maglev table size M when none is configured: a
// prime that gives up to 163 backends more than 100 slots each.
const DefaultMaglevSize = 16381

// Bpf is Maps on the pinned BPF maps.
type Bpf struct {
	svc, slot, be, ct, aff, netns, svccnt, becnt, maglev, drops *ebpf.Map
	inner                                                       *ebpf.MapSpec
	ncpu                                                        int

	// udpGC is the socket clean-up iterator and sockGC its pairs (nil
	// when the kernel cannot destroy sockets); nodeNetNS is the namespace
	// whose sockets it walks.
	udpGC     *link.Iter
	sockGC    *ebpf.Map
	nodeNetNS string

	// tables are the Maglev tables this process installed, so that a
	// change rewrites only the entries that moved.
	tables map[uint32]*installedTable
}

type installedTable struct {
	m   *ebpf.Map
	mem []byte // the inner map's memory mapping
	// entries is mem as 32-bit words: entry i of the table is
	// entries[i*arrayStride] (the kernel rounds array elements up to 8
	// bytes; the value is the element's first 4 bytes).
	entries []uint32
}

// arrayStride is the distance in 32-bit words between the elements of a
// BPF array map with 4-byte values (elements are 8-byte aligned).
const arrayStride = 2

var _ Maps = (*Bpf)(nil)

func newBpfMaps(o *objects) (*Bpf, error) {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("possible cpus: %w", err)
	}
	b := &Bpf{inner: o.inner, ncpu: ncpu, tables: map[uint32]*installedTable{}}
	for name, dst := range map[string]**ebpf.Map{
		MapServices: &b.svc, MapSlots: &b.slot, MapBackends: &b.be, MapConntrack: &b.ct,
		MapAffinity: &b.aff, MapNetNS: &b.netns, MapSvcCounters: &b.svccnt,
		MapBackendCount: &b.becnt, MapMaglev: &b.maglev, MapDrops: &b.drops,
	} {
		m, ok := o.maps[name]
		if !ok {
			return nil, fmt.Errorf("map %s missing from objects", name)
		}
		*dst = m
	}
	if prog := o.progs[progUDPGC]; prog != nil {
		it, err := link.AttachIter(link.IterOptions{Program: prog})
		if err != nil {
			o.iterErr = fmt.Errorf("attach %s: %w", progUDPGC, err)
		} else {
			b.udpGC, b.sockGC = it, o.maps[MapSocketGC]
		}
	}
	return b, nil
}

// DestroySockets destroys the node's connected UDP sockets that the socket
// hooks translated to one of the ended pairs ((backend set, backend)) or to
// one of the removed backends; their owners see ECONNABORTED and connect
// again. It returns how many went; without kernel support it does nothing.
func (b *Bpf) DestroySockets(pairs [][2]uint32, backends []uint32) (int, error) {
	if b.udpGC == nil || len(pairs)+len(backends) == 0 {
		return 0, nil
	}
	keys := make([]SockGCKey, 0, len(pairs)+len(backends))
	for _, p := range pairs {
		keys = append(keys, SockGCKey{SetId: p[0], BackendId: p[1]})
	}
	for _, id := range backends {
		keys = append(keys, SockGCKey{BackendId: id})
	}
	vals := make([]uint8, len(keys))
	if _, err := b.sockGC.BatchUpdate(keys, vals, nil); err != nil {
		return 0, wrapUpdate(MapSocketGC, err)
	}
	defer func() { _, _ = b.sockGC.BatchDelete(keys, nil) }()
	var n int64
	// The iterator walks the sockets of the namespace it is opened in.
	err := inNetNS(b.nodeNetNS, func() error {
		rd, err := b.udpGC.Open()
		if err != nil {
			return err
		}
		defer rd.Close()
		n, err = io.Copy(io.Discard, rd)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("destroy stale UDP sockets: %w", err)
	}
	return int(n), nil
}

func wrapUpdate(name string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.E2BIG) || errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.ENOMEM) {
		return mapFull(name, err)
	}
	return fmt.Errorf("%s: %w", name, err)
}

func (b *Bpf) UpdateServices(keys []SvcKey, vals []SvcVal) error {
	_, err := b.svc.BatchUpdate(keys, vals, nil)
	return wrapUpdate(MapServices, err)
}

// batchDelete deletes keys, tolerating keys that are already gone (a batch
// delete stops at the first missing key; the rest go one by one).
func batchDelete[K any](m *ebpf.Map, name string, keys []K) error {
	n, err := m.BatchDelete(keys, nil)
	if err == nil {
		return nil
	}
	if !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("%s: %w", name, err)
	}
	for _, k := range keys[n:] {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func (b *Bpf) DeleteServices(keys []SvcKey) error { return batchDelete(b.svc, MapServices, keys) }

func (b *Bpf) UpdateSlots(keys []SlotKey, vals []uint32) error {
	_, err := b.slot.BatchUpdate(keys, vals, nil)
	return wrapUpdate(MapSlots, err)
}

func (b *Bpf) DeleteSlots(keys []SlotKey) error { return batchDelete(b.slot, MapSlots, keys) }

func (b *Bpf) UpdateBackends(ids []uint32, vals []Backend) error {
	_, err := b.be.BatchUpdate(ids, vals, nil)
	return wrapUpdate(MapBackends, err)
}

func (b *Bpf) SetMaglev(id uint32, table []uint32) error {
	if b.inner == nil {
		return fmt.Errorf("%s: no inner map spec", MapMaglev)
	}
	// A table this process installed: Maglev moves few entries when a
	// backend comes or goes, so rewrite only those, in place through the
	// inner map's memory mapping. Each entry is one aligned 32-bit store,
	// which a program reading it sees whole; every backend named during
	// the change is valid, so any mix of old and new entries is a valid
	// table.
	if cur := b.tables[id]; cur != nil && len(cur.entries) == len(table)*arrayStride {
		for i, v := range table {
			if e := &cur.entries[i*arrayStride]; *e != v {
				atomic.StoreUint32(e, v)
			}
		}
		return nil
	}
	// Otherwise (a new set, or its table changes size) a new inner map,
	// filled, then swapped in atomically. Until the frontends carry the
	// new size, lookups with the old one still find valid backends or
	// fall back to hashed slots.
	spec := b.inner.Copy()
	spec.MaxEntries = uint32(len(table))
	t, err := newInstalledTable(spec)
	if err != nil {
		return err
	}
	for i, v := range table { // not visible to any program yet
		t.entries[i*arrayStride] = v
	}
	if err := b.maglev.Put(id, t.m); err != nil {
		t.close()
		return wrapUpdate(MapMaglev, err)
	}
	if old := b.tables[id]; old != nil {
		old.close()
	}
	b.tables[id] = t
	return nil
}

// newInstalledTable creates an inner Maglev map and maps its memory.
func newInstalledTable(spec *ebpf.MapSpec) (*installedTable, error) {
	m, err := ebpf.NewMap(spec)
	if err != nil {
		return nil, wrapUpdate(MapMaglev+" inner", err)
	}
	page := os.Getpagesize()
	n := int(spec.MaxEntries) * arrayStride
	size := (n*4 + page - 1) / page * page
	mem, err := unix.Mmap(m.FD(), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("%s inner: mmap: %w", MapMaglev, err)
	}
	entries := unsafe.Slice((*uint32)(unsafe.Pointer(&mem[0])), n)
	return &installedTable{m: m, mem: mem, entries: entries}, nil
}

func (t *installedTable) close() {
	t.entries = nil
	unix.Munmap(t.mem)
	t.m.Close()
}

// close releases the handles of installed Maglev tables (the outer map
// keeps the tables themselves).
func (b *Bpf) close() {
	for id, t := range b.tables {
		t.close()
		delete(b.tables, id)
	}
	if b.udpGC != nil {
		b.udpGC.Close()
		b.udpGC = nil
	}
}

func (b *Bpf) DeleteMaglev(ids []uint32) error {
	for _, id := range ids {
		if t := b.tables[id]; t != nil {
			t.close()
			delete(b.tables, id)
		}
		if err := b.maglev.Delete(id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("%s: %w", MapMaglev, err)
		}
	}
	return nil
}

func (b *Bpf) ResetCounters(setIDs, backendIDs []uint32) error {
	for _, r := range []struct {
		m    *ebpf.Map
		name string
		ids  []uint32
	}{{b.svccnt, MapSvcCounters, setIDs}, {b.becnt, MapBackendCount, backendIDs}} {
		if len(r.ids) == 0 {
			continue
		}
		// Per-CPU batch: one zero value per CPU per key.
		zero := make([]Counter, len(r.ids)*b.ncpu)
		if _, err := r.m.BatchUpdate(r.ids, zero, nil); err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
	}
	return nil
}

const batchChunk = 4096

// forEach visits every entry of a hash map in batches.
func forEach[K, V any](m *ebpf.Map, fn func(K, V)) error {
	keys := make([]K, batchChunk)
	vals := make([]V, batchChunk)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		for i := 0; i < n; i++ {
			fn(keys[i], vals[i])
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (b *Bpf) DeleteConntrack(match func(CTKey, CTVal) bool) (int, error) {
	var del []CTKey
	if err := forEach(b.ct, func(k CTKey, v CTVal) {
		if match(k, v) {
			del = append(del, k)
		}
	}); err != nil {
		return 0, fmt.Errorf("%s: %w", MapConntrack, err)
	}
	if len(del) > 0 {
		if err := batchDelete(b.ct, MapConntrack, del); err != nil {
			return 0, err
		}
	}
	var adel []AffKey
	if err := forEach(b.aff, func(k AffKey, v AffVal) {
		if match(CTKey{}, CTVal{BackendId: v.BackendId, SvcId: k.Id}) {
			adel = append(adel, k)
		}
	}); err != nil {
		return 0, fmt.Errorf("%s: %w", MapAffinity, err)
	}
	if len(adel) > 0 {
		if err := batchDelete(b.aff, MapAffinity, adel); err != nil {
			return 0, err
		}
	}
	return len(del), nil
}

// ExpireConntrack scans the conntrack map for expired pairs and lone
// halves (ctExpired) and deletes them. An entry the datapath touched
// between the scan and the delete (a packet, or a SYN that replaced the
// pair) is read again just before and spared.
func (b *Bpf) ExpireConntrack(now uint64) (int, error) {
	old := map[CTKey]CTVal{}
	if err := forEach(b.ct, func(k CTKey, v CTVal) {
		if ctIdle(v, now, CTCloseTimeout) {
			old[k] = v
		}
	}); err != nil {
		return 0, fmt.Errorf("%s: %w", MapConntrack, err)
	}
	if len(old) == 0 {
		return 0, nil
	}
	lookup := func(k CTKey) (CTVal, bool, error) {
		var v CTVal
		err := b.ct.Lookup(k, &v)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return v, false, nil
		}
		if err != nil {
			return v, false, fmt.Errorf("%s: %w", MapConntrack, err)
		}
		return v, true, nil
	}
	doomed, err := ctExpired(old, lookup, now)
	if err != nil {
		return 0, err
	}
	var del []CTKey
	for _, d := range doomed {
		same := true
		for i := 0; i < d.n; i++ {
			cur, ok, err := lookup(d.keys[i])
			if err != nil {
				return 0, err
			}
			if ok && cur != d.vals[i] {
				same = false
			}
		}
		if same {
			del = append(del, d.keys[:d.n]...)
		}
	}
	if len(del) == 0 {
		return 0, nil
	}
	if err := batchDelete(b.ct, MapConntrack, del); err != nil {
		return 0, err
	}
	return len(del), nil
}

func (b *Bpf) Snapshot() (*Snapshot, error) {
	s := &Snapshot{
		Services: map[SvcKey]SvcVal{},
		Slots:    map[SlotKey]uint32{},
		Backends: map[uint32]Backend{},
		Maglev:   map[uint32]bool{},
	}
	if err := forEach(b.svc, func(k SvcKey, v SvcVal) { s.Services[k] = v }); err != nil {
		return nil, fmt.Errorf("%s: %w", MapServices, err)
	}
	if err := forEach(b.slot, func(k SlotKey, v uint32) { s.Slots[k] = v }); err != nil {
		return nil, fmt.Errorf("%s: %w", MapSlots, err)
	}
	if err := b.readBackends(s.Backends); err != nil {
		return nil, fmt.Errorf("%s: %w", MapBackends, err)
	}
	// Walking the whole outer array of Maglev tables takes a syscall
	// pair per slot (~1 s at 65536); the tables in use are the ones
	// external frontends point at. A table left by a set that vanished
	// while nobody was watching stays unreferenced until its id is
	// reused.
	for _, v := range s.Services {
		if v.Flags&SvcFlagMaglev == 0 || s.Maglev[v.Id] {
			continue
		}
		var inner uint32
		if err := b.maglev.Lookup(v.Id, &inner); err == nil {
			s.Maglev[v.Id] = true
		} else if !errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil, fmt.Errorf("%s: %w", MapMaglev, err)
		}
	}
	return s, nil
}

func (b *Bpf) SetCounters(ids []uint32) (map[uint32]Counter, error) {
	return b.counters(b.svccnt, MapSvcCounters, ids)
}

func (b *Bpf) BackendCounters(ids []uint32) (map[uint32]Counter, error) {
	return b.counters(b.becnt, MapBackendCount, ids)
}

func (b *Bpf) counters(m *ebpf.Map, name string, ids []uint32) (map[uint32]Counter, error) {
	out := make(map[uint32]Counter, len(ids))
	per := make([]Counter, b.ncpu)
	for _, id := range ids {
		if err := m.Lookup(id, &per); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		var sum Counter
		for _, c := range per {
			sum.Packets += c.Packets
			sum.Bytes += c.Bytes
			sum.Sock += c.Sock
		}
		out[id] = sum
	}
	return out, nil
}

func (b *Bpf) Drops() ([len(DropReasons)]uint64, error) {
	var out [len(DropReasons)]uint64
	per := make([]uint64, b.ncpu)
	for i := 1; i < len(out); i++ {
		if err := b.drops.Lookup(uint32(i), &per); err != nil {
			return out, fmt.Errorf("%s: %w", MapDrops, err)
		}
		for _, n := range per {
			out[i] += n
		}
	}
	return out, nil
}

func (b *Bpf) ConntrackEntries() (int, error) {
	n := 0
	err := forEach(b.ct, func(CTKey, CTVal) { n++ })
	if err != nil {
		return 0, fmt.Errorf("%s: %w", MapConntrack, err)
	}
	return n, nil
}

func (b *Bpf) AddNetNS(cookie uint64, owner uint32) error {
	return wrapUpdate(MapNetNS, b.netns.Put(cookie, owner))
}

func (b *Bpf) DeleteNetNS(cookie uint64) error {
	if err := b.netns.Delete(cookie); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("%s: %w", MapNetNS, err)
	}
	return nil
}

// pinDirFor is the default per-node pin directory.
func pinDirFor(node string) string {
	return filepath.Join("/sys/fs/bpf/skiff", node)
}

// readBackends copies the non-zero entries of the backend array through
// its memory mapping (a copy per 64 KiB instead of a syscall per batch,
// into one small buffer: the array is 2 MiB at the default size).
func (b *Bpf) readBackends(out map[uint32]Backend) error {
	mem, err := b.be.Memory()
	if err != nil {
		return err
	}
	const stride = 8 // struct lb_backend, rounded up to 8 bytes
	buf := make([]byte, 64<<10)
	size := int64(mem.Size())
	for off := int64(0); off < size; off += int64(len(buf)) {
		chunk := buf[:min(int64(len(buf)), size-off)]
		if _, err := mem.ReadAt(chunk, off); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		for i := 0; i+stride <= len(chunk); i += stride {
			id := uint32((off + int64(i)) / stride)
			if id == 0 {
				continue
			}
			e := chunk[i : i+stride]
			v := Backend{
				Addr:  binary.NativeEndian.Uint32(e[0:4]),
				Port:  binary.NativeEndian.Uint16(e[4:6]),
				Proto: e[6],
				Flags: e[7],
			}
			if v != (Backend{}) {
				out[id] = v
			}
		}
	}
	return nil
}
