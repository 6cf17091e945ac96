// Discovery, /version and OpenAPI v3 as the real kubectl 1.32 reads them: an HTTPS server whose
// handler is handleDiscovery (a recording 404, or an echo for writes, otherwise), a kubeconfig, and
// kubectl itself with a fresh cache directory per call so its discovery cache hides nothing.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest, createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CertificateAuthority } from '../../../controller/ca/authority.js';
import { handleDiscovery } from '../../../cluster/apiserver/discovery.js';
import { ServedResources } from '../../../cluster/apiserver/resources.js';
import { installMeshCrds } from '../../../cluster/apiserver/mesh-crds.js';
import { Store } from '../../../controller/store/store.js';
import { ambitVersion } from '../../../shared/build.js';

const run = promisify(execFile);

let dir = '';
let server: Server;
let port = 0;
let rootPem = '';
let kubeconfig = '';
// What the local cluster serves at start: the built-in kinds and the mesh's CRDs.
let served: ServedResources;

interface Recorded {
  method: string;
  url: string;
  contentType: string;
  body: string;
  byDiscovery: boolean;
}
const recorded: Recorded[] = [];

const existingSpec = {
  replicas: 1,
  selector: { matchLabels: { app: 'existing' } },
  template: { metadata: { labels: { app: 'existing' } }, spec: { containers: [{ name: 'web', command: ['sleep', '3600'], args: ['--old'] }] } },
};
/** As a previous `kubectl apply` left it: its last-applied configuration had `args`. */
const existingDeployment = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: {
    name: 'existing',
    namespace: 'default',
    resourceVersion: '7',
    annotations: { 'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'existing', namespace: 'default' }, spec: existingSpec }) },
  },
  spec: existingSpec,
};

