package ebpf

import (
	"reflect"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// TestMapLayouts checks every map's key and value in every object's BTF
// against the Go types the map layer uses: same size, and for structs the
// same member names (bpf2go's CamelCase) at the same offsets. It needs no
// privileges: it reads the embedded ELF objects.
func TestMapLayouts(t *testing.T) {
	goTypes := map[string][2]reflect.Type{
		MapServices:     {reflect.TypeFor[SvcKey](), reflect.TypeFor[SvcVal]()},
		MapSlots:        {reflect.TypeFor[SlotKey](), reflect.TypeFor[uint32]()},
		MapBackends:     {reflect.TypeFor[uint32](), reflect.TypeFor[Backend]()},
		MapConntrack:    {reflect.TypeFor[CTKey](), reflect.TypeFor[CTVal]()},
		MapAffinity:     {reflect.TypeFor[AffKey](), reflect.TypeFor[AffVal]()},
		MapSockets:      {reflect.TypeFor[SockKey](), reflect.TypeFor[SockVal]()},
		MapNetNS:        {reflect.TypeFor[uint64](), reflect.TypeFor[uint32]()},
		MapSvcCounters:  {reflect.TypeFor[uint32](), reflect.TypeFor[Counter]()},
		MapBackendCount: {reflect.TypeFor[uint32](), reflect.TypeFor[Counter]()},
		MapMaglev:       {reflect.TypeFor[uint32](), nil},
		MapDrops:        {reflect.TypeFor[uint32](), reflect.TypeFor[uint64]()},
	}
	for _, obj := range []struct {
		name string
		load func() (*ebpf.CollectionSpec, error)
	}{{"lxc", loadLxc}, {"xdp", loadXdp}, {"sock", loadSock}} {
		spec, err := obj.load()
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range goTypes {
			t.Run(obj.name+"/"+name, func(t *testing.T) {
				ms, ok := spec.Maps[name]
				if !ok {
					t.Fatalf("map %s missing", name)
				}
				checkLayout(t, "key", ms.Key, want[0])
				if want[1] != nil {
					checkLayout(t, "value", ms.Value, want[1])
				}
			})
		}
	}
}

func checkLayout(t *testing.T, what string, bt btf.Type, gt reflect.Type) {
	t.Helper()
	size, err := btf.Sizeof(bt)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if uintptr(size) != gt.Size() {
		t.Errorf("%s: BTF size %d, Go %s size %d", what, size, gt, gt.Size())
	}
	st, ok := btf.UnderlyingType(bt).(*btf.Struct)
	if !ok {
		return
	}
	for _, m := range st.Members {
		goName := camel(m.Name)
		f, ok := gt.FieldByName(goName)
		if !ok {
			t.Errorf("%s: member %s has no Go field %s in %s", what, m.Name, goName, gt)
			continue
		}
		if uint32(f.Offset*8) != uint32(m.Offset) {
			t.Errorf("%s: member %s at bit %d in BTF, Go field at byte %d", what, m.Name, m.Offset, f.Offset)
		}
	}
}

// camel is bpf2go's C-to-Go field naming: snake_case to CamelCase.
func camel(s string) string {
	parts := strings.Split(s, "_")
	for i, p := range parts {
		if p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "")
}
