// Validating admission webhooks through the real REST API and kubectl: a real HTTPS webhook server
// (its certificate from a CA made here) registered by a ValidatingWebhookConfiguration is asked
// about matching writes with an AdmissionReview; its denial reaches kubectl and nothing is stored,
// its warnings are printed, and failurePolicy, timeoutSeconds, caBundle and selectors hold.

import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CertificateAuthority } from '../../../controller/ca/authority.js';
import { ns, startApi, type TestApi } from './helpers.js';

let t: TestApi;
let hook: Server;
let hookCa: string;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
let seen: any[] = [];
const vwcPath = '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations';

test.before.each(async () => {
  t = await startApi();
  seen = [];
  const ca = CertificateAuthority.open(join(t.dir, 'hook-ca'), 'hooks.local');
  const serving = ca.issueServing(['127.0.0.1'], ['localhost']);
  hookCa = ca.rootPem;
  // Denies a ConfigMap carrying data.forbidden (422, its message), warns of one labelled `warn`,
  // never answers on /hang, and allows the rest.
  hook = createServer({ key: serving.keyPem, cert: serving.certPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      if (req.url?.startsWith('/hang')) return;
      const review = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      seen.push({ url: req.url, review });
      const obj = review.request.object;
      const response: Record<string, unknown> = { uid: review.request.uid, allowed: true };
      if (obj?.data?.forbidden !== undefined) Object.assign(response, { allowed: false, status: { code: 422, reason: 'Invalid', message: 'data.forbidden: this key is reserved' } });
      if (obj?.metadata?.labels?.warn) response.warnings = [`label warn=${obj.metadata.labels.warn} is deprecated`];
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response }));
    });
  });
  await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
  for (const n of ['shop', 'plain']) assert.is((await t.call('POST', '/api/v1/namespaces', { body: ns(n, n === 'shop' ? { webhooks: 'on' } : undefined) })).status, 201);
});
test.after.each(async () => {
  hook.closeAllConnections();
  await new Promise<void>((resolve) => hook.close(() => resolve()));
  await t.close();
});

const hookUrl = (path = '/validate') => `https://127.0.0.1:${(hook.address() as AddressInfo).port}${path}`;

function configuration(o: { name?: string; url?: string; caBundle?: string | null; failurePolicy?: string; timeoutSeconds?: number; extra?: Record<string, unknown> } = {}) {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: { name: o.name ?? 'configmap-policy' },
    webhooks: [
      {
        name: 'configmaps.policy.ambit.dev',
        clientConfig: { url: o.url ?? hookUrl(), ...(o.caBundle === null ? {} : { caBundle: o.caBundle ?? Buffer.from(hookCa).toString('base64') }) },
        rules: [{ apiGroups: [''], apiVersions: ['v1'], resources: ['configmaps'], operations: ['CREATE', 'UPDATE', 'DELETE'], scope: 'Namespaced' }],
        sideEffects: 'None',
        admissionReviewVersions: ['v1'],
        ...(o.failurePolicy ? { failurePolicy: o.failurePolicy } : {}),
        ...(o.timeoutSeconds ? { timeoutSeconds: o.timeoutSeconds } : {}),
        ...o.extra,
      },
    ],
  };
}

const cm = (name: string, data: Record<string, string> = { a: '1' }, labels?: Record<string, string>, namespace = 'shop') => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace, ...(labels ? { labels } : {}) }, data });
const cmPath = (namespace = 'shop') => `/api/v1/namespaces/${namespace}/configmaps`;

async function register(body: unknown) {
  const r = await t.call('POST', vwcPath, { body });
  assert.is(r.status, 201, r.text);
}

