// PATCH as the Kubernetes API server applies it: JSON merge patch (RFC 7386 section 3's table), JSON
// patch (RFC 6902 appendix A), strategic merge patch (the examples of Kubernetes' "Update API Objects
// in Place Using kubectl patch" task and its strategic-merge-patch design doc), and what every
// strategy shares: the object's identity cannot change, resourceVersion only when the patch sets it.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { apiError } from './helpers.js';
import { applyJsonPatch, parseJsonPatch } from '../../../cluster/apiserver/json-patch.js';
import type { Json } from '../../../cluster/apiserver/json.js';
import { applyPatch, mergePatch } from '../../../cluster/apiserver/patch.js';
import type { Resource } from '../../../shared/resources/types.js';

function patchDemo(): Resource {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'patch-demo', namespace: 'default', resourceVersion: '41', labels: { app: 'nginx', tier: 'web' } },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: 'nginx' } },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' } },
      template: {
        metadata: { labels: { app: 'nginx' } },
        spec: {
          containers: [{ name: 'patch-demo-ctr', image: 'nginx', args: ['-g', 'daemon off;'], env: [{ name: 'A', value: '1' }], ports: [{ containerPort: 80, name: 'http' }] }],
          tolerations: [{ effect: 'NoSchedule', key: 'dedicated', value: 'test-team' }],
        },
      },
    },
  } as Resource;
}

const spec = (r: Resource) => r.spec as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const podSpec = (r: Resource) => spec(r).template.spec;

// ---- RFC 7386 JSON merge patch ----

test('merge patch: every row of RFC 7386 section 3', () => {
  const rows: [Json, Json, Json][] = [
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [['a', 'b'], ['c', 'd'], ['c', 'd']],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ];
  for (const [target, patch, result] of rows) assert.equal(mergePatch(structuredClone(target), patch), result, `${JSON.stringify(target)} + ${JSON.stringify(patch)}`);
});

test('merge patch on a Deployment: scalars replace, null deletes a label, lists are replaced whole', () => {
  const current = patchDemo();
  const out = applyPatch(current, JSON.stringify({ metadata: { labels: { tier: null } }, spec: { replicas: 5, template: { spec: { containers: [{ name: 'other', image: 'redis' }] } } } }), 'application/merge-patch+json');
  assert.is(spec(out).replicas, 5);
  assert.equal(out.metadata.labels, { app: 'nginx' });
  assert.equal(podSpec(out).containers, [{ name: 'other', image: 'redis' }]);
  assert.equal(podSpec(out).tolerations, podSpec(patchDemo()).tolerations, 'untouched fields stay');
  assert.equal(current, patchDemo(), 'the stored object is not mutated');
});

test('merge patch: a body that is not JSON is 400, one that is not an object is 400', () => {
  assert.match(apiError(() => applyPatch(patchDemo(), '{"spec":', 'application/merge-patch+json'), 400, 'BadRequest').message, /not valid JSON/);
  apiError(() => applyPatch(patchDemo(), '["spec"]', 'application/merge-patch+json'), 400, 'BadRequest');
});

// ---- RFC 6902 JSON patch, appendix A ----

const jsonPatch = (doc: Json, ops: unknown) => applyJsonPatch(doc, parseJsonPatch(JSON.stringify(ops)));

