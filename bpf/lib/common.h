/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Common definitions shared by every Skiff BPF program: constants that
 * vmlinux.h cannot carry (it has no #defines) and small helpers. */
#ifndef SKIFF_COMMON_H
#define SKIFF_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP 0x0800
#define ETH_ALEN 6
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#define TC_ACT_REDIRECT 7

#define ECONNREFUSED 111

#define ICMP_DEST_UNREACH 3
#define ICMP_PORT_UNREACH 3

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#endif /* SKIFF_COMMON_H */
