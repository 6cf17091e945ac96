// The node agents of the local cluster, run the way a DaemonSet with host networking would run
// them: one per node, inside the node's network namespace and in its own cgroup, restarted when it
// exits. They are started by the runtime and survive a controller restart, like pods.

import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { writeFileAtomic } from '../../controller/store/store.js';
import { defaultAdminPort } from '../../agent/config.js';
import { clusterCgroupRoot, createCgroup, isAlive, spawnInCgroup } from '../kubelet/pods.js';
import type { NodeLayout } from '../topology.js';

export interface AgentLaunch {
  /** The CLI's compiled entry, started as `ambit agent`. */
  cliEntry: string;
  /** Every controller replica's wss URL; the agent moves to the next when one fails. */
  controllerUrls: string[];
  /** The roots the agents trust the controller by, written from the mesh's TrustBundle (controllerCaPath). */
  caFile: string;
  /** Address the query API binds (loopback unless the cluster file says otherwise). */
  adminAddress: string;
  redirect: 'iptables' | 'ebpf';
  /** A TokenRequest for the agents' ServiceAccount, bound to `node`: what the kubelet projects into a DaemonSet's pod. */
  requestToken: (node: string) => Promise<{ token: string; expires: Date }>;
}

export const agentDir = (stateDir: string, node: string) => join(stateDir, 'agents', node);
/**
 * The mesh's roots, which the agents trust the controller by: the kubelet writes them from the
 * TrustBundle the controller publishes, as it projects a ConfigMap (Istio's istio-ca-root-cert) into
 * a pod, and holds the agents until it exists.
 */
export const controllerCaPath = (stateDir: string) => join(stateDir, 'agents', 'controller-ca.pem');
export const agentCgroup = (node: string) => join(clusterCgroupRoot(), node, 'agent');
export const agentPidPath = (stateDir: string, node: string) => join(agentDir(stateDir, node), 'pid');
export const adminTokenPath = (stateDir: string, node: string) => join(agentDir(stateDir, node), 'admin-token');
/** The agent's ServiceAccount token, bound to its node, as a projected volume holds it. */
export const agentTokenPath = (stateDir: string, node: string) => join(agentDir(stateDir, node), 'token');

/**
 * Keeps each node's agent token fresh as the kubelet keeps a projected ServiceAccount token: asked
 * for when missing, and again once 80% of its life has passed. The agent reads the file at each use.
 */
export class AgentTokens {
  private readonly refreshAt = new Map<string, number>();

  constructor(
    private readonly stateDir: string,
    private readonly request: AgentLaunch['requestToken'],
  ) {}

  /** Asks for a new token when due; a failed request leaves the current file for the next try. */
  async refresh(node: string, now = Date.now()): Promise<void> {
    const path = agentTokenPath(this.stateDir, node);
    if (now < (this.refreshAt.get(node) ?? 0) && existsSync(path)) return;
    const { token, expires } = await this.request(node);
    mkdirSync(agentDir(this.stateDir, node), { recursive: true });
    writeFileAtomic(path, token, 0o600);
    this.refreshAt.set(node, now + 0.8 * (expires.getTime() - now));
  }
}

export function agentPid(stateDir: string, node: string): number | undefined {
  const path = agentPidPath(stateDir, node);
  if (!existsSync(path)) return undefined;
  const pid = Number(readFileSync(path, 'utf8'));
  return isAlive(pid, agentCgroup(node)) ? pid : undefined;
}

/** Starts a node's agent; `readyFile` is written by it once it serves every pod of the node. */
export function startAgent(l: AgentLaunch, stateDir: string, node: NodeLayout, readyFile?: string): number {
  const dir = agentDir(stateDir, node.name);
  mkdirSync(dir, { recursive: true });
  if (!existsSync(adminTokenPath(stateDir, node.name))) writeFileAtomic(adminTokenPath(stateDir, node.name), randomBytes(32).toString('base64url'), 0o600);
  const cgroup = agentCgroup(node.name);
  createCgroup(cgroup);
  const argv = [
    process.execPath,
    // For profiling the agents of a local cluster, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
    // (stop an agent with SIGTERM to have its profile written).
    ...(process.env.AMBIT_AGENT_NODE_OPTIONS?.split(' ').filter(Boolean) ?? []),
    l.cliEntry,
    'agent',
    '--node',
    node.name,
    '--controller',
    l.controllerUrls.join(','),
    '--controller-ca',
    l.caFile,
    '--token-file',
    agentTokenPath(stateDir, node.name),
    '--admin-token-file',
    adminTokenPath(stateDir, node.name),
    '--admin-listen',
    `${l.adminAddress}:${defaultAdminPort}`,
    '--redirect',
    l.redirect,
    // The CNI plugin's socket, one per node (the default path is one per host). No installer until
    // the local kubelet runs a CNI chain: the annotations still say where pods are.
    '--cni-socket',
    join(dir, 'cni.sock'),
    '--cni-conf-dir',
    'none',
    ...(readyFile ? ['--ready-file', readyFile] : []),
    // The agents' event loops (their default: 2, or the cores if fewer), e.g. 1 to compare in a benchmark.
    ...(process.env.AMBIT_AGENT_WORKERS ? ['--workers', process.env.AMBIT_AGENT_WORKERS] : []),
  ];
  // nsenter keeps /sys visible (ip netns exec would remount it), which the eBPF capture needs.
  const pid = spawnInCgroup(cgroup, ['nsenter', `--net=/run/netns/${node.netns}`, '--', ...argv], { log: join(dir, 'agent.log') });
  writeFileAtomic(agentPidPath(stateDir, node.name), String(pid));
  return pid;
}
