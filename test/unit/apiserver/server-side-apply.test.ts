// Server-side apply as `kubectl apply --server-side` meets it: managedFields in FieldsV1 per
// manager, shared ownership when two managers agree, a 409 naming the fields and their manager when
// they do not, --force-conflicts moving ownership, and a field a manager stops applying removed.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { apiError } from './helpers.js';
import { serverSideApply } from '../../../cluster/apiserver/patch.js';
import type { Resource } from '../../../shared/resources/types.js';

// metadata.managedFields comes typed with Resource (shared/resources/types.ts).
type Deployment = Resource & { spec: Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any

/** What a manager applies: a Deployment with the fields given (no spec at all when `spec` is empty). */
function intent(spec: Record<string, unknown>, labels?: Record<string, string>): Resource {
  return { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'shop', ...(labels ? { labels } : {}) }, ...(Object.keys(spec).length > 0 ? { spec } : {}) } as Resource;
}

const webContainer = { name: 'web', image: 'nginx:1.27', ports: [{ containerPort: 80 }] };
const base = () => intent({ replicas: 3, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [webContainer] } } });

const entry = (r: Resource, manager: string) => (r as Deployment).metadata.managedFields?.find((e) => e.manager === manager);
const spec = (r: Resource) => (r as Deployment).spec;

test('create: the object is the applied configuration, with one Apply entry listing its fields in FieldsV1', () => {
  const out = serverSideApply(undefined, base(), 'ci', false);
  assert.is(spec(out).replicas, 3);
  const mine = entry(out, 'ci');
  assert.ok(mine);
  assert.is(mine.operation, 'Apply');
  assert.is(mine.apiVersion, 'apps/v1');
  assert.is(mine.fieldsType, 'FieldsV1');
  assert.match(mine.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.equal(mine.fieldsV1, {
    'f:spec': {
      'f:replicas': {},
      'f:selector': { 'f:matchLabels': { 'f:app': {} } },
      'f:template': {
        'f:metadata': { 'f:labels': { 'f:app': {} } },
        'f:spec': {
          'f:containers': {
            'k:{"name":"web"}': { '.': {}, 'f:name': {}, 'f:image': {}, 'f:ports': { 'k:{"containerPort":80}': { '.': {}, 'f:containerPort': {} } } },
          },
        },
      },
    },
  });
});

test('two managers: each owns what it applied, and an apply leaves the other\'s fields alone', () => {
  const first = serverSideApply(undefined, base(), 'ci', false);
  const second = serverSideApply(first, intent({}, { team: 'payments' }), 'labeller', false);
  assert.equal(second.metadata.labels, { team: 'payments' });
  assert.is(spec(second).replicas, 3, 'the labeller did not apply replicas, and it stays');
  assert.equal(entry(second, 'labeller')?.fieldsV1, { 'f:metadata': { 'f:labels': { 'f:team': {} } } });
  assert.equal(entry(second, 'ci')?.fieldsV1, entry(first, 'ci')?.fieldsV1);
});

test('a field another manager owns with another value is a 409 naming the field and the manager', () => {
  const first = serverSideApply(undefined, base(), 'ci', false);
  const e = apiError(() => serverSideApply(first, intent({ replicas: 5 }), 'hpa', false), 409, 'Conflict');
  assert.match(e.message, /Apply failed with 1 conflict: conflict with "ci" using apps\/v1: \.spec\.replicas/);
  assert.equal(e.details?.causes, [{ reason: 'FieldManagerConflict', message: 'conflict with "ci" using apps/v1', field: '.spec.replicas' }]);
  const two = apiError(() => serverSideApply(first, intent({ replicas: 5, template: { spec: { containers: [{ name: 'web', image: 'nginx:1.28' }] } } }), 'hpa', false), 409, 'Conflict');
  assert.equal(
    two.details?.causes?.map((c) => c.field),
    ['.spec.replicas', '.spec.template.spec.containers[name="web"].image'],
  );
});

test('applying the value another manager already set is no conflict: the field is then shared', () => {
  const first = serverSideApply(undefined, base(), 'ci', false);
  const shared = serverSideApply(first, intent({ replicas: 3 }), 'hpa', false);
  assert.equal(entry(shared, 'hpa')?.fieldsV1, { 'f:spec': { 'f:replicas': {} } });
  assert.ok((entry(shared, 'ci')?.fieldsV1['f:spec'] as Record<string, unknown>)['f:replicas']);
  // Shared: when ci stops applying replicas, hpa still owns it, so it stays.
  const ciWithout = intent({ selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [webContainer] } } });
  assert.is(spec(serverSideApply(shared, ciWithout, 'ci', false)).replicas, 3);
});

