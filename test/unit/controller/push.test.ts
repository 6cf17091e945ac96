// The push channel end to end in one process, over real TLS WebSockets: agents get their node's
// share, deltas keep them current, policies reach only the nodes they apply to, a wrong token is
// refused, and agents keep their configuration through a controller outage and resync after it.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Store } from '../../../controller/store/store.js';
import { CertificateAuthority } from '../../../controller/ca/authority.js';
import { ShareBuilder } from '../../../controller/push/share.js';
import { PushServer } from '../../../controller/push/server.js';
import { fixedTokens } from '../../../controller/push/auth.js';
import { AgentState } from '../../../agent/state/state.js';
import { ControllerConnection } from '../../../agent/control/client.js';
import type { Pod, Resource } from '../../../shared/resources/types.js';
import { generateKeyPairSync } from 'node:crypto';
import { WebSocket } from 'ws';
import { issue, sign } from '../../../controller/ca/issuer.js';
import { TrustBundle } from '../../../shared/identity/svid.js';
import { buildCsr } from '../../../shared/identity/x509.js';
import { canonicalOf } from '../../../shared/resources/canonical.js';
import { until } from '../until.js';

const log = pino({ level: 'silent' });
let dir = '';
let store: Store;
let share: ShareBuilder;
let push: PushServer;
let port = 0;
let ca: CertificateAuthority;
let tls: { key: string; cert: string };
const tokens = new Map([
  ['n1', 'token-1'],
  ['n2', 'token-2'],
]);
const agents: { state: AgentState; conn: ControllerConnection }[] = [];

const pod = (name: string, node: string, labels: Record<string, string>, ip: string): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'shop', labels },
  spec: { nodeName: node, containers: [{ name: 'c', command: ['x'] }] },
  status: { phase: 'Running', podIP: ip, hostIP: '', restarts: 0, containerStatuses: [] },
});
const policy = (name: string, selector?: Record<string, string>, namespace = 'shop'): Resource => ({
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name, namespace },
  spec: { ...(selector ? { selector: { matchLabels: selector } } : {}), action: 'DENY', rules: [{}] },
});

async function startPush(): Promise<void> {
  push = new PushServer({ share, nodes: [...tokens.keys()], checkToken: fixedTokens(tokens), tls, log, bundle: () => new TrustBundle({ 'cluster.local': ca.trustBundle() }) });
  push.server.listen(port, '127.0.0.1');
  await once(push.server, 'listening');
  port = (push.server.address() as AddressInfo).port;
}

function connectAgent(node: string, token: string, credential?: { key: string; cert: string }): { state: AgentState; conn: ControllerConnection } {
  const state = new AgentState(node);
  const conn = new ControllerConnection({ url: () => `wss://127.0.0.1:${port}`, node, token: () => token, ca: () => [ca.rootPem], state, log, minBackoffMs: 20, maxBackoffMs: 200, ...(credential ? { credential: () => credential } : {}) });
  conn.start();
  const a = { state, conn };
  agents.push(a);
  return a;
}


test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ambit-push-'));
  store = new Store(join(dir, 'store'));
  ca = await CertificateAuthority.open(join(dir, 'ca'), 'cluster.local');
  const serving = await ca.issueServing(['127.0.0.1'], []);
  tls = { key: serving.keyPem, cert: serving.certPem };
  store.commit([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } }, pod('a', 'n1', { app: 'a' }, '10.0.1.2'), pod('b', 'n2', { app: 'b' }, '10.0.2.2')]);
  share = new ShareBuilder('istio-system');
  share.load(store.list(), store.currentRevision);
  store.on('change', (e) => {
    share.apply(e);
    push?.publish();
  });
  await startPush();
});

test.after(() => {
  for (const a of agents) a.conn.stop();
  push.close();
  rmSync(dir, { recursive: true, force: true });
});

