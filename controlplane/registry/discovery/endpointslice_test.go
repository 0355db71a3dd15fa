package discovery

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func errSet(errs field.ErrorList) string {
	s := make([]string, 0, len(errs))
	for _, e := range errs {
		s = append(s, fmt.Sprintf("%s %s", e.Type, e.Field))
	}
	sort.Strings(s)
	return strings.Join(s, "; ")
}

func i32(v int32) *int32   { return &v }
func str(v string) *string { return &v }

func slice(mutate func(*discoveryv1.EndpointSlice)) *discoveryv1.EndpointSlice {
	eps := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-abc", Namespace: "default", ResourceVersion: "1", Labels: map[string]string{"kubernetes.io/service-name": "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Port: i32(80)}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.244.1.5"}, NodeName: str("node-1")}},
	}
	if mutate != nil {
		mutate(eps)
	}
	s := EndpointSliceStrategy{}
	s.Default(eps)
	s.PrepareForCreate(context.Background(), eps)
	return eps
}

func TestEndpointSliceDefaults(t *testing.T) {
	eps := slice(func(e *discoveryv1.EndpointSlice) {
		e.Endpoints[0].DeprecatedTopology = map[string]string{"a": "b"}
	})
	if *eps.Ports[0].Name != "" || *eps.Ports[0].Protocol != corev1.ProtocolTCP || eps.Generation != 1 || eps.Endpoints[0].DeprecatedTopology != nil {
		t.Errorf("got port %+v generation %d topology %v, want name \"\", TCP, generation 1, topology dropped", eps.Ports[0], eps.Generation, eps.Endpoints[0].DeprecatedTopology)
	}
}

func TestEndpointSliceValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*discoveryv1.EndpointSlice)
		want   string
	}{
		{"valid", nil, ""},
		{"address type", func(e *discoveryv1.EndpointSlice) { e.AddressType = "IPv5" }, "Unsupported value addressType"},
		{"no address type", func(e *discoveryv1.EndpointSlice) { e.AddressType = "" }, "Required value addressType"},
		{"no addresses", func(e *discoveryv1.EndpointSlice) { e.Endpoints[0].Addresses = nil }, "Required value endpoints[0].addresses"},
		{"ipv6 in ipv4 slice", func(e *discoveryv1.EndpointSlice) { e.Endpoints[0].Addresses = []string{"fd00::1"} }, "Invalid value endpoints[0].addresses"},
		{"loopback", func(e *discoveryv1.EndpointSlice) { e.Endpoints[0].Addresses = []string{"127.0.0.1"} }, "Invalid value endpoints[0].addresses[0]"},
		{"fqdn", func(e *discoveryv1.EndpointSlice) {
			e.AddressType = discoveryv1.AddressTypeFQDN
			e.Endpoints[0].Addresses = []string{"db.example.com"}
		}, ""},
		{"duplicate port names", func(e *discoveryv1.EndpointSlice) {
			e.Ports = []discoveryv1.EndpointPort{{Name: str("a"), Port: i32(1)}, {Name: str("a"), Port: i32(2)}}
		}, "Duplicate value ports[1].name"},
		{"port protocol", func(e *discoveryv1.EndpointSlice) {
			p := corev1.Protocol("ICMP")
			e.Ports[0].Protocol = &p
		}, "Unsupported value ports[0].protocol"},
		{"node name", func(e *discoveryv1.EndpointSlice) { e.Endpoints[0].NodeName = str("Node 1") }, "Invalid value endpoints[0].nodeName"},
		{"hints", func(e *discoveryv1.EndpointSlice) {
			e.Endpoints[0].Hints = &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: "a"}, {Name: "a"}}}
		}, "Duplicate value endpoints[0].hints.forZones[1].name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errSet(EndpointSliceStrategy{}.Validate(context.Background(), slice(tt.mutate))); got != tt.want {
				t.Errorf("got errors [%s], want [%s]", got, tt.want)
			}
		})
	}
}

func TestEndpointSliceUpdate(t *testing.T) {
	ctx := context.Background()
	s := EndpointSliceStrategy{}
	old := slice(nil)
	same := old.DeepCopy()
	s.PrepareForUpdate(ctx, same, old)
	if same.Generation != 1 {
		t.Errorf("got generation %d for an unchanged slice, want 1", same.Generation)
	}
	moved := old.DeepCopy()
	moved.Endpoints[0].Addresses = []string{"10.244.1.6"}
	moved.AddressType = discoveryv1.AddressTypeIPv6
	s.PrepareForUpdate(ctx, moved, old)
	if moved.Generation != 2 {
		t.Errorf("got generation %d after a change, want 2", moved.Generation)
	}
	if got := errSet(s.ValidateUpdate(ctx, moved, old)); got != "Invalid value addressType; Invalid value endpoints[0].addresses" {
		t.Errorf("got errors [%s], want addressType immutable and the address not IPv6", got)
	}
}

func TestEndpointSliceTable(t *testing.T) {
	eps := slice(func(e *discoveryv1.EndpointSlice) {
		e.Ports = append(e.Ports, discoveryv1.EndpointPort{Name: str("named")})
		for i := 0; i < 4; i++ {
			e.Endpoints = append(e.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.0.0.%d", i+1)}})
		}
	})
	tbl, err := EndpointSliceStrategy{}.ConvertToTable(context.Background(), eps, nil)
	if err != nil {
		t.Fatalf("got error %v", err)
	}
	want := []any{"web-abc", "IPv4", "80,named", "10.244.1.5,10.0.0.1,10.0.0.2 + 2 more...", "<unknown>"}
	if !reflect.DeepEqual(tbl.Rows[0].Cells, want) {
		t.Errorf("got %v, want %v", tbl.Rows[0].Cells, want)
	}
	empty, _ := EndpointSliceStrategy{}.ConvertToTable(context.Background(), &discoveryv1.EndpointSlice{}, nil)
	if empty.Rows[0].Cells[2] != "<unset>" || empty.Rows[0].Cells[3] != "<unset>" {
		t.Errorf("got %v for an empty slice, want <unset> ports and endpoints", empty.Rows[0].Cells)
	}
}
