// Package iptables is the baseline dataplane provider: kube-proxy's
// iptables mode, reproduced faithfully so that it can be measured against
// the eBPF provider. The chain layout, rule text, comments, chain-name
// hashes, full and partial syncs (iptables-restore --noflush), stale-chain
// removal and UDP conntrack cleanup follow kube-proxy v1.37
// (pkg/proxy/iptables/proxier.go); see README.md for what differs.
//
// The provider programs the network namespace it is given (a node of the
// test bed, or the host), running iptables-restore inside it.
package iptables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-project/skiff/dataplane"
)

// Defaults, as kube-proxy's.
const (
	// DefaultMinSyncInterval is kube-proxy's --iptables-min-sync-period.
	DefaultMinSyncInterval = time.Second
	// DefaultSyncInterval is kube-proxy's --iptables-sync-period: the retry
	// interval after a failed sync and the period of stale-chain cleanup
	// in large clusters.
	DefaultSyncInterval = 30 * time.Second
	// DefaultFullSyncInterval is kube-proxy's FullSyncPeriod: a full sync
	// at least this often (not in large-cluster mode), and a sync at least
	// this often even without changes.
	DefaultFullSyncInterval = time.Hour
	// DefaultBurst is kube-proxy's historical burstSyncs.
	DefaultBurst = 2
	// DefaultMasqueradeBit is kube-proxy's --iptables-masquerade-bit.
	DefaultMasqueradeBit = 14
	// largeClusterEndpointsThreshold is kube-proxy's: above this many
	// endpoint chains, comments on endpoint rules are dropped and stale
	// chains are looked for once per SyncInterval only.
	largeClusterEndpointsThreshold = 1000
)

// Config configures a Provider.
type Config struct {
	Node dataplane.NodeConfig
	// NetNS is the path of the network namespace to program (e.g.
	// /run/netns/node-1). Empty: the provider's own.
	NetNS string
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Registry receives the sync metrics (provider label "iptables"); nil:
	// no metrics.
	Registry prometheus.Registerer

	MinSyncInterval  time.Duration // default DefaultMinSyncInterval
	SyncInterval     time.Duration // default DefaultSyncInterval
	FullSyncInterval time.Duration // default DefaultFullSyncInterval
	Burst            int           // default DefaultBurst
	MasqueradeBit    int           // default DefaultMasqueradeBit
	// MasqueradeAll masquerades all traffic to ClusterIPs (kube-proxy's
	// --masquerade-all).
	MasqueradeAll bool

	// Backend picks the iptables variant; default the installed one.
	Backend Backend
	// Executor runs iptables; default NewExecutor(NetNS, Backend).
	Executor Executor
	// Conntrack cleans stale UDP entries; default NewConntrack(NetNS).
	Conntrack Conntrack
}

// Provider is the iptables dataplane.Provider. The On* handlers come from
// the embedded ChangeTracker and request a sync from the SyncLoop.
type Provider struct {
	*dataplane.ChangeTracker

	cfg     Config
	log     *slog.Logger
	exec    Executor
	ct      Conntrack
	runner  *dataplane.Runner
	metrics *dataplane.SyncMetrics

	masqueradeMark string
	// localDetect is the -s match of pod traffic (kube-proxy's
	// detect-local-mode ClusterCIDR); empty when not known.
	localCIDR string
	// conntrackTCPLiberal is nf_conntrack_tcp_be_liberal in the namespace.
	conntrackTCPLiberal bool

	mu               sync.Mutex // one sync at a time; guards the fields below
	closed           bool
	services         map[dataplane.ServicePortName]*dataplane.ServicePort
	endpoints        map[dataplane.ServicePortName][]dataplane.Endpoint
	needFullSync     bool
	lastFullSync     time.Time
	lastCleanup      time.Time
	largeClusterMode bool
	svcInfos         map[dataplane.ServicePortName]*svcInfo
	epChains         map[dataplane.ServicePortName]map[netip.AddrPort]string
	probabilities    []string

	filterChains, filterRules, natChains, natRules *realLineBuffer
	iptablesData                                   bytes.Buffer
}

var _ dataplane.Provider = (*Provider)(nil)

