// Wiring of the local cluster: a fabric namespace with a bridge joining the nodes, in each node a
// bridge for its pods and routes between nodes, and each pod wired by the node's CNI configuration
// (the standard bridge and host-local plugins, run by cni.ts) as a kubelet's runtime wires it.
// Nothing here gets a default route: cluster addresses are reachable only inside the cluster, and
// the root namespace holds `unreachable` routes for them so a socket opened there fails at once.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../controller/store/store.js';
import { AmbitError } from '../../shared/errors.js';
import { nodeCniDirs } from '../state.js';
import { type NodeLayout, prefix, type Topology } from '../topology.js';
import { type Attachment, CniExecutor, cniVersion, firstNetworkList, type NetworkList, systemPluginDir } from './cni.js';
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
    // Made here, not by the bridge plugin: the plugin finds br0 with the gateway address it would
    // give and keeps it as it is (its own "set the MAC to itself" only follows adding the address).
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

/** The local cluster's pod network, as its conflist names it (host-local keeps its leases under this name). */
export const podNetworkName = 'ambit-local';
export const podConflistName = `10-${podNetworkName}.conflist`;

/**
 * A node's pod network as the standard plugins make it: `bridge` on the node's br0 (made at node
 * creation with its fixed MAC and gateway address, which the plugin finds and keeps), hairpin mode
 * on every pod's port (a pod reaching itself through a Service), no masquerade and no default
 * route; `host-local` hands out the node's pod subnet round robin (an address freed a moment ago is
 * not given again at once, while its old owner's MAC is still in neighbours' caches) and routes
 * only the cluster's blocks through the bridge.
 */
export function nodeConflist(t: Topology, n: NodeLayout, ipamDir: string): Record<string, unknown> {
  const gw = n.gateway;
  return {
    cniVersion,
    name: podNetworkName,
    plugins: [
      {
        type: 'bridge',
        bridge: 'br0',
        isGateway: true,
        isDefaultGateway: false,
        hairpinMode: true,
        ipMasq: false,
        ipam: {
          type: 'host-local',
          dataDir: ipamDir,
          ranges: [[{ subnet: n.podCIDR.text, gateway: gw }]],
          routes: [t.podCIDR, t.serviceCIDR, t.nodeCIDR].map((c) => ({ dst: c.text, gw })),
        },
      },
    ],
  };
}

/** Writes every node's conflist into its configuration directory (at `ambit up`), and makes its plugin directory. */
export function writeNodeCniConfig(stateDir: string, t: Topology): void {
  for (const n of t.nodes) {
    const dirs = nodeCniDirs(stateDir, n.name);
    mkdirSync(dirs.confDir, { recursive: true });
    mkdirSync(dirs.binDir, { recursive: true });
    writeFileAtomic(join(dirs.confDir, podConflistName), JSON.stringify(nodeConflist(t, n, dirs.ipamDir), null, 2) + '\n');
  }
}

/**
 * The loopback network a container runtime attaches to every sandbox before the configured one
 * (containerd's CRI does it with the `loopback` plugin, so no node's conflist lists it).
 */
const loopbackNetwork: NetworkList = { cniVersion, name: 'cni-loopback', plugins: [{ type: 'loopback' }], source: "the runtime's loopback network" };

/** A pod sandbox's network identity: its namespace and the ids the plugins are given. */
export interface PodSandbox {
  namespace: string;
  name: string;
  uid: string;
  /** The netns name (under /run/netns). */
  netns: string;
}

/**
 * The kubelet's sandbox id for a pod (the infra container's id in CRI): derived from the pod's uid,
 * so a restarted controller finds the cached results of the sandboxes it adopts.
 */
export function sandboxId(uid: string): string {
  return createHash('sha256').update(`ambit-sandbox:${uid}`).digest('hex');
}

/** One node's kubelet network side: pod sandboxes wired through the node's CNI configuration. */
export class NodeNetwork {
  readonly cni: CniExecutor;
  private readonly confDir: string;

  constructor(stateDir: string, readonly node: NodeLayout) {
    const dirs = nodeCniDirs(stateDir, node.name);
    this.confDir = dirs.confDir;
    this.cni = new CniExecutor({ binDirs: [dirs.binDir, systemPluginDir], cacheDir: dirs.cacheDir, pluginNetns: `/run/netns/${node.netns}` });
  }