test('kubectl apply: a webhook\'s denial is printed with its message and nothing is stored; its warning is printed and the object stored', async () => {
  await register(configuration());
  const file = join(t.dir, 'cm.yaml');
  writeFileSync(file, 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: shop}\ndata: {forbidden: "x"}\n');
  const denied = await t.kubectl('apply', '-f', file);
  assert.is.not(denied.code, 0);
  assert.match(denied.stderr, 'admission webhook "configmaps.policy.ambit.dev" denied the request: data.forbidden: this key is reserved');
  assert.is(t.store.get('ConfigMap', 'shop', 'settings'), undefined);
  writeFileSync(file, 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: shop, labels: {warn: old}}\ndata: {a: "1"}\n');
  const warned = await t.kubectl('apply', '-f', file);
  assert.is(warned.code, 0, warned.stderr);
  assert.is(warned.stdout.trim(), 'configmap/settings created');
  assert.match(warned.stderr, 'Warning: label warn=old is deprecated');
  assert.ok(t.store.get('ConfigMap', 'shop', 'settings'));
  const list = await t.kubectl('get', 'validatingwebhookconfigurations');
  assert.equal(list.stdout.trim().split('\n').map((l) => l.trim().split(/\s{2,}/).slice(0, 2)), [['NAME', 'WEBHOOKS'], ['configmap-policy', '1']]);
});

test('the AdmissionReview carries uid, kind, resource, name, namespace, operation, userInfo, object, oldObject, dryRun and options; the denial is the webhook\'s Status', async () => {
  await register(configuration());
  const created = await t.call('POST', cmPath(), { body: cm('one') });
  assert.is(created.status, 201, created.text);
  const c = seen.at(-1);
  assert.match(c.url, /^\/validate\?timeout=10s$/);
  const q = c.review.request;
  assert.equal([c.review.apiVersion, c.review.kind], ['admission.k8s.io/v1', 'AdmissionReview']);
  assert.equal([q.kind, q.resource, q.name, q.namespace, q.operation, q.dryRun], [{ group: '', version: 'v1', kind: 'ConfigMap' }, { group: '', version: 'v1', resource: 'configmaps' }, 'one', 'shop', 'CREATE', false]);
  assert.equal(q.userInfo.username, 'ambit-admin');
  assert.equal([q.object.data, q.oldObject, q.options.kind], [{ a: '1' }, null, 'CreateOptions']);
  assert.type(q.uid, 'string');

  const current = created.json;
  current.data = { a: '2' };
  assert.is((await t.call('PUT', `${cmPath()}/one`, { body: current })).status, 200);
  assert.equal([seen.at(-1).review.request.operation, seen.at(-1).review.request.oldObject.data, seen.at(-1).review.request.object.data], ['UPDATE', { a: '1' }, { a: '2' }]);

  const dry = await t.call('POST', `${cmPath()}?dryRun=All`, { body: cm('dry') });
  assert.is(dry.status, 201);
  assert.equal([seen.at(-1).review.request.dryRun, seen.at(-1).review.request.options.dryRun], [true, ['All']]);
  assert.is(t.store.get('ConfigMap', 'shop', 'dry'), undefined);

  const del = await t.call('DELETE', `${cmPath()}/one`);
  assert.is(del.status, 200);
  const d = seen.at(-1).review.request;
  assert.equal([d.operation, d.object, d.oldObject.metadata.name, d.options.kind], ['DELETE', null, 'one', 'DeleteOptions']);

  const denied = await t.call('POST', cmPath(), { body: cm('bad', { forbidden: 'x' }) });
  assert.equal([denied.status, denied.json.reason, denied.json.message], [422, 'Invalid', 'admission webhook "configmaps.policy.ambit.dev" denied the request: data.forbidden: this key is reserved']);
  // A write the schema refuses is refused before any webhook hears of it.
  const before = seen.length;
  assert.is((await t.call('POST', cmPath(), { body: { ...cm('x'), data: { 'bad key!': '1' } } })).status, 422);
  assert.is(seen.length, before);
});