test('json patch: the successful examples of RFC 6902 appendix A', () => {
  // A.1 to A.8, A.10, A.11, A.14 and A.16.
  assert.equal(jsonPatch({ foo: 'bar' }, [{ op: 'add', path: '/baz', value: 'qux' }]), { baz: 'qux', foo: 'bar' });
  assert.equal(jsonPatch({ foo: ['bar', 'baz'] }, [{ op: 'add', path: '/foo/1', value: 'qux' }]), { foo: ['bar', 'qux', 'baz'] });
  assert.equal(jsonPatch({ baz: 'qux', foo: 'bar' }, [{ op: 'remove', path: '/baz' }]), { foo: 'bar' });
  assert.equal(jsonPatch({ foo: ['bar', 'qux', 'baz'] }, [{ op: 'remove', path: '/foo/1' }]), { foo: ['bar', 'baz'] });
  assert.equal(jsonPatch({ baz: 'qux', foo: 'bar' }, [{ op: 'replace', path: '/baz', value: 'boo' }]), { baz: 'boo', foo: 'bar' });
  assert.equal(jsonPatch({ foo: { bar: 'baz', waldo: 'fred' }, qux: { corge: 'grault' } }, [{ op: 'move', from: '/foo/waldo', path: '/qux/thud' }]), { foo: { bar: 'baz' }, qux: { corge: 'grault', thud: 'fred' } });
  assert.equal(jsonPatch({ foo: ['all', 'grass', 'cows', 'eat'] }, [{ op: 'move', from: '/foo/1', path: '/foo/3' }]), { foo: ['all', 'cows', 'eat', 'grass'] });
  assert.equal(jsonPatch({ baz: 'qux', foo: ['a', 2, 'c'] }, [{ op: 'test', path: '/baz', value: 'qux' }, { op: 'test', path: '/foo/1', value: 2 }]), { baz: 'qux', foo: ['a', 2, 'c'] });
  assert.equal(jsonPatch({ foo: 'bar' }, [{ op: 'add', path: '/child', value: { grandchild: {} } }]), { foo: 'bar', child: { grandchild: {} } });
  assert.equal(jsonPatch({ foo: 'bar' }, [{ op: 'add', path: '/baz', value: 'qux', xyz: 123 }]), { foo: 'bar', baz: 'qux' });
  assert.equal(jsonPatch({ '/': 9, '~1': 10 }, [{ op: 'test', path: '/~01', value: 10 }]), { '/': 9, '~1': 10 });
  assert.equal(jsonPatch({ foo: ['bar'] }, [{ op: 'add', path: '/foo/-', value: ['abc', 'def'] }]), { foo: ['bar', ['abc', 'def']] });
  assert.equal(jsonPatch({ a: 1 }, [{ op: 'copy', from: '/a', path: '/b' }]), { a: 1, b: 1 });
});

test('json patch: the failing examples of RFC 6902 appendix A are 422 and say what failed', () => {
  // A.9: a failed test.
  assert.match(apiError(() => jsonPatch({ baz: 'qux' }, [{ op: 'test', path: '/baz', value: 'bar' }]), 422, 'Invalid').message, /operation 0 \(test \/baz\): test failed: the value at \/baz is "qux", not "bar"/);
  // A.12: adding to a nonexistent target.
  assert.match(apiError(() => jsonPatch({ foo: 'bar' }, [{ op: 'add', path: '/baz/bat', value: 'qux' }]), 422, 'Invalid').message, /\/baz does not exist/);
  // A.13: a duplicate "op" member; JSON.parse keeps the last ("remove"), which then finds no /baz.
  apiError(() => applyJsonPatch({ foo: 'bar' }, parseJsonPatch('[{"op":"add","path":"/baz","value":"qux","op":"remove"}]')), 422, 'Invalid');
  // A.15: "10" is not 10.
  apiError(() => jsonPatch({ '/': 9, '~1': 10 }, [{ op: 'test', path: '/~01', value: '10' }]), 422, 'Invalid');
});

test('json patch: pointers, indexes and malformed operations', () => {
  assert.equal(jsonPatch({ 'a/b': { 'c~d': 1 } }, [{ op: 'replace', path: '/a~1b/c~0d', value: 2 }]), { 'a/b': { 'c~d': 2 } });
  assert.match(apiError(() => jsonPatch({ a: [1] }, [{ op: 'add', path: '/a/01', value: 2 }]), 422, 'Invalid').message, /"01" is not an array index/);
  assert.match(apiError(() => jsonPatch({ a: [1] }, [{ op: 'add', path: '/a/2', value: 2 }]), 422, 'Invalid').message, /past the end/);
  assert.match(apiError(() => jsonPatch({ a: [1] }, [{ op: 'replace', path: '/a/-', value: 2 }]), 422, 'Invalid').message, /does not exist/);
  assert.match(apiError(() => jsonPatch({ a: { b: 1 } }, [{ op: 'move', from: '/a', path: '/a/b/c' }]), 422, 'Invalid').message, /own child/);
  assert.match(apiError(() => jsonPatch({ a: 1 }, [{ op: 'add', path: 'a', value: 2 }]), 422, 'Invalid').message, /not a JSON pointer/);
  assert.match(apiError(() => jsonPatch({ a: 1 }, [{ op: 'replace', path: '/a' }]), 422, 'Invalid').message, /"value" is missing/);
  assert.match(apiError(() => jsonPatch({ a: 1 }, [{ op: 'frobnicate', path: '/a' }]), 422, 'Invalid').message, /must be one of add, remove/);
  apiError(() => applyPatch(patchDemo(), '{"op":"add"}', 'application/json-patch+json'), 400, 'BadRequest');
  apiError(() => applyPatch(patchDemo(), '[{"op":', 'application/json-patch+json'), 400, 'BadRequest');
});

