package ebpf

import (
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// PassXDP attaches a program that passes every packet to interface ifname
// of the network namespace at netnsPath. A veth can only transmit frames
// its XDP program sends back (XDP_TX) or redirects when its peer runs an
// XDP program too: attach this to the peer of every uplink whose XDP
// program may transmit (in the lab, the bridge side of a node's uplink).
// Closing the returned link detaches it.
func PassXDP(netnsPath, ifname string) (link.Link, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "skiff_xdp_pass",
		Type:    ebpf.XDP,
		License: "Dual BSD/GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, 2), // XDP_PASS
			asm.Return(),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("load xdp pass program: %w", err)
	}
	defer prog.Close()
	var l link.Link
	err = inNetNS(netnsPath, func() error {
		ifc, err := net.InterfaceByName(ifname)
		if err != nil {
			return fmt.Errorf("interface %s: %w", ifname, err)
		}
		l, err = link.AttachXDP(link.XDPOptions{Interface: ifc.Index, Program: prog})
		if err != nil {
			return fmt.Errorf("attach xdp pass to %s: %w", ifname, err)
		}
		return nil
	})
	return l, err
}
