package iptables

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"strings"

	"github.com/skiff-project/skiff/dataplane"
)

// Chain names, as kube-proxy's iptables proxier names them.
const (
	kubeServicesChain         = "KUBE-SERVICES"
	kubeExternalServicesChain = "KUBE-EXTERNAL-SERVICES"
	kubeNodePortsChain        = "KUBE-NODEPORTS"
	kubePostroutingChain      = "KUBE-POSTROUTING"
	kubeMarkMasqChain         = "KUBE-MARK-MASQ"
	kubeForwardChain          = "KUBE-FORWARD"
	kubeProxyFirewallChain    = "KUBE-PROXY-FIREWALL"
	kubeProxyCanaryChain      = "KUBE-PROXY-CANARY"

	servicePortPolicyClusterChainNamePrefix = "KUBE-SVC-"
	servicePortPolicyLocalChainNamePrefix   = "KUBE-SVL-"
	serviceFirewallChainNamePrefix          = "KUBE-FW-"
	serviceExternalChainNamePrefix          = "KUBE-EXT-"
	servicePortEndpointChainNamePrefix      = "KUBE-SEP-"
)

// kubeProxyPortName is kube-proxy's ServicePortName.String():
// "namespace/name" plus ":port" for a named port, without the protocol.
func kubeProxyPortName(n dataplane.ServicePortName) string {
	s := n.Namespace + "/" + n.Name
	if n.Port != "" {
		s += ":" + n.Port
	}
	return s
}

// portProtoHash is kube-proxy's: sha256 of name and protocol, base32,
// first 16 characters (chain names must be at most 28 characters).
func portProtoHash(servicePortName, protocol string) string {
	hash := sha256.Sum256([]byte(servicePortName + protocol))
	return base32.StdEncoding.EncodeToString(hash[:])[:16]
}

func servicePortEndpointChainName(servicePortName, protocol, endpoint string) string {
	hash := sha256.Sum256([]byte(servicePortName + protocol + endpoint))
	return servicePortEndpointChainNamePrefix + base32.StdEncoding.EncodeToString(hash[:])[:16]
}

func isServiceChainName(chain string) bool {
	for _, p := range []string{
		servicePortPolicyClusterChainNamePrefix,
		servicePortPolicyLocalChainNamePrefix,
		servicePortEndpointChainNamePrefix,
		serviceFirewallChainNamePrefix,
		serviceExternalChainNamePrefix,
	} {
		if strings.HasPrefix(chain, p) {
			return true
		}
	}
	return false
}

// svcInfo is a ServicePort with the names kube-proxy precomputes for it.
type svcInfo struct {
	sp                     *dataplane.ServicePort
	nameString             string // kube-proxy's ServicePortName.String()
	protocol               string // lower case
	clusterPolicyChainName string
	localPolicyChainName   string
	firewallChainName      string
	externalChainName      string
}

func newSvcInfo(sp *dataplane.ServicePort) *svcInfo {
	name := kubeProxyPortName(sp.Name)
	proto := strings.ToLower(string(sp.Protocol))
	h := portProtoHash(name, proto)
	return &svcInfo{
		sp:                     sp,
		nameString:             name,
		protocol:               proto,
		clusterPolicyChainName: servicePortPolicyClusterChainNamePrefix + h,
		localPolicyChainName:   servicePortPolicyLocalChainNamePrefix + h,
		firewallChainName:      serviceFirewallChainNamePrefix + h,
		externalChainName:      serviceExternalChainNamePrefix + h,
	}
}

// makeChainLine is an iptables-restore chain declaration; with --noflush
// it creates the chain or flushes it.
func makeChainLine(chain string) string { return ":" + chain + " - [0:0]" }

// chainsFromSave returns the chains declared in iptables-save output of one
// table (kube-proxy's GetChainsFromTable).
func chainsFromSave(save []byte) map[string]struct{} {
	chains := make(map[string]struct{})
	for {
		i := bytes.Index(save, []byte("\n:"))
		if i < 0 {
			break
		}
		save = save[i+2:]
		end := bytes.IndexByte(save, ' ')
		if end < 0 {
			break
		}
		chains[string(save[:end])] = struct{}{}
		save = save[end:]
	}
	return chains
}
