// A pod's processes: one per container, started inside the pod's network namespace and cgroup,
// with the pod's identity in its environment (as Kubernetes' downward API gives it), output to a
// log file per container, and stopped with SIGTERM, then the cgroup's kill switch.

import { spawn } from 'node:child_process';
import { existsSync, ftruncateSync, mkdirSync, openSync, closeSync, readdirSync, readFileSync, rmdirSync, writeFileSync, writeSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cgroup2Mount } from '../../shared/host/cgroup.js';
import type { Container } from '../../shared/resources/types.js';
import { prefix } from '../topology.js';

export function clusterCgroupRoot(): string {
  return join(cgroup2Mount(), prefix);
}

/**
 * A pod's cgroup below the cgroup2 mount, as the kubelet's systemd cgroup driver lays it out:
 * kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid>.slice, the uid's dashes written as
 * underscores (systemd's escaping), so a node agent finds pods the way it does on a real node. Every
 * pod here is BestEffort: the local cluster's pod spec has no resource requests or limits (a
 * Guaranteed pod's slice would sit directly in kubepods.slice, a Burstable one in
 * kubepods-burstable.slice). All nodes share this host's cgroup tree, so each keeps its own root.
 */
export function podCgroupRelative(node: string, uid: string): string {
  return `/${prefix}/${node}/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${uid.replace(/-/g, '_')}.slice`;
}

export function podCgroup(node: string, uid: string): string {
  return join(cgroup2Mount(), podCgroupRelative(node, uid));
}

/** The pod uid a cgroup directory of podCgroupRelative() belongs to, if it is one. */
export function podUidOfCgroup(dir: string): string | undefined {
  const m = /kubepods-(?:besteffort-|burstable-)?pod([0-9a-f_]+)\.slice$/.exec(dir);
  return m ? m[1]!.replace(/_/g, '-') : undefined;
}

/** The pod cgroups of a node that exist now (to find those a previous controller left). */
export function nodePodCgroups(node: string): string[] {
  const qos = join(clusterCgroupRoot(), node, 'kubepods.slice', 'kubepods-besteffort.slice');
  try {
    return readdirSync(qos, { withFileTypes: true }).filter((e) => e.isDirectory() && podUidOfCgroup(e.name)).map((e) => join(qos, e.name));
  } catch {
    return [];
  }
}

