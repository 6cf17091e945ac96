// The node agents of the local cluster, run from the agents' DaemonSet as `ambit install` renders
// it (deploy/manifests.ts): one per node, its pod template's one container started as a process
// inside the node's network namespace and in its own cgroup (pod-process.ts maps the template's
// volumes to this node), restarted when it exits. They are started by the runtime and survive a
// controller restart, like pods.

import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join, dirname } from 'node:path';
import { writeFileAtomic } from '../../controller/store/store.js';
import type { Resource } from '../../shared/resources/types.js';
import { AmbitError } from '../../shared/errors.js';
import { clusterCgroupRoot, createCgroup, isAlive, spawnInCgroup } from '../kubelet/pods.js';
import type { NodeLayout } from '../topology.js';
import { nodeCniDirs } from '../state.js';
import { type NodeVolumes, type PodProcess, type PodTemplate, podProcess, type Volume } from './pod-process.js';

export interface AgentLaunch {
  /** The CLI's compiled entry: the image's `ambit` command. */
  cliEntry: string;
  /** A TokenRequest for the agents' ServiceAccount, bound to `node`: what the kubelet projects into a DaemonSet's pod. */
  requestToken: (node: string) => Promise<{ token: string; expires: Date }>;
}

export const agentDir = (stateDir: string, node: string) => join(stateDir, 'agents', node);
export const agentCgroup = (node: string) => join(clusterCgroupRoot(), node, 'agent');
export const agentPidPath = (stateDir: string, node: string) => join(agentDir(stateDir, node), 'pid');
/** The agents' query API token, from which the local install makes the DaemonSet's Secret; the CLI reads it here. */
export const adminTokenPath = (stateDir: string) => join(stateDir, 'agents', 'admin-token');
/** The agent's ServiceAccount token, bound to its node, as the kubelet keeps it for the projected volume. */
export const agentTokenPath = (stateDir: string, node: string) => join(agentDir(stateDir, node), 'token');
/** The pod template the running agent was started from (its hash), so that a changed template rolls it. */
const templatePath = (stateDir: string, node: string) => join(agentDir(stateDir, node), 'template-hash');

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

/** A pod template's identity, as the DaemonSet controller hashes it to tell old pods from new. */
export function templateHash(template: unknown): string {
  return createHash('sha256').update(JSON.stringify(template)).digest('hex').slice(0, 16);
}

export function writeTemplateHash(stateDir: string, node: string, hash: string): void {
  writeFileAtomic(templatePath(stateDir, node), hash);
}

/** The template of the running agent of `node`, if known. */
export function runningTemplate(stateDir: string, node: string): string | undefined {
  const path = templatePath(stateDir, node);
  return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
}

/** Where each node keeps what the agents' pod template mounts: its own CNI directories and run directory, the host's kernel views. */
function nodeVolumes(stateDir: string, node: string, start: string): NodeVolumes {
  const dir = agentDir(stateDir, node);
  const cni = nodeCniDirs(stateDir, node);
  const host: Record<string, string> = {
    '/proc': '/proc',
    '/sys/fs/cgroup': '/sys/fs/cgroup',
    '/sys/fs/bpf': '/sys/fs/bpf',
    '/var/run/netns': '/run/netns',
    '/run/netns': '/run/netns',
    '/etc/cni/net.d': cni.confDir,
    '/opt/cni/bin': cni.binDir,
    '/var/run/ambit': join(dir, 'run'),
    '/run/ambit': join(dir, 'run'),
  };
  return {
    hostPath: (path) => host[path.replace(/\/+$/, '')],
    volumeDir: (name) => join(dir, 'volumes', name),
    emptyDir: (name) => join(dir, `pod-${start}`, name),
  };
}

export interface AgentSources {
  /** An object of the API (the DaemonSet's namespace's ConfigMaps and Secrets). */
  get: (kind: string, namespace: string, name: string) => Resource | undefined;
  /** What was last written to each volume file, so that an unchanged one is neither read nor written again. */
  written: Map<string, string>;
}

/**
 * Writes the configMap, secret and projected token volumes of a node's agent, as the kubelet keeps
 * them current (a file is rewritten only when its content changed). Throws, naming what is missing,
 * while a ConfigMap or Secret the pod needs does not exist: the pod cannot start yet.
 */
export function writeVolumes(stateDir: string, node: string, namespace: string, written: PodProcess['written'], sources: AgentSources): void {
  for (const { volume, dir } of written) {
    for (const [path, content] of volumeFiles(stateDir, node, namespace, volume, sources)) {
      const file = join(dir, path);
      if (sources.written.get(file) === content) continue;
      mkdirSync(dirname(file), { recursive: true });
      writeFileAtomic(file, content, 0o600);
      sources.written.set(file, content);
    }
  }
}

