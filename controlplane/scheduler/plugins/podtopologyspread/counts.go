package podtopologyspread

import (
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
)

// maxCountCaches bounds the constraint sets whose counts are kept.
const maxCountCaches = 8

// nodeContribution is what one node adds to one constraint's counts, and
// the node's value of the constraint's topology key, which Filter reads
// here rather than in the node's labels.
type nodeContribution struct {
	// value is the node's value of the topology key ("" without it),
	// interned: every node of a domain shares one string.
	value string
	// present is whether the node has the key at all.
	present  bool
	count    int
	eligible bool
}

// countCache keeps, for one set of constraints as seen by one kind of pod
// (namespace, node affinity and tolerations when the inclusion policies
// honour them), each node's contribution and the totals per domain. Pods
// with the same constraints, like the replicas of one Deployment, share it,
// and each cycle recomputes only the nodes whose generation moved.
type countCache struct {
	constraints []constraint
	requireAll  bool
	namespace   string
	affinity    nodeaffinity.RequiredNodeAffinity
	tolerations []v1.Toleration

	token   framework.ChangeToken
	nodes   []*framework.NodeInfo
	contrib []nodeContribution // len(nodes) * len(constraints)

	// pods[i] maps each eligible domain of constraint i to its matching
	// pods; domainNodes[i] to its eligible nodes. A domain is present
	// while it has an eligible node.
	pods        []map[string]int
	domainNodes []map[string]int
	lastUsed    uint64
	// values interns the domain values of contrib.
	values map[string]string
}

func (c *countCache) matchInclusionPolicies(con *constraint, node *v1.Node) bool {
	if con.NodeAffinityPolicy == v1.NodeInclusionPolicyHonor {
		if match, _ := c.affinity.Match(node); !match {
			return false
		}
	}
	if con.NodeTaintsPolicy == v1.NodeInclusionPolicyHonor {
		if _, untolerated := framework.FindMatchingUntoleratedTaint(node.Spec.Taints, c.tolerations, framework.DoNotScheduleTaint); untolerated {
			return false
		}
	}
	return true
}

// compute fills out (one entry per constraint) for a node. It may run
// for several nodes at once, so it leaves the values to intern.
func (c *countCache) compute(ni *framework.NodeInfo, out []nodeContribution) {
	node := ni.Node()
	if node == nil {
		for i := range out {
			out[i] = nodeContribution{}
		}
		return
	}
	match := !c.requireAll || nodeLabelsMatchConstraints(node.Labels, c.constraints)
	for i := range c.constraints {
		con := &c.constraints[i]
		// Without requireAll (system defaults) a node lacking the key
		// counts in the "" domain, as upstream.
		v, ok := node.Labels[con.TopologyKey]
		out[i] = nodeContribution{value: v, present: ok}
		if match && c.matchInclusionPolicies(con, node) {
			out[i].count = countPodsMatchSelector(ni.Pods, con.Selector, c.namespace)
			out[i].eligible = true
		}
	}
}

// intern makes the values of contrib share one string per domain.
func (c *countCache) intern(contrib []nodeContribution) {
	for i := range contrib {
		v := contrib[i].value
		if iv, ok := c.values[v]; ok {
			contrib[i].value = iv
		} else {
			c.values[v] = v
		}
	}
}

// nodeValue returns ni's value of the topology key of constraint i, and
// whether ni has the key, as of the last update, without reading ni's
// labels: Filter asks this of thousands of nodes per pod, and a label map
// lookup in each node's own memory is mostly cache misses. ok is false
// when the cache does not know ni (a node outside the snapshot it saw).
func (c *countCache) nodeValue(ni *framework.NodeInfo, i int) (value string, present, ok bool) {
	if c == nil {
		return "", false, false
	}
	idx := int(ni.Index)
	if idx < 0 || idx >= len(c.nodes) {
		return "", false, false
	}
	// A clone of the NodeInfo (preemption) shares its Node.
	if seen := c.nodes[idx]; seen != ni && (ni.Node() == nil || seen.Node() != ni.Node()) {
		return "", false, false
	}
	nc := &c.contrib[idx*len(c.constraints)+i]
	return nc.value, nc.present, true
}

func (c *countCache) apply(contrib []nodeContribution, sign int) {
	for i, nc := range contrib {
		if !nc.eligible {
			continue
		}
		c.domainNodes[i][nc.value] += sign
		c.pods[i][nc.value] += sign * nc.count
		if c.domainNodes[i][nc.value] <= 0 {
			delete(c.domainNodes[i], nc.value)
			delete(c.pods[i], nc.value)
		}
	}
}

