// The workload a pod belongs to, read from its controller as Istio reads it for telemetry: what
// `source_workload` and the canonical service say on a cluster, where no ambit annotation exists.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { podOwner } from '../../../shared/resources/owners.js';
import type { ObjectMeta } from '../../../shared/resources/types.js';

const pod = (controller: { kind: string; name: string } | undefined, labels: Record<string, string> = {}): { metadata: ObjectMeta } => ({
  metadata: { name: 'p', namespace: 'shop', labels, ...(controller ? { ownerReferences: [{ apiVersion: 'apps/v1', ...controller, uid: 'u', controller: true }] } : {}) },
});

test("a Deployment's pod is the Deployment's, by its ReplicaSet's pod-template-hash suffix", () => {
  assert.is(podOwner(pod({ kind: 'ReplicaSet', name: 'web-v1-7d9f8c6b5a' }, { 'pod-template-hash': '7d9f8c6b5a' })), 'Deployment/web-v1');
});

test('a ReplicaSet made by hand (no matching hash) is its own workload', () => {
  assert.is(podOwner(pod({ kind: 'ReplicaSet', name: 'web' }, { 'pod-template-hash': '7d9f8c6b5a' })), 'ReplicaSet/web');
  assert.is(podOwner(pod({ kind: 'ReplicaSet', name: 'web-7d9f8c6b5a' })), 'ReplicaSet/web-7d9f8c6b5a');
});

test("a CronJob's Job gives the CronJob; another Job, StatefulSet or DaemonSet is itself", () => {
  assert.is(podOwner(pod({ kind: 'Job', name: 'backup-29012345' })), 'CronJob/backup');
  assert.is(podOwner(pod({ kind: 'Job', name: 'migrate' })), 'Job/migrate');
  assert.is(podOwner(pod({ kind: 'StatefulSet', name: 'db' })), 'StatefulSet/db');
  assert.is(podOwner(pod({ kind: 'DaemonSet', name: 'ambit-agent' })), 'DaemonSet/ambit-agent');
});

test('a pod without a controller is its own workload', () => {
  assert.is(podOwner(pod(undefined)), '');
  const owned = pod(undefined);
  owned.metadata.ownerReferences = [{ apiVersion: 'v1', kind: 'Node', name: 'node-1', uid: 'n' }];
  assert.is(podOwner(owned), '', 'an owner that is not the controller names no workload');
});

test.run();