test('agents get the full share on connect and acknowledge the current revision', async () => {
  const n1 = connectAgent('n1', 'token-1');
  const n2 = connectAgent('n2', 'token-2');
  await until('both connected', () => push.agents().every((a) => a.connected));
  assert.equal(await push.waitForAcks(store.currentRevision, 5000), []);
  for (const a of [n1, n2]) {
    assert.is(a.state.version, store.currentRevision);
    assert.equal([...a.state.workloads.values()].map((w) => w.name).sort(), ['a', 'b']);
  }
});

test('a change reaches every agent as a delta, and a policy only the nodes of the pods it selects', async () => {
  const [n1, n2] = agents;
  const e = store.commit([policy('only-a', { app: 'a' }), policy('whole-ns')]);
  assert.equal(await push.waitForAcks(e.revision, 5000), []);
  assert.is(n1!.state.version, e.revision);
  assert.is(n2!.state.version, e.revision);
  assert.equal([...n1!.state.policies.keys()].sort(), ['policy/AuthorizationPolicy/shop/only-a', 'policy/AuthorizationPolicy/shop/whole-ns']);
  assert.equal([...n2!.state.policies.keys()], ['policy/AuthorizationPolicy/shop/whole-ns']);
  // When a selected pod lands on n2 too, the policy follows it there.
  const moved = store.commit([pod('a2', 'n2', { app: 'a' }, '10.0.2.3')]);
  await push.waitForAcks(moved.revision, 5000);
  assert.ok(n2!.state.policies.has('policy/AuthorizationPolicy/shop/only-a'));
  // And a deleted policy leaves.
  const del = store.commit([], [{ kind: 'AuthorizationPolicy', namespace: 'shop', name: 'whole-ns' }]);
  await push.waitForAcks(del.revision, 5000);
  assert.not.ok(n1!.state.policies.has('policy/AuthorizationPolicy/shop/whole-ns'));
});

test('an operator can have one agent sent everything again', async () => {
  const [n1] = agents;
  const full = new Promise<boolean>((resolve) => n1!.state.once('config', (e) => resolve(e.full)));
  assert.ok(push.resync('n1'));
  assert.ok(await full);
  assert.not.ok(push.resync('nobody'));
});

test('a message that is JSON but not an object closes that connection, and the controller goes on', async () => {
  const ws = new WebSocket(`wss://127.0.0.1:${port}/v1/agents/connect`, { ca: ca.rootPem, headers: { authorization: 'Bearer token-1', 'x-ambit-node': 'n1' } });
  await once(ws, 'open');
  ws.send('null');
  const [code] = (await once(ws, 'close')) as [number];
  assert.is(code, 1003);
  const [n1] = agents;
  await until('n1 back', () => n1!.conn.connected && push.agents().find((a) => a.node === 'n1')?.connected === true);
});

test('an agent with a wrong token is refused and never gets configuration', async () => {
  const intruder = connectAgent('n1', 'not-the-token');
  await new Promise((r) => setTimeout(r, 300));
  assert.not.ok(intruder.conn.connected);
  assert.match(intruder.conn.lastError ?? '', '401');
  assert.is(intruder.state.version, 0);
  intruder.conn.stop();
});

test('a node certificate authenticates an agent in place of the token; a workload certificate does not', async () => {
  const issuer = { ca, trustDomain: 'cluster.local', maxTtlSeconds: 3600, defaultTtlSeconds: 3600 };
  const credentialFor = (uri: string, node: string) => {
    const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const cert = uri.includes('/ambit/node/') ? issue(issuer, node, buildCsr(keys.privateKey, keys.publicKey, uri), undefined, store) : sign(issuer, { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'a' }, keys.publicKey.export({ type: 'spki', format: 'der' }));
    return { key: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, cert: cert.chain.join('') };
  };
  const withCert = connectAgent('n2', 'not-the-token', credentialFor('spiffe://cluster.local/ambit/node/n2', 'n2'));
  await until('connected by certificate', () => withCert.conn.connected && push.agents().find((a) => a.node === 'n2')?.auth === 'certificate');
  await until('configured', () => withCert.state.version === store.currentRevision);
  withCert.conn.stop();
  const workload = connectAgent('n2', 'not-the-token', credentialFor('spiffe://cluster.local/ns/shop/sa/a', 'n2'));
  await new Promise((r) => setTimeout(r, 300));
  assert.not.ok(workload.conn.connected);
  assert.match(workload.conn.lastError ?? '', '401');
  workload.conn.stop();
  // A node may not have another node's certificate issued.
  assert.throws(() => credentialFor('spiffe://cluster.local/ambit/node/n2', 'n1'), /node n1 may have only its own node certificate/);
  // Let the token-authenticated n2 agent from the first test take its node back.
  await until('n2 back', () => push.agents().find((a) => a.node === 'n2')?.connected === true);
});

