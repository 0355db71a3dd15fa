/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Service lookup, backend selection (random slots, session affinity,
 * Maglev), conntrack records and counters: the logic the socket, TC and XDP
 * programs share. */
#ifndef SKIFF_LB_H
#define SKIFF_LB_H

#include "common.h"
#include "config.h"
#include "maps.h"
#include "pkt.h"

#define NSEC_PER_SEC 1000000000ULL

static __always_inline struct lb_svc_val *lb_svc_lookup(__be32 addr, __be16 port, __u8 proto,
							__u8 scope)
{
	struct lb_svc_key k = { .addr = addr, .port = port, .proto = proto, .scope = scope };

	return bpf_map_lookup_elem(&skf_svc_v1, &k);
}

/* The backend with id, or NULL when id is 0 or the backend was deleted. */
static __always_inline struct lb_backend *lb_backend(__u32 id)
{
	struct lb_backend *be;

	if (!id)
		return NULL;
	be = bpf_map_lookup_elem(&skf_be_v1, &id);
	if (!be || !be->addr)
		return NULL;
	return be;
}

static __always_inline __u32 lb_slot(__u32 id, __u32 slot)
{
	struct lb_slot_key k = { .id = id, .slot = slot };
	__u32 *be = bpf_map_lookup_elem(&skf_slot_v1, &k);

	return be ? *be : 0;
}

/* Maglev: the backend at hash mod M in the set's lookup table, M the
 * table size the frontend carries. 0 when there is no entry: no table, or,
 * for the moment a set changes table size, a frontend and a table that
 * disagree (the caller then picks by hashed slot). */
static __always_inline __u32 lb_maglev(const struct lb_svc_val *svc, __u32 hash)
{
	__u32 id = svc->id, m = svc->maglev_size, idx;
	__u32 *be;
	void *table;

	if (!m)
		return 0;
	idx = hash % m;
	table = bpf_map_lookup_elem(&skf_mglv_v3, &id);
	if (!table)
		return 0;
	be = bpf_map_lookup_elem(table, &idx);
	return be ? *be : 0;
}

#define LB_PICK_RANDOM 0
#define LB_PICK_HASH 1
#define LB_PICK_MAGLEV 2

/* Whether backend be still holds slot in svc's set: what makes a
 * remembered choice (affinity, an unconnected socket's backend) valid.
 * A backend that left the set, or whose id was freed and reused
 * elsewhere, no longer does. */
static __always_inline int lb_holds_slot(const struct lb_svc_val *svc, __u32 slot, __u32 be)
{
	return slot < svc->count && lb_slot(svc->id, slot) == be;
}

/* Picks a backend id for a new connection to svc (count > 0). With session
 * affinity a recent choice for the same client is reused while that
 * backend still holds its slot. *slotp, when given, gets the slot of the
 * choice (NO_SLOT for a Maglev pick). */
#define NO_SLOT 0xffffffff
static __always_inline __u32 lb_select(const struct lb_svc_val *svc, __u64 client,
				       __u32 aff_kind, __u32 hash, int how, __u32 *slotp)
{
	struct lb_aff_key ak = { .client = client, .id = svc->id, .kind = aff_kind };
	struct lb_aff_val av = {};
	struct lb_aff_val *cur;
	__u64 now = 0;
	__u32 slot = 0, be;

	if (svc->flags & SVC_F_AFFINITY) {
		now = bpf_ktime_get_ns();
		cur = bpf_map_lookup_elem(&skf_aff_v1, &ak);
		if (cur && now - cur->last_ns <= (__u64)svc->affinity_timeout * NSEC_PER_SEC &&
		    lb_holds_slot(svc, cur->slot, cur->backend_id)) {
			cur->last_ns = now;
			if (slotp)
				*slotp = cur->slot;
			return cur->backend_id;
		}
	}
	/* Maglev needs no per-client state; with affinity the choice must be
	 * remembered with its slot, so affinity services use hashed slots. */
	if (how == LB_PICK_MAGLEV) {
		if ((svc->flags & (SVC_F_MAGLEV | SVC_F_AFFINITY)) == SVC_F_MAGLEV) {
			be = lb_maglev(svc, hash);
			if (be) {
				if (slotp)
					*slotp = NO_SLOT;
				return be;
			}
		}
		how = LB_PICK_HASH;
	}
	if (how == LB_PICK_RANDOM)
		slot = bpf_get_prandom_u32() % svc->count;
	else
		slot = hash % svc->count;
	be = lb_slot(svc->id, slot);
	if (slotp)
		*slotp = slot;
	if (be && (svc->flags & SVC_F_AFFINITY)) {
		av.last_ns = now;
		av.backend_id = be;
		av.slot = slot;
		bpf_map_update_elem(&skf_aff_v1, &ak, &av, BPF_ANY);
	}
	return be;
}

