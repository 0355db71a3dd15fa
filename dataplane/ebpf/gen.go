package ebpf

// The BPF objects, one per attach point (bpf/*.c), compiled with Debian 12's
// clang 14 for little-endian BPF. The map key and value types come from the
// lxc object (-type); the other objects include the same bpf/lib/maps.h and
// a test checks that their BTF agrees. CI runs `make generate` and fails on
// a diff, so keep the flags deterministic.

//go:generate go tool bpf2go -tags linux -target bpfel -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -mcpu=v3 -Wall -Werror -I../../bpf/include" -type lb_svc_key -type lb_svc_val -type lb_slot_key -type lb_backend -type ct_key -type ct_val -type lb_aff_key -type lb_aff_val -type sk_key -type sk_val -type lb_counter -type sockgc_key lxc ../../bpf/bpf_lxc.c
//go:generate go tool bpf2go -tags linux -target bpfel -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -mcpu=v3 -Wall -Werror -I../../bpf/include" -no-global-types xdp ../../bpf/bpf_xdp.c
//go:generate go tool bpf2go -tags linux -target bpfel -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -mcpu=v3 -Wall -Werror -I../../bpf/include" -no-global-types host ../../bpf/bpf_host.c
//go:generate go tool bpf2go -tags linux -target bpfel -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -mcpu=v3 -Wall -Werror -I../../bpf/include" -no-global-types sock ../../bpf/bpf_sock.c
//go:generate go tool bpf2go -tags linux -target bpfel -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -mcpu=v3 -Wall -Werror -I../../bpf/include" -no-global-types iter ../../bpf/bpf_iter.c
