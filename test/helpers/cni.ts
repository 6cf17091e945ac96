// Runs CNI plugins as a container runtime does (libcni's order and environment), for tests: a
// conflist's plugins one after the other on ADD, each given the previous one's result, and in
// reverse on DEL with the cached result. The plugins run inside a node namespace the test made
// (the bridge they create belongs there), never in the host's.

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { builtPlugin } from '../../agent/cni/installer.js';

/** Builds ambit-cni (scripts/build-cni-plugin.sh) when it is missing or older than its source. */
export function ensurePluginBuilt(): void {
  const source = fileURLToPath(new URL('../../../agent/cni/ambit-cni.c', import.meta.url));
  if (existsSync(builtPlugin) && statSync(builtPlugin).mtimeMs >= statSync(source).mtimeMs) return;
  execFileSync('bash', [fileURLToPath(new URL('../../../scripts/build-cni-plugin.sh', import.meta.url))], { stdio: 'inherit' });
}

export interface PodArgs {
  namespace: string;
  name: string;
  uid?: string;
}

export interface Invocation {
  /** The namespace the plugins run in: `/run/netns/<name>`. */
  nodeNetns: string;
  /** Directories of plugin executables, searched in order (CNI_PATH). */
  path: string[];
  containerId: string;
  /** The pod's namespace file (CNI_NETNS). */
  netns: string;
  ifname?: string;
  pod: PodArgs;
}

export interface PluginRun {
  type: string;
  status: number;
  stdout: string;
}

export function cniArgs(pod: PodArgs): string {
  return ['IgnoreUnknown=1', `K8S_POD_NAMESPACE=${pod.namespace}`, `K8S_POD_NAME=${pod.name}`, `K8S_POD_INFRA_CONTAINER_ID=x`, ...(pod.uid ? [`K8S_POD_UID=${pod.uid}`] : [])].join(';');
}

/** Runs one plugin with `config` on stdin; resolves with its exit status and output (no throw). */
export function runPlugin(command: string, config: Record<string, unknown>, inv: Invocation): Promise<PluginRun> {
  const type = String(config.type);
  const dir = inv.path.find((d) => existsSync(join(d, type)));
  if (!dir) throw new Error(`no CNI plugin ${type} in ${inv.path.join(':')}`);
  return new Promise((resolve, reject) => {
    const child = spawn('nsenter', [`--net=${inv.nodeNetns}`, '--', join(dir, type)], {
      env: {
        PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
        CNI_COMMAND: command,
        CNI_CONTAINERID: inv.containerId,
        CNI_NETNS: inv.netns,
        CNI_IFNAME: inv.ifname ?? 'eth0',
        CNI_ARGS: cniArgs(inv.pod),
        CNI_PATH: inv.path.join(':'),
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.resume();
    child.on('error', reject);
    child.on('close', (status) => resolve({ type, status: status ?? -1, stdout }));
    child.stdin.end(JSON.stringify(config));
  });
}

export interface Conflist {
  cniVersion: string;
  name: string;
  plugins: Record<string, unknown>[];
}

/** ADD through a conflist: stops at the first plugin that fails. Every plugin's run is returned, in order. */
export async function addChain(list: Conflist, inv: Invocation): Promise<PluginRun[]> {
  const runs: PluginRun[] = [];
  let prevResult: unknown;
  for (const plugin of list.plugins) {
    const run = await runPlugin('ADD', { ...plugin, name: list.name, cniVersion: list.cniVersion, ...(prevResult ? { prevResult } : {}) }, inv);
    runs.push(run);
    if (run.status !== 0) break;
    prevResult = JSON.parse(run.stdout);
  }
  return runs;
}

/** DEL through a conflist, last plugin first, each given the ADD's result (undefined if it failed). */
export async function delChain(list: Conflist, inv: Invocation, result?: unknown): Promise<PluginRun[]> {
  const runs: PluginRun[] = [];
  for (const plugin of [...list.plugins].reverse()) {
    runs.push(await runPlugin('DEL', { ...plugin, name: list.name, cniVersion: list.cniVersion, ...(result ? { prevResult: result } : {}) }, inv));
  }
  return runs;
}
