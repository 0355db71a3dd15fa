/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Load-time configuration of one node's programs. The Go loader sets these
 * read-only globals before loading (CollectionSpec.Variables); they are
 * constants to the verifier and the JIT. */
#ifndef SKIFF_CONFIG_H
#define SKIFF_CONFIG_H

#include "common.h"

/* The node's IPv4 address used as the source of SNATed NodePort traffic
 * (network byte order). */
volatile const __be32 cfg_node_ip = 0;
/* Source port range for SNAT, host byte order, inclusive. */
volatile const __u32 cfg_snat_min = 40000;
volatile const __u32 cfg_snat_max = 60999;

#endif /* SKIFF_CONFIG_H */
