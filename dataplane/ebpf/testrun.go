package ebpf

import (
	"fmt"
	"net"
	"runtime"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Hook names one of a node's packet programs for RunProgram.
type Hook string

// The packet programs.
const (
	HookFromPod Hook = "tc-from-pod" // tcx ingress of a pod's host veth
	HookToPod   Hook = "tc-to-pod"   // tcx egress of a pod's host veth
	HookXDP     Hook = "xdp"         // XDP on the uplink
)

// RunResult is the outcome of RunProgram.
type RunResult struct {
	// Verdict is the program's return value (TC_ACT_*, XDP_*).
	Verdict uint32
	// PerRun is the kernel's measured average time of one run.
	PerRun time.Duration
	// Out is the packet after the (last) run.
	Out []byte
}

// RunProgram runs one of the node's programs on pkt repeat times with
// BPF_PROG_TEST_RUN against the live maps (conntrack included), inside the
// node's network namespace; XDP runs with the first uplink as its ingress
// device, so its fib lookups see the node's routes and neighbours. For
// benchmarks and diagnostics.
func (p *Provider) RunProgram(h Hook, pkt []byte, repeat uint32) (RunResult, error) {
	if p.objs == nil {
		return RunResult{}, fmt.Errorf("ebpf provider: no BPF objects")
	}
	names := map[Hook]string{HookFromPod: progFromPod, HookToPod: progToPod, HookXDP: progXDP}
	prog := p.objs.progs[names[h]]
	if prog == nil {
		return RunResult{}, fmt.Errorf("ebpf provider: unknown hook %q", h)
	}
	var res RunResult
	err := inNetNS(p.cfg.NetNS, func() error {
		var ctx []byte
		if h == HookXDP && len(p.cfg.Uplinks) > 0 {
			ifc, err := net.InterfaceByName(p.cfg.Uplinks[0])
			if err != nil {
				return fmt.Errorf("uplink %s: %w", p.cfg.Uplinks[0], err)
			}
			// struct xdp_md: data, data_end, data_meta,
			// ingress_ifindex, rx_queue_index, egress_ifindex.
			md := [6]uint32{0, uint32(len(pkt)), 0, uint32(ifc.Index), 0, 0}
			ctx = unsafe.Slice((*byte)(unsafe.Pointer(&md[0])), len(md)*4)
			ctx = append([]byte(nil), ctx...)
		}
		var err error
		res, err = testRun(prog, pkt, ctx, repeat)
		return err
	})
	return res, err
}

// progRunAttr is the BPF_PROG_TEST_RUN part of union bpf_attr.
type progRunAttr struct {
	progFD      uint32
	retval      uint32
	dataSizeIn  uint32
	dataSizeOut uint32
	dataIn      uint64
	dataOut     uint64
	repeat      uint32
	duration    uint32
	ctxSizeIn   uint32
	ctxSizeOut  uint32
	ctxIn       uint64
	ctxOut      uint64
	flags       uint32
	cpu         uint32
	batchSize   uint32
	_           uint32
}

// testRun is BPF_PROG_TEST_RUN with a context and the kernel's duration
// (cilium/ebpf offers one or the other).
func testRun(prog *ebpf.Program, pkt, ctx []byte, repeat uint32) (RunResult, error) {
	if repeat == 0 {
		repeat = 1
	}
	out := make([]byte, len(pkt)+256)
	attr := progRunAttr{
		progFD:      uint32(prog.FD()),
		dataSizeIn:  uint32(len(pkt)),
		dataSizeOut: uint32(len(out)),
		dataIn:      uint64(uintptr(unsafe.Pointer(&pkt[0]))),
		dataOut:     uint64(uintptr(unsafe.Pointer(&out[0]))),
		repeat:      repeat,
	}
	if len(ctx) > 0 {
		attr.ctxSizeIn = uint32(len(ctx))
		attr.ctxIn = uint64(uintptr(unsafe.Pointer(&ctx[0])))
	}
	for {
		_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_TEST_RUN, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return RunResult{}, fmt.Errorf("bpf prog test run: %w", errno)
		}
		break
	}
	runtime.KeepAlive(pkt)
	runtime.KeepAlive(ctx)
	n := attr.dataSizeOut
	if int(n) > len(out) {
		n = uint32(len(out))
	}
	return RunResult{Verdict: attr.retval, PerRun: time.Duration(attr.duration), Out: out[:n]}, nil
}