  /**
   * Makes the pod's network namespace and runs ADD of the loopback network, then of the first
   * network in the node's configuration directory (read now, as the runtime reads it at each
   * sandbox). Returns the pod's address from the IPAM result. A failed ADD is deleted again (DEL of
   * everything, the namespace removed) before its error is thrown; the caller retries later.
   * A namespace left by an attempt that never finished (the controller died in it) is removed first.
   */
  async createPodNetwork(s: PodSandbox): Promise<string> {
    if (existsSync(`/run/netns/${s.netns}`)) await this.deletePodNetwork(s);
    await run('ip', ['netns', 'add', s.netns]);
    try {
      await this.cni.add(loopbackNetwork, this.attachment(s, 'lo'));
      const result = await this.cni.add(firstNetworkList(this.confDir), this.attachment(s, 'eth0'));
      const eth0 = result.interfaces?.findIndex((i) => i.name === 'eth0' && i.sandbox);
      const ip = result.ips?.find((a) => !a.address.includes(':') && (a.interface === undefined || a.interface === eth0))?.address.split('/')[0];
      if (!ip) throw new AmbitError('CniNoAddress', `network ${podNetworkName} gave pod ${s.namespace}/${s.name} no IPv4 address on eth0 (result: ${JSON.stringify(result.ips ?? [])})`);
      return ip;
    } catch (err) {
      // What the chain made is released; the namespace goes even if a DEL failed (the next attempt makes a new one).
      await this.deletePodNetwork(s).catch(() => undefined);
      await run('ip', ['netns', 'del', s.netns], { okCodes: [1] });
      throw err;
    }
  }

  /**
   * DEL of every network the sandbox was given (with the configuration and result its ADD cached),
   * then the namespace, which takes the pod's end of the veth with it. A failed DEL throws with the
   * namespace kept, so it can be tried again.
   */
  async deletePodNetwork(s: PodSandbox): Promise<void> {
    const id = sandboxId(s.uid);
    const netns = `/run/netns/${s.netns}`;
    const cached = this.cni.attachments().filter((a) => a.containerId === id && a.networkName !== loopbackNetwork.name);
    // Never made (a pod deleted before its first attempt): nothing to delete. An ADD that died
    // before its result was cached still left the namespace, made before it.
    if (cached.length === 0 && !existsSync(netns) && !this.cni.cached(loopbackNetwork.name, id, 'lo')) return;
    if (cached.length) for (const a of cached) await this.cni.del(a.networkName, { containerId: id, netns, ifName: a.ifName });
    else await this.delUncached(s);
    await this.cni.del(loopbackNetwork.name, { containerId: id, netns, ifName: 'lo' }, loopbackNetwork);
    await run('ip', ['netns', 'del', s.netns], { okCodes: [1] });
  }

  /** Sandboxes with cached results that `known` does not hold: what a previous run left behind. */
  strayAttachments(known: Set<string>): { containerId: string; netns: string }[] {
    const stray = new Map<string, { containerId: string; netns: string }>();
    for (const a of this.cni.attachments()) if (!known.has(a.containerId)) stray.set(a.containerId, { containerId: a.containerId, netns: a.netns });
    return [...stray.values()];
  }

  /** Deletes a stray sandbox by its cached results alone (its pod is gone from the store). */
  async deleteStray(a: { containerId: string; netns: string }): Promise<void> {
    for (const c of this.cni.attachments().filter((x) => x.containerId === a.containerId)) await this.cni.del(c.networkName, { containerId: c.containerId, netns: c.netns, ifName: c.ifName });
    const name = a.netns.replace(/^\/run\/netns\//, '');
    if (name.startsWith(`${prefix}-pod-`)) await run('ip', ['netns', 'del', name], { okCodes: [1] });
  }

  /** A DEL without a cached ADD (an ADD that died before its result was kept): with the configuration in force, if there is one. */
  private async delUncached(s: PodSandbox): Promise<void> {
    let list: NetworkList;
    try {
      list = firstNetworkList(this.confDir);
    } catch {
      return;
    }
    await this.cni.del(list.name, this.attachment(s, 'eth0'), list);
  }

  private attachment(s: PodSandbox, ifName: string): Attachment {
    const id = sandboxId(s.uid);
    return {
      containerId: id,
      netns: `/run/netns/${s.netns}`,
      ifName,
      args: [
        ['IgnoreUnknown', '1'],
        ['K8S_POD_NAMESPACE', s.namespace],
        ['K8S_POD_NAME', s.name],
        ['K8S_POD_INFRA_CONTAINER_ID', id],
        ['K8S_POD_UID', s.uid],
      ],
    };
  }
}

export async function pidsInNetns(netns: string): Promise<number[]> {
  const out = await run('ip', ['netns', 'pids', netns], { okCodes: [1] });
  return out.split('\n').filter(Boolean).map(Number);
}

/** The node bridge's own MAC address: locally administered, one per node. */
export function bridgeMac(nodeIndex: number): string {
  return `02:a6:b1:70:${(nodeIndex >> 8).toString(16).padStart(2, '0')}:${(nodeIndex & 0xff).toString(16).padStart(2, '0')}`;
}
