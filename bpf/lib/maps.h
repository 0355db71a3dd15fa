/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Map layouts and map definitions shared by the socket, TC and XDP programs.
 *
 * Every map is pinned by name in the node's pin directory
 * (/sys/fs/bpf/skiff/<node>/), so the three objects share one set of maps
 * and a restarted agent finds them again. A map's layout version is part of
 * its name: change a key or value layout and bump the _vN suffix.
 *
 * Byte order: addresses and ports are in network byte order (__be32/__be16)
 * exactly as they appear in packets and in struct bpf_sock_addr; ids,
 * counts, flags and timestamps are in host byte order. The Go side uses the
 * bpf2go-generated mirrors of these structs (dataplane/ebpf, -type).
 *
 * Max entries given here are defaults; the Go loader sets them from its
 * configuration before loading. */
#ifndef SKIFF_MAPS_H
#define SKIFF_MAPS_H

#include "common.h"

/* A frontend: ClusterIP, node IP (NodePort), external IP or LoadBalancer IP
 * plus port and protocol, and the side the traffic comes from. Traffic to
 * an external frontend from the node itself or a local pod (socket hooks,
 * TC) uses the Service's cluster-wide endpoints even under
 * externalTrafficPolicy Local (kube-proxy's short-circuit); traffic from
 * outside (XDP) uses the policy's endpoints. */
#define SCOPE_INTERNAL 0 /* looked up by the socket hooks and TC */
#define SCOPE_EXTERNAL 1 /* looked up by XDP */
struct lb_svc_key {
	__be32 addr;
	__be16 port;
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 scope;
};

/* svc flags */
#define SVC_F_EXTERNAL 0x01 /* NodePort, externalIP or LoadBalancer frontend */
#define SVC_F_AFFINITY 0x02 /* sessionAffinity: ClientIP */
#define SVC_F_LOCAL 0x04    /* externalTrafficPolicy Local: no SNAT */
#define SVC_F_DROP 0x08     /* has endpoints, but none usable here: drop */
#define SVC_F_MAGLEV 0x10   /* a Maglev table is installed for id */

/* What a frontend resolves to. id names a backend set: each ServicePort
 * has a cluster-wide set and, under a Local traffic policy, a node-local
 * set; frontends point at the set their policy selects. count == 0 without
 * SVC_F_DROP means the Service has no endpoints: refuse. */
struct lb_svc_val {
	__u32 id;
	__u16 count; /* backends for new connections: slots 0..count-1 */
	__u16 flags;
	__u32 affinity_timeout; /* seconds, for SVC_F_AFFINITY */
	__u32 maglev_size; /* entries of the set's Maglev table (SVC_F_MAGLEV) */
};

/* Backend slot of a backend set: (id, slot) -> backend id. */
struct lb_slot_key {
	__u32 id;
	__u32 slot;
};

#define BE_F_LOCAL 0x01 /* backend runs on this node */

/* A backend, in an array indexed by backend id (0 is never used). An
 * all-zero entry is a deleted backend: conntrack entries that still name it
 * are ignored. */
struct lb_backend {
	__be32 addr;
	__be16 port;
	__u8 proto;
	__u8 flags;
};

/* Conntrack key: the packet's 5-tuple as seen at the hook. */
struct ct_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

#define CT_FWD 1 /* client -> service, translated to the backend */
#define CT_REV 2 /* backend -> client, translated back to the service */

#define CT_F_HAIRPIN 0x01 /* TC: send back out of the veth it came from */
#define CT_F_XDP 0x02     /* created by XDP; XDP applies it */
#define CT_F_FIB 0x04     /* after rewriting: fib lookup and transmit (XDP for its
			   * own entries; TC for replies of XDP's local flows) */
#define CT_F_SNAT 0x08    /* XDP: source rewritten to the node IP */

/* TCP flags an entry has seen in its own direction (ct_val.seen). */
#define CT_SEEN_SYN 0x01 /* a SYN (or SYN-ACK) */
#define CT_SEEN_EST 0x02 /* a segment without SYN: the handshake went on */
#define CT_SEEN_FIN 0x04
#define CT_SEEN_RST 0x08

/* Lifetimes (docs/decisions/0004-conntrack-lifetimes.md): a pair expires
 * when neither entry has seen a packet for its lifetime, which depends on
 * what the pair has seen together. A TCP pair is closed after a RST either
 * way or a FIN both ways; established once a segment without SYN went
 * through; before that, an attempt. Userspace (the provider's conntrack
 * GC) deletes expired pairs; the datapath replaces a closed or expired
 * pair when a new SYN meets it. last_ns is refreshed at most once per
 * CT_REFRESH_NS (and whenever seen changes), so an established flow's
 * packets rarely write their entry. Times are CLOCK_MONOTONIC
 * (bpf_ktime_get_coarse_ns). */
#define CT_REFRESH_NS (1ULL * 1000000000ULL)
#define CT_SYN_TIMEOUT_NS (60ULL * 1000000000ULL)
#define CT_EST_TIMEOUT_NS (21600ULL * 1000000000ULL)
#define CT_CLOSE_TIMEOUT_NS (10ULL * 1000000000ULL)
#define CT_UDP_TIMEOUT_NS (60ULL * 1000000000ULL)

