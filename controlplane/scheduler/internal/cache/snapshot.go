package cache

import (
	"fmt"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/controlplane/scheduler/framework"
)

// Snapshot is the scheduling cycle's view of the cluster: a copy of the
// cache's NodeInfos that nobody changes while the cycle runs. The cache
// updates it in place between cycles, copying only the NodeInfos whose
// generation moved, so a cycle costs in proportion to what changed rather
// than to the cluster's size.
type Snapshot struct {
	nodeInfoMap  map[string]*framework.NodeInfo
	nodeInfoList []*framework.NodeInfo

	havePodsWithAffinity             []*framework.NodeInfo
	havePodsWithRequiredAntiAffinity []*framework.NodeInfo
	havePodsWithScoringAffinity      []*framework.NodeInfo
	havePodsWithNonHostnameAnti      []*framework.NodeInfo

	generation  int64
	listVersion uint64
	// changeLog holds the List indexes of the NodeInfos changed in place
	// since the list was last rebuilt; changeBase is the sequence number
	// of its first entry.
	changeLog  []int32
	changeBase uint64
}

// maxChangeLog bounds the change log; plugins further behind recompute.
const maxChangeLog = 1 << 16

var (
	_ framework.SharedLister   = (*Snapshot)(nil)
	_ framework.NodeInfoLister = (*Snapshot)(nil)
)

// NewEmptySnapshot returns a snapshot with no nodes.
func NewEmptySnapshot() *Snapshot {
	return &Snapshot{nodeInfoMap: make(map[string]*framework.NodeInfo)}
}

// NewSnapshot builds a snapshot from pods and nodes, for tests and
// simulations. Pods on nodes not listed are ignored.
func NewSnapshot(pods []*v1.Pod, nodes []*v1.Node) *Snapshot {
	s := NewEmptySnapshot()
	for _, n := range nodes {
		ni := framework.NewNodeInfo()
		ni.SetNode(n)
		ni.Index = int32(len(s.nodeInfoList))
		s.nodeInfoMap[n.Name] = ni
		s.nodeInfoList = append(s.nodeInfoList, ni)
	}
	for _, p := range pods {
		if ni, ok := s.nodeInfoMap[p.Spec.NodeName]; ok {
			ni.AddPodInfo(framework.NewPodInfo(p))
		}
	}
	s.rebuildAffinityLists()
	s.listVersion = 1
	return s
}

// NodeInfos implements framework.SharedLister.
func (s *Snapshot) NodeInfos() framework.NodeInfoLister { return s }

// List returns the NodeInfos, interleaved by zone.
func (s *Snapshot) List() []*framework.NodeInfo { return s.nodeInfoList }

// HavePodsWithAffinityList implements framework.NodeInfoLister.
func (s *Snapshot) HavePodsWithAffinityList() []*framework.NodeInfo { return s.havePodsWithAffinity }

// HavePodsWithRequiredAntiAffinityList implements framework.NodeInfoLister.
func (s *Snapshot) HavePodsWithRequiredAntiAffinityList() []*framework.NodeInfo {
	return s.havePodsWithRequiredAntiAffinity
}

// HavePodsWithScoringAffinityList implements framework.NodeInfoLister.
func (s *Snapshot) HavePodsWithScoringAffinityList() []*framework.NodeInfo {
	return s.havePodsWithScoringAffinity
}

// HavePodsWithNonHostnameRequiredAntiAffinityList implements
// framework.NodeInfoLister.
func (s *Snapshot) HavePodsWithNonHostnameRequiredAntiAffinityList() []*framework.NodeInfo {
	return s.havePodsWithNonHostnameAnti
}

// Get implements framework.NodeInfoLister.
func (s *Snapshot) Get(name string) (*framework.NodeInfo, error) {
	ni, ok := s.nodeInfoMap[name]
	if !ok || ni.Node() == nil {
		return nil, fmt.Errorf("nodeinfo not found for node name %q", name)
	}
	return ni, nil
}

// Changes implements framework.NodeInfoLister.
func (s *Snapshot) Changes(since framework.ChangeToken) ([]int32, bool, framework.ChangeToken) {
	seq := s.changeBase + uint64(len(s.changeLog))
	next := framework.NewChangeToken(s.listVersion, seq)
	if !since.Valid() || since.ListVersion() != s.listVersion || since.Seq() < s.changeBase || since.Seq() > seq {
		return nil, true, next
	}
	return s.changeLog[since.Seq()-s.changeBase:], false, next
}

// ListVersion changes whenever nodes are added or removed.
func (s *Snapshot) ListVersion() uint64 { return s.listVersion }

// recordChange logs that the NodeInfo at index changed in place.
func (s *Snapshot) recordChange(index int32) {
	if len(s.changeLog) >= maxChangeLog {
		drop := len(s.changeLog) / 2
		s.changeBase += uint64(drop)
		s.changeLog = append(s.changeLog[:0], s.changeLog[drop:]...)
	}
	s.changeLog = append(s.changeLog, index)
}

// resetList starts a new list version: indexes are reassigned and the
// change log restarts.
func (s *Snapshot) resetList() {
	s.listVersion++
	s.changeBase += uint64(len(s.changeLog))
	s.changeLog = s.changeLog[:0]
	for i, ni := range s.nodeInfoList {
		ni.Index = int32(i)
	}
}

// NumNodes is the number of nodes.
func (s *Snapshot) NumNodes() int { return len(s.nodeInfoList) }

func (s *Snapshot) rebuildAffinityLists() {
	s.havePodsWithAffinity = s.havePodsWithAffinity[:0]
	s.havePodsWithRequiredAntiAffinity = s.havePodsWithRequiredAntiAffinity[:0]
	s.havePodsWithScoringAffinity = s.havePodsWithScoringAffinity[:0]
	s.havePodsWithNonHostnameAnti = s.havePodsWithNonHostnameAnti[:0]
	for _, ni := range s.nodeInfoList {
		if len(ni.PodsWithAffinity) > 0 {
			s.havePodsWithAffinity = append(s.havePodsWithAffinity, ni)
		}
		if len(ni.PodsWithRequiredAntiAffinity) > 0 {
			s.havePodsWithRequiredAntiAffinity = append(s.havePodsWithRequiredAntiAffinity, ni)
		}
		if len(ni.PodsWithScoringAffinity) > 0 {
			s.havePodsWithScoringAffinity = append(s.havePodsWithScoringAffinity, ni)
		}
		if ni.NonHostnameAntiAffinityPods > 0 {
			s.havePodsWithNonHostnameAnti = append(s.havePodsWithNonHostnameAnti, ni)
		}
	}
}