// update brings the counts up to date with the lister's nodes, recomputing
// only the nodes that changed since the last update.
func (c *countCache) update(ctx context.Context, par framework.Parallelizer, lister framework.NodeInfoLister) {
	nodes := lister.List()
	changed, all, next := lister.Changes(c.token)
	c.token = next
	k := len(c.constraints)
	if all || len(nodes) != len(c.nodes) {
		c.nodes = nodes
		c.contrib = make([]nodeContribution, len(nodes)*k)
		c.pods = make([]map[string]int, k)
		c.domainNodes = make([]map[string]int, k)
		c.values = make(map[string]string)
		for i := range c.pods {
			c.pods[i] = make(map[string]int)
			c.domainNodes[i] = make(map[string]int)
		}
		compute := func(i int) { c.compute(nodes[i], c.contrib[i*k:(i+1)*k]) }
		if par != nil && len(nodes) > 64 {
			par.Until(ctx, len(nodes), compute)
		} else {
			for i := range nodes {
				compute(i)
			}
		}
		c.intern(c.contrib)
		for i := range nodes {
			c.apply(c.contrib[i*k:(i+1)*k], 1)
		}
		return
	}
	for _, i := range changed {
		contrib := c.contrib[int(i)*k : (int(i)+1)*k]
		c.apply(contrib, -1)
		c.compute(nodes[i], contrib)
		c.intern(contrib)
		c.apply(contrib, 1)
	}
}

// countCaches is a small LRU of countCache by signature.
type countCaches struct {
	mu      sync.Mutex
	max     int
	tick    uint64
	entries map[string]*countCache
}

func newCountCaches(max int) *countCaches {
	return &countCaches{max: max, entries: make(map[string]*countCache)}
}

// counts returns the per-domain counts of constraints for pod over the
// lister's nodes: for each constraint, eligible domain -> matching pods.
// The maps belong to the cache and are valid until the next call; callers
// must not change them.
func (cs *countCaches) counts(ctx context.Context, par framework.Parallelizer, pod *v1.Pod, constraints []constraint, requireAll bool, lister framework.NodeInfoLister) []map[string]int {
	return cs.cache(ctx, par, pod, constraints, requireAll, lister).pods
}

// cache returns the countCache of constraints for pod, brought up to date
// with the lister's nodes. It is valid until the next call.
func (cs *countCaches) cache(ctx context.Context, par framework.Parallelizer, pod *v1.Pod, constraints []constraint, requireAll bool, lister framework.NodeInfoLister) *countCache {
	key := signature(pod, constraints, requireAll)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.tick++
	c, ok := cs.entries[key]
	if !ok {
		if len(cs.entries) >= cs.max {
			var oldestKey string
			var oldest uint64
			for k, e := range cs.entries {
				if oldestKey == "" || e.lastUsed < oldest {
					oldestKey, oldest = k, e.lastUsed
				}
			}
			delete(cs.entries, oldestKey)
		}
		c = &countCache{
			constraints: constraints,
			requireAll:  requireAll,
			namespace:   pod.Namespace,
			affinity:    nodeaffinity.GetRequiredNodeAffinity(pod),
			tolerations: pod.Spec.Tolerations,
		}
		cs.entries[key] = c
	}
	c.lastUsed = cs.tick
	c.update(ctx, par, lister)
	return c
}

// signature identifies everything that decides a node's contribution:
// the pod's namespace, each constraint, and the pod's node affinity and
// tolerations when an inclusion policy honours them.
func signature(pod *v1.Pod, constraints []constraint, requireAll bool) string {
	var b strings.Builder
	b.WriteString(pod.Namespace)
	b.WriteByte(0)
	b.WriteString(strconv.FormatBool(requireAll))
	honorAffinity, honorTaints := false, false
	for _, c := range constraints {
		b.WriteByte(0)
		b.WriteString(c.TopologyKey)
		b.WriteByte(0)
		b.WriteString(c.Selector.String())
		b.WriteByte(0)
		b.WriteString(string(c.NodeAffinityPolicy))
		b.WriteByte(0)
		b.WriteString(string(c.NodeTaintsPolicy))
		honorAffinity = honorAffinity || c.NodeAffinityPolicy == v1.NodeInclusionPolicyHonor
		honorTaints = honorTaints || c.NodeTaintsPolicy == v1.NodeInclusionPolicyHonor
	}
	if honorAffinity {
		b.WriteString("\x00sel")
		keys := make([]string, 0, len(pod.Spec.NodeSelector))
		for k := range pod.Spec.NodeSelector {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			b.WriteByte(0)
			b.WriteString(k)
			b.WriteByte('=')
			b.WriteString(pod.Spec.NodeSelector[k])
		}
		if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
			j, _ := json.Marshal(a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution)
			b.WriteString("\x00aff")
			b.Write(j)
		}
	}
	if honorTaints && len(pod.Spec.Tolerations) > 0 {
		j, _ := json.Marshal(pod.Spec.Tolerations)
		b.WriteString("\x00tol")
		b.Write(j)
	}
	return b.String()
}
