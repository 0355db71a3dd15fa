package iptables

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-project/skiff/dataplane"
)

// syncLocked is kube-proxy's syncProxyRules: it applies the recorded
// changes and writes the rules with one iptables-restore. A full sync
// rewrites every chain; a partial sync rewrites the top-level chains and
// only the per-Service chains of Services that changed. p.mu is held.
func (p *Provider) syncLocked(ctx context.Context) (retErr error) {
	start := time.Now()
	doFullSync := p.needFullSync ||
		(time.Since(p.lastFullSync) > p.cfg.FullSyncInterval && !p.largeClusterMode)

	update := p.Apply()
	p.services, p.endpoints = update.Services, update.Endpoints
	changed := changedServices(update)
	for name := range update.Changed {
		// Endpoint chain names are cached per service port; recompute
		// them for what changed so removed endpoints are forgotten.
		delete(p.epChains, name)
		if _, ok := update.Services[name]; !ok {
			delete(p.svcInfos, name)
		}
	}

	kind := dataplane.SyncPartial
	if doFullSync {
		kind = dataplane.SyncFull
	}
	defer func() {
		p.metrics.ObserveSync(kind, start, update, retErr)
		if retErr != nil {
			// The recorded changes are consumed: only a full sync can
			// repair what this one failed to write.
			p.needFullSync = true
		} else if doFullSync {
			p.lastFullSync = time.Now()
		}
		p.log.Debug("sync done", "kind", kind, "changed", len(update.Changed), "elapsed", time.Since(start), "error", retErr)
	}()

	if doFullSync {
		// Jump rules from the built-in chains (and the chains they
		// target). Only on full syncs: they are assumed to stay.
		for _, j := range jumpChains() {
			if err := ensureChain(ctx, p.exec, j.table, j.dstChain); err != nil {
				return err
			}
			if err := ensureRule(ctx, p.exec, j.table, j.srcChain, j.ruleArgs()); err != nil {
				return err
			}
		}
	}

	p.writeRules(ctx, doFullSync, changed)

	if _, err := p.exec.Run(ctx, p.iptablesData.Bytes(), "iptables-restore", restoreArgs()...); err != nil {
		return fmt.Errorf("iptables-restore (%s sync): %w", kind, err)
	}
	p.needFullSync = false

	if conntrackCleanupRequired(update) {
		p.cleanStaleUDP()
	}
	return nil
}

// conntrackCleanupRequired: some UDP service port's Service or endpoints
// changed (kube-proxy checks endpoint changes of Services with UDP ports).
func conntrackCleanupRequired(u dataplane.Update) bool {
	for n := range u.Changed {
		if isUDP(n) {
			return true
		}
	}
	return false
}