test('agents keep their configuration while the controller is away, and resync when it returns', async () => {
  const [n1, n2] = agents;
  const before = n1!.state.version;
  push.close();
  await until('agents notice', () => !n1!.conn.connected && !n2!.conn.connected);
  assert.is(n1!.state.version, before);
  assert.is(n1!.state.workloads.size, 3);
  // A change while they are away...
  const e = store.commit([pod('c', 'n1', { app: 'c' }, '10.0.1.9')]);
  await startPush();
  // ...reaches them after they reconnect (with backoff), through a full push.
  await until('both current', () => n1!.state.version === e.revision && n2!.state.version === e.revision);
  await until('both acknowledged', () => push.agents().every((a) => a.connected && a.ackedVersion === e.revision));
  assert.ok(n1!.state.workloads.has('workload/shop/c'));
});

test('every node gets a workload\'s canonical service and revision, derived once, though only its own node gets its labels', async () => {
  const [n1, n2] = agents;
  const labelled = pod('checkout-7f9c', 'n2', { 'service.istio.io/canonical-name': 'storefront', app: 'checkout', 'app.kubernetes.io/version': 'v2', version: 'v1' }, '10.0.2.7');
  const plain = pod('cart-5d2a', 'n2', { 'pod-template-hash': '5d2a' }, '10.0.2.8');
  // Pods of ReplicaSets made by Deployments, as on a cluster: the controller names them by their owners.
  for (const p of [labelled, plain]) {
    const [app, hash] = p.metadata.name.split('-');
    p.metadata.labels = { ...p.metadata.labels, 'pod-template-hash': hash! };
    p.metadata.ownerReferences = [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${app}-${hash}`, uid: `rs-${app}`, controller: true }];
  }
  const e = store.commit([labelled, plain]);
  assert.equal(await push.waitForAcks(e.revision, 5000), []);
  const remote = n1!.state.workloads.get('workload/shop/checkout-7f9c')!;
  const local = n2!.state.workloads.get('workload/shop/checkout-7f9c')!;
  assert.is(remote.labels, undefined, 'another node is not sent the labels');
  assert.is(local.labels?.app, 'checkout');
  for (const w of [remote, local]) assert.equal(canonicalOf(w), { service: 'storefront', revision: 'v2' }, 'the canonical name, then app.kubernetes.io/version before version');
  // Istio's defaults (the workload name, latest) are not sent: every agent derives them alike.
  const cart = n1!.state.workloads.get('workload/shop/cart-5d2a')!;
  assert.is(cart.canonicalService, undefined);
  assert.is(cart.canonicalRevision, undefined);
  assert.equal(canonicalOf(cart), { service: 'cart', revision: 'latest' });
  assert.equal(canonicalOf(n2!.state.workloads.get('workload/shop/cart-5d2a')!), { service: 'cart', revision: 'latest' });
});

test('a delta that does not fit the agent version is refused with the reason, leaving the state as it was', () => {
  const s = new AgentState('n1');
  s.apply({ type: 'config', full: true, from: 0, to: 5, upserts: [], deletes: [] });
  assert.throws(() => s.apply({ type: 'config', full: false, from: 3, to: 6, upserts: [], deletes: [] }), /delta from version 3 does not apply to version 5/);
  assert.throws(() => s.apply({ type: 'config', full: false, from: 5, to: 6, upserts: [{ key: 'bogus/x', value: {} }], deletes: [] }), /of unknown kind "bogus"/);
  assert.is(s.version, 5);
});

test.run();
