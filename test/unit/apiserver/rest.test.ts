// The Kubernetes API's REST verbs over raw HTTPS, as any client sees them: paths, Status errors,
// create/read/update/delete with their conflicts, selectors, Tables, and the subresources.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deployment, commitPods, ns, pod, service, startApi, type TestApi } from './helpers.js';

let t: TestApi;
const tableAccept = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json';

test.before.each(async () => {
  t = await startApi();
});
test.after.each(async () => {
  await t.close();
});

test('a request without the admin token, or with another, is a 401 Status', async () => {
  for (const tok of [null, 'wrong-token']) {
    const r = await t.call('GET', '/api/v1/namespaces', { token: tok });
    assert.is(r.status, 401);
    assert.equal(r.json, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
  }
});

test('unknown resources, groups and paths are 404 NotFound; an unsupported verb is 405', async () => {
  for (const path of ['/api/v1/widgets', '/apis/apps/v2/deployments', '/apis/nope.io/v1/things', '/api/v1/namespaces/shop/deployments', '/api/v1/pods/web', '/healthz', '/api/v1/namespaces/shop/pods/a/log']) {
    const r = await t.call('GET', path);
    assert.is(r.status, 404, path);
    assert.is(r.json.kind, 'Status');
    assert.is(r.json.reason, 'NotFound');
  }
  const r = await t.call('POST', '/api/v1/namespaces/default', { body: ns('x') });
  assert.is(r.status, 405);
  assert.is(r.json.reason, 'MethodNotAllowed');
  assert.is((await t.call('DELETE', '/api/v1/namespaces')).status, 405);
});

test('create, get, list: the stored object comes back with apiVersion, kind, uid, resourceVersion and generation 1', async () => {
  const created = await t.call('POST', '/api/v1/namespaces', { body: ns('shop') });
  assert.is(created.status, 201);
  assert.is(created.json.kind, 'Namespace');
  assert.is(created.json.metadata.generation, 1);
  assert.ok(created.json.metadata.uid && created.json.metadata.resourceVersion && created.json.metadata.creationTimestamp);
  const d = await t.call('POST', '/apis/apps/v1/namespaces/shop/deployments', { body: deployment('web') });
  assert.is(d.status, 201, d.text);
  assert.equal([d.json.apiVersion, d.json.kind, d.json.metadata.namespace], ['apps/v1', 'Deployment', 'shop']);
  const got = await t.call('GET', '/apis/apps/v1/namespaces/shop/deployments/web');
  assert.equal(got.json, d.json);
  const list = await t.call('GET', '/apis/apps/v1/deployments');
  assert.is(list.json.kind, 'DeploymentList');
  assert.is(list.json.apiVersion, 'apps/v1');
  assert.is(list.json.metadata.resourceVersion, String(t.store.currentRevision));
  assert.equal(
    list.json.items.map((i: { metadata: { name: string } }) => i.metadata.name),
    ['web'],
  );
  // Every namespace gets its default ServiceAccount, as in Kubernetes.
  const sas = await t.call('GET', '/api/v1/namespaces/shop/serviceaccounts');
  assert.equal(
    sas.json.items.map((i: { metadata: { name: string } }) => i.metadata.name),
    ['default'],
  );
});

test('a body without apiVersion and kind takes the path\'s; a YAML body is accepted; other media types are 415', async () => {
  const r = await t.call('POST', '/api/v1/namespaces', { body: { metadata: { name: 'shop' } } });
  assert.is(r.status, 201, r.text);
  assert.equal([r.json.apiVersion, r.json.kind], ['v1', 'Namespace']);
  const y = await t.call('POST', '/api/v1/namespaces/shop/serviceaccounts', { raw: 'apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: web\n', contentType: 'application/yaml' });
  assert.is(y.status, 201, y.text);
  const x = await t.call('POST', '/api/v1/namespaces/shop/serviceaccounts', { raw: '<sa/>', contentType: 'application/xml' });
  assert.is(x.status, 415);
  assert.is(x.json.reason, 'UnsupportedMediaType');
  const wrongKind = await t.call('POST', '/api/v1/namespaces/shop/serviceaccounts', { body: ns('x') });
  assert.is(wrongKind.status, 400);
});

test('creating what exists is 409 AlreadyExists; the namespace in the body must match the path', async () => {
  await t.call('POST', '/api/v1/namespaces', { body: ns('shop') });
  const again = await t.call('POST', '/api/v1/namespaces', { body: ns('shop') });
  assert.is(again.status, 409);
  assert.is(again.json.reason, 'AlreadyExists');
  assert.is(again.json.message, 'namespaces "shop" already exists');
  assert.equal(again.json.details, { name: 'shop', group: '', kind: 'namespaces' });
  const mismatch = await t.call('POST', '/api/v1/namespaces/shop/services', { body: service('web', 'other') });
  assert.is(mismatch.status, 400);
  assert.is(mismatch.json.message, 'the namespace of the provided object does not match the namespace sent on the request');
});

test('creating in a namespace that does not exist is 404 for that namespace', async () => {
  const r = await t.call('POST', '/api/v1/namespaces/nowhere/services', { body: service('web', 'nowhere') });
  assert.is(r.status, 404);
  assert.is(r.json.message, 'namespaces "nowhere" not found');
});

test('an invalid object is 422 Invalid with a cause per field, as kubectl prints them', async () => {
  await t.call('POST', '/api/v1/namespaces', { body: ns('shop') });
  const bad = deployment('web') as ReturnType<typeof deployment> & { spec: { replicas: unknown; paused?: boolean } };
  bad.spec.replicas = -1;
  bad.spec.paused = true;
  const r = await t.call('POST', '/apis/apps/v1/namespaces/shop/deployments?fieldValidation=Strict', { body: bad });
  assert.is(r.status, 422);
  assert.is(r.json.reason, 'Invalid');
  assert.equal(r.json.details.name, 'web');
  assert.equal(r.json.details.kind, 'Deployment');
  assert.equal(r.json.details.group, 'apps');
  const fields = r.json.details.causes.map((c: { field: string }) => c.field).sort();
  assert.equal(fields, ['spec.paused', 'spec.replicas']);
  assert.match(r.json.message, /^Deployment\.apps "web" is invalid: \[/);
  assert.is(t.store.get('Deployment', 'shop', 'web'), undefined);
  // Pods are made by the cluster from Deployments.
  const p = await t.call('POST', '/api/v1/namespaces/shop/pods', { body: pod('p', 'web', 'node-1', '10.244.1.2') });
  assert.is(p.status, 422);
  assert.match(p.json.details.causes[0].message, /apply a Deployment instead/);
  const fv = await t.call('POST', '/api/v1/namespaces?fieldValidation=Loose', { body: ns('x') });
  assert.is(fv.status, 400);
});

test('dryRun=All validates and answers without storing', async () => {
  const before = t.store.currentRevision;
  const r = await t.call('POST', '/api/v1/namespaces?dryRun=All', { body: ns('shop') });
  assert.is(r.status, 201);
  assert.is(r.json.metadata.name, 'shop');
  assert.is(t.store.currentRevision, before);
  assert.is((await t.call('GET', '/api/v1/namespaces/shop')).status, 404);
  assert.is((await t.call('POST', '/api/v1/namespaces?dryRun=Some', { body: ns('shop') })).status, 400);
});

test('update: a stale resourceVersion is 409 Conflict; a spec change bumps generation, a label change does not', async () => {
  await t.call('POST', '/api/v1/namespaces', { body: ns('shop') });
  const v1 = (await t.call('POST', '/apis/apps/v1/namespaces/shop/deployments', { body: deployment('web') })).json;
  const relabelled = structuredClone(v1);
  relabelled.metadata.labels.tier = 'front';
  const v2 = await t.call('PUT', '/apis/apps/v1/namespaces/shop/deployments/web', { body: relabelled });
  assert.is(v2.status, 200, v2.text);
  assert.is(v2.json.metadata.labels.tier, 'front');
  assert.is(v2.json.metadata.generation, 1);
  assert.ok(Number(v2.json.metadata.resourceVersion) > Number(v1.metadata.resourceVersion));

  const stale = structuredClone(v1);
  stale.spec.replicas = 5;
  const c = await t.call('PUT', '/apis/apps/v1/namespaces/shop/deployments/web', { body: stale });
  assert.is(c.status, 409);
  assert.is(c.json.reason, 'Conflict');
  assert.is(c.json.message, 'Operation cannot be fulfilled on deployments.apps "web": the object has been modified; please apply your changes to the latest version and try again');

  const fresh = structuredClone(v2.json);
  fresh.spec.replicas = 5;
  const v3 = await t.call('PUT', '/apis/apps/v1/namespaces/shop/deployments/web', { body: fresh });
  assert.is(v3.status, 200);
  assert.is(v3.json.metadata.generation, 2);
  assert.is(v3.json.spec.replicas, 5);
  // Without a resourceVersion the update is unconditional, as for built-in kinds.
  delete fresh.metadata.resourceVersion;
  fresh.spec.replicas = 1;
  const v4 = await t.call('PUT', '/apis/apps/v1/namespaces/shop/deployments/web', { body: fresh });
  assert.is(v4.json.metadata.generation, 3);

  const renamed = await t.call('PUT', '/apis/apps/v1/namespaces/shop/deployments/web', { body: { ...fresh, metadata: { ...fresh.metadata, name: 'other' } } });
  assert.is(renamed.status, 400);
  assert.is((await t.call('PUT', '/apis/apps/v1/namespaces/shop/deployments/ghost', { body: deployment('ghost') })).status, 404);
});

test("kubectl's last-applied-configuration annotation is kept through create and update", async () => {
  const annotation = 'kubectl.kubernetes.io/last-applied-configuration';
  const body = { ...ns('shop'), metadata: { name: 'shop', annotations: { [annotation]: JSON.stringify(ns('shop')) + '\n' } } };
  const r = await t.call('POST', '/api/v1/namespaces', { body });
  assert.is(r.status, 201, r.text);
  assert.is((await t.call('GET', '/api/v1/namespaces/shop')).json.metadata.annotations[annotation], JSON.stringify(ns('shop')) + '\n');
});

test('a Service gets its ClusterIP, kept across an update that does not name it', async () => {
  await t.call('POST', '/api/v1/namespaces', { body: ns('shop') });
  const s = await t.call('POST', '/api/v1/namespaces/shop/services', { body: service('web') });
  assert.match(s.json.spec.clusterIP, /^10\.96\./);
  const u = await t.call('PUT', '/api/v1/namespaces/shop/services/web', { body: service('web') });
  assert.is(u.json.spec.clusterIP, s.json.spec.clusterIP);
});

test('patch: unsupported media types are 415; until patch.ts lands, its strategies answer 415 too', async () => {
  await t.call('POST', '/api/v1/namespaces', { body: ns('shop') });
  const r = await t.call('PATCH', '/api/v1/namespaces/shop', { raw: '{}', contentType: 'application/json' });
  assert.is(r.status, 415);
  assert.match(r.json.message, /application\/merge-patch\+json/);
  const missing = await t.call('PATCH', '/api/v1/namespaces/ghost', { raw: '{}', contentType: 'application/merge-patch+json' });
  assert.is(missing.status, 404);
  const noManager = await t.call('PATCH', '/api/v1/namespaces/shop', { raw: 'metadata: {name: shop}', contentType: 'application/apply-patch+yaml' });
  assert.is(noManager.status, 400);
  // The seam: whatever patch.ts answers (415 today, the patched object once it lands) is what the client gets.
  const merge = await t.call('PATCH', '/api/v1/namespaces/shop', { raw: '{"metadata":{"labels":{"a":"b"}}}', contentType: 'application/merge-patch+json' });
  assert.ok(merge.status === 415 || (merge.status === 200 && merge.json.metadata.labels.a === 'b'), merge.text);
});

test('delete: answers a Success Status, then the object is gone (404); a Namespace takes its contents', async () => {
  await t.call('POST', '/api/v1/namespaces', { body: ns('shop') });
  await t.call('POST', '/api/v1/namespaces/shop/services', { body: service('web') });
  const uid = t.store.get('Service', 'shop', 'web')!.metadata.uid;
  const d = await t.call('DELETE', '/api/v1/namespaces/shop/services/web', { body: { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background' } });
  assert.is(d.status, 200);
  assert.equal(d.json, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name: 'web', group: '', kind: 'services', uid } });
  const gone = await t.call('GET', '/api/v1/namespaces/shop/services/web');
  assert.is(gone.status, 404);
  assert.is(gone.json.message, 'services "web" not found');
  assert.is((await t.call('DELETE', '/api/v1/namespaces/shop/services/web')).status, 404);

  await t.call('POST', '/apis/apps/v1/namespaces/shop/deployments', { body: deployment('web') });
  const pre = await t.call('DELETE', '/apis/apps/v1/namespaces/shop/deployments/web', { body: { preconditions: { resourceVersion: '1' } } });
  assert.is(pre.status, 409);
  assert.is((await t.call('DELETE', '/api/v1/namespaces/shop?propagationPolicy=Foreground')).status, 200);
  assert.equal(t.store.list(undefined, 'shop'), []);
});

test('label selectors: =, ==, !=, in, notin, exists and !key, as Kubernetes reads them', async () => {
  await t.call('POST', '/api/v1/namespaces', { body: ns('a', { env: 'prod', tier: 'web' }) });
  await t.call('POST', '/api/v1/namespaces', { body: ns('b', { env: 'dev' }) });
  await t.call('POST', '/api/v1/namespaces', { body: ns('c') });
  const names = async (selector: string) => {
    const r = await t.call('GET', `/api/v1/namespaces?labelSelector=${encodeURIComponent(selector)}`);
    assert.is(r.status, 200, r.text);
    return r.json.items.map((i: { metadata: { name: string } }) => i.metadata.name).join(',');
  };
  assert.is(await names('env=prod'), 'a');
  assert.is(await names('env==dev'), 'b');
  assert.is(await names('env!=prod'), 'b,c');
  assert.is(await names('env in (prod, dev)'), 'a,b');
  assert.is(await names('env notin (prod)'), 'b,c');
  assert.is(await names('tier'), 'a');
  assert.is(await names('!tier'), 'b,c');
  assert.is(await names('env,!tier'), 'b');
  const bad = await t.call('GET', `/api/v1/namespaces?labelSelector=${encodeURIComponent('env in prod')}`);
  assert.is(bad.status, 400);
  assert.is(bad.json.reason, 'BadRequest');
});

test('field selectors: name and namespace everywhere, nodeName and phase for pods; any other field is a 400 naming it', async () => {
  await t.call('POST', '/api/v1/namespaces', { body: ns('shop') });
  commitPods(t.store, [pod('web-1', 'web', 'node-1', '10.244.1.2'), pod('web-2', 'web', 'node-2', '10.244.2.2', 'Pending'), pod('db-1', 'db', 'node-1', '10.244.1.3')]);
  const names = async (path: string) => (await t.call('GET', path)).json.items.map((i: { metadata: { name: string } }) => i.metadata.name).join(',');
  assert.is(await names('/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1'), 'db-1,web-1');
  assert.is(await names('/api/v1/namespaces/shop/pods?fieldSelector=status.phase%3DRunning,metadata.name!%3Ddb-1'), 'web-1');
  assert.is(await names('/api/v1/pods?fieldSelector=metadata.namespace%3Dshop&labelSelector=app%3Dweb'), 'web-1,web-2');
  const bad = await t.call('GET', '/api/v1/namespaces?fieldSelector=spec.nodeName%3Dx');
  assert.is(bad.status, 400);
  assert.match(bad.json.message, /field label not supported: spec\.nodeName/);
});

test('Tables: the columns kubectl shows for pods, deployments, services, namespaces and nodes, rows carrying object metadata', async () => {
  await t.call('POST', '/api/v1/namespaces', { body: ns('shop') });
  await t.call('POST', '/apis/apps/v1/namespaces/shop/deployments', { body: deployment('web') });
  await t.call('POST', '/api/v1/namespaces/shop/services', { body: service('web') });
  commitPods(t.store, [pod('web-1', 'web', 'node-1', '10.244.1.2'), pod('web-2', 'web', 'node-2', '10.244.2.2', 'Pending')]);
  const table = async (path: string) => {
    const r = await t.call('GET', path, { accept: tableAccept });
    assert.is(r.status, 200, r.text);
    assert.is(r.json.kind, 'Table');
    assert.is(r.json.apiVersion, 'meta.k8s.io/v1');
    return r.json as { metadata: { resourceVersion: string }; columnDefinitions: { name: string; priority: number; type: string }[]; rows: { cells: unknown[]; object: { kind: string; metadata: { name: string } } }[] };
  };
  const cols = (tb: Awaited<ReturnType<typeof table>>) => tb.columnDefinitions.filter((c) => c.priority === 0).map((c) => c.name);

  const pods = await table('/api/v1/namespaces/shop/pods');
  assert.equal(cols(pods), ['Name', 'Ready', 'Status', 'Restarts', 'Age']);
  assert.equal(
    pods.columnDefinitions.filter((c) => c.priority === 1).map((c) => c.name),
    ['IP', 'Node', 'Nominated Node', 'Readiness Gates'],
  );
  assert.equal(pods.rows[0]!.cells.slice(0, 4), ['web-1', '1/1', 'Running', '0']);
  assert.match(String(pods.rows[0]!.cells[4]), /^\d+s$/);
  assert.equal(pods.rows[0]!.cells.slice(5, 7), ['10.244.1.2', 'node-1']);
  assert.equal(pods.rows[1]!.cells.slice(0, 3), ['web-2', '0/1', 'Pending']);
  assert.equal(pods.rows[0]!.object.kind, 'PartialObjectMetadata');
  assert.is(pods.metadata.resourceVersion, String(t.store.currentRevision));

  const deploys = await table('/apis/apps/v1/namespaces/shop/deployments');
  assert.equal(cols(deploys), ['Name', 'Ready', 'Up-to-date', 'Available', 'Age']);
  assert.equal(deploys.rows[0]!.cells.slice(0, 4), ['web', '1/2', 2, 1]);

  const services = await table('/api/v1/namespaces/shop/services');
  assert.equal(cols(services), ['Name', 'Type', 'Cluster-IP', 'External-IP', 'Port(s)', 'Age']);
  const svc = t.store.get('Service', 'shop', 'web')!.spec as { clusterIP: string };
  assert.equal(services.rows[0]!.cells.slice(0, 5), ['web', 'ClusterIP', svc.clusterIP, '<none>', '80/TCP']);

  const namespaces = await table('/api/v1/namespaces');
  assert.equal(cols(namespaces), ['Name', 'Status', 'Age']);
  assert.equal(namespaces.rows[0]!.cells.slice(0, 2), ['shop', 'Active']);

  const nodes = await table('/api/v1/nodes');
  assert.equal(cols(nodes), ['Name', 'Status', 'Roles', 'Age', 'Version']);
  assert.equal(
    nodes.rows.map((r) => r.cells.slice(0, 3)),
    [
      ['node-1', 'Ready', '<none>'],
      ['node-2', 'Ready', '<none>'],
    ],
  );

  const sas = await table('/api/v1/namespaces/shop/serviceaccounts');
  assert.equal(cols(sas), ['Name', 'Secrets', 'Age']);
  const one = await t.call('GET', '/apis/apps/v1/namespaces/shop/deployments/web?includeObject=Object', { accept: tableAccept });
  assert.is(one.json.rows.length, 1);
  assert.is(one.json.rows[0].object.kind, 'Deployment');
  const none = await t.call('GET', '/api/v1/namespaces?includeObject=None', { accept: tableAccept });
  assert.is(none.json.rows[0].object, undefined);
  const proto = await t.call('GET', '/api/v1/namespaces', { accept: 'application/vnd.kubernetes.protobuf' });
  assert.is(proto.status, 406);
});

test('Nodes: built from the topology, Ready with addresses and nodeInfo, and read-only (405)', async () => {
  const list = await t.call('GET', '/api/v1/nodes');
  assert.is(list.json.kind, 'NodeList');
  const n = (await t.call('GET', '/api/v1/nodes/node-1')).json;
  assert.is(n.status.conditions.find((c: { type: string }) => c.type === 'Ready').status, 'True');
  assert.equal(n.status.addresses[0], { type: 'InternalIP', address: '10.250.0.1' });
  assert.is(n.spec.podCIDR, '10.244.1.0/24');
  assert.ok(n.status.nodeInfo.kubeletVersion);
  assert.is((await t.call('GET', '/api/v1/nodes/node-9')).status, 404);
  assert.is((await t.call('DELETE', '/api/v1/nodes/node-1')).status, 405);
  assert.is((await t.call('PUT', '/api/v1/nodes/node-1', { body: n })).status, 405);
});

test('pods/status reads the pod; writing it is 405; other subresources are 404', async () => {
  await t.call('POST', '/api/v1/namespaces', { body: ns('shop') });
  commitPods(t.store, [pod('web-1', 'web', 'node-1', '10.244.1.2')]);
  const s = await t.call('GET', '/api/v1/namespaces/shop/pods/web-1/status');
  assert.is(s.status, 200);
  assert.is(s.json.status.podIP, '10.244.1.2');
  assert.is((await t.call('PUT', '/api/v1/namespaces/shop/pods/web-1/status', { body: s.json })).status, 405);
  assert.is((await t.call('GET', '/api/v1/namespaces/shop/pods/web-1/exec')).status, 404);
  assert.is((await t.call('GET', '/api/v1/namespaces/shop/services/x/scale')).status, 404);
  // Deleting a pod is allowed: the runtime makes a new one for its Deployment.
  assert.is((await t.call('DELETE', '/api/v1/namespaces/shop/pods/web-1')).status, 200);
});

test('deployments/scale: an autoscaling/v1 Scale; a merge patch or a PUT sets spec.replicas, a stale version is 409', async () => {
  await t.call('POST', '/api/v1/namespaces', { body: ns('shop') });
  await t.call('POST', '/apis/apps/v1/namespaces/shop/deployments', { body: deployment('web') });
  commitPods(t.store, [pod('web-1', 'web', 'node-1', '10.244.1.2')]);
  const s = await t.call('GET', '/apis/apps/v1/namespaces/shop/deployments/web/scale');
  assert.is(s.json.kind, 'Scale');
  assert.is(s.json.apiVersion, 'autoscaling/v1');
  assert.equal(s.json.spec, { replicas: 2 });
  assert.equal(s.json.status, { replicas: 1, selector: 'app=web' });

  const patched = await t.call('PATCH', '/apis/apps/v1/namespaces/shop/deployments/web/scale', { raw: '{"spec":{"replicas":4}}', contentType: 'application/merge-patch+json' });
  assert.is(patched.status, 200, patched.text);
  assert.is(patched.json.spec.replicas, 4);
  const d = t.store.get('Deployment', 'shop', 'web')!;
  assert.is((d.spec as { replicas: number }).replicas, 4);
  assert.is(d.metadata.generation, 2);

  const put = await t.call('PUT', '/apis/apps/v1/namespaces/shop/deployments/web/scale', { body: { ...s.json, spec: { replicas: 1 } } });
  assert.is(put.status, 409);
  const fresh = { ...patched.json, spec: { replicas: 1 } };
  assert.is((await t.call('PUT', '/apis/apps/v1/namespaces/shop/deployments/web/scale', { body: fresh })).json.spec.replicas, 1);
  const negative = await t.call('PATCH', '/apis/apps/v1/namespaces/shop/deployments/web/scale', { raw: '{"spec":{"replicas":-3}}', contentType: 'application/merge-patch+json' });
  assert.is(negative.status, 422);
  assert.is(negative.json.details.causes[0].field, 'spec.replicas');
  const jsonPatch = await t.call('PATCH', '/apis/apps/v1/namespaces/shop/deployments/web/scale', { raw: '[{"op":"replace","path":"/spec/replicas","value":3}]', contentType: 'application/json-patch+json' });
  assert.is(jsonPatch.json.spec.replicas, 3);
});

test('policies: the API server leaves the mesh\'s review to the controller\'s webhook, as a real one does (no warning, no status of its own)', async () => {
  await t.call('POST', '/api/v1/namespaces', { body: ns('shop') });
  const policy = { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'l7', namespace: 'shop' }, spec: { action: 'DENY', rules: [{ to: [{ operation: { methods: ['POST'] } }] }] } };
  const r = await t.call('POST', '/apis/security.istio.io/v1/namespaces/shop/authorizationpolicies', { body: policy });
  assert.is(r.status, 201, r.text);
  assert.is(r.headers.warning, undefined);
  assert.is(r.json.status, undefined);
  // With the webhook registered, its warnings come back (test/unit/controller/webhook.test.ts).
});

test.run();