/* Counts a drop for reason and returns verdict (XDP_DROP, TC_ACT_SHOT). */
static __always_inline int lb_drop(__u32 reason, int verdict)
{
	__u64 *c = bpf_map_lookup_elem(&skf_drop_v1, &reason);

	if (c)
		(*c)++;
	return verdict;
}

static __always_inline void lb_count_pkt(__u32 svc_id, __u32 be_id, __u64 bytes)
{
	struct lb_counter *c;

	c = bpf_map_lookup_elem(&skf_svccnt_v1, &svc_id);
	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
	c = bpf_map_lookup_elem(&skf_becnt_v1, &be_id);
	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

static __always_inline void lb_count_sock(__u32 svc_id, __u32 be_id)
{
	struct lb_counter *c;

	c = bpf_map_lookup_elem(&skf_svccnt_v1, &svc_id);
	if (c)
		c->sock++;
	c = bpf_map_lookup_elem(&skf_becnt_v1, &be_id);
	if (c)
		c->sock++;
}

static __always_inline struct ct_val *ct_lookup(const struct pkt *p)
{
	struct ct_key k = {
		.saddr = p->saddr, .daddr = p->daddr,
		.sport = p->sport, .dport = p->dport, .proto = p->proto,
	};

	return bpf_map_lookup_elem(&skf_ct_v2, &k);
}

/* The conntrack clock: CLOCK_MONOTONIC at tick granularity, cheaper than
 * bpf_ktime_get_ns and plenty for lifetimes of seconds. */
static __always_inline __u64 ct_now(void)
{
	return bpf_ktime_get_coarse_ns();
}

/* What a packet shows of its TCP connection (CT_SEEN_*); 0 for UDP. */
static __always_inline __u8 ct_seen_of(const struct pkt *p)
{
	__u8 seen;

	if (p->proto != IPPROTO_TCP)
		return 0;
	seen = (p->tcp_flags & TCP_FLAG_SYN) ? CT_SEEN_SYN : CT_SEEN_EST;
	if (p->tcp_flags & TCP_FLAG_FIN)
		seen |= CT_SEEN_FIN;
	if (p->tcp_flags & TCP_FLAG_RST)
		seen |= CT_SEEN_RST;
	return seen;
}

/* Notes a packet on its entry: what it shows of the connection, and the
 * time, at most once per CT_REFRESH_NS. Most packets of an established
 * flow write nothing. */
static __always_inline void ct_touch(struct ct_val *cv, const struct pkt *p, __u64 now)
{
	__u8 seen = cv->seen | ct_seen_of(p);

	if (seen != cv->seen || now - cv->last_ns >= CT_REFRESH_NS) {
		cv->seen = seen;
		cv->last_ns = now;
	}
}

/* Whether a pair whose entries saw a and b has ended: a RST either way or
 * a FIN both ways. */
static __always_inline int ct_closed(__u8 a, __u8 b)
{
	return ((a | b) & CT_SEEN_RST) || (a & b & CT_SEEN_FIN);
}

/* A pair's lifetime after its last packet (mirrored by the Go GC). */
static __always_inline __u64 ct_lifetime(__u8 proto, __u8 a, __u8 b)
{
	if (proto != IPPROTO_TCP)
		return CT_UDP_TIMEOUT_NS;
	if (ct_closed(a, b))
		return CT_CLOSE_TIMEOUT_NS;
	if ((a | b) & CT_SEEN_EST)
		return CT_EST_TIMEOUT_NS;
	return CT_SYN_TIMEOUT_NS;
}

/* A new connection attempt (SYN without ACK) met fv, the forward entry of
 * its tuple. The old pair gives way, deleted here so the caller balances
 * the SYN afresh, when its flow ended (RST, FIN both ways), outlived its
 * lifetime, or lost its reverse entry (LRU eviction, or a newer flow took
 * the key). Returns 1 then; 0 keeps the pair (every other packet, and a
 * retransmitted SYN of an attempt in progress). */
static __always_inline int ct_syn_replaces(const struct pkt *p, const struct ct_val *fv, __u64 now)
{
	struct ct_key fk = {
		.saddr = p->saddr, .daddr = p->daddr,
		.sport = p->sport, .dport = p->dport, .proto = p->proto,
	};
	struct ct_key rk = {
		.saddr = fv->nat_daddr, .daddr = fv->nat_saddr,
		.sport = fv->nat_dport, .dport = fv->nat_sport, .proto = p->proto,
	};
	struct ct_val *rv;
	__u64 last;

	if (p->proto != IPPROTO_TCP || (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN ||
	    fv->kind != CT_FWD)
		return 0;
	rv = bpf_map_lookup_elem(&skf_ct_v2, &rk);
	if (rv && (rv->kind != CT_REV || rv->nat_daddr != p->saddr || rv->nat_sport != p->dport ||
		   rv->nat_dport != p->sport || rv->nat_saddr != p->daddr))
		rv = NULL; /* not this pair's */
	if (rv) {
		last = fv->last_ns > rv->last_ns ? fv->last_ns : rv->last_ns;
		if (!ct_closed(fv->seen, rv->seen) &&
		    now - last <= ct_lifetime(p->proto, fv->seen, rv->seen))
			return 0;
		bpf_map_delete_elem(&skf_ct_v2, &rk);
	}
	bpf_map_delete_elem(&skf_ct_v2, &fk);
	return 1;
}

/* Records a translated flow: fwd (the packet's own tuple) rewrites to
 * (nsaddr:nsport -> ndaddr:ndport); the reverse entry is keyed by the
 * reply's tuple and rewrites it back. rev_flags/fwd_flags mark where each
 * is applied. update_flags lets the SNAT path insist on a fresh reverse
 * key (BPF_NOEXIST). Returns 0 on success. */
static __always_inline int ct_create(const struct pkt *p, __be32 nsaddr, __be32 ndaddr,
				     __be16 nsport, __be16 ndport, __u32 be_id, __u32 svc_id,
				     __u8 fwd_flags, __u8 rev_flags, __u64 update_flags)
{
	__u64 now = ct_now();
	struct ct_key fk = {
		.saddr = p->saddr, .daddr = p->daddr,
		.sport = p->sport, .dport = p->dport, .proto = p->proto,
	};
	struct ct_val fv = {
		.nat_saddr = nsaddr, .nat_daddr = ndaddr,
		.nat_sport = nsport, .nat_dport = ndport,
		.backend_id = be_id, .svc_id = svc_id,
		.kind = CT_FWD, .flags = fwd_flags, .seen = ct_seen_of(p), .last_ns = now,
	};
	struct ct_key rk = {
		.saddr = ndaddr, .daddr = nsaddr,
		.sport = ndport, .dport = nsport, .proto = p->proto,
	};
	struct ct_val rv = {
		.nat_saddr = p->daddr, .nat_daddr = p->saddr,
		.nat_sport = p->dport, .nat_dport = p->sport,
		.backend_id = be_id, .svc_id = svc_id,
		.kind = CT_REV, .flags = rev_flags, .last_ns = now,
	};

	if (bpf_map_update_elem(&skf_ct_v2, &rk, &rv, update_flags))
		return -1;
	if (bpf_map_update_elem(&skf_ct_v2, &fk, &fv, BPF_ANY))
		return -1;
	return 0;
}

#endif /* SKIFF_LB_H */
