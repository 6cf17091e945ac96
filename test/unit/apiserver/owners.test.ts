// ownerReferences and garbage collection through the API, with the real kubectl: deleting a
// Deployment takes its ReplicaSet and Pods (made by the local cluster's controllers), --cascade=orphan
// leaves them unowned, a dependent with another live owner stays, and one naming a recreated owner's
// old uid is collected.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ChangeEvent } from '../../../controller/store/store.js';
import type { Deployment, Pod, ReplicaSet, Resource } from '../../../shared/resources/types.js';
import { deployment, ns, reconcileControllers, startApi, type TestApi } from './helpers.js';

let t: TestApi;

test.before(async () => {
  t = await startApi();
  t.store.commit([ns('shop')]);
});
test.after(async () => {
  await t.close();
});

const reconcile = () => reconcileControllers(t.store);

const names = (kind: string) => t.store.list(kind, 'shop').map((r) => r.metadata.name);
const rows = (out: string) =>
  out
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s{2,}/));

async function createDeployment(name: string, replicas = 2): Promise<{ d: Deployment; rs: ReplicaSet }> {
  const r = await t.call('POST', '/apis/apps/v1/namespaces/shop/deployments', { body: deployment(name, 'shop', replicas) });
  assert.is(r.status, 201, r.text);
  reconcile();
  const d = t.store.get('Deployment', 'shop', name) as Deployment;
  const rs = (t.store.list('ReplicaSet', 'shop') as ReplicaSet[]).find((x) => x.metadata.ownerReferences?.[0]?.uid === d.metadata.uid)!;
  return { d, rs };
}

test('a Deployment owns a ReplicaSet <deployment>-<pod-template-hash>, which owns its pods; kubectl get rs shows DESIRED, CURRENT, READY', async () => {
  const { d, rs } = await createDeployment('web');
  assert.match(rs.metadata.name, /^web-[0-9a-f]{10}$/);
  assert.equal(rs.metadata.ownerReferences, [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: d.metadata.uid!, controller: true, blockOwnerDeletion: true }]);
  const pods = t.store.list('Pod', 'shop') as Pod[];
  assert.is(pods.length, 2);
  for (const p of pods) {
    assert.ok(p.metadata.name.startsWith(`${rs.metadata.name}-`), p.metadata.name);
    assert.equal(p.metadata.ownerReferences, [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: rs.metadata.name, uid: rs.metadata.uid!, controller: true, blockOwnerDeletion: true }]);
    assert.is(p.metadata.labels?.['pod-template-hash'], rs.metadata.labels?.['pod-template-hash']);
  }
  const out = await t.kubectl('get', 'rs', '-n', 'shop');
  assert.is(out.code, 0, out.stderr);
  assert.equal(rows(out.stdout)[0], ['NAME', 'DESIRED', 'CURRENT', 'READY', 'AGE']);
  assert.equal(rows(out.stdout)[1]!.slice(0, 4), [rs.metadata.name, '2', '2', '2']);
  const wide = rows((await t.kubectl('get', 'replicasets', '-n', 'shop', '-o', 'wide')).stdout);
  assert.equal(wide[0]!.slice(5), ['CONTAINERS', 'IMAGES', 'SELECTOR']);
});

test('a new template is a new ReplicaSet: the old one goes to zero, then is deleted once its pods are gone', async () => {
  const before = t.store.list('ReplicaSet', 'shop').map((r) => r.metadata.name);
  const changed = deployment('web', 'shop', 2);
  changed.spec.template.metadata.labels = { app: 'web', version: 'v2' } as { app: string };
  const r = await t.call('PUT', '/apis/apps/v1/namespaces/shop/deployments/web', { body: changed });
  assert.is(r.status, 200, r.text);
  reconcile();
  const after = t.store.list('ReplicaSet', 'shop') as ReplicaSet[];
  assert.is(after.length, 2);
  assert.is(after.find((x) => x.metadata.name === before[0])!.spec.replicas, 0);
  assert.ok((t.store.list('Pod', 'shop') as Pod[]).every((p) => p.metadata.labels?.version === 'v2'));
  reconcile();
  assert.equal(
    names('ReplicaSet').filter((n) => n.startsWith('web-')),
    after.filter((x) => x.metadata.name !== before[0]).map((x) => x.metadata.name),
  );
});

