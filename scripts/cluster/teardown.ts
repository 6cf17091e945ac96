// Removing a local cluster, whether `ambit up` finished or crashed half-way: the controller, every
// process in the cluster's cgroups and namespaces, the namespaces (which takes their veths, bridges,
// routes and rules with them), the cgroups, the pods' /etc/netns files, the root namespace's guard
// routes and the state directory. Everything is found by the `ambit` prefix as well as from the
// record, so nothing survives a record that was never written.

import { existsSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listNetns, run } from './exec.js';
import { pidsInNetns, removeRootGuards } from './network.js';
import { cgroupProcs, clusterCgroupRoot, signal, sleep } from './pods.js';
import { readState, removeState, topologyOf } from './state.js';
import { layout, defaultClusterFile, prefix } from './topology.js';

export interface TeardownReport {
  namespaces: number;
  cgroups: number;
  processes: number;
}

export async function teardown(stateDir: string): Promise<TeardownReport> {
  const state = readState(stateDir);
  const report: TeardownReport = { namespaces: 0, cgroups: 0, processes: 0 };
  if (state?.controllerPid) await stopProcess(state.controllerPid);

  // Every process in the cluster's cgroups, at once: the cgroup kill switch takes them all.
  const cgroups = clusterCgroups();
  for (const dir of cgroups) {
    report.processes += cgroupProcs(dir).length;
    if (cgroupProcs(dir).length) writeFileSync(join(dir, 'cgroup.kill'), '1');
  }
  const namespaces = (await listNetns()).filter((n) => n.startsWith(`${prefix}-`));
  for (const ns of namespaces) {
    const pids = await pidsInNetns(ns);
    report.processes += pids.length;
    for (const pid of pids) signal(pid, 'SIGKILL');
  }
  for (const dir of cgroups) {
    for (let i = 0; i < 100 && cgroupProcs(dir).length; i++) await sleep(10);
    rmdirSync(dir);
  }
  report.cgroups = cgroups.length;
  // Pods first, nodes next, the fabric last: each deletion takes the namespace's links with it.
  const order = (n: string) => (n.startsWith(`${prefix}-pod-`) ? 0 : n.startsWith(`${prefix}-node-`) ? 1 : 2);
  for (const ns of namespaces.sort((a, b) => order(a) - order(b))) await run('ip', ['netns', 'del', ns], { okCodes: [1] });
  report.namespaces = namespaces.length;
  if (existsSync('/etc/netns')) {
    for (const d of readdirSync('/etc/netns')) if (d.startsWith(`${prefix}-`)) rmSync(join('/etc/netns', d), { recursive: true, force: true });
  }
  const t = state ? topologyOf(state) : layout(defaultClusterFile());
  await removeRootGuards([t.podCIDR.text, t.serviceCIDR.text, t.nodeCIDR.text]);
  removeState(stateDir);
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

async function stopProcess(pid: number): Promise<void> {
  signal(pid, 'SIGTERM');
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await sleep(20);
  }
  signal(pid, 'SIGKILL');
}
