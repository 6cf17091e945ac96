// Wiring of the local cluster the way a bridge CNI would do it: a fabric namespace with a bridge
// joining the nodes, in each node a bridge for its pods, a veth per pod, and routes between nodes.
// Nothing here gets a default route: cluster addresses are reachable only inside the cluster, and
// the root namespace holds `unreachable` routes for them so a socket opened there fails at once.

import { type NodeLayout, podHostLink, type Topology } from '../topology.js';
import { inNetns, ipBatch, listNetns, run } from './exec.js';

export async function addRootGuards(t: Topology): Promise<void> {
  await ipBatch(null, [t.podCIDR, t.serviceCIDR, t.nodeCIDR].map((c) => `route replace unreachable ${c.text}`));
}

export async function removeRootGuards(cidrs: string[]): Promise<void> {
  const routes = await run('ip', ['route', 'show', 'type', 'unreachable']);
  for (const c of cidrs) {
    if (routes.split('\n').some((l) => l.startsWith(`unreachable ${c}`))) await run('ip', ['route', 'del', 'unreachable', c], { okCodes: [2] });
  }
}

export async function createNodes(t: Topology): Promise<void> {
  const existing = new Set(await listNetns());
  // The first `ip netns add` makes /run/netns a mount point; run it alone before any in parallel.
  if (!existing.has(t.fabricNetns)) await run('ip', ['netns', 'add', t.fabricNetns]);
  await ipBatch(t.fabricNetns, ['link set lo up', 'link add fabric0 type bridge', 'link set fabric0 up']);
  await Promise.all([...t.nodes.map((n) => createNode(t, n, existing.has(n.netns))), createControlPlane(t, existing.has(t.control.netns))]);
}

/**
 * The control-plane host: one address on the fabric, and routes to each node's pod subnet through
 * that node, as a cluster's control-plane nodes are on the pod network (its Prometheus scrapes pods
 * that ask for it, waypoints among them). No default route.
 */
async function createControlPlane(t: Topology, exists: boolean): Promise<void> {
  const c = t.control;
  if (!exists) await run('ip', ['netns', 'add', c.netns]);
  await ipBatch(t.fabricNetns, [`link add ${c.fabricLink} type veth peer name eth0 netns ${c.netns}`, `link set ${c.fabricLink} master fabric0 up`]);
  await ipBatch(c.netns, ['link set lo up', `addr add ${c.ip}/${t.nodeCIDR.bits} dev eth0`, 'link set eth0 up', ...t.nodes.map((n) => `route add ${n.podCIDR.text} via ${n.ip} dev eth0`)]);
}

async function createNode(t: Topology, n: NodeLayout, exists: boolean): Promise<void> {
  if (!exists) await run('ip', ['netns', 'add', n.netns]);
  await ipBatch(t.fabricNetns, [`link add ${n.fabricLink} type veth peer name eth0 netns ${n.netns}`, `link set ${n.fabricLink} master fabric0 up`]);
  const routes = t.nodes.filter((o) => o !== n).map((o) => `route add ${o.podCIDR.text} via ${o.ip} dev eth0`);
  await ipBatch(n.netns, [
    'link set lo up',
    `addr add ${n.ip}/${t.nodeCIDR.bits} dev eth0`,
    'link set eth0 up',
    // A fixed address: a bridge otherwise takes the lowest of its ports' addresses, which changes
    // as pods come and go, and the pods' cached gateway address goes stale (seconds without a route).
    `link add br0 address ${bridgeMac(n.index)} type bridge`,
    `addr add ${n.gateway}/24 dev br0`,
    'link set br0 up',
    // Service addresses that no rule translated end here, where the services table refuses them.
    `route add local ${t.serviceCIDR.text} dev lo`,
    ...routes,
  ]);
  // Nodes route between their pods and the fabric; a new namespace starts with forwarding off.
  // Bridged pod-to-pod traffic must pass netfilter so Service NAT is undone on same-node replies.
  await inNetns(n.netns, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.bridge.bridge-nf-call-iptables=1']);
}

export interface PodWiring {
  node: NodeLayout;
  netns: string;
  ip: string;
  topology: Topology;
}

export async function createPodNetwork(p: PodWiring): Promise<void> {
  const hostLink = podHostLink(p.ip);
  await run('ip', ['netns', 'add', p.netns]);
  try {
    await ipBatch(p.node.netns, [`link add ${hostLink} type veth peer name eth0 netns ${p.netns}`, `link set ${hostLink} master br0 up`]);
    await ipBatch(p.netns, [
      'link set lo up',
      `addr add ${p.ip}/24 dev eth0`,
      'link set eth0 up',
      // Only cluster blocks are routed, through the node; there is deliberately no default route.
      `route add ${p.topology.podCIDR.text} via ${p.node.gateway} dev eth0`,
      `route add ${p.topology.serviceCIDR.text} via ${p.node.gateway} dev eth0`,
      `route add ${p.topology.nodeCIDR.text} via ${p.node.gateway} dev eth0`,
    ]);
  } catch (err) {
    await deletePodNetwork(p.netns);
    throw err;
  }
}

/** Deleting the namespace destroys its veth, and with it the peer on the node bridge. */
export async function deletePodNetwork(netns: string): Promise<void> {
  await run('ip', ['netns', 'del', netns], { okCodes: [1] });
}

export async function pidsInNetns(netns: string): Promise<number[]> {
  const out = await run('ip', ['netns', 'pids', netns], { okCodes: [1] });
  return out.split('\n').filter(Boolean).map(Number);
}

/** The node bridge's own MAC address: locally administered, one per node. */
export function bridgeMac(nodeIndex: number): string {
  return `02:a6:b1:70:${(nodeIndex >> 8).toString(16).padStart(2, '0')}:${(nodeIndex & 0xff).toString(16).padStart(2, '0')}`;
}
