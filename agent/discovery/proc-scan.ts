// The pods already running on this node, found without any API: every process whose cgroup lies
// below the kubelet's pod cgroup root names its pod's UID there (cgroup.ts), and its network
// namespace is the pod's. istio-cni's node agent does the same at start, so a restarted agent finds
// the pods whose CNI ADD it never saw. Which netns belongs to which workload is the registry's
// (pods.ts): it matches by UID and checks the workload's IP against the addresses seen here.

import { readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { podOfCgroupPath } from './cgroup.js';

/** A pod as the scan finds it. */
export interface ScannedPod {
  uid: string;
  /** The pod's cgroup, relative to the cgroup2 mount. */
  cgroup: string;
  /** A path to its network namespace: a runtime's bind mount when one exists, else /proc/<pid>/ns/net. */
  netns: string;
  /** The IPv4 addresses configured inside that namespace (loopback's left out). */
  ips: string[];
  pids: number[];
}

export interface ScanOptions {
  /** The pod cgroup root, relative to the cgroup2 mount (`/kubepods.slice`). */
  root: string;
  /** Where runtimes bind-mount pods' namespaces (containerd, CRI-O and `ip netns` use /run/netns). */
  netnsDirs?: string[];
  /** The host's /proc: /proc, or where it is mounted in a container with a PID namespace of its own. */
  procRoot?: string;
}

const defaultNetnsDirs = ['/run/netns', '/var/run/netns'];

export function scanProc(o: ScanOptions): ScannedPod[] {
  const proc = o.procRoot ?? '/proc';
  const own = inode('/proc/self/ns/net');
  const named = namedNamespaces(o.netnsDirs ?? defaultNetnsDirs);
  const pods = new Map<string, ScannedPod & { ino: string }>();
  const pids = readdirSync(proc)
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .sort((a, b) => a - b);
  for (const pid of pids) {
    // A process may end between the listing and these reads: it is skipped.
    const path = cgroupV2Path(proc, pid);
    const pod = path && podOfCgroupPath(path, o.root);
    if (!pod) continue;
    const ino = inode(`${proc}/${pid}/ns/net`);
    // A hostNetwork pod shares the node's namespace: there is nothing of it to capture.
    if (!ino || ino === own) continue;
    const seen = pods.get(pod.uid);
    if (seen) {
      // The pod's first process (the sandbox's, the lowest pid) says where its namespace is.
      if (seen.ino === ino) seen.pids.push(pid);
      continue;
    }
    const ips = localAddresses(pid, proc);
    if (!ips) continue;
    pods.set(pod.uid, { uid: pod.uid, cgroup: pod.cgroup, netns: named.get(ino) ?? `${proc}/${pid}/ns/net`, ips, pids: [pid], ino });
  }
  return [...pods.values()].map(({ ino: _ino, ...p }) => p);
}

/** The process's cgroup v2 path (the `0::` line), or undefined. */
function cgroupV2Path(proc: string, pid: number): string | undefined {
  try {
    const line = readFileSync(`${proc}/${pid}/cgroup`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'));
    return line?.slice(3);
  } catch {
    return undefined;
  }
}

/** A namespace's identity: the device and inode of its nsfs file. */
function inode(path: string): string | undefined {
  try {
    const s = statSync(path);
    return `${s.dev}:${s.ino}`;
  } catch {
    return undefined;
  }
}

function namedNamespaces(dirs: string[]): Map<string, string> {
  const out = new Map<string, string>();
  const done = new Set<string>();
  for (const dir of dirs) {
    let real: string;
    try {
      real = realpathSync(dir);
    } catch {
      continue;
    }
    if (done.has(real)) continue;
    done.add(real);
    for (const name of readdirSync(real)) {
      const path = join(dir, name);
      const ino = inode(path);
      if (ino && !out.has(ino)) out.set(ino, path);
    }
  }
  return out;
}

/**
 * The IPv4 addresses local to the process's network namespace, from its /proc/<pid>/net/fib_trie:
 * each `/32 host LOCAL` leaf follows the `|-- <address>` line it belongs to. Undefined if unreadable.
 */
export function localAddresses(pid: number, proc = '/proc'): string[] | undefined {
  let trie: string;
  try {
    trie = readFileSync(`${proc}/${pid}/net/fib_trie`, 'utf8');
  } catch {
    return undefined;
  }
  const out = new Set<string>();
  let last = '';
  for (const line of trie.split('\n')) {
    const leaf = /\|-- (\d+\.\d+\.\d+\.\d+)$/.exec(line);
    if (leaf) last = leaf[1]!;
    else if (line.includes('/32 host LOCAL') && last && !last.startsWith('127.')) out.add(last);
  }
  return [...out];
}