test('json patch: operations apply in order and all or nothing', () => {
  const current = patchDemo();
  const ops = [
    { op: 'replace', path: '/spec/template/spec/containers/0/image', value: 'nginx:1.27' },
    { op: 'test', path: '/spec/replicas', value: 7 },
  ];
  apiError(() => applyPatch(current, JSON.stringify(ops), 'application/json-patch+json'), 422, 'Invalid');
  assert.equal(current, patchDemo(), 'a failed test leaves the stored object as it was');
  const out = applyPatch(current, JSON.stringify([ops[0], { op: 'add', path: '/metadata/labels/track', value: 'stable' }]), 'application/json-patch+json');
  assert.is(podSpec(out).containers[0].image, 'nginx:1.27');
  assert.is(out.metadata.labels?.track, 'stable');
});

test('json patch: a "__proto__" member is data, not the prototype', () => {
  const out = jsonPatch({}, [{ op: 'add', path: '/__proto__', value: { polluted: true } }]) as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(out), Object.prototype);
  assert.equal(Object.keys(out), ['__proto__']);
  assert.is(({} as Record<string, unknown>).polluted, undefined);
});

// ---- what every strategy shares ----

test('no strategy may change apiVersion, kind, metadata.name or metadata.namespace (422 naming the field)', () => {
  const e = apiError(() => applyPatch(patchDemo(), '{"metadata":{"name":"other"}}', 'application/merge-patch+json'), 422, 'Invalid');
  assert.equal(
    e.details?.causes?.map((c) => c.field),
    ['metadata.name'],
  );
  assert.equal(
    apiError(() => applyPatch(patchDemo(), '[{"op":"replace","path":"/kind","value":"Service"},{"op":"remove","path":"/metadata/namespace"}]', 'application/json-patch+json'), 422, 'Invalid').details?.causes?.map((c) => c.field),
    ['kind', 'metadata.namespace'],
  );
  apiError(() => applyPatch(patchDemo(), '{"apiVersion":"apps/v1beta1"}', 'application/strategic-merge-patch+json'), 422, 'Invalid');
  apiError(() => applyPatch(patchDemo(), '{"$patch":"delete"}', 'application/strategic-merge-patch+json'), 422, 'Invalid');
});

test('the result carries resourceVersion only when the patch sets it, for the server to check', () => {
  assert.is(applyPatch(patchDemo(), '{"spec":{"replicas":3}}', 'application/merge-patch+json').metadata.resourceVersion, undefined);
  assert.is(applyPatch(patchDemo(), '{"metadata":{"resourceVersion":"40"},"spec":{"replicas":3}}', 'application/merge-patch+json').metadata.resourceVersion, '40');
  assert.is(applyPatch(patchDemo(), '{"metadata":{"resourceVersion":"41"}}', 'application/strategic-merge-patch+json').metadata.resourceVersion, '41');
  assert.is(applyPatch(patchDemo(), '[{"op":"replace","path":"/spec/replicas","value":3}]', 'application/json-patch+json').metadata.resourceVersion, undefined);
  assert.is(applyPatch(patchDemo(), '[{"op":"replace","path":"/metadata/resourceVersion","value":"39"}]', 'application/json-patch+json').metadata.resourceVersion, '39');
});

test('apply-patch+yaml is not for applyPatch: 415', () => {
  assert.match(apiError(() => applyPatch(patchDemo(), 'spec: {}', 'application/apply-patch+yaml'), 415, 'UnsupportedMediaType').message, /serverSideApply/);
});

// ---- strategic merge patch ----

const smp = (current: Resource, patch: unknown) => applyPatch(current, JSON.stringify(patch), 'application/strategic-merge-patch+json');

test('strategic merge: a new container is added by name, ahead of the existing one, as kubectl patch shows', () => {
  const out = smp(patchDemo(), { spec: { template: { spec: { containers: [{ name: 'patch-demo-ctr-2', image: 'redis' }] } } } });
  assert.equal(
    podSpec(out).containers.map((c: { name: string; image: string }) => [c.name, c.image]),
    [
      ['patch-demo-ctr-2', 'redis'],
      ['patch-demo-ctr', 'nginx'],
    ],
  );
});