/* Conntrack value: the tuple a matching packet is rewritten to. Entries
 * come in pairs (a CT_FWD and its CT_REV) and both name the backend so that
 * userspace removes them together when the backend goes away. The other
 * entry of a pair is keyed by (nat_daddr, nat_saddr, nat_dport,
 * nat_sport): the reverse of the tuple this one rewrites to. (v2: seen and
 * last_ns; v1 had created_ns and no state.) */
struct ct_val {
	__be32 nat_saddr;
	__be32 nat_daddr;
	__be16 nat_sport;
	__be16 nat_dport;
	__u32 backend_id;
	__u32 svc_id;
	__u8 kind;
	__u8 flags;
	__u8 seen; /* CT_SEEN_*, this entry's direction */
	__u8 pad;
	__u64 last_ns; /* last packet, CLOCK_MONOTONIC, CT_REFRESH_NS granularity */
};

/* Session affinity: (client, backend set) -> backend. client is a netns
 * cookie for the socket hooks (AFF_NETNS) and an IPv4 address for TC and
 * XDP (AFF_ADDR). */
#define AFF_NETNS 1
#define AFF_ADDR 2
struct lb_aff_key {
	__u64 client;
	__u32 id;
	__u32 kind;
};

struct lb_aff_val {
	__u64 last_ns;
	__u32 backend_id;
	__u32 slot;
};

/* Socket translation record, keyed by socket cookie plus an address. With
 * the service address (key addr = VIP) it maps to the chosen backend
 * (sendmsg reuses it while the backend still holds slot in the set); with
 * the backend address it maps back to the service (recvmsg,
 * getpeername). */
struct sk_key {
	__u64 cookie;
	__be32 addr;
	__be16 port;
	__u16 pad;
};

struct sk_val {
	__be32 addr;
	__be16 port;
	__u16 slot; /* the backend's slot in set svc_id (count fits 16 bits) */
	__u32 backend_id;
	__u32 svc_id;
};

/* Per-service and per-backend counters (per-CPU arrays indexed by id).
 * packets/bytes count TC and XDP translations; sock counts connections and
 * datagrams translated by the socket hooks (which never see packets). */
struct lb_counter {
	__u64 packets;
	__u64 bytes;
	__u64 sock;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct lb_svc_key);
	__type(value, struct lb_svc_val);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skf_svc_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct lb_slot_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skf_slot_v1 SEC(".maps");

/* Memory-mappable so that a restarted agent reads it in one copy. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 262144);
	__type(key, __u32);
	__type(value, struct lb_backend);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skf_be_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct ct_key);
	__type(value, struct ct_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skf_ct_v2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct lb_aff_key);
	__type(value, struct lb_aff_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skf_aff_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct sk_key);
	__type(value, struct sk_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skf_sk_v1 SEC(".maps");

/* Network namespace cookies of this node and its pods: the socket hooks of
 * a node act only on sockets of namespaces listed here. The value says
 * whose: the node's own namespace has no per-packet hook, so every socket
 * there is translated; a pod's connected UDP sockets are left to TC on the
 * pod's veth, whose conntrack follows endpoint removal (a socket connected
 * to a backend would keep sending to a removed one). */
#define NETNS_HOST 1
#define NETNS_POD 2
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skf_netns_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct lb_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skf_svccnt_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 262144);
	__type(key, __u32);
	__type(value, struct lb_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skf_becnt_v1 SEC(".maps");

/* Sockets to destroy (bpf_iter.c): (backend set, backend) pairs that
 * ended; set_id 0 stands for every set. Userspace fills it around one
 * iterator pass and empties it again. */
struct sockgc_key {
	__u32 set_id;
	__u32 backend_id;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sockgc_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skf_sockgc_v1 SEC(".maps");

/* Packets the datapath dropped while translating them, per-CPU counters
 * indexed by reason (exported as skiff_ebpf_drops_total{reason}; the
 * numbers are part of the layout). Bounds checks the verifier demands are
 * not counted: no well-formed packet fails them. */
#define DROP_NO_BACKEND 1   /* the chosen backend was deleted meanwhile */
#define DROP_CT_INSERT 2    /* the conntrack insert failed */
#define DROP_SNAT_PORTS 3   /* XDP: no free SNAT port for a remote backend */
#define DROP_NO_NODE_IP 4   /* XDP: a remote backend, but no node address */
#define DROP_NO_ROUTE 5     /* XDP: the fib lookup found no way to the backend */
#define DROP_REWRITE 6      /* rewriting the packet or building a refusal failed */
#define DROP_NO_LOCAL 7     /* a Local traffic policy and no local endpoint */
#define DROP_REASONS 8

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DROP_REASONS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} skf_drop_v1 SEC(".maps");

/* Maglev lookup tables, one inner array per backend set that has external
 * frontends. An inner map's size is its set's table size M, a prime above
 * 100 times the set's backends (at least the configured size), which the
 * frontends carry in maglev_size: inner maps of different sizes share the
 * outer map (BPF_F_INNER_MAP), and lookups are bounds-checked at run time.
 * Inner maps are memory-mappable: userspace rewrites the entries that moved
 * when a backend comes or goes with one aligned 32-bit store each (atomic
 * to a reader), instead of a batch of map updates. (v3: per-set sizes; v2
 * had one size for all.) */
struct maglev_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16381);
	__type(key, __u32);
	__type(value, __u32);
	__uint(map_flags, BPF_F_MMAPABLE | BPF_F_INNER_MAP);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct maglev_inner);
} skf_mglv_v3 SEC(".maps");

#endif /* SKIFF_MAPS_H */
