// Leader election over a Lease on the local API server: one of two candidates leads; a leader that
// stops hands the Lease over at once; one that can no longer reach the API steps down within its
// renew deadline and the other takes over once the Lease has lapsed, never two leaders at once.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pino } from 'pino';
import { KubeClient } from '../../../shared/kube/client.js';
import { loadKubeconfig } from '../../../shared/kube/config.js';
import { LeaderElector } from '../../../controller/kube/leader.js';
import type { Resource } from '../../../shared/resources/types.js';
import { ns, startApi, type TestApi } from '../apiserver/helpers.js';
import { until } from '../until.js';

const log = pino({ level: 'silent' });
let t: TestApi;
const cleanups: (() => unknown)[] = [];

test.before.each(async () => {
  t = await startApi();
  await t.call('POST', '/api/v1/namespaces', { body: ns('ambit-system') });
});
test.after.each(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await t.close();
});

/**
 * A candidate with its own client, whose token can be spoilt to cut it off from the API. The lease is
 * long by default: a takeover within a test's wait then cannot come from the Lease lapsing.
 */
function candidate(identity: string, timing = { leaseDurationMs: 30_000, renewDeadlineMs: 20_000 }) {
  let token = loadKubeconfig(t.kubeconfig).token!();
  const client = new KubeClient({ ...loadKubeconfig(t.kubeconfig), token: () => token });
  const elector = new LeaderElector(client, { namespace: 'ambit-system', name: 'ambit-controller', identity, ...timing, retryPeriodMs: 100, log });
  const transitions: string[] = [];
  elector.on('started', () => transitions.push('started'));
  elector.on('stopped', () => transitions.push('stopped'));
  cleanups.push(() => client.close(), () => elector.stop());
  return { elector, transitions, cutOff: () => (token = 'revoked') };
}

const holder = () => (t.store.get('Lease', 'ambit-system', 'ambit-controller') as Resource<'Lease', { holderIdentity?: string; leaseTransitions?: number }> | undefined)?.spec;

test('one of two candidates leads and holds the Lease; the other waits', async () => {
  const a = candidate('a');
  a.elector.start();
  await until('a leading', () => a.elector.isLeader);
  const b = candidate('b');
  b.elector.start();
  await new Promise((r) => setTimeout(r, 1500));
  assert.ok(a.elector.isLeader);
  assert.not.ok(b.elector.isLeader, 'a Lease that is renewed is not taken');
  assert.is(holder()?.holderIdentity, 'a');
  assert.equal(a.transitions, ['started']);
});

test('a leader that stops gives the Lease up, and the other candidate leads at once', async () => {
  const a = candidate('a');
  a.elector.start();
  await until('a leading', () => a.elector.isLeader);
  const b = candidate('b');
  b.elector.start();
  await a.elector.stop();
  // Well within the 30 s lease: handed over, not lapsed.
  await until('b leading', () => b.elector.isLeader);
  assert.equal(holder(), { ...holder(), holderIdentity: 'b', leaseTransitions: 1 });
});

test('a leader cut off from the API steps down; the other takes over after the Lease lapses, never both leading', async () => {
  // A short lease, so that it lapses within the test; a steps down 1 s before b may take over.
  const timing = { leaseDurationMs: 2000, renewDeadlineMs: 1000 };
  const a = candidate('a', timing);
  a.elector.start();
  await until('a leading', () => a.elector.isLeader);
  const b = candidate('b', timing);
  b.elector.start();
  let overlap = false;
  const watch = setInterval(() => (overlap ||= a.elector.isLeader && b.elector.isLeader), 5);
  a.cutOff();
  await until('a stepping down', () => !a.elector.isLeader);
  await until('b leading', () => b.elector.isLeader);
  clearInterval(watch);
  assert.not.ok(overlap, 'two leaders at once');
  assert.equal(a.transitions, ['started', 'stopped']);
  assert.is(holder()?.holderIdentity, 'b');
});

test.run();