test('strategic merge: a container named in the patch is merged field by field; env by name, ports by containerPort; args replaced', () => {
  const out = smp(patchDemo(), {
    spec: { template: { spec: { containers: [{ name: 'patch-demo-ctr', image: 'nginx:1.27', args: ['-c', '/etc/nginx.conf'], env: [{ name: 'B', value: '2' }, { name: 'A', value: 'one' }], ports: [{ containerPort: 8080 }, { containerPort: 80, protocol: 'TCP' }] }] } } },
  });
  const [ctr] = podSpec(out).containers;
  assert.is(ctr.image, 'nginx:1.27');
  assert.equal(ctr.args, ['-c', '/etc/nginx.conf'], 'args carry no merge strategy: replaced');
  assert.equal(ctr.env, [
    { name: 'B', value: '2' },
    { name: 'A', value: 'one' },
  ]);
  assert.equal(ctr.ports, [{ containerPort: 8080 }, { containerPort: 80, name: 'http', protocol: 'TCP' }], 'port 80 kept its name and gained a protocol');
});

test('strategic merge: tolerations are replaced, as the kubectl patch task shows', () => {
  const out = smp(patchDemo(), { spec: { template: { spec: { tolerations: [{ effect: 'NoSchedule', key: 'disktype', value: 'ssd' }] } } } });
  assert.equal(podSpec(out).tolerations, [{ effect: 'NoSchedule', key: 'disktype', value: 'ssd' }]);
  assert.is(podSpec(out).containers.length, 1);
});

test('strategic merge: $patch: delete removes a container by name; null deletes a field', () => {
  const two = smp(patchDemo(), { spec: { template: { spec: { containers: [{ name: 'log-tailer', image: 'busybox' }] } } } });
  const out = smp(two, { spec: { replicas: null, template: { spec: { containers: [{ name: 'patch-demo-ctr', image: 'nginx-1.0' }, { $patch: 'delete', name: 'log-tailer' }] } } } });
  assert.equal(
    podSpec(out).containers.map((c: { name: string; image: string }) => [c.name, c.image]),
    [['patch-demo-ctr', 'nginx-1.0']],
  );
  assert.not.ok('replicas' in spec(out));
});

test('strategic merge: $patch: replace replaces a list or a map; $patch: delete on a map empties it', () => {
  const list = smp(patchDemo(), { spec: { template: { spec: { containers: [{ name: 'only', image: 'redis' }, { $patch: 'replace' }] } } } });
  assert.equal(podSpec(list).containers, [{ name: 'only', image: 'redis' }]);
  const map = smp(patchDemo(), { metadata: { labels: { $patch: 'replace', app: 'web' } } });
  assert.equal(map.metadata.labels, { app: 'web' });
  const emptied = smp(patchDemo(), { spec: { selector: { $patch: 'delete' } } });
  assert.equal(spec(emptied).selector, {});
});

test('strategic merge: $retainKeys clears the strategy keys it does not list (Deployment strategy to Recreate)', () => {
  const out = smp(patchDemo(), { spec: { strategy: { $retainKeys: ['type'], type: 'Recreate' } } });
  assert.equal(spec(out).strategy, { type: 'Recreate' });
  const withoutDirective = smp(patchDemo(), { spec: { strategy: { type: 'Recreate' } } });
  assert.ok(spec(withoutDirective).strategy.rollingUpdate, 'without $retainKeys the old member stays, which the real server then rejects');
  assert.match(apiError(() => smp(patchDemo(), { spec: { strategy: { $retainKeys: ['type'], type: 'Recreate', rollingUpdate: {} } } }), 422, 'Invalid').message, /does not list "rollingUpdate"/);
});

