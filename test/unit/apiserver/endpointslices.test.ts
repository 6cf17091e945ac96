// discovery.k8s.io/v1 EndpointSlices through the API, with the real kubectl: the local cluster's
// EndpointSlice controller lists a Service's Running pods, follows a scale, goes with the Service
// (ownerReference), and no client may write a slice. The controller's decisions alone at the end.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { managedBy, managedByLabel, planEndpointSlices, serviceNameLabel } from '../../../cluster/controllers/endpointslices.js';
import { ShareBuilder } from '../../../controller/push/share.js';
import type { EndpointSlice, Pod, Service } from '../../../shared/resources/types.js';
import { deployment, ns, pod, service, reconcileControllers, startApi, type TestApi } from './helpers.js';

let t: TestApi;

test.before(async () => {
  t = await startApi();
  t.store.commit([ns('shop')]);
});
test.after(async () => {
  await t.close();
});

const reconcile = () => reconcileControllers(t.store, { endpointSlices: true });

const slicesOf = (svc: string) => (t.store.list('EndpointSlice', 'shop') as EndpointSlice[]).filter((s) => s.metadata.labels?.[serviceNameLabel] === svc);
const ipsOf = (svc: string) => (t.store.list('Pod', 'shop') as Pod[]).filter((p) => p.metadata.labels?.app === svc).map((p) => p.status.podIP).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
const rows = (out: string) =>
  out
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s{2,}/));

async function kubectlOk(...args: string[]): Promise<string> {
  const out = await t.kubectl(...args);
  assert.is(out.code, 0, out.stderr);
  return out.stdout;
}

test('a Service with pods has one EndpointSlice <service>-<suffix> listing their addresses, owned by the Service; kubectl prints NAME, ADDRESSTYPE, PORTS, ENDPOINTS, AGE', async () => {
  assert.is((await t.call('POST', '/apis/apps/v1/namespaces/shop/deployments', { body: deployment('web', 'shop', 2) })).status, 201);
  assert.is((await t.call('POST', '/api/v1/namespaces/shop/services', { body: service('web') })).status, 201);
  reconcile();
  const svc = t.store.get('Service', 'shop', 'web') as Service;
  const [slice, ...more] = slicesOf('web');
  assert.ok(slice, 'no slice for web');
  assert.is(more.length, 0);
  assert.match(slice.metadata.name, /^web-[a-z0-9]{5}$/);
  assert.is(slice.metadata.labels?.[managedByLabel], managedBy);
  assert.equal(slice.metadata.ownerReferences, [{ apiVersion: 'v1', kind: 'Service', name: 'web', uid: svc.metadata.uid!, controller: true, blockOwnerDeletion: true }]);
  assert.is(slice.addressType, 'IPv4');
  assert.equal(slice.ports, [{ name: '', port: 8080, protocol: 'TCP' }]);
  const pods = t.store.list('Pod', 'shop') as Pod[];
  assert.equal(
    slice.endpoints.map((e) => e.addresses[0]),
    ipsOf('web'),
  );
  const first = slice.endpoints[0]!;
  const p = pods.find((x) => x.status.podIP === first.addresses[0])!;
  assert.equal(first.conditions, { ready: true, serving: true, terminating: false });
  assert.is(first.nodeName, 'node-1');
  assert.equal(first.targetRef, { kind: 'Pod', namespace: 'shop', name: p.metadata.name, uid: p.metadata.uid! });

  const table = rows(await kubectlOk('get', 'endpointslices', '-n', 'shop'));
  assert.equal(table[0], ['NAME', 'ADDRESSTYPE', 'PORTS', 'ENDPOINTS', 'AGE']);
  assert.equal(table[1]!.slice(0, 4), [slice.metadata.name, 'IPv4', '8080', ipsOf('web').join(',')]);
  // The same through the served object: kubectl reads it back as Kubernetes would write it.
  const json = JSON.parse(await kubectlOk('get', 'endpointslice', slice.metadata.name, '-n', 'shop', '-o', 'json')) as EndpointSlice;
  assert.is(json.apiVersion, 'discovery.k8s.io/v1');
  assert.equal(json.endpoints, slice.endpoints);
});

