// The real kubectl (/usr/bin/kubectl, 1.32) against the API server, discovery and OpenAPI
// included: what a user types and sees.

import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deployment, commitPods, ns, pod, service, startApi, type TestApi } from './helpers.js';

let t: TestApi;

test.before(async () => {
  t = await startApi();
});
test.after(async () => {
  await t.close();
});

/** Rows of kubectl's printed table, split on its column gaps. */
const rows = (out: string) =>
  out
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s{2,}/));

test('kubectl create -f: a namespace, a deployment and a service, printed as kubectl does', async () => {
  const file = join(t.dir, 'app.json');
  writeFileSync(file, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [ns('shop'), deployment('web'), service('web')] }));
  const r = await t.kubectl('create', '-f', file, '--validate=false');
  assert.is(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim().split('\n'), ['namespace/shop created', 'deployment.apps/web created', 'service/web created']);
  commitPods(t.store, [pod('web-1', 'web', 'node-1', '10.244.1.2'), pod('web-2', 'web', 'node-2', '10.244.2.2', 'Pending')]);
});

test('kubectl get: the columns and cells users know, for deployments, pods (also -o wide and -A), services, namespaces and nodes', async () => {
  const d = await t.kubectl('get', 'deploy', '-n', 'shop');
  assert.is(d.code, 0, d.stderr);
  assert.equal(rows(d.stdout)[0], ['NAME', 'READY', 'UP-TO-DATE', 'AVAILABLE', 'AGE']);
  assert.equal(rows(d.stdout)[1]!.slice(0, 4), ['web', '1/2', '2', '1']);

  const p = rows((await t.kubectl('get', 'pods', '-n', 'shop', '-o', 'wide')).stdout);
  assert.equal(p[0], ['NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE', 'IP', 'NODE', 'NOMINATED NODE', 'READINESS GATES']);
  assert.equal(p[1]!.slice(0, 4), ['web-1', '1/1', 'Running', '0']);
  assert.equal(p[1]!.slice(5), ['10.244.1.2', 'node-1', '<none>', '<none>']);
  assert.equal(p[2]!.slice(0, 3), ['web-2', '0/1', 'Pending']);

  const all = rows((await t.kubectl('get', 'pods', '-A')).stdout);
  assert.equal(all[0], ['NAMESPACE', 'NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE']);
  assert.equal(all[1]!.slice(0, 2), ['shop', 'web-1']);

  const s = rows((await t.kubectl('get', 'svc', '-n', 'shop')).stdout);
  assert.equal(s[0], ['NAME', 'TYPE', 'CLUSTER-IP', 'EXTERNAL-IP', 'PORT(S)', 'AGE']);
  assert.equal(s[1]!.slice(0, 5), ['web', 'ClusterIP', (t.store.get('Service', 'shop', 'web')!.spec as { clusterIP: string }).clusterIP, '<none>', '80/TCP']);

  const n = rows((await t.kubectl('get', 'ns')).stdout);
  assert.equal(n[0], ['NAME', 'STATUS', 'AGE']);
  assert.equal(n[1]!.slice(0, 2), ['shop', 'Active']);

  const nodes = rows((await t.kubectl('get', 'nodes')).stdout);
  assert.equal(nodes[0], ['NAME', 'STATUS', 'ROLES', 'AGE', 'VERSION']);
  assert.equal(nodes[1]!.slice(0, 3), ['node-1', 'Ready', '<none>']);

  const selected = rows((await t.kubectl('get', 'pods', '-n', 'shop', '--field-selector', 'status.phase=Running', '-l', 'app=web')).stdout);
  assert.equal(selected.length, 2);
  const json = JSON.parse((await t.kubectl('get', 'deploy', 'web', '-n', 'shop', '-o', 'json')).stdout) as { kind: string; metadata: { generation: number } };
  assert.equal([json.kind, json.metadata.generation], ['Deployment', 1]);
});

