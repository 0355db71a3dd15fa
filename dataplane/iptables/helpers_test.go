package iptables

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-project/skiff/dataplane"
)

const testNodeName = "test-node"

func ptr[T any](v T) *T { return &v }

// newFakeProvider returns a provider over a fake iptables and conntrack
// with kube-proxy's test setup: node "test-node", cluster CIDR 10.0.0.0/8.
func newFakeProvider(t *testing.T, nodeIPs ...netip.Addr) (*Provider, *fakeIPTables, *fakeConntrack) {
	t.Helper()
	ipt := newFakeIPTables()
	ct := &fakeConntrack{}
	p, err := New(Config{
		Node: dataplane.NodeConfig{
			Name:         testNodeName,
			NodeIPs:      nodeIPs,
			ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		},
		Logger:    slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Executor:  ipt,
		Conntrack: ct,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	// The fake's namespace is the test's own: pin the sysctl-dependent
	// rule to kube-proxy's default so expectations do not depend on the host.
	p.conntrackTCPLiberal = false
	return p, ipt, ct
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func makeService(ns, name string, mods ...func(*v1.Service)) *v1.Service {
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1.ServiceSpec{Type: v1.ServiceTypeClusterIP},
	}
	for _, m := range mods {
		m(s)
	}
	if len(s.Spec.ClusterIPs) == 0 && s.Spec.ClusterIP != "" {
		s.Spec.ClusterIPs = []string{s.Spec.ClusterIP}
	}
	return s
}

func makeSlice(ns, svc string, n int, mods ...func(*discoveryv1.EndpointSlice)) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: fmt.Sprintf("%s-%d", svc, n),
			Labels: map[string]string{discoveryv1.LabelServiceName: svc},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for _, m := range mods {
		m(s)
	}
	return s
}

func slicePort(name string, proto v1.Protocol, port int32) []discoveryv1.EndpointPort {
	return []discoveryv1.EndpointPort{{Name: ptr(name), Protocol: ptr(proto), Port: ptr(port)}}
}

// normalizeRestore sorts iptables-restore input so it does not depend on
// the order Services are visited in, keeping the order of rules within a
// chain and, in the top-level chains, within one Service (the approach of
// kube-proxy's sortIPTablesRules).
func normalizeRestore(data string) string {
	type table struct {
		name    string
		chains  []string
		rules   map[string][]string
		deletes []string
	}
	var tables []*table
	var cur *table
	for _, line := range strings.Split(data, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line == "COMMIT":
		case strings.HasPrefix(line, "*"):
			cur = &table{name: line, rules: map[string][]string{}}
			tables = append(tables, cur)
		case strings.HasPrefix(line, ":"):
			cur.chains = append(cur.chains, line)
		case strings.HasPrefix(line, "-A "):
			chain, _, _ := strings.Cut(line[3:], " ")
			cur.rules[chain] = append(cur.rules[chain], line)
		case strings.HasPrefix(line, "-X "):
			cur.deletes = append(cur.deletes, line)
		default:
			cur.chains = append(cur.chains, "?? "+line)
		}
	}
	sort.Slice(tables, func(i, j int) bool { return tables[i].name < tables[j].name })
	var b strings.Builder
	for _, t := range tables {
		b.WriteString(t.name + "\n")
		sort.Strings(t.chains)
		for _, c := range t.chains {
			b.WriteString(c + "\n")
		}
		var names []string
		for c := range t.rules {
			names = append(names, c)
		}
		sort.Strings(names)
		for _, c := range names {
			rules := t.rules[c]
			if c == kubeServicesChain || c == kubeNodePortsChain || c == kubeExternalServicesChain {
				slices.SortStableFunc(rules, func(a, b string) int {
					return strings.Compare(ruleServiceKey(a), ruleServiceKey(b))
				})
			}
			for _, r := range rules {
				b.WriteString(r + "\n")
			}
		}
		sort.Strings(t.deletes)
		for _, d := range t.deletes {
			b.WriteString(d + "\n")
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}

// ruleServiceKey is the Service a top-level rule belongs to (its comment's
// first word); the nodeports tail rule sorts last.
func ruleServiceKey(rule string) string {
	if strings.Contains(rule, "must be the last rule") {
		return "\xff"
	}
	_, after, ok := strings.Cut(rule, "--comment ")
	if !ok {
		return ""
	}
	word, _, _ := strings.Cut(strings.TrimPrefix(after, `"`), " ")
	return strings.TrimSuffix(word, `"`)
}

func dedent(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n") + "\n"
}

func assertRestore(t *testing.T, got, want string) {
	t.Helper()
	g, w := normalizeRestore(got), normalizeRestore(dedent(want))
	if g == w {
		return
	}
	gl, wl := strings.Split(g, "\n"), strings.Split(w, "\n")
	var diff []string
	for _, l := range wl {
		if !slices.Contains(gl, l) {
			diff = append(diff, "- "+l)
		}
	}
	for _, l := range gl {
		if !slices.Contains(wl, l) {
			diff = append(diff, "+ "+l)
		}
	}
	t.Errorf("iptables-restore input differs (- want, + got):\n%s\n\ngot (normalized):\n%s\nwant (normalized):\n%s",
		strings.Join(diff, "\n"), g, w)
}
