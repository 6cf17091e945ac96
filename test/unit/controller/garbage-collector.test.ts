// The garbage collector's decisions on their own: what goes with a deletion, transitively, and what
// an owner it cannot resolve protects.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { garbageOf, orphansOf } from '../../../controller/resources/garbage-collector.js';
import type { Resource } from '../../../shared/resources/types.js';

const obj = (kind: string, name: string, namespace: string | undefined, uid: string, owners: [string, string, string][] = []): Resource => ({
  apiVersion: 'v1',
  kind,
  metadata: { name, ...(namespace ? { namespace } : {}), uid, ...(owners.length ? { ownerReferences: owners.map(([k, n, u]) => ({ apiVersion: 'v1', kind: k, name: n, uid: u })) } : {}) },
});

const deployment = obj('Deployment', 'web', 'shop', 'd1');
const rs = obj('ReplicaSet', 'web-abc', 'shop', 'r1', [['Deployment', 'web', 'd1']]);
const pod = obj('Pod', 'web-abc-x', 'shop', 'p1', [['ReplicaSet', 'web-abc', 'r1']]);

test('deleting an owner takes its dependents transitively (ReplicaSet, then its pods)', () => {
  assert.equal(garbageOf([deployment, rs, pod], new Set(['Deployment/shop/web'])).map((r) => r.name), ['web-abc', 'web-abc-x']);
  assert.equal(garbageOf([deployment, rs, pod], new Set()), []);
});

test('an owner of the same name in another namespace, or of another uid, is no owner', () => {
  const elsewhere = obj('Deployment', 'web', 'other', 'd1');
  assert.equal(garbageOf([elsewhere, rs], new Set()).map((r) => r.name), ['web-abc']);
  const recreated = obj('Deployment', 'web', 'shop', 'd2');
  assert.equal(garbageOf([recreated, rs], new Set()).map((r) => r.name), ['web-abc']);
});

test('an owner that cannot be resolved protects its dependent: an unknown kind, or a namespaced owner of a cluster-scoped object', () => {
  assert.equal(garbageOf([obj('ConfigMap', 'c', 'shop', 'c1', [['Widget', 'w', 'w1']])], new Set()), []);
  assert.equal(garbageOf([obj('Namespace', 'n', undefined, 'n1', [['ConfigMap', 'c', 'c9']])], new Set()), []);
});

test('Orphan rewrites only the direct dependents, keeping their other owners', () => {
  const shared = obj('ConfigMap', 'c', 'shop', 'c1', [['Deployment', 'web', 'd1'], ['Deployment', 'api', 'd2']]);
  const out = orphansOf([deployment, rs, pod, shared], [deployment]);
  assert.equal(out.map((r) => [r.metadata.name, r.metadata.ownerReferences?.map((o) => o.name)]), [['web-abc', undefined], ['c', ['api']]]);
  assert.is(rs.metadata.ownerReferences!.length, 1, 'the input is not changed');
});

test.run();