// New returns a provider for the node. It touches nothing until the first
// sync, which is a full one.
func New(cfg Config) (*Provider, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.MinSyncInterval == 0 {
		cfg.MinSyncInterval = DefaultMinSyncInterval
	}
	if cfg.SyncInterval == 0 {
		cfg.SyncInterval = DefaultSyncInterval
	}
	if cfg.FullSyncInterval == 0 {
		cfg.FullSyncInterval = DefaultFullSyncInterval
	}
	if cfg.Burst == 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.MasqueradeBit == 0 {
		cfg.MasqueradeBit = DefaultMasqueradeBit
	}
	if cfg.MasqueradeBit < 0 || cfg.MasqueradeBit > 31 {
		return nil, fmt.Errorf("iptables provider: masquerade bit %d out of range", cfg.MasqueradeBit)
	}
	if cfg.Executor == nil {
		cfg.Executor = NewExecutor(cfg.NetNS, cfg.Backend)
	}
	if cfg.Conntrack == nil {
		cfg.Conntrack = NewConntrack(cfg.NetNS)
	}
	log := cfg.Logger.With("component", "iptables-provider", "node", cfg.Node.Name)
	p := &Provider{
		cfg:            cfg,
		log:            log,
		exec:           cfg.Executor,
		ct:             cfg.Conntrack,
		masqueradeMark: fmt.Sprintf("%#08x", 1<<uint(cfg.MasqueradeBit)),
		needFullSync:   true,
		svcInfos:       make(map[dataplane.ServicePortName]*svcInfo),
		epChains:       make(map[dataplane.ServicePortName]map[netip.AddrPort]string),
		probabilities:  make([]string, 0, 1001),
		filterChains:   &realLineBuffer{},
		filterRules:    &realLineBuffer{},
		natChains:      &realLineBuffer{},
		natRules:       &realLineBuffer{},
	}
	for _, c := range cfg.Node.ClusterCIDRs {
		if !c.Addr().Is4() {
			continue
		}
		if p.localCIDR == "" {
			p.localCIDR = c.Masked().String()
		} else {
			log.Warn("several IPv4 cluster CIDRs: only the first detects local traffic", "used", p.localCIDR, "ignored", c)
		}
	}
	if cfg.Registry != nil {
		m, err := dataplane.NewSyncMetrics(cfg.Registry, "iptables")
		if err != nil {
			return nil, fmt.Errorf("iptables provider: %w", err)
		}
		p.metrics = m
	}
	p.conntrackTCPLiberal = p.readTCPBeLiberal()
	p.runner = dataplane.NewRunner("iptables-sync", p.runnerSync, cfg.MinSyncInterval, cfg.FullSyncInterval, cfg.Burst,
		dataplane.WithRunnerLogger(log))
	p.ChangeTracker = dataplane.NewChangeTracker(cfg.Node,
		dataplane.WithTrackerLogger(log), dataplane.WithNotify(p.runner.Loop))
	return p, nil
}

// readTCPBeLiberal reads net/netfilter/nf_conntrack_tcp_be_liberal in the
// provider's namespace: when set, kube-proxy installs no INVALID drop rule.
func (p *Provider) readTCPBeLiberal() bool {
	var val []byte
	read := func() error {
		var err error
		val, err = os.ReadFile(filepath.Join("/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal"))
		return err
	}
	var err error
	if p.cfg.NetNS == "" {
		err = read()
	} else {
		err = inNetNS(p.cfg.NetNS, read)
	}
	if err != nil {
		return false
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(val)))
	return err == nil && v != 0
}

// SyncLoop runs rate-limited syncs until ctx is done: one soon after start,
// then whenever changes are recorded (at most Burst back to back, then one
// per MinSyncInterval), after a failure within SyncInterval, and at least
// once per FullSyncInterval. Start it once the informers have delivered
// the initial Services and EndpointSlices: the first sync is a full one
// and removes the rules of Services it has not heard of.
func (p *Provider) SyncLoop(ctx context.Context) {
	p.runner.Loop()
	p.runner.Run(ctx)
}

func (p *Provider) runnerSync() {
	if err := p.Sync(); err != nil {
		p.log.Error("sync failed", "error", err, "retry", p.cfg.SyncInterval)
		p.runner.RetryAfter(p.cfg.SyncInterval)
	}
}

// Sync applies every recorded change now.
func (p *Provider) Sync() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("iptables provider: closed")
	}
	return p.syncLocked(context.Background())
}

