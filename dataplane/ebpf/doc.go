// Package ebpf is Skiff's eBPF service load balancer: the Go side of the
// programs in bpf/ (socket-level LB on the cgroup2 root, per-packet NAT on
// pod veths with TC, north-south NodePort/LoadBalancer/externalIP LB with
// XDP on the node uplink).
//
// It owns the generated BPF objects (gen.go, bpf2go), the map layer (Maps:
// the pinned BPF maps, or an in-memory fake for tests), the reconciler that
// turns a dataplane.Update into the map operations for what changed, the
// Provider that implements dataplane.Provider for one node, and the
// Prometheus collectors over the maps.
//
// All maps live under a per-node bpffs directory (Config.PinPath, by default
// /sys/fs/bpf/skiff/<node>/), so several nodes of a lab share one kernel
// without colliding, and a restarted agent re-opens them, diffs its desired
// state against their content and never touches conntrack except for
// removed backends. Links are pinned beside the maps: traffic keeps flowing
// while the agent is down. See README.md for the map layouts and the life
// of a packet.
package ebpf