test('kubectl delete deployment removes its ReplicaSet and its Pods (background propagation)', async () => {
  const out = await t.kubectl('delete', 'deployment', 'web', '-n', 'shop');
  assert.is(out.code, 0, out.stderr);
  assert.is(out.stdout.trim(), 'deployment.apps "web" deleted');
  assert.equal(names('Deployment'), []);
  assert.equal(names('ReplicaSet'), []);
  assert.equal(names('Pod'), []);
});

test('kubectl delete --cascade=orphan leaves the ReplicaSet without its ownerReference, and its pods still owned by it; a new Deployment adopts it', async () => {
  const { rs } = await createDeployment('api');
  const out = await t.kubectl('delete', 'deployment', 'api', '-n', 'shop', '--cascade=orphan');
  assert.is(out.code, 0, out.stderr);
  assert.equal(names('Deployment'), []);
  const kept = t.store.get('ReplicaSet', 'shop', rs.metadata.name)!;
  assert.ok(kept, 'the ReplicaSet stays');
  assert.is(kept.metadata.ownerReferences, undefined);
  assert.is(kept.metadata.uid, rs.metadata.uid);
  const pods = t.store.list('Pod', 'shop');
  assert.is(pods.length, 2);
  assert.ok(pods.every((p) => p.metadata.ownerReferences?.[0]?.uid === rs.metadata.uid));

  // The same Deployment again: its ReplicaSet is adopted (same template, same name), pods kept.
  const podNames = pods.map((p) => p.metadata.name);
  const again = await createDeployment('api');
  assert.is(again.rs.metadata.uid, rs.metadata.uid);
  assert.is(again.rs.metadata.ownerReferences?.[0]?.uid, again.d.metadata.uid);
  assert.equal(names('Pod'), podNames);
  assert.is((await t.kubectl('delete', 'deploy', 'api', '-n', 'shop')).code, 0);
  assert.equal(names('Pod'), []);
});

test('kubectl delete rs --cascade=orphan leaves the pods running, unowned', async () => {
  const { rs } = await createDeployment('cart', 1);
  await t.call('DELETE', '/apis/apps/v1/namespaces/shop/deployments/cart', { body: { propagationPolicy: 'Orphan' } });
  const out = await t.kubectl('delete', 'rs', rs.metadata.name, '-n', 'shop', '--cascade=orphan');
  assert.is(out.code, 0, out.stderr);
  const pods = t.store.list('Pod', 'shop');
  assert.is(pods.length, 1);
  assert.is(pods[0]!.metadata.ownerReferences, undefined);
  // Without owners, a pod is never garbage.
  assert.equal(await sweptAfter(() => undefined), []);
  await t.kubectl('delete', 'pod', pods[0]!.metadata.name, '-n', 'shop');
});

const configMap = (name: string, owners: Resource[]) => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: 'shop', ownerReferences: owners.map((o) => ({ apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, uid: o.metadata.uid! })) },
  data: { k: 'v' },
});

test('a ConfigMap owned by two owners survives the deletion of one, and goes with the second', async () => {
  const a = (await t.call('POST', '/api/v1/namespaces/shop/configmaps', { body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'owner-a' } } })).json as Resource;
  const b = (await t.call('POST', '/api/v1/namespaces/shop/configmaps', { body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'owner-b' } } })).json as Resource;
  const file = join(t.dir, 'shared.json');
  writeFileSync(file, JSON.stringify(configMap('shared', [a, b])));
  const applied = await t.kubectl('apply', '-f', file);
  assert.is(applied.code, 0, applied.stderr);
  const stored = JSON.parse((await t.kubectl('get', 'cm', 'shared', '-n', 'shop', '-o', 'json')).stdout) as Resource;
  assert.equal(
    stored.metadata.ownerReferences?.map((o) => o.name),
    ['owner-a', 'owner-b'],
  );

  assert.is((await t.kubectl('delete', 'cm', 'owner-a', '-n', 'shop')).code, 0);
  assert.ok(t.store.get('ConfigMap', 'shop', 'shared'), 'owner-b still lives');
  assert.is((await t.kubectl('delete', 'cm', 'owner-b', '-n', 'shop')).code, 0);
  assert.is(t.store.get('ConfigMap', 'shop', 'shared'), undefined);
});