// Close stops accepting syncs. The rules stay: a new provider over the
// same namespace takes them over with its first (full) sync.
func (p *Provider) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	return nil
}

// Cleanup removes every rule and chain of the provider's (and of
// kube-proxy's) iptables layout from the namespace: the jump rules, then
// all KUBE-* chains it owns in the nat and filter tables. The provider
// remembers nothing programmed afterwards: a later Sync is a full one.
func (p *Provider) Cleanup() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.needFullSync = true
	p.svcInfos = make(map[dataplane.ServicePortName]*svcInfo)
	p.epChains = make(map[dataplane.ServicePortName]map[netip.AddrPort]string)
	return cleanupLeftovers(context.Background(), p.exec)
}

// jumpChain is a rule in a built-in chain that jumps to one of ours.
type jumpChain struct {
	table, dstChain, srcChain, comment string
	extraArgs                          []string
}

// jumpChains returns kube-proxy's iptablesJumpChains.
func jumpChains() []jumpChain {
	newState := []string{"-m", "conntrack", "--ctstate", "NEW"}
	return []jumpChain{
		{"filter", kubeExternalServicesChain, "INPUT", "kubernetes externally-visible service portals", newState},
		{"filter", kubeExternalServicesChain, "FORWARD", "kubernetes externally-visible service portals", newState},
		{"filter", kubeNodePortsChain, "INPUT", "kubernetes health check service ports", nil},
		{"filter", kubeServicesChain, "FORWARD", "kubernetes service portals", newState},
		{"filter", kubeServicesChain, "OUTPUT", "kubernetes service portals", newState},
		{"filter", kubeForwardChain, "FORWARD", "kubernetes forwarding rules", nil},
		{"filter", kubeProxyFirewallChain, "INPUT", "kubernetes load balancer firewall", newState},
		{"filter", kubeProxyFirewallChain, "OUTPUT", "kubernetes load balancer firewall", newState},
		{"filter", kubeProxyFirewallChain, "FORWARD", "kubernetes load balancer firewall", newState},
		{"nat", kubeServicesChain, "OUTPUT", "kubernetes service portals", nil},
		{"nat", kubeServicesChain, "PREROUTING", "kubernetes service portals", nil},
		{"nat", kubePostroutingChain, "POSTROUTING", "kubernetes postrouting rules", nil},
	}
}

func (j jumpChain) ruleArgs() []string {
	args := append([]string{}, j.extraArgs...)
	if j.comment != "" {
		args = append(args, "-m", "comment", "--comment", j.comment)
	}
	return append(args, "-j", j.dstChain)
}

// waitArgs are kube-proxy's iptables lock-wait flags.
func waitArgs() []string { return []string{"-w", "5"} }

func iptablesArgs(op, table, chain string, args ...string) []string {
	full := append(waitArgs(), op, chain, "-t", table)
	return append(full, args...)
}

// ensureChain creates chain in table unless it exists.
func ensureChain(ctx context.Context, e Executor, table, chain string) error {
	_, err := e.Run(ctx, nil, "iptables", iptablesArgs("-N", table, chain)...)
	if err != nil && exitCode(err) != 1 {
		return fmt.Errorf("create chain %s/%s: %w", table, chain, err)
	}
	return nil
}

// ensureRule inserts the rule at the top of chain unless it is there.
func ensureRule(ctx context.Context, e Executor, table, chain string, args []string) error {
	_, err := e.Run(ctx, nil, "iptables", iptablesArgs("-C", table, chain, args...)...)
	if err == nil {
		return nil
	}
	if exitCode(err) != 1 {
		return fmt.Errorf("check rule in %s/%s: %w", table, chain, err)
	}
	if _, err := e.Run(ctx, nil, "iptables", iptablesArgs("-I", table, chain, args...)...); err != nil {
		return fmt.Errorf("insert rule in %s/%s: %w", table, chain, err)
	}
	return nil
}

// deleteRule removes the rule if it is there.
func deleteRule(ctx context.Context, e Executor, table, chain string, args []string) error {
	_, err := e.Run(ctx, nil, "iptables", iptablesArgs("-C", table, chain, args...)...)
	if err != nil {
		if exitCode(err) == 1 {
			return nil
		}
		return fmt.Errorf("check rule in %s/%s: %w", table, chain, err)
	}
	if _, err := e.Run(ctx, nil, "iptables", iptablesArgs("-D", table, chain, args...)...); err != nil {
		return fmt.Errorf("delete rule in %s/%s: %w", table, chain, err)
	}
	return nil
}