test('a Service selecting no pod keeps one slice with no endpoints; -l kubernetes.io/service-name picks one Service\'s slices', async () => {
  assert.is((await t.call('POST', '/api/v1/namespaces/shop/services', { body: service('api') })).status, 201);
  reconcile();
  const all = rows(await kubectlOk('get', 'endpointslices', '-n', 'shop'));
  assert.is(all.length, 3, all.join('\n'));
  const api = rows(await kubectlOk('get', 'endpointslices', '-n', 'shop', '-l', 'kubernetes.io/service-name=api'));
  assert.is(api.length, 2);
  assert.match(api[1]![0]!, /^api-/);
  assert.equal(api[1]!.slice(1, 4), ['IPv4', '<unset>', '<unset>']);
  const web = rows(await kubectlOk('get', 'endpointslices', '-n', 'shop', '-l', 'kubernetes.io/service-name=web'));
  assert.is(web.length, 2);
  assert.match(web[1]![0]!, /^web-/);
});

test('the slice follows kubectl scale: the same slice lists the new pods, then none', async () => {
  const name = slicesOf('web')[0]!.metadata.name;
  await kubectlOk('scale', 'deployment', 'web', '-n', 'shop', '--replicas=4');
  reconcile();
  assert.equal(slicesOf('web').map((s) => s.metadata.name), [name]);
  assert.is(ipsOf('web').length, 4);
  // As stored, the slices are what the controller wants: its next pass commits nothing (the runtime
  // reconciles again after every commit, so anything else would loop).
  assert.equal(planEndpointSlices(t.store.list('Service') as Service[], t.store.list('Pod') as Pod[], t.store.list('EndpointSlice') as EndpointSlice[]), { upserts: [], deletes: [] });
  const row = rows(await kubectlOk('get', 'endpointslice', name, '-n', 'shop'))[1]!;
  assert.is(row[3], `${ipsOf('web').slice(0, 3).join(',')} + 1 more...`);

  await kubectlOk('scale', 'deployment', 'web', '-n', 'shop', '--replicas=0');
  reconcile();
  assert.equal(slicesOf('web').map((s) => s.metadata.name), [name]);
  assert.equal(slicesOf('web')[0]!.endpoints, []);
  await kubectlOk('scale', 'deployment', 'web', '-n', 'shop', '--replicas=1');
  reconcile();
  assert.is(slicesOf('web')[0]!.endpoints.length, 1);
});

test('a change of the Service (its targetPort, its labels) rewrites the same slice', async () => {
  const [before] = slicesOf('web');
  await kubectlOk('patch', 'service', 'web', '-n', 'shop', '--type=json', '-p', '[{"op":"replace","path":"/spec/ports/0/targetPort","value":9090}]');
  await kubectlOk('label', 'service', 'web', '-n', 'shop', 'tier=front');
  reconcile();
  const after = slicesOf('web');
  assert.equal(after.map((s) => s.metadata.name), [before!.metadata.name]);
  assert.is(after[0]!.metadata.uid, before!.metadata.uid);
  assert.equal(after[0]!.ports, [{ name: '', port: 9090, protocol: 'TCP' }]);
  assert.is(after[0]!.metadata.labels?.tier, 'front');
  assert.is(rows(await kubectlOk('get', 'endpointslices', '-n', 'shop', '-l', 'tier=front'))[1]![2], '9090');
});

test('kubectl get endpointslices -w sees a slice change when the pods change', async () => {
  const rv = t.store.currentRevision;
  const w = await t.watch(`/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices?watch=1&resourceVersion=${rv}`);
  try {
    await kubectlOk('scale', 'deployment', 'web', '-n', 'shop', '--replicas=2');
    reconcile();
    const e = await w.next();
    assert.is(e.type, 'MODIFIED');
    assert.is(e.object.metadata.labels[serviceNameLabel], 'web');
    assert.is(e.object.endpoints.length, 2);
  } finally {
    w.abort();
  }
});

test('no client writes an EndpointSlice: create and apply are refused with 422, an edit of a slice too', async () => {
  const slice = slicesOf('web')[0]!;
  const body = { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'mine', namespace: 'shop' }, addressType: 'IPv4', endpoints: [], ports: [] };
  const created = await t.call('POST', '/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices', { body });
  assert.is(created.status, 422, created.text);
  assert.match(created.json.message, /made by ambit/);
  const file = join(t.dir, 'slice.json');
  writeFileSync(file, JSON.stringify(body));
  const applied = await t.kubectl('apply', '-f', file);
  assert.is.not(applied.code, 0);
  assert.match(applied.stderr, /made by ambit/);
  const patched = await t.kubectl('label', 'endpointslice', slice.metadata.name, '-n', 'shop', 'x=y');
  assert.is.not(patched.code, 0);
  assert.match(patched.stderr, /made by ambit/);
  assert.is(t.store.get('EndpointSlice', 'shop', 'mine'), undefined);
  assert.is(slicesOf('web')[0]!.metadata.labels?.x, undefined);
});

