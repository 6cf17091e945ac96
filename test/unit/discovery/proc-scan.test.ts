// The agent finds running pods without the CNI event or any API: real processes this test starts in
// pod-like cgroups (the kubelet's systemd and cgroupfs layouts) and network namespaces. A restarted
// agent that finds a captured pod this way captures it again in place: no second copy of any rule.
// Needs root; the processes, cgroups and namespaces go at the end.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { CaptureManager } from '../../../agent/capture/manager.js';
import { captureState, NetfilterRedirect } from '../../../agent/capture/netfilter.js';
import { PodDiscovery } from '../../../agent/discovery/pods.js';
import { scanProc } from '../../../agent/discovery/proc-scan.js';
import { cgroup2Mount } from '../../../shared/host/cgroup.js';
import { closeFd, openNetns } from '../../../native/netns.js';
import { stateWith } from '../../helpers/state.js';
import { until } from '../until.js';

const id = `ambit-t-scan-${process.pid}`;
const log = pino({ level: 'silent' });
const top = `/${id}`;
const systemdRoot = `${top}/kubepods.slice`;
const cgroupfsRoot = `${top}/kubepods`;
const uidA = '6f1c2a3b-1111-4222-8333-444455556666';
const uidB = '7a2b3c4d-aaaa-4bbb-8ccc-ddddeeeeffff';
const podA = { netns: `${id}-a`, ip: '10.124.0.2', cgroup: `${systemdRoot}/kubepods-besteffort.slice/kubepods-besteffort-pod${uidA.replaceAll('-', '_')}.slice` };
const podB = { netns: `${id}-b`, ip: '10.124.1.2', cgroup: `${cgroupfsRoot}/burstable/pod${uidB}` };
const made: string[] = [];
const children: ChildProcess[] = [];

const abs = (relative: string) => join(cgroup2Mount(), relative);

/** A process in `cgroup` (made here) and, unless `hostNetwork`, in the namespace `netns`. */
async function processIn(cgroup: string, netns?: string): Promise<number> {
  mkdirSync(abs(cgroup), { recursive: true });
  made.push(cgroup);
  const run = netns ? `exec nsenter --net=/run/netns/${netns} sleep 600` : 'exec sleep 600';
  const child = spawn('sh', ['-c', `echo $$ > ${abs(cgroup)}/cgroup.procs && ${run}`], { stdio: 'ignore' });
  children.push(child);
  const pid = child.pid!;
  await until(`process ${pid} to be in place`, () => {
    try {
      const inCgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8').includes(`0::${cgroup}\n`);
      return inCgroup && readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('sleep');
    } catch {
      return false;
    }
  });
  return pid;
}

test.before(async () => {
  for (const p of [podA, podB]) {
    execFileSync('ip', ['netns', 'add', p.netns]);
    execFileSync('ip', ['-n', p.netns, 'link', 'set', 'lo', 'up']);
    execFileSync('ip', ['-n', p.netns, 'addr', 'add', `${p.ip}/24`, 'dev', 'lo']);
  }
  await processIn(`${podA.cgroup}/cri-containerd-0001.scope`, podA.netns);
  await processIn(`${podA.cgroup}/cri-containerd-0002.scope`, podA.netns);
  await processIn(`${podB.cgroup}/0003`, podB.netns);
  // A hostNetwork pod: nothing of it to capture.
  await processIn(`${systemdRoot}/kubepods-pod11111111_2222_4333_8444_555555555555.slice/cri-containerd-0004.scope`);
  // Not a pod: the QoS level's own cgroup.
  await processIn(`${systemdRoot}/kubepods-burstable.slice`, podA.netns);
});

test.after(async () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGKILL');
      await once(c, 'exit');
    }
  }
  // Deepest first: a cgroup with children cannot be removed.
  const dirs = new Set<string>();
  for (const m of made) for (let d = m; d.startsWith(top); d = d.slice(0, d.lastIndexOf('/'))) dirs.add(d);
  for (const d of [...dirs].sort((a, b) => b.length - a.length)) rmdirSync(abs(d));
  for (const p of [podA, podB]) execFileSync('ip', ['netns', 'del', p.netns]);
});