func restoreArgs() []string {
	return append(waitArgs(), "--noflush", "--counters")
}

func saveTable(ctx context.Context, e Executor, table string) ([]byte, error) {
	out, err := e.Run(ctx, nil, "iptables-save", "-t", table)
	if err != nil {
		return nil, fmt.Errorf("iptables-save -t %s: %w", table, err)
	}
	return out, nil
}

// cleanupLeftovers is kube-proxy's CleanupLeftovers for one family.
func cleanupLeftovers(ctx context.Context, e Executor) error {
	var errs []error
	for _, j := range jumpChains() {
		if err := deleteRule(ctx, e, j.table, j.srcChain, j.ruleArgs()); err != nil && !isNoChain(err) {
			errs = append(errs, err)
		}
	}
	for _, table := range []struct {
		name  string
		fixed []string
	}{
		{"nat", []string{kubeServicesChain, kubeNodePortsChain, kubePostroutingChain, kubeMarkMasqChain, kubeProxyCanaryChain}},
		{"filter", []string{kubeServicesChain, kubeExternalServicesChain, kubeForwardChain, kubeNodePortsChain, kubeProxyFirewallChain, kubeProxyCanaryChain}},
	} {
		save, err := saveTable(ctx, e, table.name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		existing := chainsFromSave(save)
		var chains, rules realLineBuffer
		chains.Write("*" + table.name)
		for _, c := range table.fixed {
			if _, ok := existing[c]; ok {
				chains.Write(makeChainLine(c))
				rules.Write("-X", c)
			}
		}
		if table.name == "nat" {
			for c := range existing {
				if isServiceChainName(c) {
					chains.Write(makeChainLine(c))
					rules.Write("-X", c)
				}
			}
		}
		rules.Write("COMMIT")
		data := append(append([]byte{}, chains.Bytes()...), rules.Bytes()...)
		if _, err := e.Run(ctx, data, "iptables-restore", append(restoreArgs(), "-T", table.name)...); err != nil {
			errs = append(errs, fmt.Errorf("iptables-restore -T %s: %w", table.name, err))
		}
	}
	return errors.Join(errs...)
}

// isNoChain reports an iptables error about a missing chain (exit 1 or 2
// with "No chain" / "does not exist"): nothing to delete.
func isNoChain(err error) bool {
	var ee *ExitError
	return errors.As(err, &ee) && (strings.Contains(ee.Stderr, "No chain") || strings.Contains(ee.Stderr, "does not exist"))
}

func (p *Provider) probability(n int) string {
	if len(p.probabilities) == 0 {
		p.probabilities = append(p.probabilities, "<bad value>")
	}
	for i := len(p.probabilities); i <= n; i++ {
		p.probabilities = append(p.probabilities, fmt.Sprintf("%0.10f", 1.0/float64(i)))
	}
	return p.probabilities[n]
}

// changedServices is the set of Services (all ports) with a change.
func changedServices(u dataplane.Update) map[types.NamespacedName]struct{} {
	out := make(map[types.NamespacedName]struct{}, len(u.Changed))
	for n := range u.Changed {
		out[n.NamespacedName] = struct{}{}
	}
	return out
}

func (p *Provider) svcInfoFor(name dataplane.ServicePortName, sp *dataplane.ServicePort) *svcInfo {
	if info := p.svcInfos[name]; info != nil && info.sp == sp {
		return info
	}
	info := newSvcInfo(sp)
	p.svcInfos[name] = info
	return info
}

func (p *Provider) endpointChain(info *svcInfo, ep dataplane.Endpoint) string {
	m := p.epChains[info.sp.Name]
	if m == nil {
		m = make(map[netip.AddrPort]string)
		p.epChains[info.sp.Name] = m
	}
	ap := ep.AddrPort()
	if c, ok := m[ap]; ok {
		return c
	}
	c := servicePortEndpointChainName(info.nameString, info.protocol, ep.String())
	m[ap] = c
	return c
}

// isUDP reports a UDP service port.
func isUDP(n dataplane.ServicePortName) bool { return n.Protocol == v1.ProtocolUDP }