/** Stands in for the REST server behind discovery: one Deployment exists, writes are echoed. */
function restStandIn(req: IncomingMessage, res: ServerResponse, body: string): void {
  const path = (req.url ?? '').split('?')[0];
  const json = (status: number, value: unknown): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));
  if (path === '/apis/apps/v1/namespaces/default/deployments/existing') return json(200, existingDeployment);
  if (req.method === 'POST' || req.method === 'PUT') return json(201, JSON.parse(body));
  json(404, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', reason: 'NotFound', message: `${path} not found`, code: 404 });
}

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ambit-discovery-'));
  const store = new Store(join(dir, 'store'));
  installMeshCrds(store);
  served = new ServedResources(() => store.list('CustomResourceDefinition'));
  const ca = CertificateAuthority.open(join(dir, 'ca'), 'cluster.local');
  rootPem = ca.rootPem;
  const serving = ca.issueServing(['127.0.0.1'], ['localhost']);
  server = createServer({ key: serving.keyPem, cert: serving.certPem }, (req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const byDiscovery = handleDiscovery(req, res, served);
      recorded.push({ method: req.method ?? '', url: req.url ?? '', contentType: req.headers['content-type'] ?? '', body, byDiscovery });
      if (!byDiscovery) restStandIn(req, res, body);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
  kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'ambit', cluster: { server: `https://127.0.0.1:${port}`, 'certificate-authority-data': Buffer.from(rootPem).toString('base64') } }],
      users: [{ name: 'dev', user: { token: 'any-token' } }],
      contexts: [{ name: 'ambit', context: { cluster: 'ambit', user: 'dev' } }],
      'current-context': 'ambit',
    }),
  );
});
test.after(() => {
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The real kubectl against the test server, with a cache directory of its own. */
async function kubectl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const cacheDir = mkdtempSync(join(dir, 'cache-'));
  try {
    const { stdout, stderr } = await run('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', cacheDir, ...args], { timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** A direct GET (or other method) with the headers given; the body as text. */
function get(path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: IncomingMessage['headers']; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path, method, headers, ca: rootPem }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const kubectlAccept = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json';

const deployment = (extraSpec: string) => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 2${extraSpec}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        command: [sleep, "3600"]
`;

test('kubectl version shows the server as Kubernetes 1.32 with ambit’s version', async () => {
  const r = await kubectl('version', '-o', 'json');
  assert.is(r.code, 0, r.stderr);
  const server = (JSON.parse(r.stdout) as { serverVersion: Record<string, string> }).serverVersion;
  assert.is(server.major, '1');
  assert.is(server.minor, '32');
  assert.is(server.gitVersion, `v1.32.0-ambit.${ambitVersion}`);
  assert.is(server.goVersion, 'n/a');
  assert.match(server.platform!, /^linux\//);
});

test('kubectl api-resources lists every kind with its short names, scope and group-version', async () => {
  const r = await kubectl('api-resources', '--no-headers');
  assert.is(r.code, 0, r.stderr);
  const rows = new Map(r.stdout.trim().split('\n').map((line) => { const cols = line.trim().split(/\s+/); return [cols[0]!, cols]; }));
  // One row per resource, at its group's preferred version (a CRD's versions are served newest first).
  const preferred = served.all.filter((res, i) => served.all.findIndex((o) => o.group === res.group && o.plural === res.plural) === i);
  assert.is(rows.size, preferred.length);
  for (const res of preferred) {
    const gv = res.group ? `${res.group}/${res.version}` : res.version;
    const expected = [res.plural, ...(res.shortNames.length ? [res.shortNames.join(',')] : []), gv, String(res.namespaced), res.kind];
    assert.equal(rows.get(res.plural), expected, `row of ${res.plural}`);
  }
  assert.equal(rows.get('deployments'), ['deployments', 'deploy', 'apps/v1', 'true', 'Deployment']);
  assert.equal(rows.get('namespaces'), ['namespaces', 'ns', 'v1', 'false', 'Namespace']);
});

test('kubectl api-resources -o wide shows verbs and the all category', async () => {
  const r = await kubectl('api-resources', '-o', 'wide', '--no-headers');
  assert.is(r.code, 0, r.stderr);
  const line = (name: string) => (r.stdout.split('\n').find((l) => l.startsWith(`${name} `)) ?? '').trimEnd();
  assert.match(line('trustbundles'), /\screate,delete,get,list,patch,update,watch\s+ambit$/);
  assert.match(line('deployments'), /\screate,delete,get,list,patch,update,watch\s+all$/);
  assert.match(line('pods'), /\s+all$/);
  assert.match(line('namespaces'), /watch$/);
});

test('kubectl api-versions lists the built-in group-versions and every version the upstream CRDs serve', async () => {
  const r = await kubectl('api-versions');
  assert.is(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim().split('\n'), [
    'admissionregistration.k8s.io/v1',
    'ambit.dev/v1alpha1',
    'apiextensions.k8s.io/v1',
    'apps/v1',
    'authentication.k8s.io/v1',
    'coordination.k8s.io/v1',
    'discovery.k8s.io/v1',
    'gateway.networking.k8s.io/v1',
    'gateway.networking.k8s.io/v1beta1',
    'networking.istio.io/v1',
    'networking.istio.io/v1alpha3',
    'networking.istio.io/v1beta1',
    'policy/v1',
    'rbac.authorization.k8s.io/v1',
    'security.istio.io/v1',
    'security.istio.io/v1beta1',
    'v1',
  ]);
});

test('kubectl explain pod.spec.containers reads the OpenAPI v3 document', async () => {
  const r = await kubectl('explain', 'pod.spec.containers');
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /KIND:\s+Pod/);
  assert.match(r.stdout, /FIELD: containers <\[\]Container>/);
  assert.match(r.stdout, /command\s+<\[\]string> -required-/);
  const ap = await kubectl('explain', 'authorizationpolicy.spec.action');
  assert.is(ap.code, 0, ap.stderr);
  assert.match(ap.stdout, /GROUP:\s+security\.istio\.io[\s\S]*ALLOW\s+DENY\s+AUDIT\s+CUSTOM/);
});

test('kubectl leaves validation to the server: client dry-run passes an unknown field, writes carry fieldValidation=Strict', async () => {
  // kubectl finds fieldValidation on the PATCH operation of the Deployment in /openapi/v3/apis/apps/v1,
  // so it does not validate on the client (the dry run of a bad manifest passes) and asks the server to.
  const good = join(dir, 'good.yaml');
  const bad = join(dir, 'bad.yaml');
  writeFileSync(good, deployment(''));
  writeFileSync(bad, deployment('\n  replicaz: 3'));
  for (const file of [good, bad]) {
    const r = await kubectl('apply', '--dry-run=client', '-f', file);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, /deployment\.apps\/web created \(dry run\)/);
  }
  const before = recorded.length;
  const serverDryRun = await kubectl('apply', '--dry-run=server', '-f', bad);
  assert.is(serverDryRun.code, 0, serverDryRun.stderr);
  const post = recorded.slice(before).find((r) => r.method === 'POST');
  assert.ok(post, 'kubectl sent the object to the server');
  const query = new URL(post.url, 'https://x').searchParams;
  assert.is(query.get('fieldValidation'), 'Strict');
  assert.is(query.get('dryRun'), 'All');
  assert.match(post.body, /"replicaz":3/);
});

test('kubectl apply to an existing Deployment patches containers by name (merge keys from OpenAPI), with fieldValidation=Strict', async () => {
  const file = join(dir, 'existing.yaml');
  writeFileSync(file, deployment('').replace(/web/g, 'existing').replace('name: existing\n        command', 'name: web\n        command'));
  const before = recorded.length;
  await kubectl('apply', '-f', file);
  const patch = recorded.slice(before).find((r) => r.method === 'PATCH');
  assert.ok(patch, 'kubectl sent a PATCH');
  assert.is(patch.contentType, 'application/strategic-merge-patch+json');
  assert.is(new URL(patch.url, 'https://x').searchParams.get('fieldValidation'), 'Strict');
  // With the merge key, kubectl keeps the list's order by name and removes `args` from that
  // container explicitly, instead of sending the whole list to be merged by the server.
  assert.match(patch.body, /"\$setElementOrder\/containers":\[\{"name":"web"\}\]/);
  assert.match(patch.body, /"args":null/);
  // It never needed OpenAPI v2, which the server does not serve.
  assert.not.ok(recorded.some((r) => r.url.startsWith('/openapi/v2')));
});

test('aggregated discovery answers in the version asked for, with the Content-Type naming it', async () => {
  const v2 = await get('/apis', { accept: kubectlAccept });
  assert.is(v2.status, 200);
  assert.is(v2.headers['content-type'], 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList');
  const list = JSON.parse(v2.body) as { kind: string; apiVersion: string; items: { metadata: { name: string }; versions: { version: string; resources: Record<string, unknown>[] }[] }[] };
  assert.is(list.apiVersion, 'apidiscovery.k8s.io/v2');
  const apps = list.items.find((i) => i.metadata.name === 'apps')!;
  const deployments = apps.versions[0]!.resources.find((r) => r.resource === 'deployments')!;
  assert.equal(deployments.responseKind, { group: 'apps', version: 'v1', kind: 'Deployment' });
  assert.is(deployments.scope, 'Namespaced');
  assert.is(deployments.singularResource, 'deployment');
  assert.equal(deployments.shortNames, ['deploy']);
  assert.equal(deployments.subresources, [{ subresource: 'scale', responseKind: { group: 'autoscaling', version: 'v1', kind: 'Scale' }, verbs: ['get', 'patch', 'update'] }]);

  const core = JSON.parse((await get('/api', { accept: kubectlAccept })).body) as typeof list;
  const pods = core.items[0]!.versions[0]!.resources.find((r) => r.resource === 'pods')!;
  assert.equal((pods.subresources as { subresource: string }[]).map((s) => s.subresource), ['status']);

  const beta = await get('/api', { accept: 'application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList' });
  assert.is(beta.headers['content-type'], 'application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList');
  assert.is((JSON.parse(beta.body) as { apiVersion: string }).apiVersion, 'apidiscovery.k8s.io/v2beta1');
});

test('unaggregated discovery: APIVersions, APIGroupList, APIGroup and APIResourceList with subresources', async () => {
  const api = await get('/api', { accept: 'application/json' });
  assert.is(api.headers['content-type'], 'application/json');
  assert.equal((JSON.parse(api.body) as { versions: string[] }).versions, ['v1']);
  const apis = JSON.parse((await get('/apis')).body) as { kind: string; groups: { name: string; preferredVersion: { groupVersion: string } }[] };
  assert.is(apis.kind, 'APIGroupList');
  assert.equal(apis.groups.map((g) => g.name), ['apps', 'policy', 'rbac.authorization.k8s.io', 'coordination.k8s.io', 'admissionregistration.k8s.io', 'apiextensions.k8s.io', 'discovery.k8s.io', 'authentication.k8s.io', 'security.istio.io', 'networking.istio.io', 'ambit.dev', 'gateway.networking.k8s.io']);
  const group = JSON.parse((await get('/apis/apps')).body) as { kind: string; preferredVersion: { groupVersion: string } };
  assert.is(group.kind, 'APIGroup');
  assert.is(group.preferredVersion.groupVersion, 'apps/v1');

  const v1 = JSON.parse((await get('/api/v1?timeout=32s')).body) as { groupVersion: string; resources: Record<string, unknown>[] };
  assert.is(v1.groupVersion, 'v1');
  const pods = v1.resources.find((r) => r.name === 'pods')!;
  assert.equal(pods, { name: 'pods', singularName: 'pod', namespaced: true, kind: 'Pod', verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'], shortNames: ['po'], categories: ['all'] });
  assert.equal(v1.resources.find((r) => r.name === 'pods/status'), { name: 'pods/status', singularName: '', namespaced: true, kind: 'Pod', verbs: ['get', 'patch', 'update'] });
  const apps = JSON.parse((await get('/apis/apps/v1')).body) as typeof v1;
  assert.equal(apps.resources.find((r) => r.name === 'deployments/scale'), { name: 'deployments/scale', singularName: '', namespaced: true, group: 'autoscaling', version: 'v1', kind: 'Scale', verbs: ['get', 'patch', 'update'] });
  const ambit = JSON.parse((await get('/apis/ambit.dev/v1alpha1')).body) as typeof v1;
  assert.equal(ambit.resources.find((r) => r.name === 'trustbundles')!.verbs, ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch']);
  assert.is((await get('/apis/nope.example/v1')).status, 404);
});

test('a client asking only for protobuf gets a 406 Status; other paths and methods are left or refused', async () => {
  for (const path of ['/api', '/apis/apps/v1', '/openapi/v3/api/v1']) {
    const r = await get(path, { accept: 'application/vnd.kubernetes.protobuf' });
    assert.is(r.status, 406, path);
    assert.is((JSON.parse(r.body) as { reason: string }).reason, 'NotAcceptable');
  }
  // /version is JSON whatever is asked, as from the real server; a `protobuf, json` list gets JSON.
  const version = await get('/version', { accept: 'application/vnd.kubernetes.protobuf' });
  assert.is(version.status, 200);
  assert.is(version.headers['content-type'], 'application/json');
  assert.is((await get('/api/v1', { accept: 'application/vnd.kubernetes.protobuf, application/json' })).status, 200);
  assert.is((await get('/api', {}, 'POST')).status, 405);
  const before = recorded.length;
  assert.is((await get('/api/v1/namespaces/default/pods')).status, 404);
  assert.is(recorded[before]!.byDiscovery, false);
});

test('OpenAPI v3: an index of hashed URLs, immutable documents under their hash, a redirect from a stale one', async () => {
  const index = JSON.parse((await get('/openapi/v3')).body) as { paths: Record<string, { serverRelativeURL: string }> };
  assert.equal(Object.keys(index.paths).sort(), ['api/v1', 'apis/admissionregistration.k8s.io/v1', 'apis/ambit.dev/v1alpha1', 'apis/apiextensions.k8s.io/v1', 'apis/apps/v1', 'apis/authentication.k8s.io/v1', 'apis/coordination.k8s.io/v1', 'apis/discovery.k8s.io/v1', 'apis/gateway.networking.k8s.io/v1', 'apis/gateway.networking.k8s.io/v1beta1', 'apis/networking.istio.io/v1', 'apis/networking.istio.io/v1alpha3', 'apis/networking.istio.io/v1beta1', 'apis/policy/v1', 'apis/rbac.authorization.k8s.io/v1', 'apis/security.istio.io/v1', 'apis/security.istio.io/v1beta1']);
  const url = index.paths['apis/apps/v1']!.serverRelativeURL;
  assert.match(url, /^\/openapi\/v3\/apis\/apps\/v1\?hash=[0-9A-F]{128}$/);

  const doc = await get(url, { accept: 'application/json' });
  assert.is(doc.status, 200);
  assert.is(doc.headers['cache-control'], 'public, immutable');
  assert.ok(Date.parse(doc.headers.expires!) > Date.now() + 300 * 24 * 3600 * 1000);
  assert.is((await get(url, { 'if-none-match': doc.headers.etag! })).status, 304);
  const stale = await get('/openapi/v3/apis/apps/v1?hash=0123', { accept: 'application/json' });
  assert.is(stale.status, 301);
  assert.is(stale.headers.location, url);
  assert.is((await get('/openapi/v3/apis/apps/v1')).headers['cache-control'], undefined);

  const spec = JSON.parse(doc.body) as { components: { schemas: Record<string, Record<string, unknown>> }; paths: Record<string, Record<string, { parameters: { name: string }[]; 'x-kubernetes-group-version-kind': unknown }>> };
  const d = spec.components.schemas['io.k8s.api.apps.v1.Deployment']!;
  assert.equal(d['x-kubernetes-group-version-kind'], [{ group: 'apps', kind: 'Deployment', version: 'v1' }]);
  assert.is(d.additionalProperties, false);
  assert.is(spec.components.schemas['io.k8s.api.apps.v1.DeploymentSpec']!.additionalProperties, false);
  const patch = spec.paths['/apis/apps/v1/namespaces/{namespace}/deployments/{name}']!.patch!;
  assert.equal(patch['x-kubernetes-group-version-kind'], { group: 'apps', kind: 'Deployment', version: 'v1' });
  assert.ok(patch.parameters.some((p) => p.name === 'fieldValidation'));
  assert.ok(spec.paths['/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale']!.patch);
  assert.ok(spec.components.schemas['io.k8s.api.autoscaling.v1.Scale']);

  const core = JSON.parse((await get(index.paths['api/v1']!.serverRelativeURL)).body) as typeof spec;
  assert.ok(core.components.schemas['io.k8s.api.core.v1.Pod']);
  assert.is((await get('/openapi/v2')).status, 404);
});

test.run();
