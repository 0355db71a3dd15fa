package ebpf

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/dataplane"
	"github.com/skiff-project/skiff/dataplane/maglev"
)

// reconciler turns dataplane.Updates into map operations. It keeps a
// mirror of what it programmed (frontends, set slots, Maglev inputs,
// backends with reference counts) and, per ServicePort, what that port
// owns, so a sync touches only the entries of the ports that changed. After
// a restart, or after a failed sync, the mirror is rebuilt from the maps
// (Snapshot) and the next sync is a full diff against it: entries that are
// right stay untouched, stale ones go, and conntrack is only flushed for
// backends that are gone.
type reconciler struct {
	maps       Maps
	node       dataplane.NodeConfig
	maglevSize uint64
	log        *slog.Logger

	ports     map[dataplane.ServicePortName]*portState
	frontends map[SvcKey]SvcVal
	sets      idTable[setState]
	backends  map[beKey]*beState
	byID      idTable[beState]
	setIDs    *idAlloc
	beIDs     *idAlloc

	// needFull is set at start and after an error: the next sync reads
	// the maps back and diffs every ServicePort.
	needFull bool

	// maglev and maglevNames are reused by every table build; the
	// buffers below by every planPort.
	maglev      maglev.Builder
	maglevNames []string
	clusterBuf  []uint32
	localBuf    []uint32
	frontendBuf []frontend
	beChunk     []beState

	// claimable maps frontends found in the maps to their set ids, during
	// the full diff after adopt: a ServicePort takes over the sets its
	// frontends point at, so their slots and conntrack stay as they are.
	claimable map[SvcKey]uint32
	claimed   map[uint32]bool

	// deferGC leaves the conntrack flush of deleted backends to collect
	// (the provider runs it right after the sync, off the sync's clock):
	// the datapath already ignores entries of a deleted backend, and its
	// id is not reused before its entries are gone.
	deferGC   bool
	gcPending []uint32
}

// portState is what one ServicePort owns.
type portState struct {
	cluster   uint32 // set ids; 0 when absent
	local     uint32
	frontends []SvcKey
	endpoints []beKey // every endpoint in the slices, any state; ascending
}

// hasEndpoint reports whether k is one of the port's endpoints.
func (ps *portState) hasEndpoint(k beKey) bool {
	if len(ps.endpoints) <= 16 {
		return slices.Contains(ps.endpoints, k)
	}
	_, ok := slices.BinarySearch(ps.endpoints, k)
	return ok
}

type setState struct {
	slots       []uint32 // backend ids by slot
	maglev      []uint32 // slots the installed Maglev table was built from
	maglevSize  uint32   // entries of the installed Maglev table
	hasMaglev   bool
	maglevStale bool // a table exists but its input is unknown (restart)
}

// beKey identifies a backend: its IPv4 address, port and protocol packed
// into 64 bits (address in the high half), a cheap map key without
// pointers.
type beKey uint64

func newBEKey(addr netip.Addr, port uint16, proto uint8) beKey {
	a := addr.As4()
	return beKey(uint64(binary.BigEndian.Uint32(a[:]))<<32 | uint64(port)<<16 | uint64(proto))
}

func (k beKey) addr() netip.Addr {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], uint32(k>>32))
	return netip.AddrFrom4(a)
}

func (k beKey) port() uint16 { return uint16(k >> 16) }
func (k beKey) proto() uint8 { return uint8(k) }

func (k beKey) String() string {
	return netip.AddrPortFrom(k.addr(), k.port()).String() + "/" + strconv.Itoa(int(k.proto()))
}

type beState struct {
	id   uint32
	key  beKey
	val  Backend
	refs int
	name string // maglevName, once needed
}

func newReconciler(m Maps, node dataplane.NodeConfig, sizes MapSizes, maglevSize uint64, log *slog.Logger) *reconciler {
	sizes = sizes.withDefaults()
	return &reconciler{
		maps:       m,
		node:       node,
		maglevSize: maglevSize,
		log:        log,
		ports:      map[dataplane.ServicePortName]*portState{},
		frontends:  map[SvcKey]SvcVal{},
		backends:   map[beKey]*beState{},
		setIDs:     newIDAlloc("backend set ids ("+MapSvcCounters+")", sizes.Sets),
		beIDs:      newIDAlloc("backend ids ("+MapBackends+")", sizes.Backends),
		needFull:   true,
	}
}

