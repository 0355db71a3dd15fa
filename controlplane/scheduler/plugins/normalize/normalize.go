// Package normalize scales plugin scores into [0, MaxNodeScore], as
// upstream's DefaultNormalizeScore; several plugins share it.
package normalize

import "github.com/skiff-project/skiff/controlplane/scheduler/framework"

// Scores scales scores so the highest becomes maxPriority and, when
// reverse, flips them so the lowest raw score wins. All-zero scores stay
// zero, or become maxPriority when reversed.
func Scores(maxPriority int64, reverse bool, scores framework.NodeScoreList) {
	var maxCount int64
	for i := range scores {
		if scores[i].Score > maxCount {
			maxCount = scores[i].Score
		}
	}
	if maxCount == 0 {
		if reverse {
			for i := range scores {
				scores[i].Score = maxPriority
			}
		}
		return
	}
	for i := range scores {
		s := maxPriority * scores[i].Score / maxCount
		if reverse {
			s = maxPriority - s
		}
		scores[i].Score = s
	}
}