test('the scan finds a pod of the systemd layout: its UID, cgroup, namespace (by its bind mount) and address', () => {
  const found = scanProc({ root: systemdRoot });
  assert.is(found.length, 1, JSON.stringify(found));
  const pod = found[0]!;
  assert.is(pod.uid, uidA);
  assert.is(pod.cgroup, podA.cgroup);
  assert.is(pod.netns, `/run/netns/${podA.netns}`);
  assert.equal(pod.ips, [podA.ip]);
  assert.is(pod.pids.length, 2, 'both containers');
});

test('the scan finds a pod of the cgroupfs layout, and falls back to /proc/<pid>/ns/net without a bind mount', () => {
  const found = scanProc({ root: cgroupfsRoot, netnsDirs: [] });
  assert.is(found.length, 1);
  assert.is(found[0]!.uid, uidB);
  assert.is(found[0]!.cgroup, podB.cgroup);
  assert.match(found[0]!.netns, /^\/proc\/\d+\/ns\/net$/);
  assert.is(statSync(found[0]!.netns).ino, statSync(`/run/netns/${podB.netns}`).ino, 'the same namespace');
  assert.equal(found[0]!.ips, [podB.ip]);
});

const workload = (ip: string) => ({ key: 'workload/shop/web-1', value: { ip, node: 'n1', serviceAccount: 'web', owner: 'Deployment/web', labels: { app: 'web' }, uid: uidA, phase: 'Running' } });
const enrolled = { key: 'namespace/shop', value: { name: 'shop', labels: { 'ambit.dev/dataplane-mode': 'ambient' } } };

test("a scanned namespace that does not hold the workload's address is not used", () => {
  const discovery = new PodDiscovery({ log, podCgroupRoot: systemdRoot });
  assert.is(discovery.scan(), 1);
  const state = stateWith('n1', [enrolled, workload('10.124.0.99')]);
  assert.is(discovery.locate(state.workloads.get('workload/shop/web-1')!), undefined);
  const right = stateWith('n1', [enrolled, workload(podA.ip)]);
  assert.equal(discovery.locate(right.workloads.get('workload/shop/web-1')!), { netns: `/run/netns/${podA.netns}`, ip: podA.ip, cgroup: podA.cgroup });
});

test('a running workload not found makes the agent scan again: a pod started after its scan, before its plugin was in the chain', async () => {
  // No scan yet: as an agent whose first scan ran before the pod's processes did.
  const discovery = new PodDiscovery({ log, podCgroupRoot: systemdRoot });
  try {
    const w = stateWith('n1', [enrolled, workload(podA.ip)]).workloads.get('workload/shop/web-1')!;
    const changed = once(discovery, 'change');
    assert.is(discovery.locate(w), undefined);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([changed, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('no scan within 5 s')), 5000)))]).finally(() => clearTimeout(timer));
    assert.equal(discovery.locate(w), { netns: `/run/netns/${podA.netns}`, ip: podA.ip, cgroup: podA.cgroup });
  } finally {
    discovery.close();
  }
});

test('an agent started after the pod captures it from the scan, and a restarted one captures it in place without a second copy of any rule', async () => {
  const state = stateWith('n1', [enrolled, workload(podA.ip)]);
  const run = async () => {
    const discovery = new PodDiscovery({ log, podCgroupRoot: systemdRoot });
    discovery.scan();
    const capture = new CaptureManager({ state, redirect: new NetfilterRedirect(), handlers: { outbound: (_p, s) => s.destroy(), inbound: (_p, s) => s.destroy() }, locate: (w) => discovery.locate(w), log });
    capture.start();
    const pod = await until('the scanned pod to be captured', () => capture.capturedPod('shop/web-1'));
    // The agent stops as it does on SIGTERM: listeners close, the redirect stays.
    capture.stopAccepting();
    await capture.stop();
    return pod;
  };
  const first = await run();
  assert.is(first.netns, `/run/netns/${podA.netns}`);
  const fd = openNetns(first.netns);
  try {
    const rules = captureState(fd);
    assert.is(rules.filter((l) => l.endsWith('redirect to :15001')).length, 1);
    // The netfilter mode replaces its table in one transaction (the same table, the same rules).
    const second = await run();
    assert.is(second.netns, first.netns);
    assert.equal(captureState(fd), rules);
  } finally {
    closeFd(fd);
  }
});

test.run();