test('namespaceSelector and objectSelector choose which writes the webhook hears of; other resources never reach it', async () => {
  await register(configuration({ extra: { namespaceSelector: { matchLabels: { webhooks: 'on' } }, objectSelector: { matchExpressions: [{ key: 'skip', operator: 'DoesNotExist' }] } } }));
  assert.is((await t.call('POST', cmPath('plain'), { body: cm('p', { forbidden: 'x' }, undefined, 'plain') })).status, 201);
  assert.is((await t.call('POST', cmPath(), { body: cm('s', { forbidden: 'x' }, { skip: 'yes' }) })).status, 201);
  assert.is((await t.call('POST', '/api/v1/namespaces/shop/secrets', { body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, data: {} } })).status, 201);
  assert.equal(seen, []);
  assert.is((await t.call('POST', cmPath(), { body: cm('t', { forbidden: 'x' }) })).status, 422);
  assert.is(seen.length, 1);
});

test('failurePolicy: an unreachable, hanging (timeoutSeconds) or untrusted webhook fails the write under Fail (500, nothing stored) and is skipped under Ignore', async () => {
  await register(configuration({ name: 'hanging', url: hookUrl('/hang'), timeoutSeconds: 1 }));
  const hung = await t.call('POST', cmPath(), { body: cm('a') });
  assert.equal([hung.status, hung.json.reason], [500, 'InternalError']);
  assert.match(hung.json.message, /failed calling webhook "configmaps.policy.ambit.dev": failed to call webhook: Post ".*\/hang\?timeout=1s": context deadline exceeded/);
  assert.is(t.store.get('ConfigMap', 'shop', 'a'), undefined);
  assert.is((await t.call('DELETE', `${vwcPath}/hanging`)).status, 200);

  const otherCa = CertificateAuthority.open(join(t.dir, 'other-ca'), 'other.local').rootPem;
  await register(configuration({ name: 'untrusted', caBundle: Buffer.from(otherCa).toString('base64') }));
  const untrusted = await t.call('POST', cmPath(), { body: cm('b') });
  assert.is(untrusted.status, 500);
  assert.match(untrusted.json.message, 'failed to call webhook');
  assert.is((await t.call('DELETE', `${vwcPath}/untrusted`)).status, 200);

  await register(configuration({ name: 'gone', url: 'https://127.0.0.1:1/validate', failurePolicy: 'Ignore' }));
  assert.is((await t.call('POST', cmPath(), { body: cm('c') })).status, 201);
});

test('a configuration naming clientConfig.service is stored, and a call through it fails as to a Service without endpoints: failurePolicy decides', async () => {
  const svc = configuration();
  (svc.webhooks[0]!.clientConfig as Record<string, unknown>) = { service: { namespace: 'shop', name: 'policy' } };
  assert.is((await t.call('POST', vwcPath, { body: svc })).status, 201);
  const refused = await t.call('POST', cmPath(), { body: cm('one') });
  assert.is(refused.status, 500);
  assert.match(refused.json.message, 'cannot call a webhook through Service shop/policy');
  assert.is((await t.call('GET', `${cmPath()}/one`)).status, 404, 'nothing stored');
});

test('a configuration naming an http URL, or neither url nor service, or side effects is 422 naming the field', async () => {
  const http = await t.call('POST', vwcPath, { body: configuration({ url: 'http://127.0.0.1:1/x' }) });
  assert.equal([http.status, http.json.details.causes[0].field], [422, 'webhooks[0].clientConfig.url']);
  const neither = configuration();
  (neither.webhooks[0]!.clientConfig as Record<string, unknown>) = {};
  const r = await t.call('POST', vwcPath, { body: neither });
  assert.equal([r.status, r.json.details.causes[0].field], [422, 'webhooks[0].clientConfig']);
  const noSideEffects = configuration() as { webhooks: Record<string, unknown>[] };
  noSideEffects.webhooks[0]!.sideEffects = 'Some';
  assert.is((await t.call('POST', vwcPath, { body: noSideEffects })).status, 422);
});

test.run();