// writeRules fills p.iptablesData with the iptables-restore input.
func (p *Provider) writeRules(ctx context.Context, doFullSync bool, changed map[types.NamespacedName]struct{}) {
	p.filterChains.Reset()
	p.filterRules.Reset()
	p.natChains.Reset()
	p.natRules.Reset()
	skippedNatChains := &discardLineBuffer{}
	skippedNatRules := &discardLineBuffer{}

	for _, c := range []string{kubeServicesChain, kubeExternalServicesChain, kubeForwardChain, kubeNodePortsChain, kubeProxyFirewallChain} {
		p.filterChains.Write(makeChainLine(c))
	}
	for _, c := range []string{kubeServicesChain, kubeNodePortsChain, kubePostroutingChain, kubeMarkMasqChain} {
		p.natChains.Write(makeChainLine(c))
	}

	mark := p.masqueradeMark + "/" + p.masqueradeMark
	p.natRules.Write("-A", kubePostroutingChain, "-m", "mark", "!", "--mark", mark, "-j", "RETURN")
	// Clear the mark to avoid re-masquerading if the packet re-traverses the network stack.
	p.natRules.Write("-A", kubePostroutingChain, "-j", "MARK", "--xor-mark", p.masqueradeMark)
	p.natRules.Write("-A", kubePostroutingChain,
		"-m", "comment", "--comment", `"kubernetes service traffic requiring SNAT"`,
		"-j", "MASQUERADE", "--random-fully")
	p.natRules.Write("-A", kubeMarkMasqChain, "-j", "MARK", "--or-mark", p.masqueradeMark)

	activeNATChains := make(map[string]struct{}, len(p.services)*3)
	args := make([]string, 0, 64)

	totalEndpoints := 0
	for name := range p.services {
		totalEndpoints += len(p.endpoints[name])
	}
	p.largeClusterMode = totalEndpoints > largeClusterEndpointsThreshold

	var ifLocal, ifNotLocal []string
	if p.localCIDR != "" {
		ifLocal = []string{"-s", p.localCIDR}
		ifNotLocal = []string{"!", "-s", p.localCIDR}
	}

	for name, sp := range p.services {
		svc := p.svcInfoFor(name, sp)
		protocol := svc.protocol
		nameString := svc.nameString
		port := strconv.Itoa(int(sp.Port))
		clusterIP := sp.ClusterIPs[0].String()

		allEndpoints := p.endpoints[name]
		clusterEndpoints, localEndpoints := dataplane.SelectEndpoints(sp, allEndpoints)
		hasEndpoints := len(clusterEndpoints) > 0
		if !sp.UsesClusterEndpoints() {
			// kube-proxy computes no cluster set then; hasEndpoints comes
			// from the local pre-scan, which sees the same endpoints.
			clusterEndpoints = nil
		}
		if !sp.UsesLocalEndpoints() {
			localEndpoints = nil
		}
		allLocallyReachable := unionEndpoints(clusterEndpoints, localEndpoints)

		clusterPolicyChain := svc.clusterPolicyChainName
		usesClusterPolicyChain := len(clusterEndpoints) > 0 && sp.UsesClusterEndpoints()
		localPolicyChain := svc.localPolicyChainName
		usesLocalPolicyChain := len(localEndpoints) > 0 && sp.UsesLocalEndpoints()

		internalPolicyChain := clusterPolicyChain
		hasInternalEndpoints := hasEndpoints
		if sp.InternalPolicyLocal {
			internalPolicyChain = localPolicyChain
			if len(localEndpoints) == 0 {
				hasInternalEndpoints = false
			}
		}
		internalTrafficChain := internalPolicyChain

		externalPolicyChain := clusterPolicyChain
		hasExternalEndpoints := hasEndpoints
		if sp.ExternalPolicyLocal {
			externalPolicyChain = localPolicyChain
			if len(localEndpoints) == 0 {
				hasExternalEndpoints = false
			}
		}
		externalTrafficChain := svc.externalChainName
		usesExternalTrafficChain := hasEndpoints && sp.ExternallyAccessible()
		// No loadBalancerSourceRanges in the model: no firewall chain.
		loadBalancerTrafficChain := externalTrafficChain

		var internalTrafficFilterTarget, internalTrafficFilterComment string
		var externalTrafficFilterTarget, externalTrafficFilterComment string
		if !hasEndpoints {
			internalTrafficFilterTarget = "REJECT"
			internalTrafficFilterComment = fmt.Sprintf(`"%s has no endpoints"`, nameString)
			externalTrafficFilterTarget = "REJECT"
			externalTrafficFilterComment = internalTrafficFilterComment
		} else {
			if !hasInternalEndpoints {
				internalTrafficFilterTarget = "DROP"
				internalTrafficFilterComment = fmt.Sprintf(`"%s has no local endpoints"`, nameString)
			}
			if !hasExternalEndpoints {
				externalTrafficFilterTarget = "DROP"
				externalTrafficFilterComment = fmt.Sprintf(`"%s has no local endpoints"`, nameString)
			}
		}

		filterRules := p.filterRules
		var natChains, natRules lineBuffer = p.natChains, p.natRules

		// Capture the clusterIP.
		if hasInternalEndpoints {
			natRules.Write(
				"-A", kubeServicesChain,
				"-m", "comment", "--comment", fmt.Sprintf(`"%s cluster IP"`, nameString),
				"-m", protocol, "-p", protocol,
				"-d", clusterIP,
				"--dport", port,
				"-j", internalTrafficChain)
		} else {
			filterRules.Write(
				"-A", kubeServicesChain,
				"-m", "comment", "--comment", internalTrafficFilterComment,
				"-m", protocol, "-p", protocol,
				"-d", clusterIP,
				"--dport", port,
				"-j", internalTrafficFilterTarget)
		}

		// Capture externalIPs.
		for _, externalIP := range sp.ExternalIPs {
			if hasEndpoints {
				natRules.Write(
					"-A", kubeServicesChain,
					"-m", "comment", "--comment", fmt.Sprintf(`"%s external IP"`, nameString),
					"-m", protocol, "-p", protocol,
					"-d", externalIP.String(),
					"--dport", port,
					"-j", externalTrafficChain)
			}
			if !hasExternalEndpoints {
				filterRules.Write(
					"-A", kubeExternalServicesChain,
					"-m", "comment", "--comment", externalTrafficFilterComment,
					"-m", protocol, "-p", protocol,
					"-d", externalIP.String(),
					"--dport", port,
					"-j", externalTrafficFilterTarget)
			}
		}

		// Capture load-balancer ingress.
		for _, lbip := range sp.LoadBalancerIPs {
			if hasEndpoints {
				natRules.Write(
					"-A", kubeServicesChain,
					"-m", "comment", "--comment", fmt.Sprintf(`"%s loadbalancer IP"`, nameString),
					"-m", protocol, "-p", protocol,
					"-d", lbip.String(),
					"--dport", port,
					"-j", loadBalancerTrafficChain)
			}
		}
		if !hasExternalEndpoints {
			for _, lbip := range sp.LoadBalancerIPs {
				filterRules.Write(
					"-A", kubeExternalServicesChain,
					"-m", "comment", "--comment", externalTrafficFilterComment,
					"-m", protocol, "-p", protocol,
					"-d", lbip.String(),
					"--dport", port,
					"-j", externalTrafficFilterTarget)
			}
		}

		// Capture nodeports.
		if sp.NodePort != 0 {
			nodePort := strconv.Itoa(int(sp.NodePort))
			if hasEndpoints {
				natRules.Write(
					"-A", kubeNodePortsChain,
					"-m", "comment", "--comment", nameString,
					"-m", protocol, "-p", protocol,
					"--dport", nodePort,
					"-j", externalTrafficChain)
			}
			if !hasExternalEndpoints {
				filterRules.Write(
					"-A", kubeExternalServicesChain,
					"-m", "comment", "--comment", externalTrafficFilterComment,
					"-m", "addrtype", "--dst-type", "LOCAL",
					"-m", protocol, "-p", protocol,
					"--dport", nodePort,
					"-j", externalTrafficFilterTarget)
			}
		}

		// Unchanged Services keep their chains in a partial sync.
		if !doFullSync {
			if _, ok := changed[name.NamespacedName]; !ok {
				natChains = skippedNatChains
				natRules = skippedNatRules
			}
		}

		// Set up internal traffic handling.
		if hasInternalEndpoints {
			args = append(args[:0],
				"-m", "comment", "--comment", fmt.Sprintf(`"%s cluster IP"`, nameString),
				"-m", protocol, "-p", protocol,
				"-d", clusterIP,
				"--dport", port,
			)
			if p.cfg.MasqueradeAll {
				natRules.Write("-A", internalTrafficChain, args, "-j", kubeMarkMasqChain)
			} else if ifNotLocal != nil {
				// Masquerade off-cluster traffic to a service VIP.
				natRules.Write("-A", internalTrafficChain, args, ifNotLocal, "-j", kubeMarkMasqChain)
			}
		}

		// Set up external traffic handling.
		if usesExternalTrafficChain {
			natChains.Write(makeChainLine(externalTrafficChain))
			activeNATChains[externalTrafficChain] = struct{}{}

			if !sp.ExternalPolicyLocal {
				natRules.Write(
					"-A", externalTrafficChain,
					"-m", "comment", "--comment", fmt.Sprintf(`"masquerade traffic for %s external destinations"`, nameString),
					"-j", kubeMarkMasqChain)
			} else {
				if ifLocal != nil {
					natRules.Write(
						"-A", externalTrafficChain,
						"-m", "comment", "--comment", fmt.Sprintf(`"pod traffic for %s external destinations"`, nameString),
						ifLocal,
						"-j", clusterPolicyChain)
				}
				natRules.Write(
					"-A", externalTrafficChain,
					"-m", "comment", "--comment", fmt.Sprintf(`"masquerade LOCAL traffic for %s external destinations"`, nameString),
					"-m", "addrtype", "--src-type", "LOCAL",
					"-j", kubeMarkMasqChain)
				natRules.Write(
					"-A", externalTrafficChain,
					"-m", "comment", "--comment", fmt.Sprintf(`"route LOCAL traffic for %s external destinations"`, nameString),
					"-m", "addrtype", "--src-type", "LOCAL",
					"-j", clusterPolicyChain)
			}
			if hasExternalEndpoints {
				natRules.Write("-A", externalTrafficChain, "-j", externalPolicyChain)
			}
		}

		if usesClusterPolicyChain {
			natChains.Write(makeChainLine(clusterPolicyChain))
			activeNATChains[clusterPolicyChain] = struct{}{}
			p.writeServiceToEndpointRules(natRules, svc, clusterPolicyChain, clusterEndpoints, args)
		}
		if usesLocalPolicyChain {
			natChains.Write(makeChainLine(localPolicyChain))
			activeNATChains[localPolicyChain] = struct{}{}
			p.writeServiceToEndpointRules(natRules, svc, localPolicyChain, localEndpoints, args)
		}

		// The per-endpoint chains.
		for _, ep := range allLocallyReachable {
			endpointChain := p.endpointChain(svc, ep)
			natChains.Write(makeChainLine(endpointChain))
			activeNATChains[endpointChain] = struct{}{}

			args = append(args[:0], "-A", endpointChain)
			args = p.appendServiceComment(args, nameString)
			// Handle traffic that loops back to the originator with SNAT.
			natRules.Write(args, "-s", ep.IP.String(), "-j", kubeMarkMasqChain)
			// Update client-affinity lists.
			if sp.AffinityTimeoutSeconds > 0 {
				args = append(args, "-m", "recent", "--name", endpointChain, "--set")
			}
			// DNAT to final destination.
			args = append(args, "-m", protocol, "-p", protocol, "-j", "DNAT", "--to-destination", ep.String())
			natRules.Write(args)
		}
	}

	// Delete chains no longer in use. In large clusters only once per
	// SyncInterval, as iptables-save is slow there.
	if !p.largeClusterMode || time.Since(p.lastCleanup) > p.cfg.SyncInterval {
		save, err := saveTable(ctx, p.exec, "nat")
		if err == nil {
			for chain := range chainsFromSave(save) {
				if _, ok := activeNATChains[chain]; ok || !isServiceChainName(chain) {
					continue
				}
				p.natChains.Write(makeChainLine(chain))
				p.natRules.Write("-X", chain)
			}
			p.lastCleanup = time.Now()
		} else {
			p.log.Error("stale chains will not be deleted", "error", err)
		}
	}

	// Finally, tail-call to the nodePorts chain.
	if len(p.cfg.Node.NodeIPs) == 0 {
		p.natRules.Write(
			"-A", kubeServicesChain,
			"-m", "comment", "--comment", `"kubernetes service nodeports; NOTE: this must be the last rule in this chain"`,
			"-m", "addrtype", "--dst-type", "LOCAL", "!", "-d", "127.0.0.0/8",
			"-j", kubeNodePortsChain)
	} else {
		for _, ip := range p.cfg.Node.NodeIPs {
			if !ip.Is4() || ip.IsLoopback() {
				continue
			}
			p.natRules.Write(
				"-A", kubeServicesChain,
				"-m", "comment", "--comment", `"kubernetes service nodeports; NOTE: this must be the last rule in this chain"`,
				"-d", ip.String(),
				"-j", kubeNodePortsChain)
		}
	}

	// Drop packets in INVALID state, which would otherwise cause
	// unexpected connection resets (unless nf_conntrack_tcp_be_liberal).
	if !p.conntrackTCPLiberal {
		p.filterRules.Write("-A", kubeForwardChain, "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")
	}
	p.filterRules.Write(
		"-A", kubeForwardChain,
		"-m", "comment", "--comment", `"kubernetes forwarding rules"`,
		"-m", "mark", "--mark", p.masqueradeMark+"/"+p.masqueradeMark,
		"-j", "ACCEPT")
	p.filterRules.Write(
		"-A", kubeForwardChain,
		"-m", "comment", "--comment", `"kubernetes forwarding conntrack rule"`,
		"-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
		"-j", "ACCEPT")

	p.iptablesData.Reset()
	p.iptablesData.WriteString("*filter\n")
	p.iptablesData.Write(p.filterChains.Bytes())
	p.iptablesData.Write(p.filterRules.Bytes())
	p.iptablesData.WriteString("COMMIT\n")
	p.iptablesData.WriteString("*nat\n")
	p.iptablesData.Write(p.natChains.Bytes())
	p.iptablesData.Write(p.natRules.Bytes())
	p.iptablesData.WriteString("COMMIT\n")
	p.log.Debug("restoring iptables",
		"services", len(p.services), "endpoints", totalEndpoints, "full", doFullSync,
		"filterRules", p.filterRules.Lines(), "natChains", p.natChains.Lines(), "natRules", p.natRules.Lines(),
		"skippedNatRules", skippedNatRules.Lines())
}

