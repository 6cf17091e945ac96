// Admission: a batch is stored whole or not at all; ClusterIPs are given and kept; deletes cascade.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../../controller/store/store.js';
import { ClusterIPAllocator } from '../../../controller/resources/allocator.js';
import { applyResources, deleteResources } from '../../../controller/resources/apply.js';
import { parseCidr } from '../../../shared/net/ipv4.js';
import { ResourceInvalid } from '../../../shared/errors.js';
import type { Service } from '../../../shared/resources/types.js';

let dir = '';
let ctx: Parameters<typeof applyResources>[0];
const ns = (name: string) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
const svc = (name: string, extra: Record<string, unknown> = {}) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'shop' }, spec: { selector: { app: name }, ports: [{ port: 80 }], ...extra } });

test.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'ambit-apply-'));
  ctx = { store: new Store(dir), allocator: new ClusterIPAllocator(parseCidr('10.96.0.0/16')), nodeNames: ['node-1', 'node-2'] };
});
test.after.each(() => rmSync(dir, { recursive: true, force: true }));

test('a batch with one bad resource stores nothing, and the error names the bad one', () => {
  const bad = { ...svc('web'), spec: { ports: [{ port: 99999 }] } };
  try {
    applyResources(ctx, [ns('shop'), bad]);
    assert.unreachable('should refuse');
  } catch (err) {
    assert.instance(err, ResourceInvalid);
    assert.equal((err as ResourceInvalid).problems.map((p) => [p.index, p.field]), [[1, 'spec.ports[0].port']]);
  }
  assert.equal(ctx.store.list(), []);
  assert.is(ctx.store.currentRevision, 0);
});

test('a namespace gets a default service account, and re-applying is unchanged', () => {
  const first = applyResources(ctx, [ns('shop')]);
  assert.equal(first.results, [{ resource: 'Namespace shop', action: 'created' }]);
  assert.ok(ctx.store.get('ServiceAccount', 'shop', 'default'));
  assert.equal(applyResources(ctx, [ns('shop')]).results, [{ resource: 'Namespace shop', action: 'unchanged' }]);
});

test('Services get distinct ClusterIPs, which stay on update and cannot be changed', () => {
  applyResources(ctx, [ns('shop'), svc('a'), svc('b')]);
  const ipOf = (n: string) => (ctx.store.get('Service', 'shop', n) as Service).spec!.clusterIP;
  assert.is(ipOf('a'), '10.96.0.10');
  assert.is(ipOf('b'), '10.96.0.11');
  const r = applyResources(ctx, [svc('a', { ports: [{ port: 8080 }] })]);
  assert.equal(r.results, [{ resource: 'Service shop/a', action: 'configured' }]);
  assert.is(ipOf('a'), '10.96.0.10');
  assert.throws(() => applyResources(ctx, [svc('a', { clusterIP: '10.96.0.99' })]), /spec.clusterIP is immutable/);
  assert.throws(() => applyResources(ctx, [svc('c', { clusterIP: '10.96.0.11' })]), /already used by Service shop\/b/);
  assert.throws(() => applyResources(ctx, [svc('c', { clusterIP: '10.1.0.1' })]), /outside the service CIDR/);
});

test('a dry run checks everything and stores nothing', () => {
  const r = applyResources(ctx, [ns('shop')], true);
  assert.equal(r.results, [{ resource: 'Namespace shop', action: 'created' }]);
  assert.equal(ctx.store.list(), []);
});

test('deleting a Namespace deletes what is in it; deleting a missing resource is an error', () => {
  applyResources(ctx, [ns('shop'), svc('a'), ns('other')]);
  const r = deleteResources(ctx, [{ kind: 'Namespace', namespace: '', name: 'shop' }]);
  assert.equal(r.deleted.sort(), ['Namespace shop', 'Service shop/a', 'ServiceAccount shop/default']);
  assert.equal(ctx.store.list().map((x) => x.metadata.name).sort(), ['default', 'other']);
  assert.throws(() => deleteResources(ctx, [{ kind: 'Service', namespace: 'shop', name: 'a' }]), /Service shop\/a not found/);
  assert.equal(deleteResources(ctx, [{ kind: 'Service', namespace: 'shop', name: 'a' }], true).deleted, []);
});

test('a Deployment pinned to a node that does not exist is refused', () => {
  const d = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'x', namespace: 'shop' },
    spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { nodeName: 'node-9', containers: [{ name: 'c', command: ['true'] }] } } },
  };
  assert.throws(() => applyResources(ctx, [ns('shop'), d]), /node node-9 is not in the cluster \(nodes: node-1, node-2\)/);
});

test.run();
