// Helpers for end-to-end tests on the local cluster: run the real `ambit` command, and list
// everything of the project that is left on the machine (a test that leaks fails on it).

import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cgroup2Mount } from '../../shared/host/cgroup.js';
import type { ClusterStatus } from '../../cluster/status.js';

export const root = resolve(fileURLToPath(import.meta.url), '..', '..', '..', '..');
export const stateDir = '/tmp/ambit-e2e-state';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Output kept from a command: `ambit install --dry-run -o yaml` prints 1.2 MB (the upstream CRDs),
 * past execFile's default of 1 MB, where the child is killed and its output cut.
 */
const maxBuffer = 64 * 1024 * 1024;

export function ambit(args: string[], timeoutMs = 60_000): Promise<Run> {
  return new Promise((done) => {
    execFile(join(root, 'bin', 'ambit'), args, { env: { ...process.env, AMBIT_STATE_DIR: stateDir }, timeout: timeoutMs, maxBuffer }, (err, stdout, stderr) => {
      done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

export async function ambitOk(args: string[], timeoutMs?: number): Promise<string> {
  const r = await ambit(args, timeoutMs);
  if (r.code !== 0) throw new Error(`ambit ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

export function sh(cmd: string): Promise<string> {
  return new Promise((done) => execFile('/bin/sh', ['-c', cmd], { maxBuffer }, (_err, stdout) => done(stdout)));
}

/** Everything the project may have made on this machine that is still there. */
export async function leftovers(): Promise<string[]> {
  const found: string[] = [];
  for (const ns of (await sh('ip netns list')).split('\n')) if (ns.startsWith('ambit-')) found.push(`netns ${ns.split(' ')[0]}`);
  for (const link of (await sh('ip -br link')).split('\n')) if (link.startsWith('ambit')) found.push(`link ${link.split(' ')[0]}`);
  for (const route of (await sh('ip route show type unreachable')).split('\n')) {
    if (/^unreachable (10\.244\.|10\.96\.|10\.250\.)/.test(route)) found.push(`route ${route}`);
  }
  if (existsSync(join(cgroup2Mount(), 'ambit'))) found.push(`cgroup ${join(cgroup2Mount(), 'ambit')}`);
  if (existsSync('/etc/netns')) for (const d of readdirSync('/etc/netns')) if (d.startsWith('ambit-')) found.push(`/etc/netns/${d}`);
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      const cgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
      if (cgroup.includes('/ambit/') || cmdline.includes('ambit.js controller') || cmdline.includes('ambit.js sample')) found.push(`process ${pid} ${cmdline.slice(0, 80)}`);
    } catch {
      // The process ended while we looked.
    }
  }
  // The CNI plugins' and libcni's default state directories: the local cluster keeps its IPAM leases
  // and cached results in its state directory, so nothing of it may be here.
  for (const d of ['/var/lib/cni/networks', '/var/lib/cni/results']) if (existsSync(d)) for (const f of readdirSync(d)) if (/^(ambit|cni-loopback)/.test(f)) found.push(`CNI state ${d}/${f}`);
  if (existsSync('/sys/fs/bpf/ambit')) found.push('pins /sys/fs/bpf/ambit');
  for (const line of (await sh('bpftool prog show 2>/dev/null')).split('\n')) if (/name ambit_/.test(line)) found.push(`bpf program ${line.trim()}`);
  if (existsSync(stateDir)) found.push(`state ${stateDir}`);
  return found;
}

export async function eventually<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The local cluster's processes, as `ambit up` recorded them: its own (API and runtime) and the controller replicas'. */
export const clusterProcesses = () => JSON.parse(readFileSync(join(stateDir, 'cluster.json'), 'utf8')) as { clusterPid: number; controllerPids: number[] };

/** What `ambit status -o json` says of the cluster. */
export const status = async () => JSON.parse(await ambitOk(['status', '-o', 'json'])) as ClusterStatus;
export type PodStatus = ClusterStatus['pods'][number];
/** A running pod of the app. */
export const podOf = async (app: string): Promise<PodStatus> => (await status()).pods.find((p) => p.labels.app === app && p.phase === 'Running')!;

/** Applies YAML (written into `dir`) and returns once every agent runs it (`apply --wait`). */
export async function applyAndWait(dir: string, yaml: string): Promise<void> {
  const file = join(dir, `r${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, yaml);
  await ambitOk(['apply', '-f', file, '--wait']);
}

/** Until every agent holds the controller's newest revision. */
export async function inSync(): Promise<void> {
  await eventually('every agent in sync', async () => {
    const r = JSON.parse(await ambitOk(['agents', '-o', 'json'])) as { revision: number; agents: { ackedVersion: number }[] };
    return r.agents.length > 0 && r.agents.every((a) => a.ackedVersion >= r.revision);
  });
}

/** Prometheus text from a node agent's 15020, read inside the node's namespace. */
export const scrape = (node: string, ip: string) => sh(`nsenter --net=/run/netns/ambit-node-${node} curl -sS http://${ip}:15020/metrics`);

/** The sum of a metric's series whose labels include `match`. */
export function sum(text: string, metric: string, match: Record<string, string>): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${metric}{`)) continue;
    if (Object.entries(match).every(([k, v]) => line.includes(`${k}="${v}"`))) total += Number(line.split(' ').pop());
  }
  return total;
}