// appendServiceComment adds the comment unless in large-cluster mode,
// where kube-proxy drops it to shrink the ruleset.
func (p *Provider) appendServiceComment(args []string, comment string) []string {
	if p.largeClusterMode {
		return args
	}
	return append(args, "-m", "comment", "--comment", comment)
}

func (p *Provider) writeServiceToEndpointRules(natRules lineBuffer, svc *svcInfo, svcChain string, endpoints []dataplane.Endpoint, args []string) {
	if svc.sp.AffinityTimeoutSeconds > 0 {
		for _, ep := range endpoints {
			epChain := p.endpointChain(svc, ep)
			comment := fmt.Sprintf(`"%s -> %s"`, svc.nameString, ep.String())
			args = append(args[:0], "-A", svcChain)
			args = p.appendServiceComment(args, comment)
			args = append(args,
				"-m", "recent", "--name", epChain,
				"--rcheck", "--seconds", strconv.Itoa(int(svc.sp.AffinityTimeoutSeconds)), "--reap",
				"-j", epChain)
			natRules.Write(args)
		}
	}
	n := len(endpoints)
	for i, ep := range endpoints {
		epChain := p.endpointChain(svc, ep)
		comment := fmt.Sprintf(`"%s -> %s"`, svc.nameString, ep.String())
		args = append(args[:0], "-A", svcChain)
		args = p.appendServiceComment(args, comment)
		if i < n-1 {
			args = append(args, "-m", "statistic", "--mode", "random", "--probability", p.probability(n-i))
		}
		natRules.Write(args, "-j", epChain)
	}
}

