// Pods in the cgroup tree, as the kubelet lays them out below its pod cgroup root: with the systemd
// driver `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid with _>.slice/...`
// (guaranteed pods directly below: `kubepods-pod<uid>.slice`), with the cgroupfs driver
// `kubepods/besteffort/pod<uid>/...`. Paths here are cgroup v2 paths as /proc/<pid>/cgroup gives
// them, relative to the cgroup2 mount and beginning with `/`.

import { existsSync, readdirSync, type Dirent } from 'node:fs';
import { join } from 'node:path';
import { cgroup2Mount } from '../../shared/host/cgroup.js';

const uidPattern = '[0-9a-fA-F]{8}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{12}';
const systemdPod = new RegExp(`^(?:[A-Za-z0-9_]+-)*pod(${uidPattern})\\.slice$`);
const cgroupfsPod = new RegExp(`^pod(${uidPattern})$`);

/** The pod UID a cgroup directory's name stands for, if it is a pod's (either driver's layout). */
export function podUidOfSegment(name: string): string | undefined {
  const m = systemdPod.exec(name) ?? cgroupfsPod.exec(name);
  // systemd cannot have '-' inside a unit name's component, so the kubelet writes the UID's as '_'.
  return m ? m[1]!.replaceAll('_', '-').toLowerCase() : undefined;
}

/** The pod a process's cgroup path places it in: its UID and the pod's cgroup, if below `root`. */
export function podOfCgroupPath(path: string, root: string): { uid: string; cgroup: string } | undefined {
  const base = root.endsWith('/') ? root.slice(0, -1) : root;
  if (!path.startsWith(`${base}/`)) return undefined;
  const segments = path.slice(base.length + 1).split('/');
  // The QoS level (besteffort, burstable) may come between the root and the pod.
  for (let i = 0; i < Math.min(segments.length, 2); i++) {
    const uid = podUidOfSegment(segments[i]!);
    if (uid) return { uid, cgroup: `${base}/${segments.slice(0, i + 1).join('/')}` };
  }
  return undefined;
}

/** The pod cgroup root to use: the one configured, else the first of the drivers' defaults that exists. */
export function podCgroupRoot(configured: string | undefined): string {
  if (configured) return configured.startsWith('/') ? configured : `/${configured}`;
  for (const candidate of ['/kubepods.slice', '/kubepods']) if (existsSync(join(cgroup2Mount(), candidate))) return candidate;
  return '/kubepods.slice';
}

/** The cgroup of the pod with this UID below `root`, looking where either driver puts it. */
export function findPodCgroup(root: string, uid: string): string | undefined {
  const mount = cgroup2Mount();
  const list = (relative: string): Dirent[] => {
    try {
      return readdirSync(join(mount, relative), { withFileTypes: true }).filter((d) => d.isDirectory());
    } catch {
      return [];
    }
  };
  for (const level of list(root)) {
    const here = `${root}/${level.name}`;
    const podHere = podUidOfSegment(level.name);
    if (podHere === uid) return here;
    // Only the QoS levels hold pods; a pod's own directory holds its containers.
    if (podHere) continue;
    for (const pod of list(here)) if (podUidOfSegment(pod.name) === uid) return `${here}/${pod.name}`;
  }
  return undefined;
}