// plan collects the operations of one sync in the order they are applied.
type plan struct {
	beUpd     []uint32
	beUpdVals []Backend
	slotKeys  []SlotKey
	slotVals  []uint32
	maglev    map[uint32][]uint32
	svcKeys   []SvcKey
	svcVals   []SvcVal
	svcDel    []SvcKey
	dropSlots []SlotKey // slots of sets that go away with their frontends
	dropMgl   []uint32
	slotDel   []SlotKey // slots past a set's new count
	maglevDel []uint32
	beDel     []uint32
	// flush: conntrack of (set, backend) pairs, and of whole backends.
	flushPair map[[2]uint32]bool
	flushBE   map[uint32]bool
	freeSets  []uint32
}

func (p *plan) ops() int {
	return len(p.beUpd) + len(p.slotKeys) + len(p.maglev) + len(p.svcKeys) + len(p.svcDel) +
		len(p.dropSlots) + len(p.dropMgl) + len(p.slotDel) + len(p.maglevDel) + len(p.beDel)
}

// sync applies u. When full (or when the reconciler needs a full pass)
// every ServicePort is diffed; otherwise only u.Changed.
func (r *reconciler) sync(u dataplane.Update, full bool) (int, error) {
	if r.needFull {
		if err := r.adopt(); err != nil {
			return 0, err
		}
		full = true
	}
	p := &plan{maglev: map[uint32][]uint32{}, flushPair: map[[2]uint32]bool{}, flushBE: map[uint32]bool{}}
	names := make([]dataplane.ServicePortName, 0, len(u.Changed))
	if full {
		r.presize(len(u.Services))
		p.svcKeys = make([]SvcKey, 0, len(u.Services))
		p.svcVals = make([]SvcVal, 0, len(u.Services))
		p.slotKeys = make([]SlotKey, 0, 3*len(u.Services))
		p.slotVals = make([]uint32, 0, 3*len(u.Services))
		p.beUpd = make([]uint32, 0, 3*len(u.Services))
		p.beUpdVals = make([]Backend, 0, 3*len(u.Services))
		for n := range u.Services {
			names = append(names, n)
		}
		for n := range r.ports {
			if _, ok := u.Services[n]; !ok {
				names = append(names, n)
			}
		}
	} else {
		for n := range u.Changed {
			names = append(names, n)
		}
	}
	slices.SortFunc(names, func(a, b dataplane.ServicePortName) int { return compareNames(a, b) })
	var err error
	for _, n := range names {
		if err = r.planPort(p, n, u.Services[n], u.Endpoints[n]); err != nil {
			break
		}
	}
	if err == nil && full {
		r.planGarbage(p)
		r.claimable, r.claimed = nil, nil
	}
	if err == nil {
		err = r.apply(p)
	}
	if err != nil {
		// The mirror may no longer match the maps: read them back and
		// diff everything next time.
		r.needFull = true
		return p.ops(), err
	}
	return p.ops(), nil
}

// presize grows the mirror's maps ahead of a large full sync (growing
// them entry by entry dominated a 30,000-Service sync).
func (r *reconciler) presize(n int) {
	if n <= len(r.ports) {
		return
	}
	if len(r.ports) == 0 {
		r.ports = make(map[dataplane.ServicePortName]*portState, n)
	}
	if len(r.backends) == 0 {
		r.backends = make(map[beKey]*beState, 3*n)
	}
	if len(r.frontends) == 0 {
		r.frontends = make(map[SvcKey]SvcVal, n)
	}
	// Ids are dense and handed out from 1.
	r.sets.reserve(min(n+1, int(r.setIDs.max)))
	r.byID.reserve(min(3*n+1, int(r.beIDs.max)))
}