// unionEndpoints is kube-proxy's allReachableEndpoints: the cluster set
// plus local endpoints not in it, in a stable order.
func unionEndpoints(cluster, local []dataplane.Endpoint) []dataplane.Endpoint {
	if len(local) == 0 {
		return cluster
	}
	if len(cluster) == 0 {
		return local
	}
	seen := make(map[netip.AddrPort]struct{}, len(cluster))
	out := append([]dataplane.Endpoint{}, cluster...)
	for _, ep := range cluster {
		seen[ep.AddrPort()] = struct{}{}
	}
	for _, ep := range local {
		if _, ok := seen[ep.AddrPort()]; !ok {
			out = append(out, ep)
		}
	}
	return out
}

// cleanStaleUDP is kube-proxy's conntrack.CleanStaleEntries: it deletes
// every UDP conntrack entry whose original destination is a UDP service
// frontend (ClusterIP, LoadBalancer IP or external IP with the port, or
// the NodePort) but whose reply source is not a serving endpoint of that
// Service. That removes flows to a removed endpoint, and flows created
// while the Service had no endpoint (not DNATed at all), which would
// otherwise keep a chatty UDP client off the new endpoints forever.
// Traffic policies and terminating state are not considered: existing
// flows to a serving endpoint stay.
func (p *Provider) cleanStaleUDP() {
	start := time.Now()
	type set = map[netip.AddrPort]struct{}
	frontends := make(map[netip.AddrPort]set)
	nodePorts := make(map[uint16]set)
	for name, sp := range p.services {
		if !isUDP(name) {
			continue
		}
		serving := make(set)
		for _, ep := range p.endpoints[name] {
			if ep.Serving {
				serving[ep.AddrPort()] = struct{}{}
			}
		}
		for _, ips := range [][]netip.Addr{sp.ClusterIPs, sp.LoadBalancerIPs, sp.ExternalIPs} {
			for _, ip := range ips {
				frontends[netip.AddrPortFrom(ip, sp.Port)] = serving
			}
		}
		// NodePort entries match on the port only: skip a Service without
		// serving endpoints, so unrelated flows to that port survive.
		if sp.NodePort != 0 && len(serving) > 0 {
			nodePorts[sp.NodePort] = serving
		}
	}
	if len(frontends) == 0 {
		return
	}
	flows, err := p.ct.ListUDP()
	if err != nil {
		p.log.Error("list conntrack entries", "error", err)
		return
	}
	var stale []Flow
	for _, f := range flows {
		if f.Protocol != unix.IPPROTO_UDP {
			continue
		}
		if eps, ok := frontends[f.OrigDst]; ok {
			if _, ok := eps[f.ReplySrc]; !ok {
				stale = append(stale, f)
			}
			continue
		}
		if eps, ok := nodePorts[f.OrigDst.Port()]; ok {
			if _, ok := eps[f.ReplySrc]; !ok {
				stale = append(stale, f)
			}
		}
	}
	n, err := p.ct.Delete(stale)
	if err != nil {
		p.log.Error("delete stale conntrack entries", "error", err, "deleted", n)
		return
	}
	p.log.Debug("conntrack cleanup", "listed", len(flows), "deleted", n, "elapsed", time.Since(start))
}