test('force moves ownership: the value changes, the old manager loses the field and keeps the rest', () => {
  const first = serverSideApply(undefined, base(), 'ci', false);
  const forced = serverSideApply(first, intent({ replicas: 5 }), 'hpa', true);
  assert.is(spec(forced).replicas, 5);
  assert.equal(entry(forced, 'hpa')?.fieldsV1, { 'f:spec': { 'f:replicas': {} } });
  const ciSpec = entry(forced, 'ci')?.fieldsV1['f:spec'] as Record<string, unknown>;
  assert.not.ok('f:replicas' in ciSpec);
  assert.ok('f:template' in ciSpec);
  // Now ci applying its old value conflicts with hpa, the new owner.
  assert.match(apiError(() => serverSideApply(forced, base(), 'ci', false), 409, 'Conflict').message, /conflict with "hpa"/);
});

test('a manager that stops applying a field removes it, when no other manager owns it', () => {
  const withLabel = serverSideApply(undefined, intent(base().spec as Record<string, unknown>, { app: 'web', tier: 'front' }), 'ci', false);
  const without = serverSideApply(withLabel, intent(base().spec as Record<string, unknown>, { app: 'web' }), 'ci', false);
  assert.equal(without.metadata.labels, { app: 'web' });
  assert.equal(entry(without, 'ci')?.fieldsV1['f:metadata'], { 'f:labels': { 'f:app': {} } });
  // A container it stops applying goes too, with all its fields.
  const sidecar = { name: 'log', image: 'busybox' };
  const twoContainers = serverSideApply(without, intent({ ...(base().spec as object), template: { spec: { containers: [webContainer, sidecar] } } }), 'ci', false);
  assert.equal(
    spec(twoContainers).template.spec.containers.map((c: { name: string }) => c.name),
    ['web', 'log'],
  );
  const back = serverSideApply(twoContainers, intent({ ...(base().spec as object), template: { spec: { containers: [webContainer] } } }), 'ci', false);
  assert.equal(spec(back).template.spec.containers, [webContainer]);
  assert.equal(spec(back).template.metadata, undefined, 'template.metadata, applied before and not now, is gone and its empty parent pruned');
});

test('a field another manager also set stays when one of them drops it', () => {
  const first = serverSideApply(undefined, intent(base().spec as Record<string, unknown>, { tier: 'front' }), 'ci', false);
  const both = serverSideApply(first, intent({}, { tier: 'front' }), 'labeller', false);
  const ciDrops = serverSideApply(both, base(), 'ci', false);
  assert.equal(ciDrops.metadata.labels, { tier: 'front' });
});

test('the stored object is not mutated, and resourceVersion is kept only when the applied configuration sets one', () => {
  const first = { ...serverSideApply(undefined, base(), 'ci', false), metadata: { ...serverSideApply(undefined, base(), 'ci', false).metadata, resourceVersion: '7', uid: 'u1' } };
  const before = structuredClone(first);
  const out = serverSideApply(first, intent({ replicas: 3, paused: true }), 'ci', false);
  assert.equal(first, before);
  assert.is(out.metadata.resourceVersion, undefined);
  assert.is(out.metadata.uid, 'u1', 'server-set metadata stays');
  const precondition = { ...intent({ replicas: 4 }), metadata: { name: 'web', namespace: 'shop', resourceVersion: '6' } } as Resource;
  assert.is(serverSideApply(first, precondition, 'ci', true).metadata.resourceVersion, '6');
});

test('apply checks what it is given: a field manager, no managedFields, the same object, keyed items with keys', () => {
  const first = serverSideApply(undefined, base(), 'ci', false);
  apiError(() => serverSideApply(first, base(), '', false), 400, 'BadRequest');
  apiError(() => serverSideApply(first, { ...base(), metadata: { name: 'web', namespace: 'shop', managedFields: [] } } as unknown as Resource, 'ci', false), 400, 'BadRequest');
  const renamed = apiError(() => serverSideApply(first, { ...base(), metadata: { name: 'api', namespace: 'shop' } } as Resource, 'ci', false), 422, 'Invalid');
  assert.equal(
    renamed.details?.causes?.map((c) => c.field),
    ['metadata.name'],
  );
  assert.is(serverSideApply(first, { ...base(), metadata: { name: 'web' } } as Resource, 'ci', false).metadata.namespace, 'shop', 'a namespace left out comes from the stored object');
  assert.match(apiError(() => serverSideApply(first, intent({ template: { spec: { containers: [{ image: 'x' }] } } }), 'ci', false), 422, 'Invalid').message, /has no "name"/);
});

test('custom resources: lists are atomic, owned whole', () => {
  const policy = { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'allow', namespace: 'shop' }, spec: { action: 'ALLOW', rules: [{ from: [{ source: { principals: ['a'] } }] }] } } as Resource;
  const out = serverSideApply(undefined, policy, 'ci', false);
  assert.equal(entry(out, 'ci')?.fieldsV1, { 'f:spec': { 'f:action': {}, 'f:rules': {} } });
  const other = { ...policy, spec: { rules: [{ from: [{ source: { principals: ['b'] } }] }] } } as Resource;
  assert.match(apiError(() => serverSideApply(out, other, 'someone', false), 409, 'Conflict').message, /\.spec\.rules/);
});

test.run();