func compareNames(a, b dataplane.ServicePortName) int {
	if c := compareStr(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	if c := compareStr(a.Name, b.Name); c != 0 {
		return c
	}
	if c := compareStr(a.Port, b.Port); c != 0 {
		return c
	}
	return compareStr(string(a.Protocol), string(b.Protocol))
}

func compareStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func protoNum(p v1.Protocol) (uint8, bool) {
	switch p {
	case v1.ProtocolTCP:
		return protoTCP, true
	case v1.ProtocolUDP:
		return protoUDP, true
	}
	return 0, false
}

// planPort plans the changes for one ServicePort (sp nil: deleted).
func (r *reconciler) planPort(p *plan, name dataplane.ServicePortName, sp *dataplane.ServicePort, eps []dataplane.Endpoint) error {
	old := r.ports[name]
	var proto uint8
	ok := false
	if sp != nil {
		proto, ok = protoNum(sp.Protocol)
	}
	if sp == nil || !ok {
		if old != nil {
			r.dropPort(p, name, old)
		}
		return nil
	}
	if old == nil {
		old = r.claim(sp, proto)
	}
	eps = canonical(eps)
	// Keys ascend as the endpoints do (address, then port; one protocol).
	next := &portState{endpoints: make([]beKey, 0, len(eps))}

	// Endpoints: every endpoint of the slices is a backend (established
	// flows to terminating ones keep working); only the selected ones get
	// slots. The list is sorted and de-duplicated by the tracker, so the
	// backends come out distinct and the slot lists need no lookups.
	sel := dataplane.NewSelection(eps)
	clusterIDs, localIDs := r.clusterBuf[:0], r.localBuf[:0]
	for _, ep := range eps {
		k := newBEKey(ep.IP, ep.Port, proto)
		next.endpoints = append(next.endpoints, k)
		be, err := r.refBackend(p, k, ep.IP, ep.Local, !old.hasEndpoint(k))
		if err != nil {
			return err
		}
		if sel.Cluster(ep) {
			clusterIDs = append(clusterIDs, be.id)
		}
		if sel.Local(ep) {
			localIDs = append(localIDs, be.id)
		}
	}
	r.clusterBuf, r.localBuf = clusterIDs, localIDs
	hasExternal := sp.NodePort != 0 || len(sp.ExternalIPs) > 0 || len(sp.LoadBalancerIPs) > 0
	needLocal := sp.InternalPolicyLocal || (sp.ExternalPolicyLocal && hasExternal)

	var err error
	next.cluster, err = r.planSet(p, old.cluster, clusterIDs, hasExternal && !sp.ExternalPolicyLocal)
	if err != nil {
		return err
	}
	if needLocal {
		next.local, err = r.planSet(p, old.local, localIDs, hasExternal && sp.ExternalPolicyLocal)
		if err != nil {
			return err
		}
	} else if old.local != 0 {
		r.dropSet(p, old.local)
	}
	// The ports of this ServicePort (ids, slots) are planned; now the
	// frontends pointing at them.
	want := r.frontendsFor(sp, proto, next, len(clusterIDs) > 0)
	next.frontends = make([]SvcKey, 0, len(want))
	for _, f := range want {
		next.frontends = append(next.frontends, f.key)
		if cur, ok := r.frontends[f.key]; ok && cur == f.val {
			continue
		}
		p.svcKeys = append(p.svcKeys, f.key)
		p.svcVals = append(p.svcVals, f.val)
	}
	for _, k := range old.frontends {
		if !slices.Contains(next.frontends, k) {
			p.svcDel = append(p.svcDel, k)
		}
	}

	// Endpoints gone from the slices: their flows end.
	for _, k := range old.endpoints {
		if next.hasEndpoint(k) {
			continue
		}
		be := r.backends[k]
		if be == nil {
			continue
		}
		for _, id := range []uint32{old.cluster, old.local, next.cluster, next.local} {
			if id != 0 {
				p.flushPair[[2]uint32{id, be.id}] = true
			}
		}
		r.unrefBackend(p, k)
	}
	r.ports[name] = next
	return nil
}

// canonical returns eps as dataplane.Update promises them: IPv4 only and
// strictly ordered by CompareEndpoints, so distinct. A list that breaks
// the promise is filtered, sorted and de-duplicated into a copy (the first
// copy of an endpoint kept) rather than counted twice.
func canonical(eps []dataplane.Endpoint) []dataplane.Endpoint {
	ok := true
	for i, ep := range eps {
		if !ep.IP.Is4() || (i > 0 && dataplane.CompareEndpoints(eps[i-1], ep) >= 0) {
			ok = false
			break
		}
	}
	if ok {
		return eps
	}
	out := make([]dataplane.Endpoint, 0, len(eps))
	for _, ep := range eps {
		if ep.IP.Is4() {
			out = append(out, ep)
		}
	}
	slices.SortStableFunc(out, dataplane.CompareEndpoints)
	return slices.CompactFunc(out, func(a, b dataplane.Endpoint) bool { return dataplane.CompareEndpoints(a, b) == 0 })
}

type frontend struct {
	key SvcKey
	val SvcVal
}

// frontendsFor lists the frontend entries of sp, in a buffer that the
// next call reuses.
func (r *reconciler) frontendsFor(sp *dataplane.ServicePort, proto uint8, ps *portState, hasEndpoints bool) []frontend {
	out := r.frontendBuf[:0]
	defer func() { r.frontendBuf = out[:0] }()
	flags := uint16(0)
	if sp.AffinityTimeoutSeconds > 0 {
		flags |= SvcFlagAffinity
	}
	mk := func(addr netip.Addr, port uint16, scope uint8, set uint32, extra uint16) {
		if !addr.Is4() || port == 0 || set == 0 {
			return
		}
		st := r.sets.get(set)
		f := flags | extra
		if len(st.slots) == 0 && hasEndpoints {
			f |= SvcFlagDrop
		}
		var msize uint32
		if scope == ScopeExternal && st.hasMaglev {
			f |= SvcFlagMaglev
			msize = st.maglevSize
		}
		out = append(out, frontend{
			key: SvcKey{Addr: be32(addr), Port: be16(port), Proto: proto, Scope: scope},
			val: SvcVal{Id: set, Count: uint16(len(st.slots)), Flags: f, AffinityTimeout: sp.AffinityTimeoutSeconds, MaglevSize: msize},
		})
	}
	internal := ps.cluster
	if sp.InternalPolicyLocal {
		internal = ps.local
	}
	for _, a := range sp.ClusterIPs {
		mk(a, sp.Port, ScopeInternal, internal, 0)
	}
	external := ps.cluster
	extFlags := uint16(SvcFlagExternal)
	if sp.ExternalPolicyLocal {
		external = ps.local
		extFlags |= SvcFlagLocal
	}
	ext := func(a netip.Addr, port uint16) {
		mk(a, port, ScopeInternal, ps.cluster, SvcFlagExternal)
		mk(a, port, ScopeExternal, external, extFlags)
	}
	if sp.NodePort != 0 {
		for _, a := range r.node.NodeIPs {
			ext(a, sp.NodePort)
		}
	}
	for _, a := range sp.ExternalIPs {
		ext(a, sp.Port)
	}
	for _, a := range sp.LoadBalancerIPs {
		ext(a, sp.Port)
	}
	// A ClusterIP that is also listed as an external address would give
	// two entries for one key: keep the first.
	uniq := out[:0]
	for _, f := range out {
		if !slices.ContainsFunc(uniq, func(u frontend) bool { return u.key == f.key }) {
			uniq = append(uniq, f)
		}
	}
	return uniq
}

// planSet plans one backend set: allocates its id if new, diffs its slots
// (backend ids in slot order; ids is the caller's buffer) and, for sets
// used by XDP, its Maglev table.
func (r *reconciler) planSet(p *plan, id uint32, ids []uint32, wantMaglev bool) (uint32, error) {
	st := r.sets.get(id)
	if id == 0 || st == nil {
		var err error
		id, err = r.setIDs.alloc()
		if err != nil {
			return 0, err
		}
		st = &setState{}
		r.sets.set(id, st)
	}
	for i, b := range ids {
		if i < len(st.slots) && st.slots[i] == b {
			continue
		}
		p.slotKeys = append(p.slotKeys, SlotKey{Id: id, Slot: uint32(i)})
		p.slotVals = append(p.slotVals, b)
	}
	for i := len(ids); i < len(st.slots); i++ {
		p.slotDel = append(p.slotDel, SlotKey{Id: id, Slot: uint32(i)})
	}
	if !slices.Equal(st.slots, ids) {
		st.slots = slices.Clone(ids)
	}
	slots := st.slots

	wantMaglev = wantMaglev && len(slots) > 0
	switch {
	case wantMaglev && (!st.hasMaglev || st.maglevStale || !slices.Equal(st.maglev, slots)):
		table, err := r.maglevTable(slots)
		if err != nil {
			return 0, err
		}
		p.maglev[id] = table
		st.hasMaglev, st.maglevStale, st.maglevSize = true, false, uint32(len(table))
		st.maglev = slots // st.slots is replaced, never modified
	case !wantMaglev && st.hasMaglev:
		p.maglevDel = append(p.maglevDel, id)
		st.hasMaglev, st.maglevStale, st.maglev, st.maglevSize = false, false, nil, 0
	}
	return id, nil
}

// maglevTable builds the table for a set: slot i holds a backend id. The
// Maglev input names backends by address, so every node builds the same
// table for the same endpoints whatever ids it gave them.
func (r *reconciler) maglevTable(slots []uint32) ([]uint32, error) {
	names := r.maglevNames[:0]
	for _, id := range slots {
		names = append(names, r.byID.get(id).maglevName())
	}
	r.maglevNames = names[:0]
	table := make([]uint32, r.maglevSizeFor(len(slots)))
	if _, err := r.maglev.Fill(table, names, slots, nil); err != nil {
		return nil, fmt.Errorf("maglev table: %w", err)
	}
	return table, nil
}

// maxMaglevSize bounds a set's Maglev table: 1,048,573 entries, 8 MiB of
// inner map (array elements take 8 bytes), room for 10,485 backends at
// more than 100 slots each.
const maxMaglevSize = 1048573

// maglevSizeFor returns the Maglev table size M for a set of n backends:
// the configured size, or the smallest of maglev.Sizes above 100 times n
// when that is larger, so that every backend gets more than 100 slots
// (its share within 1% of the ideal) however large the Service. Sizes
// grow in steps of about 2x, so a set changes size (a new table; others
// are patched in place) only when its backend count doubles or halves
// across a step. Every node picks the same size for the same backends.
func (r *reconciler) maglevSizeFor(n int) uint64 {
	m := maglev.SizeFor(n)
	if m <= r.maglevSize {
		return r.maglevSize
	}
	if m > maxMaglevSize {
		r.log.Warn("maglev table at its largest size; backends get fewer than 100 slots each", "backends", n, "table", maxMaglevSize)
		return maxMaglevSize
	}
	return m
}

// maglevName is the backend's Maglev id, "addr:port/proto", built once.
func (b *beState) maglevName() string {
	if b.name == "" {
		b.name = b.key.String()
	}
	return b.name
}

// backendKey is the key of a backend as the maps hold it.
func backendKey(v Backend) beKey {
	return newBEKey(addrFromBE32(v.Addr), portFromBE16(v.Port), v.Proto)
}

// refBackend makes sure a backend exists (allocating its id) and, for an
// endpoint new to its ServicePort, counts the reference.
func (r *reconciler) refBackend(p *plan, k beKey, addr netip.Addr, local, newRef bool) (*beState, error) {
	val := Backend{Addr: be32(addr), Port: be16(k.port()), Proto: k.proto()}
	if local {
		val.Flags = BackendFlagLocal
	}
	be := r.backends[k]
	if be == nil {
		id, err := r.beIDs.alloc()
		if err != nil {
			return nil, err
		}
		be = r.newBEState()
		be.id, be.key = id, k
		r.backends[k] = be
		r.byID.set(id, be)
	}
	if be.val != val {
		be.val = val
		p.beUpd = append(p.beUpd, be.id)
		p.beUpdVals = append(p.beUpdVals, val)
	}
	if newRef {
		be.refs++
	}
	return be, nil
}

// newBEState hands out backend records from chunks, one allocation per
// chunk rather than per backend (a full sync of 30,000 Services creates
// 90,000). A chunk lives while any of its records is in use.
func (r *reconciler) newBEState() *beState {
	if len(r.beChunk) == 0 {
		r.beChunk = make([]beState, beChunkSize)
	}
	be := &r.beChunk[0]
	r.beChunk = r.beChunk[1:]
	return be
}

const beChunkSize = 256

func (r *reconciler) unrefBackend(p *plan, k beKey) {
	be := r.backends[k]
	if be == nil {
		return
	}
	be.refs--
	if be.refs > 0 {
		return
	}
	p.beDel = append(p.beDel, be.id)
	p.flushBE[be.id] = true
	delete(r.backends, k)
	r.byID.del(be.id)
}

func (r *reconciler) dropSet(p *plan, id uint32) {
	st := r.sets.get(id)
	if st == nil {
		return
	}
	for i := range st.slots {
		p.dropSlots = append(p.dropSlots, SlotKey{Id: id, Slot: uint32(i)})
	}
	if st.hasMaglev {
		p.dropMgl = append(p.dropMgl, id)
	}
	r.sets.del(id)
	p.freeSets = append(p.freeSets, id)
}

func (r *reconciler) dropPort(p *plan, name dataplane.ServicePortName, ps *portState) {
	p.svcDel = append(p.svcDel, ps.frontends...)
	for _, id := range []uint32{ps.cluster, ps.local} {
		if id != 0 {
			r.dropSet(p, id)
		}
	}
	for _, k := range ps.endpoints {
		if be := r.backends[k]; be != nil {
			for _, id := range []uint32{ps.cluster, ps.local} {
				if id != 0 {
					p.flushPair[[2]uint32{id, be.id}] = true
				}
			}
		}
		r.unrefBackend(p, k)
	}
	delete(r.ports, name)
}

// planGarbage removes what the maps hold and no ServicePort owns (after a
// full diff: state of Services deleted while the agent was down, or left
// by a failed sync).
func (r *reconciler) planGarbage(p *plan) {
	ownedSets := make([]bool, len(r.sets.items))
	for _, ps := range r.ports {
		for _, id := range []uint32{ps.cluster, ps.local} {
			if int(id) < len(ownedSets) {
				ownedSets[id] = true
			}
		}
	}
	// Frontends in the maps (none on a first sync into fresh maps) that
	// no port owns.
	if len(r.frontends) > 0 {
		owned := make(map[SvcKey]bool, len(r.frontends))
		for _, ps := range r.ports {
			for _, k := range ps.frontends {
				owned[k] = true
			}
		}
		for _, k := range p.svcDel {
			owned[k] = true // already going
		}
		for k := range r.frontends {
			if !owned[k] {
				p.svcDel = append(p.svcDel, k)
			}
		}
	}
	r.sets.each(func(id uint32, _ *setState) {
		if int(id) >= len(ownedSets) || !ownedSets[id] {
			r.dropSet(p, id)
		}
	})
	for k, be := range r.backends {
		if be.refs <= 0 {
			be.refs = 1
			r.unrefBackend(p, k)
		}
	}
}

// adopt rebuilds the mirror from the maps.
func (r *reconciler) adopt() error {
	snap, err := r.maps.Snapshot()
	if err != nil {
		return fmt.Errorf("read maps: %w", err)
	}
	r.frontends = snap.Services
	r.sets = idTable[setState]{}
	r.backends = map[beKey]*beState{}
	r.byID = idTable[beState]{}
	r.ports = map[dataplane.ServicePortName]*portState{}
	r.setIDs = newIDAlloc(r.setIDs.name, int(r.setIDs.max))
	r.beIDs = newIDAlloc(r.beIDs.name, int(r.beIDs.max))

	// Sets: from frontends, slots and Maglev tables.
	slotsByID := map[uint32]map[uint32]uint32{}
	for k, b := range snap.Slots {
		if slotsByID[k.Id] == nil {
			slotsByID[k.Id] = map[uint32]uint32{}
		}
		slotsByID[k.Id][k.Slot] = b
	}
	ensure := func(id uint32) {
		if id == 0 || r.sets.get(id) != nil {
			return
		}
		if err := r.setIDs.claim(id); err != nil {
			return
		}
		st := &setState{}
		for i, b := range slotsByID[id] {
			for int(i) >= len(st.slots) {
				st.slots = append(st.slots, 0)
			}
			st.slots[i] = b
		}
		if snap.Maglev[id] {
			st.hasMaglev, st.maglevStale = true, true
		}
		r.sets.set(id, st)
	}
	for _, v := range snap.Services {
		ensure(v.Id)
	}
	for id := range slotsByID {
		ensure(id)
	}
	for id := range snap.Maglev {
		ensure(id)
	}
	for id, b := range snap.Backends {
		if err := r.beIDs.claim(id); err != nil {
			continue
		}
		k := backendKey(b)
		be := &beState{id: id, key: k, val: b}
		if r.backends[k] != nil {
			// Duplicate: drop this copy later through a full diff.
			continue
		}
		r.backends[k] = be
		r.byID.set(id, be)
	}
	// Ports claim sets through their frontends during the diff.
	r.claimable = map[SvcKey]uint32{}
	r.claimed = map[uint32]bool{}
	for k, v := range snap.Services {
		r.claimable[k] = v.Id
	}
	r.needFull = false
	return nil
}

// claim finds, after adopt, the sets that sp's frontends already point at.
func (r *reconciler) claim(sp *dataplane.ServicePort, proto uint8) *portState {
	ps := &portState{}
	if r.claimable == nil {
		return ps
	}
	take := func(dst *uint32, addr netip.Addr, port uint16, scope uint8) {
		if *dst != 0 || !addr.Is4() {
			return
		}
		id, ok := r.claimable[SvcKey{Addr: be32(addr), Port: be16(port), Proto: proto, Scope: scope}]
		if !ok || r.claimed[id] || r.sets.get(id) == nil {
			return
		}
		r.claimed[id] = true
		*dst = id
	}
	internal := &ps.cluster
	if sp.InternalPolicyLocal {
		internal = &ps.local
	}
	external := &ps.cluster
	if sp.ExternalPolicyLocal {
		external = &ps.local
	}
	for _, a := range sp.ClusterIPs {
		take(internal, a, sp.Port, ScopeInternal)
	}
	ext := func(a netip.Addr, port uint16) {
		take(&ps.cluster, a, port, ScopeInternal)
		take(external, a, port, ScopeExternal)
	}
	if sp.NodePort != 0 {
		for _, a := range r.node.NodeIPs {
			ext(a, sp.NodePort)
		}
	}
	for _, a := range sp.ExternalIPs {
		ext(a, sp.Port)
	}
	for _, a := range sp.LoadBalancerIPs {
		ext(a, sp.Port)
	}
	return ps
}

// apply runs a plan against the maps in an order that keeps the datapath
// consistent at every step and frees room before using it: frontends that
// go away first (with the slots and tables of their sets), then backends
// before the slots that name them, slots and Maglev tables before the
// frontends that count them, a set's surplus slots after its frontends
// count fewer, backends removed last, then conntrack.
func (r *reconciler) apply(p *plan) error {
	if len(p.svcDel) > 0 {
		if err := r.maps.DeleteServices(p.svcDel); err != nil {
			return fmt.Errorf("delete services: %w", err)
		}
		for _, k := range p.svcDel {
			delete(r.frontends, k)
		}
	}
	if len(p.dropSlots) > 0 {
		if err := r.maps.DeleteSlots(p.dropSlots); err != nil {
			return fmt.Errorf("delete slots: %w", err)
		}
	}
	if len(p.dropMgl) > 0 {
		if err := r.maps.DeleteMaglev(p.dropMgl); err != nil {
			return fmt.Errorf("delete maglev tables: %w", err)
		}
	}
	if len(p.beUpd) > 0 {
		if err := r.maps.UpdateBackends(p.beUpd, p.beUpdVals); err != nil {
			return fmt.Errorf("update backends: %w", err)
		}
	}
	if len(p.slotKeys) > 0 {
		if err := r.maps.UpdateSlots(p.slotKeys, p.slotVals); err != nil {
			return fmt.Errorf("update slots: %w", err)
		}
	}
	for id, table := range p.maglev {
		if err := r.maps.SetMaglev(id, table); err != nil {
			return fmt.Errorf("set maglev table of set %d: %w", id, err)
		}
	}
	if len(p.svcKeys) > 0 {
		if err := r.maps.UpdateServices(p.svcKeys, p.svcVals); err != nil {
			return fmt.Errorf("update services: %w", err)
		}
		for i, k := range p.svcKeys {
			r.frontends[k] = p.svcVals[i]
		}
	}
	if len(p.slotDel) > 0 {
		if err := r.maps.DeleteSlots(p.slotDel); err != nil {
			return fmt.Errorf("delete slots: %w", err)
		}
	}
	if len(p.maglevDel) > 0 {
		if err := r.maps.DeleteMaglev(p.maglevDel); err != nil {
			return fmt.Errorf("delete maglev tables: %w", err)
		}
	}
	if len(p.beDel) > 0 {
		if err := r.maps.UpdateBackends(p.beDel, make([]Backend, len(p.beDel))); err != nil {
			return fmt.Errorf("delete backends: %w", err)
		}
	}
	// Flows of a backend that stays (it left some Services only) must end
	// now; flows of a deleted backend are already dead to the datapath
	// and may be collected later.
	urgent := false
	for pair := range p.flushPair {
		if !p.flushBE[pair[1]] {
			urgent = true
			break
		}
	}
	release := p.beDel
	if urgent || !r.deferGC {
		// Connected UDP sockets of the node, translated once at
		// connect(), would keep an ended backend: destroy them before
		// any id is freed. (Deferred, collect does it for deleted
		// backends, whose ids it holds until then.)
		pairs := make([][2]uint32, 0, len(p.flushPair))
		for pair := range p.flushPair {
			if !p.flushBE[pair[1]] {
				pairs = append(pairs, pair)
			}
		}
		if err := r.destroySockets(pairs, p.beDel); err != nil {
			return err
		}
		if err := r.flush(func(v CTVal) bool {
			return p.flushBE[v.BackendId] || p.flushPair[[2]uint32{v.SvcId, v.BackendId}]
		}); err != nil {
			return err
		}
	} else {
		r.gcPending = append(r.gcPending, p.beDel...)
		release = nil
	}
	// Counters are zeroed when an id is freed, so a fresh or reused id
	// always starts from zero (a fresh map is all zeroes).
	if len(p.freeSets) > 0 || len(release) > 0 {
		if err := r.maps.ResetCounters(p.freeSets, release); err != nil {
			return fmt.Errorf("reset counters: %w", err)
		}
	}
	for _, id := range p.freeSets {
		r.setIDs.release(id)
	}
	for _, id := range release {
		r.beIDs.release(id)
	}
	return nil
}

// portSets returns the set ids of a ServicePort (for counters).
func (r *reconciler) portSets() map[dataplane.ServicePortName][]uint32 {
	out := make(map[dataplane.ServicePortName][]uint32, len(r.ports))
	for n, ps := range r.ports {
		for _, id := range []uint32{ps.cluster, ps.local} {
			if id != 0 {
				out[n] = append(out[n], id)
			}
		}
	}
	return out
}

// destroySockets destroys the node's connected UDP sockets that still name
// an ended pair or a removed backend.
func (r *reconciler) destroySockets(pairs [][2]uint32, backends []uint32) error {
	if len(pairs)+len(backends) == 0 {
		return nil
	}
	n, err := r.maps.DestroySockets(pairs, backends)
	if err != nil {
		return err
	}
	if n > 0 {
		r.log.Debug("destroyed UDP sockets connected to removed backends", "sockets", n)
	}
	return nil
}

func (r *reconciler) flush(match func(CTVal) bool) error {
	n, err := r.maps.DeleteConntrack(func(_ CTKey, v CTVal) bool { return match(v) })
	if err != nil {
		return fmt.Errorf("flush conntrack of removed backends: %w", err)
	}
	if n > 0 {
		r.log.Debug("flushed conntrack of removed backends", "entries", n)
	}
	return nil
}

// collect flushes the conntrack and affinity entries of deleted backends
// whose flush was deferred, then frees their ids. It reports whether
// anything was pending.
func (r *reconciler) collect() (bool, error) {
	if len(r.gcPending) == 0 {
		return false, nil
	}
	ids := r.gcPending
	gone := make(map[uint32]bool, len(ids))
	for _, id := range ids {
		gone[id] = true
	}
	if err := r.destroySockets(nil, ids); err != nil {
		return true, err
	}
	if err := r.flush(func(v CTVal) bool { return gone[v.BackendId] }); err != nil {
		return true, err
	}
	if err := r.maps.ResetCounters(nil, ids); err != nil {
		return true, fmt.Errorf("reset counters: %w", err)
	}
	r.gcPending = nil
	for _, id := range ids {
		// A backend re-added meanwhile got a new id; these are free.
		if r.byID.get(id) == nil {
			r.beIDs.release(id)
		}
	}
	return true, nil
}
