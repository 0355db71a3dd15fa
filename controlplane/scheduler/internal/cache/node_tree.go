package cache

import (
	v1 "k8s.io/api/core/v1"
)

// zoneKey groups nodes by region and zone, as upstream's GetZoneKey: nodes
// without either label share the empty key.
func zoneKey(node *v1.Node) string {
	l := node.Labels
	if l == nil {
		return ""
	}
	region, zone := l[v1.LabelTopologyRegion], l[v1.LabelTopologyZone]
	if region == "" {
		region = l[v1.LabelFailureDomainBetaRegion]
	}
	if zone == "" {
		zone = l[v1.LabelFailureDomainBetaZone]
	}
	if region == "" && zone == "" {
		return ""
	}
	return region + ":\x00:" + zone
}

// nodeTree keeps node names per zone so that the snapshot lists nodes
// interleaved across zones: when the scheduler evaluates only a share of the
// nodes, that share is spread over the zones.
type nodeTree struct {
	tree     map[string][]string
	zones    []string
	numNodes int
	// zoneOf is each node's zone key.
	zoneOf map[string]string
}

func newNodeTree() *nodeTree {
	return &nodeTree{tree: make(map[string][]string), zoneOf: make(map[string]string)}
}

func (t *nodeTree) addNode(n *v1.Node) {
	if _, ok := t.zoneOf[n.Name]; ok {
		return
	}
	zone := zoneKey(n)
	names, ok := t.tree[zone]
	if !ok {
		t.zones = append(t.zones, zone)
	}
	t.tree[zone] = append(names, n.Name)
	t.zoneOf[n.Name] = zone
	t.numNodes++
}

func (t *nodeTree) removeNode(n *v1.Node) bool {
	zone, ok := t.zoneOf[n.Name]
	if !ok {
		return false
	}
	names, ok := t.tree[zone]
	if !ok {
		return false
	}
	for i, name := range names {
		if name != n.Name {
			continue
		}
		names = append(names[:i], names[i+1:]...)
		if len(names) == 0 {
			delete(t.tree, zone)
			for j, z := range t.zones {
				if z == zone {
					t.zones = append(t.zones[:j], t.zones[j+1:]...)
					break
				}
			}
		} else {
			t.tree[zone] = names
		}
		delete(t.zoneOf, n.Name)
		t.numNodes--
		return true
	}
	return false
}

// updateNode adds a node or moves it when its zone changed.
func (t *nodeTree) updateNode(n *v1.Node) {
	if zone, ok := t.zoneOf[n.Name]; ok {
		if zone == zoneKey(n) {
			return
		}
		t.removeNode(n)
	}
	t.addNode(n)
}

// list returns the node names, taking one node from each zone in turn.
func (t *nodeTree) list() []string {
	out := make([]string, 0, t.numNodes)
	for i := 0; len(out) < t.numNodes; i++ {
		for _, z := range t.zones {
			if names := t.tree[z]; i < len(names) {
				out = append(out, names[i])
			}
		}
	}
	return out
}
