// The mesh CA's keys in the Kubernetes API (a real local API server over HTTPS): the leader makes the
// root and keeps it in `ambit-system/ambit-ca`; a follower waits for it and signs with the same root;
// a rotation saved by the leader reaches a follower through the Secret; a stale save is refused;
// Istio's `cacerts` wins when an operator made it, and one missing a file is refused naming it.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeClient, KubeApiError } from '../../../shared/kube/client.js';
import { loadKubeconfig } from '../../../shared/kube/config.js';
import { loadCa, mirrorSecret, saveCa } from '../../../controller/ca/secret.js';
import { ns, startApi, type TestApi } from '../apiserver/helpers.js';

let t: TestApi;
let kube: KubeClient;
let dir: string;

test.before.each(async () => {
  t = await startApi();
  await t.call('POST', '/api/v1/namespaces', { body: ns('ambit-system') });
  kube = new KubeClient(loadKubeconfig(t.kubeconfig));
  dir = mkdtempSync(join(tmpdir(), 'ambit-ca-secret-'));
});
test.after.each(async () => {
  kube.close();
  await t.close();
  rmSync(dir, { recursive: true, force: true });
});

const options = (name: string, leads: () => boolean) => ({ kube, namespace: 'ambit-system', dir: join(dir, name), trustDomain: 'cluster.local', leads, pollMs: 20 });

test('the leader makes the root in a Secret; a follower that started first waits for it and signs with the same root', async () => {
  let leaderReady = false;
  const follower = loadCa(options('follower', () => false));
  await new Promise((r) => setTimeout(r, 100));
  assert.is((await t.call('GET', '/api/v1/namespaces/ambit-system/secrets/ambit-ca')).status, 404, 'a follower makes no root');
  const leader = await loadCa(options('leader', () => (leaderReady = true)));
  assert.ok(leaderReady);
  const secret = (await t.call('GET', '/api/v1/namespaces/ambit-system/secrets/ambit-ca')).json;
  assert.equal(Object.keys(secret.data).sort(), ['root.crt', 'root.key']);
  const f = await follower;
  assert.equal(f.ca.trustBundle(), leader.ca.trustBundle());
  assert.is(f.secret, 'ambit-ca');
});

test("a rotation saved by the leader reaches a follower through the Secret; a save over someone else's change is a 409", async () => {
  const leader = await loadCa(options('leader', () => true));
  const follower = await loadCa(options('follower', () => false));
  const before = leader.ca.rootPem;
  leader.ca.rotateRoot('cluster.local', 3_600_000);
  const rv = await saveCa(options('leader', () => true), leader.resourceVersion);
  assert.is.not(rv, leader.resourceVersion);
  const secret = (await t.call('GET', '/api/v1/namespaces/ambit-system/secrets/ambit-ca')).json;
  mirrorSecret(join(dir, 'follower'), secret);
  follower.ca.reload('cluster.local');
  assert.equal(follower.ca.trustBundle(), [leader.ca.rootPem, before]);
  try {
    await saveCa(options('leader', () => true), leader.resourceVersion);
    assert.unreachable('a save with a stale resourceVersion must fail');
  } catch (err) {
    assert.instance(err, KubeApiError);
    assert.is((err as KubeApiError).status, 409);
  }
});

test("Istio's cacerts Secret is used when present; one that lacks a file is refused naming it", async () => {
  const leader = await loadCa(options('own', () => true));
  const pem = (s: string) => Buffer.from(s).toString('base64');
  const created = await t.call('POST', '/api/v1/namespaces/ambit-system/secrets', { body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'cacerts' }, data: { 'ca-cert.pem': pem(leader.ca.rootPem), 'root-cert.pem': pem(leader.ca.rootPem) } } });
  assert.is(created.status, 201, created.text);
  try {
    await loadCa(options('plugged', () => true));
    assert.unreachable('an incomplete cacerts must be refused');
  } catch (err) {
    assert.match((err as Error).message, 'Secret ambit-system/cacerts lacks ca-key.pem, cert-chain.pem');
  }
});

test.run();
