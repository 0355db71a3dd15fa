package iptables

import (
	"slices"
	"testing"
)

func TestBackendPrograms(t *testing.T) {
	tests := []struct {
		b    Backend
		want []string
	}{
		{BackendDefault, []string{"iptables", "iptables-save", "iptables-restore"}},
		{BackendNFT, []string{"iptables-nft", "iptables-nft-save", "iptables-nft-restore"}},
		{BackendLegacy, []string{"iptables-legacy", "iptables-legacy-save", "iptables-legacy-restore"}},
	}
	for _, tt := range tests {
		if got := tt.b.Programs(); !slices.Equal(got, tt.want) {
			t.Errorf("backend %q: got %v, want %v", tt.b, got, tt.want)
		}
	}
}