export function cgroupProcs(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export interface PodEnv {
  namespace: string;
  name: string;
  /** The Pod's metadata.uid: its cgroup and its CNI sandbox id derive from it. */
  uid: string;
  ip: string;
  node: string;
  serviceAccount: string;
  netns: string;
  cgroup: string;
  logDir: string;
  /** Prepended to PATH so manifests can run `ambit` and the sample apps by name. */
  binDir: string;
}

/**
 * Starts one container. `ip netns exec` is used (not nsenter) because it mounts the pod's own
 * /etc/hosts from /etc/netns/<netns>/, which is how Service names resolve in the local cluster.
 */
export function startContainer(pod: PodEnv, c: Container): { pid: number } {
  mkdirSync(pod.logDir, { recursive: true });
  const env: Record<string, string> = {
    PATH: `${pod.binDir}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
    HOME: '/root',
    POD_NAME: pod.name,
    POD_NAMESPACE: pod.namespace,
    POD_IP: pod.ip,
    NODE_NAME: pod.node,
    SERVICE_ACCOUNT: pod.serviceAccount,
  };
  for (const e of c.env ?? []) env[e.name] = e.value;
  const pid = spawnInCgroup(pod.cgroup, ['ip', 'netns', 'exec', pod.netns, ...c.command, ...(c.args ?? [])], {
    log: join(pod.logDir, `${c.name}.log`),
    env,
    cwd: c.workingDir ?? '/',
  });
  return { pid };
}

/** The processes this process started, by pid, and whether each has exited. */
const children = new Map<number, { exited: boolean }>();
const exitListeners = new Set<(pid: number) => void>();

/** Calls `fn` when a process started here exits (a supervisor reacts at once, not at its next poll). */
export function onChildExit(fn: (pid: number) => void): () => void {
  exitListeners.add(fn);
  return () => exitListeners.delete(fn);
}

/**
 * Starts argv inside `cgroup`, detached, output appended to `log`. A shell joins the cgroup and
 * then execs argv, so every process of it is in the cgroup and the pid stays the same. Until the
 * shell has written itself to cgroup.procs the pid is not in the cgroup yet: isAlive() answers
 * from the child's own exit event for the processes started here, never from that race.
 */
export function spawnInCgroup(cgroup: string, argv: string[], o: { log: string; env?: Record<string, string>; cwd?: string }): number {
  const log = openSync(o.log, 'a');
  try {
    const child = spawn('/bin/sh', inCgroupArgs(cgroup, argv), { detached: true, stdio: ['ignore', log, log], ...(o.env ? { env: o.env } : {}), ...(o.cwd ? { cwd: o.cwd } : {}) });
    const pid = child.pid;
    if (pid === undefined) throw new Error(`could not start ${argv[0]}`);
    const entry = { exited: false };
    children.set(pid, entry);
    child.on('exit', () => {
      entry.exited = true;
      for (const fn of exitListeners) fn(pid);
      // Forgotten a while later: by then the supervisor has seen the exit, and the pid may be reused.
      setTimeout(() => children.get(pid) === entry && children.delete(pid), 60_000).unref();
    });
    child.unref();
    return pid;
  } finally {
    closeSync(log);
  }
}

/** Arguments for /bin/sh that join `cgroup` and exec argv (exit status 111 if it cannot join). */
function inCgroupArgs(cgroup: string, argv: string[]): string[] {
  return ['-c', 'echo $$ > "$0/cgroup.procs" || exit 111; exec "$@"', cgroup, ...argv];
}

/** Arguments for /bin/sh that join the pod's cgroup, enter its network namespace and exec argv. */
export function inPodArgs(cgroup: string, netns: string, argv: string[]): string[] {
  return inCgroupArgs(cgroup, ['ip', 'netns', 'exec', netns, ...argv]);
}

/**
 * The process runs. For a process started here, its exit event decides; for one adopted from a
 * previous controller run, it must be in that cgroup (so a reused pid does not count) and not a
 * zombie.
 */
export function isAlive(pid: number, cgroup: string): boolean {
  const own = children.get(pid);
  if (own) return !own.exited;
  return cgroupProcs(cgroup).includes(pid) && running(pid);
}

export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

export function createCgroup(dir: string): void {
  mkdirSync(dir, { recursive: true });
}

/** SIGTERM to every process of the cgroup, then after `graceMs` the cgroup's kill switch, then rmdir. */
export async function stopCgroup(dir: string, graceMs: number): Promise<void> {
  if (!existsSync(dir)) return;
  for (const pid of cgroupProcs(dir)) signal(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (cgroupProcs(dir).length && Date.now() < deadline) await sleep(25);
  if (cgroupProcs(dir).length) writeFileSync(join(dir, 'cgroup.kill'), '1');
  for (let i = 0; i < 200 && populated(dir); i++) await sleep(10);
  // The kernel may still hold the group for a moment after its last process is gone.
  for (let i = 0; ; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EBUSY' || i >= 100) throw err;
      await sleep(10);
    }
  }
}

function populated(dir: string): boolean {
  try {
    return /populated 1/.test(readFileSync(join(dir, 'cgroup.events'), 'utf8'));
  } catch {
    return false;
  }
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** /etc/netns/<netns>/hosts: what `ip netns exec` mounts over /etc/hosts inside the pod. */
export function hostsFile(netns: string): string {
  return join('/etc/netns', netns, 'hosts');
}

/**
 * Writes in place, keeping the inode, so running pods (which have it bind-mounted) see the change.
 * Never empty in between: the new text is written over the old, then the file is cut to its length
 * (a truncate first let a lookup in a pod fail with EAI_AGAIN). Unchanged text is not written at
 * all, so a controller restart, which writes every pod's file again, changes nothing.
 */
export function writeHosts(netns: string, content: string): void {
  const path = hostsFile(netns);
  let current: string | undefined;
  try {
    current = readFileSync(path, 'utf8');
  } catch {
    // Not there yet.
  }
  if (current === content) return;
  if (current === undefined) {
    mkdirSync(join('/etc/netns', netns), { recursive: true });
    writeFileSync(path, content);
    return;
  }
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, content, 0);
    ftruncateSync(fd, Buffer.byteLength(content));
  } finally {
    closeSync(fd);
  }
}

export function removeHosts(netns: string): void {
  rmSync(join('/etc/netns', netns), { recursive: true, force: true });
}