test('kubectl shows the server\'s errors: AlreadyExists, Invalid with the field, Conflict on a stale replace, NotFound', async () => {
  const file = join(t.dir, 'web.json');
  const stale = JSON.parse((await t.kubectl('get', 'deploy', 'web', '-n', 'shop', '-o', 'json')).stdout) as ReturnType<typeof deployment>;
  writeFileSync(file, JSON.stringify(deployment('web')));
  const again = await t.kubectl('create', '-f', file, '--validate=false');
  assert.is.not(again.code, 0);
  assert.match(again.stderr, /Error from server \(AlreadyExists\).*deployments\.apps "web" already exists/);

  const bad = deployment('bad') as unknown as { spec: { replicas: unknown } };
  bad.spec.replicas = 'two';
  writeFileSync(file, JSON.stringify(bad));
  const invalid = await t.kubectl('create', '-f', file, '--validate=false');
  assert.match(invalid.stderr, /The Deployment "bad" is invalid: spec\.replicas: must be of type integer/);

  // kubectl's default validation leaves unknown fields to the server (it sends fieldValidation=Strict).
  const unknownField = deployment('typo') as unknown as { spec: Record<string, unknown> };
  unknownField.spec.replicaz = 2;
  writeFileSync(file, JSON.stringify(unknownField));
  const strict = await t.kubectl('create', '-f', file);
  assert.is.not(strict.code, 0);
  assert.match(strict.stderr, 'spec.replicaz');
  assert.is(t.store.get('Deployment', 'shop', 'typo'), undefined);

  // Someone else changes the deployment; a replace from the older copy is refused.
  const newer = (await t.call('GET', '/apis/apps/v1/namespaces/shop/deployments/web')).json;
  newer.metadata.labels.tier = 'front';
  assert.is((await t.call('PUT', '/apis/apps/v1/namespaces/shop/deployments/web', { body: newer })).status, 200);
  stale.spec.replicas = 7;
  writeFileSync(file, JSON.stringify(stale));
  const conflict = await t.kubectl('replace', '-f', file, '--validate=false');
  assert.is.not(conflict.code, 0);
  assert.match(conflict.stderr, /Error from server \(Conflict\).*Operation cannot be fulfilled on deployments\.apps "web": the object has been modified; please apply your changes to the latest version and try again/);

  const missing = await t.kubectl('get', 'deploy', 'ghost', '-n', 'shop');
  assert.match(missing.stderr, /Error from server \(NotFound\): deployments\.apps "ghost" not found/);
});

test('kubectl scale patches deployments/scale and the Deployment follows', async () => {
  const r = await t.kubectl('scale', 'deploy', 'web', '-n', 'shop', '--replicas=3');
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout.trim(), 'deployment.apps/web scaled');
  assert.is((t.store.get('Deployment', 'shop', 'web')!.spec as { replicas: number }).replicas, 3);
  assert.equal(rows((await t.kubectl('get', 'deploy', 'web', '-n', 'shop')).stdout)[1]!.slice(0, 2), ['web', '1/3']);
});

test('kubectl label patches the object: the label is stored', async () => {
  const r = await t.kubectl('label', 'ns', 'shop', 'team=a');
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout.trim(), 'namespace/shop labeled');
  assert.is(t.store.get('Namespace', '', 'shop')!.metadata.labels?.team, 'a');
});