test('EndpointSlices are not sent to agents: their changes change no entry of the share', () => {
  const share = new ShareBuilder('istio-system');
  const slices = t.store.list('EndpointSlice') as EndpointSlice[];
  assert.ok(slices.length > 0);
  assert.equal(share.apply({ revision: 1, changes: slices.map((resource) => ({ type: 'upsert', resource })) }), []);
  assert.equal(share.apply({ revision: 2, changes: slices.map((resource) => ({ type: 'delete', ref: { kind: 'EndpointSlice', namespace: 'shop', name: resource.metadata.name }, resource })) }), []);
});

test('kubectl delete service takes its EndpointSlices with it', async () => {
  assert.ok(slicesOf('web').length > 0);
  await kubectlOk('delete', 'service', 'web', '-n', 'shop');
  assert.equal(slicesOf('web'), []);
  reconcile();
  assert.equal(slicesOf('web'), []);
  assert.is(slicesOf('api').length, 1);
});

test('discovery and OpenAPI serve endpointslices in discovery.k8s.io/v1, read as kubectl explain shows Kubernetes\' types', async () => {
  const resources = rows(await kubectlOk('api-resources', '--api-group=discovery.k8s.io'));
  assert.equal(resources[1], ['endpointslices', 'discovery.k8s.io/v1', 'true', 'EndpointSlice']);
  const explain = await kubectlOk('explain', 'endpointslices.endpoints');
  assert.match(explain, /FIELD: endpoints <\[\]Endpoint>/);
  assert.match(explain, /targetRef/);
});

// The controller's decisions alone.

const svcWith = (targetPort: number | string): Service => ({ ...(service('db') as Service), metadata: { name: 'db', namespace: 'shop', uid: 'svc-uid' }, spec: { selector: { app: 'db' }, ports: [{ name: 'sql', port: 5432, targetPort }] } });
const withPort = (p: Pod, name: string, containerPort: number): Pod => ({ ...p, metadata: { ...p.metadata, uid: `uid-${p.metadata.name}` }, spec: { ...p.spec, containers: [{ ...p.spec.containers[0]!, ports: [{ name, containerPort }] }] } });
let n = 0;
const suffix = () => `s${n++}`;

test('plan: a named targetPort is each pod\'s own number; pods that resolve it differently get a slice each', () => {
  const pods = [withPort(pod('a', 'db', 'node-1', '10.244.1.2'), 'pg', 5432), withPort(pod('b', 'db', 'node-2', '10.244.2.2'), 'pg', 6543), withPort(pod('c', 'db', 'node-1', '10.244.1.3'), 'pg', 5432)];
  const plan = planEndpointSlices([svcWith('pg')], pods, [], suffix);
  assert.equal(plan.deletes, []);
  const byPort = new Map(plan.upserts.map((s) => [s.ports[0]!.port, s.endpoints.map((e) => e.addresses[0])]));
  assert.equal([...byPort.keys()].sort(), [5432, 6543]);
  assert.equal(byPort.get(5432), ['10.244.1.2', '10.244.1.3']);
  assert.equal(byPort.get(6543), ['10.244.2.2']);
  assert.equal(plan.upserts[0]!.ports[0], { name: 'sql', port: 5432, protocol: 'TCP' });
});

test('plan: nothing is rewritten when nothing changed; a pod not Running is not listed; a Service without a selector gets no slice', () => {
  const running = withPort(pod('a', 'db', 'node-1', '10.244.1.2'), 'pg', 5432);
  const pending = withPort(pod('b', 'db', 'node-1', '10.244.1.3', 'Pending'), 'pg', 5432);
  const first = planEndpointSlices([svcWith(5432)], [running, pending], [], suffix);
  assert.is(first.upserts.length, 1);
  assert.equal(first.upserts[0]!.endpoints.map((e) => e.addresses[0]), ['10.244.1.2']);
  // As stored: with a uid and its labels in another order.
  const stored = { ...first.upserts[0]!, metadata: { ...first.upserts[0]!.metadata, uid: 'slice-uid', labels: Object.fromEntries(Object.entries(first.upserts[0]!.metadata.labels!).reverse()) } };
  assert.equal(planEndpointSlices([svcWith(5432)], [running, pending], [stored], suffix), { upserts: [], deletes: [] });
  const selectorless = { ...svcWith(5432), spec: { ports: [{ port: 5432 }] } } as Service;
  assert.equal(planEndpointSlices([selectorless], [running], [], suffix), { upserts: [], deletes: [] });
});

test.run();
