// Removing a local cluster, whether `ambit up` finished or crashed half-way: the controller's
// replicas and the cluster's own process, every
// process in the cluster's cgroups and namespaces, the namespaces (which takes their veths, bridges,
// routes and rules with them), the cgroups, the pods' /etc/netns files, the root namespace's guard
// routes, the agents' pinned eBPF programs and maps, and the state directory (with each node's CNI
// configuration, IPAM leases and cached results, which `ambit up` keeps there, never in /etc/cni or /var/lib/cni). Everything is found by the `ambit` prefix as well as from the
// record, so nothing survives a record that was never written.

import { existsSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AmbitError } from '../shared/errors.js';
import { listNetns, run } from './kubelet/exec.js';
import { pidsInNetns, removeRootGuards } from './kubelet/network.js';
import { cgroupProcs, clusterCgroupRoot, running, signal, sleep } from './kubelet/pods.js';
import { matchesCommand } from './mesh-controller.js';
import { readState, removeState, topologyOf } from './state.js';
import { layout, defaultClusterFile, prefix } from './topology.js';
import { bpfPinBase, removeCapturePins } from '../native/bpf.js';

export interface TeardownReport {
  namespaces: number;
  cgroups: number;
  processes: number;
}

export async function teardown(stateDir: string): Promise<TeardownReport> {
  const state = readState(stateDir);
  const report: TeardownReport = { namespaces: 0, cgroups: 0, processes: 0 };
  // Every process of this state directory's cluster, found by its command line rather than from the
  // record (an `up` may have crashed before recording one; after a reboot a pid may be anything):
  // the controllers first, then the API and runtime they read.
  await Promise.all(processesOf(stateDir, 'controller').map(stopProcess));
  await Promise.all(processesOf(stateDir, 'local-cluster').map(stopProcess));

  // Every process in the cluster's cgroups, at once: the cgroup kill switch takes them all.
  const cgroups = clusterCgroups();
  const killed: number[] = [];
  for (const dir of cgroups) {
    killed.push(...cgroupProcs(dir));
    if (cgroupProcs(dir).length) writeFileSync(join(dir, 'cgroup.kill'), '1');
  }
  const namespaces = (await listNetns()).filter((n) => n.startsWith(`${prefix}-`));
  for (const ns of namespaces) {
    const pids = await pidsInNetns(ns);
    killed.push(...pids);
    for (const pid of pids) signal(pid, 'SIGKILL');
  }
  report.processes = new Set(killed).size;
  // Wait until they are reaped, not only dead: orphans are reaped by init, a moment later.
  for (let i = 0; i < 200 && killed.some((pid) => existsSync(`/proc/${pid}`)); i++) await sleep(10);
  // A group the kernel still holds is retried for a while; one that will not go is reported after
  // everything else was removed, rather than stopping the teardown half-way.
  const stuck: string[] = [];
  for (const dir of cgroups) {
    for (let i = 0; i < 100 && cgroupProcs(dir).length; i++) await sleep(10);
    for (let i = 0; ; i++) {
      try {
        rmdirSync(dir);
        break;
      } catch (err) {
        if (i >= 100) {
          stuck.push(`${dir} (${(err as NodeJS.ErrnoException).code})`);
          break;
        }
        await sleep(10);
      }
    }
  }
  report.cgroups = cgroups.length;
  // The eBPF capture's tc programs go with the pods' interfaces, but a deleted namespace is cleaned
  // up by the kernel a moment later: detach them first, so the programs are gone when down returns.
  for (const ns of namespaces.filter((n) => n.startsWith(`${prefix}-pod-`))) await run('nsenter', [`--net=/run/netns/${ns}`, '--', 'tc', 'qdisc', 'del', 'dev', 'eth0', 'clsact'], { okCodes: [1, 2] });
  // Pods first, nodes next, the fabric last: each deletion takes the namespace's links with it.
  const order = (n: string) => (n.startsWith(`${prefix}-pod-`) ? 0 : n.startsWith(`${prefix}-node-`) ? 1 : 2);
  for (const ns of namespaces.sort((a, b) => order(a) - order(b))) await run('ip', ['netns', 'del', ns], { okCodes: [1] });
  report.namespaces = namespaces.length;
  if (existsSync('/etc/netns')) {
    for (const d of readdirSync('/etc/netns')) if (d.startsWith(`${prefix}-`)) rmSync(join('/etc/netns', d), { recursive: true, force: true });
  }
  // The eBPF capture's pins keep programs attached and maps alive until they are removed.
  removeCapturePins(bpfPinBase);
  // The kernel frees a program once its last reference goes (RCU, a moment later): wait for that, up to 10 s.
  for (let i = 0; i < 200 && /"name":"ambit_/.test(await run('bpftool', ['-j', 'prog', 'show'], { okCodes: [1, 255] }).catch(() => '')); i++) await sleep(50);
  const t = state ? topologyOf(state) : layout(defaultClusterFile());
  await removeRootGuards([t.podCIDR.text, t.serviceCIDR.text, t.nodeCIDR.text]);
  removeState(stateDir);
  if (stuck.length) throw new AmbitError('TeardownIncomplete', `could not remove ${stuck.join(', ')}; run \`ambit down\` again`);
  return report;
}

/** The cluster's cgroup directories, deepest first ending with the root, for removal in order. */
function clusterCgroups(): string[] {
  const root = clusterCgroupRoot();
  if (!existsSync(root)) return [];
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(join(dir, e.name));
    out.push(dir);
  };
  walk(root);
  return out;
}

function processesOf(stateDir: string, kind: 'controller' | 'local-cluster'): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (matchesCommand(readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0'), stateDir, kind)) pids.push(Number(entry));
    } catch {
      // Gone while we looked.
    }
  }
  return pids;
}

async function stopProcess(pid: number): Promise<void> {
  signal(pid, 'SIGTERM');
  for (let i = 0; i < 100; i++) {
    if (!running(pid)) return;
    await sleep(20);
  }
  signal(pid, 'SIGKILL');
}