/** What is deleted during `fn` and the collector's sweep after it, as the store's changes say. */
async function sweptAfter(fn: () => unknown): Promise<string[]> {
  const deleted: string[] = [];
  const listener = (e: ChangeEvent) => {
    for (const c of e.changes) if (c.type === 'delete') deleted.push(`${c.resource.kind}/${c.resource.metadata.name}`);
  };
  t.store.on('change', listener);
  try {
    await fn();
    await new Promise((r) => setTimeout(r, 50));
  } finally {
    t.store.off('change', listener);
  }
  return deleted;
}

test('a dependent naming an owner by a uid the live owner does not have (recreated under the same name) is collected', async () => {
  const owner = (await t.call('POST', '/api/v1/namespaces/shop/configmaps', { body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'owner' } } })).json as Resource;
  const live = await t.call('POST', '/api/v1/namespaces/shop/configmaps', { body: configMap('live', [owner]) });
  assert.is(live.status, 201, live.text);
  const stale = configMap('stale', [{ ...owner, metadata: { ...owner.metadata, uid: 'a-uid-of-an-older-owner' } }]);
  const gone = await sweptAfter(() => t.call('POST', '/api/v1/namespaces/shop/configmaps', { body: stale }));
  assert.equal(gone, ['ConfigMap/stale']);
  assert.ok(t.store.get('ConfigMap', 'shop', 'live'));
  // No owner of that name at all: collected too.
  const none = configMap('dangling', [{ ...owner, metadata: { ...owner.metadata, name: 'nobody' } }]);
  assert.equal(await sweptAfter(() => t.call('POST', '/api/v1/namespaces/shop/configmaps', { body: none })), ['ConfigMap/dangling']);
  assert.is((await t.kubectl('delete', 'cm', 'owner', '-n', 'shop')).code, 0);
  assert.is(t.store.get('ConfigMap', 'shop', 'live'), undefined);
});

test('DeleteOptions: an unknown propagationPolicy, or it with orphanDependents, is 422; the query form is read too', async () => {
  const owner = (await t.call('POST', '/api/v1/namespaces/shop/configmaps', { body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'holder' } } })).json as Resource;
  await t.call('POST', '/api/v1/namespaces/shop/configmaps', { body: configMap('held', [owner]) });
  const bad = await t.call('DELETE', '/api/v1/namespaces/shop/configmaps/holder', { body: { propagationPolicy: 'Sometimes' } });
  assert.is(bad.status, 422, bad.text);
  assert.match(bad.json.message, /propagationPolicy: Unsupported value: "Sometimes"/);
  const both = await t.call('DELETE', '/api/v1/namespaces/shop/configmaps/holder', { body: { propagationPolicy: 'Orphan', orphanDependents: true } });
  assert.is(both.status, 422, both.text);
  assert.ok(t.store.get('ConfigMap', 'shop', 'holder'), 'nothing deleted by a refused request');
  const ok = await t.call('DELETE', '/api/v1/namespaces/shop/configmaps/holder?propagationPolicy=Orphan');
  assert.is(ok.status, 200, ok.text);
  assert.is(t.store.get('ConfigMap', 'shop', 'held')!.metadata.ownerReferences, undefined);
});

test('ownerReferences are validated as Kubernetes does: two controllers, or one owner twice, is 422 naming the field', async () => {
  const ref = { apiVersion: 'v1', kind: 'ConfigMap', name: 'x', uid: 'u1', controller: true };
  const two = await t.call('POST', '/api/v1/namespaces/shop/configmaps', { body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', ownerReferences: [ref, { ...ref, name: 'y', uid: 'u2' }] } } });
  assert.is(two.status, 422, two.text);
  assert.match(two.json.message, /metadata.ownerReferences: only one reference can have controller set to true/);
  const twice = await t.call('POST', '/api/v1/namespaces/shop/configmaps', { body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', ownerReferences: [ref, { ...ref, controller: false }] } } });
  assert.is(twice.status, 422, twice.text);
  assert.match(twice.json.message, /metadata.ownerReferences\[1\].uid/);
  const noUid = await t.call('POST', '/api/v1/namespaces/shop/configmaps', { body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'x' }] } } });
  assert.is(noUid.status, 422, noUid.text);
});

test.run();