test('kubectl get -w prints the list, then each change as it happens', async () => {
  const child = spawn('/usr/bin/kubectl', ['--kubeconfig', t.kubeconfig, '--cache-dir', join(t.dir, 'kube-cache'), 'get', 'ns', '-w'], { env: { ...process.env, HOME: t.dir } });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const until = async (re: RegExp) => {
    const end = Date.now() + 10_000;
    while (!re.test(out)) {
      if (Date.now() > end) throw new Error(`kubectl get -w never printed ${re}; it printed:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  try {
    await until(/^shop\s+Active/m);
    assert.equal(rows(out)[0], ['NAME', 'STATUS', 'AGE']);
    await t.call('POST', '/api/v1/namespaces', { body: ns('later') });
    await until(/^later\s+Active/m);
    const lines = out.trim().split('\n');
    assert.match(lines[lines.length - 1]!, /^later\s+Active\s+\d+s$/);
  } finally {
    child.kill();
  }
});

test('Secrets and ConfigMaps: stringData is stored as base64 data, never as itself; kubectl shows TYPE and DATA', async () => {
  const file = join(t.dir, 'config.yaml');
  writeFileSync(
    file,
    `apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: shop}\nstringData: {password: s3cret}\ndata: {user: YWRtaW4=}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: shop}\ndata: {mode: fast, level: '3'}\n`,
  );
  const r = await t.kubectl('apply', '-f', file);
  assert.is(r.code, 0, r.stderr);
  const secret = t.store.get('Secret', 'shop', 'db') as unknown as { type: string; data: Record<string, string>; stringData?: unknown };
  assert.equal(secret.data, { user: 'YWRtaW4=', password: Buffer.from('s3cret').toString('base64') });
  assert.is(secret.stringData, undefined);
  assert.is(secret.type, 'Opaque');
  assert.equal(rows((await t.kubectl('get', 'secret', 'db', '-n', 'shop')).stdout)[1]!.slice(0, 3), ['db', 'Opaque', '2']);
  assert.equal(rows((await t.kubectl('get', 'cm', 'settings', '-n', 'shop')).stdout)[1]!.slice(0, 2), ['settings', '2']);
  writeFileSync(file, `apiVersion: v1\nkind: Secret\nmetadata: {name: broken, namespace: shop}\ndata: {key: 'not base64!'}\n`);
  const refused = await t.kubectl('apply', '-f', file);
  assert.is.not(refused.code, 0);
  assert.match(refused.stderr, 'data.key');
});

test('Leases (coordination.k8s.io/v1), as leader election writes them: kubectl shows the holder; a malformed time is refused', async () => {
  const file = join(t.dir, 'lease.yaml');
  writeFileSync(file, `apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: ambit-controller, namespace: shop}\nspec: {holderIdentity: controller-a, leaseDurationSeconds: 15, renewTime: '2026-12-01T08:30:00.000000Z', leaseTransitions: 0}\n`);
  const r = await t.kubectl('apply', '-f', file);
  assert.is(r.code, 0, r.stderr);
  assert.equal(rows((await t.kubectl('get', 'leases', '-n', 'shop')).stdout)[1]!.slice(0, 2), ['ambit-controller', 'controller-a']);
  writeFileSync(file, `apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: other, namespace: shop}\nspec: {renewTime: 'yesterday'}\n`);
  const refused = await t.kubectl('apply', '-f', file);
  assert.is.not(refused.code, 0);
  assert.match(refused.stderr, 'spec.renewTime');
});

test('kubectl apply -f creates with the last-applied-configuration annotation kept', async () => {
  const file = join(t.dir, 'sa.json');
  writeFileSync(file, JSON.stringify({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'web', namespace: 'shop' } }));
  const r = await t.kubectl('apply', '-f', file, '--validate=false');
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout.trim(), 'serviceaccount/web created');
  const stored = t.store.get('ServiceAccount', 'shop', 'web')!;
  assert.match(stored.metadata.annotations?.['kubectl.kubernetes.io/last-applied-configuration'] ?? '', /"name":"web"/);
});

test('known gap: kubectl create namespace sends a protobuf body, which is 415 with a way out', async () => {
  const r = await t.kubectl('create', 'namespace', 'typed');
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /Error from server \(UnsupportedMediaType\).*use kubectl create -f or kubectl apply -f/);
});

test('kubectl delete removes the object and waits until it is gone', async () => {
  const r = await t.kubectl('delete', 'deploy', 'web', '-n', 'shop');
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout.trim(), 'deployment.apps "web" deleted');
  const after = await t.kubectl('get', 'deploy', '-n', 'shop');
  assert.is(after.stderr.trim(), 'No resources found in shop namespace.');
  const ns = await t.kubectl('delete', 'ns', 'shop');
  assert.is(ns.stdout.trim(), 'namespace "shop" deleted');
  assert.equal(t.store.list(undefined, 'shop'), []);
});

test.run();