test('strategic merge: metadata.finalizers is a set; $deleteFromPrimitiveList removes from it', () => {
  const current = { ...patchDemo(), metadata: { ...patchDemo().metadata, finalizers: ['a', 'b'] } } as Resource;
  const added = smp(current, { metadata: { finalizers: ['c', 'a'] } }) as Resource & { metadata: { finalizers: string[] } };
  // Kubernetes' order: the patch's values in the patch's order, 'b' (server only) after the 'a' it followed.
  assert.equal(added.metadata.finalizers, ['c', 'a', 'b']);
  const removed = smp(current, { metadata: { '$deleteFromPrimitiveList/finalizers': ['a'] } }) as Resource & { metadata: { finalizers: string[] } };
  assert.equal(removed.metadata.finalizers, ['b']);
  const objects = apiError(() => smp(current, { spec: { template: { spec: { '$deleteFromPrimitiveList/containers': ['patch-demo-ctr'] } } } }), 422, 'Invalid');
  assert.match(objects.message, /spec\.template\.spec\.containers is a list of objects/);
  assert.equal(
    objects.details?.causes?.map((c) => c.field),
    ['spec.template.spec.containers'],
  );
});

test('strategic merge: $setElementOrder orders a merged list, including items the patch leaves alone', () => {
  const three = smp(patchDemo(), { spec: { template: { spec: { containers: [{ name: 'b', image: 'b' }, { name: 'c', image: 'c' }] } } } });
  assert.equal(
    podSpec(three).containers.map((c: { name: string }) => c.name),
    ['b', 'c', 'patch-demo-ctr'],
  );
  const ordered = smp(three, { spec: { template: { spec: { '$setElementOrder/containers': [{ name: 'c' }, { name: 'patch-demo-ctr' }, { name: 'b' }], containers: [{ name: 'b', image: 'b:2' }] } } } });
  assert.equal(
    podSpec(ordered).containers.map((c: { name: string; image: string }) => `${c.name}=${c.image}`),
    ['c=c', 'patch-demo-ctr=nginx', 'b=b:2'],
  );
  apiError(() => smp(three, { spec: { template: { spec: { '$setElementOrder/containers': [{ name: 'c' }], containers: [{ name: 'b', image: 'b:2' }] } } } }), 422, 'Invalid');
});

test('strategic merge: Service ports merge by port; a ServiceAccount\'s imagePullSecrets are replaced, a Pod\'s merged', () => {
  const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } } as Resource;
  const out = smp(svc, { spec: { ports: [{ port: 80, targetPort: 9090 }, { name: 'metrics', port: 9100 }] } });
  assert.equal((out.spec as { ports: unknown[] }).ports, [
    { name: 'http', port: 80, targetPort: 9090 },
    { name: 'metrics', port: 9100 },
  ]);
  const sa = { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'web', namespace: 'default' }, imagePullSecrets: [{ name: 'a' }] } as unknown as Resource;
  assert.equal((smp(sa, { imagePullSecrets: [{ name: 'b' }] }) as unknown as { imagePullSecrets: unknown }).imagePullSecrets, [{ name: 'b' }]);
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'default' }, spec: { containers: [], imagePullSecrets: [{ name: 'a' }] } } as unknown as Resource;
  assert.equal((smp(pod, { spec: { imagePullSecrets: [{ name: 'b' }] } }).spec as { imagePullSecrets: unknown }).imagePullSecrets, [{ name: 'b' }, { name: 'a' }]);
});

test('strategic merge: unsupported directives are 422 naming them, never misread', () => {
  assert.match(apiError(() => smp(patchDemo(), { spec: { template: { spec: { containers: [{ $patch: 'merge', name: 'x' }] } } } }), 422, 'Invalid').message, /\$patch: "merge"/);
  assert.match(apiError(() => smp(patchDemo(), { metadata: { labels: { $patch: 'merge' } } }), 422, 'Invalid').message, /\$patch: "merge" at metadata\.labels/);
  assert.match(apiError(() => smp(patchDemo(), { spec: { $frobnicate: true } }), 422, 'Invalid').message, /directive \$frobnicate at spec/);
  assert.match(apiError(() => smp(patchDemo(), { spec: { template: { spec: { containers: [{ image: 'no-name' }] } } } }), 422, 'Invalid').message, /no merge key "name"/);
});

test('strategic merge is refused for custom resources with 415, as the real server does', () => {
  const policy = { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'allow', namespace: 'default' }, spec: { action: 'ALLOW' } } as Resource;
  const e = apiError(() => smp(policy, { spec: { action: 'DENY' } }), 415, 'UnsupportedMediaType');
  assert.match(e.message, /accepted media types include: application\/json-patch\+json, application\/merge-patch\+json/);
  assert.match(e.message, /not supported for custom resources/);
  assert.is((applyPatch(policy, '{"spec":{"action":"DENY"}}', 'application/merge-patch+json').spec as { action: string }).action, 'DENY');
});

test.run();
