// Where cgroup v2 is mounted on this host. Read from /proc/self/mounts rather than assumed: on most
// hosts and Kubernetes nodes it is /sys/fs/cgroup, on hybrid hosts /sys/fs/cgroup/unified.

import { readFileSync } from 'node:fs';
import { AmbitError } from '../errors.js';

let cached: string | undefined;

export function cgroup2Mount(): string {
  if (cached) return cached;
  const line = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[2] === 'cgroup2');
  if (!line) throw new AmbitError('NoCgroup2', 'cgroup v2 is not mounted on this host (no cgroup2 entry in /proc/self/mounts)');
  cached = line.split(' ')[1]!;
  return cached;
}