function volumeFiles(stateDir: string, node: string, namespace: string, v: Volume, sources: AgentSources): [string, string][] {
  const pick = (data: Record<string, string>, items: { key: string; path: string }[] | undefined, what: string): [string, string][] =>
    (items ?? Object.keys(data).map((key) => ({ key, path: key }))).map((i) => {
      if (data[i.key] === undefined) throw new AmbitError('VolumeNotReady', `${what} has no key ${i.key}`);
      return [i.path, data[i.key]!];
    });
  if (v.configMap) {
    const cm = sources.get('ConfigMap', namespace, v.configMap.name) as { data?: Record<string, string> } | undefined;
    if (!cm) throw new AmbitError('VolumeNotReady', `ConfigMap ${namespace}/${v.configMap.name} (volume ${v.name}) does not exist yet`);
    return pick(cm.data ?? {}, v.configMap.items, `ConfigMap ${namespace}/${v.configMap.name}`);
  }
  if (v.secret) {
    const secret = sources.get('Secret', namespace, v.secret.secretName) as { data?: Record<string, string> } | undefined;
    if (!secret) throw new AmbitError('VolumeNotReady', `Secret ${namespace}/${v.secret.secretName} (volume ${v.name}) does not exist yet`);
    const data = Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, b64]) => [k, Buffer.from(b64, 'base64').toString('utf8')]));
    return pick(data, v.secret.items, `Secret ${namespace}/${v.secret.secretName}`);
  }
  return (v.projected?.sources ?? []).map((source) => {
    if (!source.serviceAccountToken) throw new AmbitError('Unsupported', `volume ${v.name}: the local kubelet projects only service account tokens`);
    const token = agentTokenPath(stateDir, node);
    if (!existsSync(token)) throw new AmbitError('VolumeNotReady', `no token for ${node}'s agent yet (volume ${v.name})`);
    return [source.serviceAccountToken.path, readFileSync(token, 'utf8')];
  });
}

export interface StartedAgent {
  pid: number;
  /** Whether its readiness probe passes now (true if it has none). */
  ready: () => Promise<boolean>;
}

export type AgentDaemonSet = Resource & { spec: { template: PodTemplate } };

/** The process of `ds`'s pod on `node`, for the start `start` (which names its emptyDirs). */
function agentProcess(l: AgentLaunch, stateDir: string, node: NodeLayout, ds: AgentDaemonSet, start: string): PodProcess {
  const template = ds.spec.template;
  return podProcess(
    template,
    { 'metadata.name': `${ds.metadata.name}-${node.name}`, 'metadata.namespace': ds.metadata.namespace!, 'spec.nodeName': node.name, 'spec.serviceAccountName': template.spec.serviceAccountName ?? 'default', 'status.hostIP': node.ip, 'status.podIP': node.ip },
    nodeVolumes(stateDir, node.name, start),
    // The image's entry point; for profiling the agents of a local cluster, AMBIT_AGENT_NODE_OPTIONS
    // (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"; stop an agent with SIGTERM to have its profile written).
    (entry) => (entry === 'ambit' ? [process.execPath, ...(process.env.AMBIT_AGENT_NODE_OPTIONS?.split(' ').filter(Boolean) ?? []), l.cliEntry] : undefined),
  );
}

/**
 * Rewrites a running agent's configMap, secret and projected token volumes from their sources, as
 * the kubelet keeps them current: a renewed token, the mesh's roots after a CA rotation.
 */
export function refreshVolumes(l: AgentLaunch, stateDir: string, node: NodeLayout, ds: AgentDaemonSet, sources: AgentSources): void {
  writeVolumes(stateDir, node.name, ds.metadata.namespace!, agentProcess(l, stateDir, node, ds, 'refresh').written, sources);
}

/** Starts a node's agent from the DaemonSet's pod template. */
export function startAgent(l: AgentLaunch, stateDir: string, node: NodeLayout, ds: AgentDaemonSet, sources: AgentSources): StartedAgent {
  const dir = agentDir(stateDir, node.name);
  mkdirSync(dir, { recursive: true });
  const start = `${Date.now()}`;
  const template = ds.spec.template;
  const run = agentProcess(l, stateDir, node, ds, start);
  writeVolumes(stateDir, node.name, ds.metadata.namespace!, run.written, sources);
  // This start's directory: its emptyDirs, and its pid (removeExitedPodDirs).
  mkdirSync(join(dir, `pod-${start}`), { recursive: true });
  for (const d of run.emptyDirs) mkdirSync(d, { recursive: true });
  mkdirSync(join(dir, 'run'), { recursive: true });
  const cgroup = agentCgroup(node.name);
  createCgroup(cgroup);
  const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...run.env };
  // nsenter keeps /sys visible (ip netns exec would remount it), which the eBPF capture needs.
  const pid = spawnInCgroup(cgroup, ['nsenter', `--net=/run/netns/${node.netns}`, '--', ...run.argv], { log: join(dir, 'agent.log'), env });
  writeFileAtomic(join(dir, `pod-${start}`, 'pid'), String(pid));
  writeFileAtomic(agentPidPath(stateDir, node.name), String(pid));
  writeTemplateHash(stateDir, node.name, templateHash(template));
  const probe = run.readiness;
  return {
    pid,
    ready: () => (probe ? new Promise((resolve) => execFile(probe[0]!, probe.slice(1), { timeout: 2000 }, (err) => resolve(!err))) : Promise.resolve(true)),
  };
}

/** Removes the emptyDirs of agents that exited, as the kubelet removes a deleted pod's directory. */
export function removeExitedPodDirs(stateDir: string, node: string): void {
  const dir = agentDir(stateDir, node);
  if (!existsSync(dir)) return;
  for (const d of readdirSync(dir).filter((n) => n.startsWith('pod-'))) {
    const pidFile = join(dir, d, 'pid');
    const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : undefined;
    if (pid === undefined || !isAlive(pid, agentCgroup(node))) rmSync(join(dir, d), { recursive: true, force: true });
  }
}
