// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The eBPF capture mode: the same redirect as the netfilter mode (agent/capture/redirect.ts), done
// by programs attached to each enrolled pod's cgroup and network namespace instead of nat rules.
//
// Outbound: cgroup/connect4 on the pod's cgroup rewrites a TCP connect() to the agent's listener
// inside the pod (127.0.0.1:15001) and keeps the original destination under the socket's cookie;
// sockops re-keys it, once the local port is chosen, to {netns cookie, local address, local port},
// which is what the agent sees as the peer of the accepted connection and looks up in tuple_orig.
// Inbound: a tc program on the ingress of the pod's interface (eth0) hands every new TCP connection
// (except from the health-probe source; HBONE ends on the node's 15008, never in the pod, so no
// port of the pod is exempt) to the agent's 15006 listener, so the accepted
// socket's local address is the original destination, as with TPROXY. Only packets arriving from
// outside the pod pass there: the agent's own connections to the app, made inside the pod, go over
// loopback and are never steered back (sk_lookup cannot tell them apart, tc ingress never sees them).
//
// The agent (native/bpf.ts) loads this object once, pins the maps under /sys/fs/bpf/ambit/<node>
// and each pod's cgroup links beside them; the tc filter lives on the pod's interface. A restarted
// agent finds all of it in place. The map layouts are mirrored in native/bpf-maps.ts; keep the two
// in step.

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define SOL_IP 0

/* Where a pod's outbound connections go: the agent's listener, network byte order. */
struct pod_config {
  __u32 agent_ip4;
  __u16 agent_port;
  __u16 pad;
};

/* An original destination, network byte order. */
struct destination {
  __u32 ip4;
  __u16 port;
  __u16 pad;
};

/* A redirected connection as the agent sees its peer; port in host byte order. */
struct tuple {
  __u64 netns_cookie;
  __u32 ip4;
  __u16 port;
  __u16 pad;
};

struct settings {
  /* Health probes come from here (the node) and must reach the app directly; 0 for none. */
  __u32 probe_ip4;
};

enum stat {
  STAT_OUTBOUND_REDIRECTED,
  STAT_OUTBOUND_KEYED,
  STAT_OUTBOUND_UNKEYED,
  STAT_INBOUND_ASSIGNED,
  STAT_INBOUND_NO_LISTENER,
  STAT_MAX,
};

/* Keyed by the pod's cgroup id (the cgroup directory's inode). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, __u64);
  __type(value, struct pod_config);
} pod_config SEC(".maps");

/* Between connect4 and sockops: socket cookie -> original destination. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, __u64);
  __type(value, struct destination);
} cookie_orig SEC(".maps");

/* What the agent reads after accept(), and deletes: tuple -> original destination. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct tuple);
  __type(value, struct destination);
} tuple_orig SEC(".maps");

/* The agent's inbound (15006) listener of each captured pod, keyed by the pod's address. */
struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, 4096);
  __type(key, __u32);
  __type(value, __u64);
} inbound_listeners SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct settings);
} settings SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, STAT_MAX);
  __type(key, __u32);
  __type(value, __u64);
} stats SEC(".maps");

static __always_inline void count(__u32 which) {
  __u64 *n = bpf_map_lookup_elem(&stats, &which);
  if (n) __sync_fetch_and_add(n, 1);
}

SEC("cgroup/connect4")
int ambit_connect4(struct bpf_sock_addr *ctx) {
  if (ctx->protocol != IPPROTO_TCP) return 1;
  __u32 dst = ctx->user_ip4;
  /* Loopback stays inside the pod, as in the netfilter mode. */
  if ((bpf_ntohl(dst) >> 24) == 127) return 1;
  __u64 cgroup = bpf_get_current_cgroup_id();
  struct pod_config *cfg = bpf_map_lookup_elem(&pod_config, &cgroup);
  if (!cfg) return 1;
  struct destination orig = { .ip4 = dst, .port = (__u16)ctx->user_port };
  __u64 cookie = bpf_get_socket_cookie(ctx);
  /* Without a record the agent could not forward, so refuse rather than connect blind. */
  if (bpf_map_update_elem(&cookie_orig, &cookie, &orig, BPF_ANY)) return 0;
  ctx->user_ip4 = cfg->agent_ip4;
  ctx->user_port = cfg->agent_port;
  count(STAT_OUTBOUND_REDIRECTED);
  return 1;
}

SEC("sockops")
int ambit_sockops(struct bpf_sock_ops *ops) {
  /* The local port is chosen by now and the SYN not yet sent, so the agent cannot accept first. */
  if (ops->op != BPF_SOCK_OPS_TCP_CONNECT_CB) return 1;
  __u64 cookie = bpf_get_socket_cookie(ops);
  struct destination *orig = bpf_map_lookup_elem(&cookie_orig, &cookie);
  if (!orig) return 1;
  struct tuple key = { .netns_cookie = bpf_get_netns_cookie(ops), .ip4 = ops->local_ip4, .port = (__u16)ops->local_port };
  struct destination value = *orig;
  bpf_map_delete_elem(&cookie_orig, &cookie);
  if (bpf_map_update_elem(&tuple_orig, &key, &value, BPF_ANY)) count(STAT_OUTBOUND_UNKEYED);
  else count(STAT_OUTBOUND_KEYED);
  return 1;
}

/* The first packet (SYN) of a connection arriving on the pod's interface; 0 when it is not one. */
static __always_inline struct tcphdr *syn_of(struct __sk_buff *skb, struct iphdr **ipp) {
  void *data = (void *)(long)skb->data;
  void *end = (void *)(long)skb->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP)) return 0;
  struct iphdr *ip = (void *)(eth + 1);
  if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP || ip->ihl < 5) return 0;
  struct tcphdr *tcp = (void *)ip + ip->ihl * 4;
  if ((void *)(tcp + 1) > end || !tcp->syn || tcp->ack) return 0;
  *ipp = ip;
  return tcp;
}

SEC("tc")
int ambit_inbound(struct __sk_buff *skb) {
  struct iphdr *ip = 0;
  struct tcphdr *tcp = syn_of(skb, &ip);
  /* Later packets find the accepted socket by their own addresses: only SYNs are steered. */
  if (!tcp || !ip) return TC_ACT_OK;
  __u32 zero = 0;
  struct settings *s = bpf_map_lookup_elem(&settings, &zero);
  if (s && s->probe_ip4 && s->probe_ip4 == ip->saddr) return TC_ACT_OK;
  __u32 pod = ip->daddr;
  struct bpf_sock *listener = bpf_map_lookup_elem(&inbound_listeners, &pod);
  if (!listener) {
    /* Attached means captured: with no agent listening (a restart), drop the SYN and let the
       client retransmit, rather than let it reach the app uncaptured. */
    count(STAT_INBOUND_NO_LISTENER);
    return TC_ACT_SHOT;
  }
  long err = bpf_sk_assign(skb, listener, 0);
  bpf_sk_release(listener);
  if (err) {
    count(STAT_INBOUND_NO_LISTENER);
    return TC_ACT_SHOT;
  }
  count(STAT_INBOUND_ASSIGNED);
  return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
