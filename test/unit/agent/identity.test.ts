// Workload certificates between a real CA service (HTTPS, node token) and the agent's certificate
// manager: issued for enrolled pods' identities only, refused for another node's, rotated with a
// short lifetime while a TLS connection opened before keeps working and new ones get the new
// certificate, and dropped when the last pod of the identity leaves.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Store } from '../../../controller/store/store.js';
import { CertificateAuthority } from '../../../controller/ca/authority.js';
import { caHandler } from '../../../controller/ca/service.js';
import { ControllerMetrics } from '../../../controller/metrics.js';
import { ShareBuilder } from '../../../controller/push/share.js';
import { PushServer } from '../../../controller/push/server.js';
import { fixedTokens } from '../../../controller/push/auth.js';
import { AgentState } from '../../../agent/state/state.js';
import { CaClient } from '../../../agent/identity/caclient.js';
import { CertificateManager, type WorkloadCertificate } from '../../../agent/identity/manager.js';
import { TrustBundle, validateSvid } from '../../../shared/identity/svid.js';
import { fromPem } from '../../../shared/identity/x509.js';
import type { Pod } from '../../../shared/resources/types.js';

const log = pino({ level: 'silent' });
let dir = '';
let store: Store;
let ca: CertificateAuthority;
let push: PushServer;
let url = '';
const metrics = new ControllerMetrics();
const managers: CertificateManager[] = [];
const web = 'spiffe://cluster.local/ns/shop/sa/web';

const pod = (name: string, node: string, sa: string): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'shop', labels: { app: name } },
  spec: { nodeName: node, serviceAccountName: sa, containers: [{ name: 'c', command: ['x'] }] },
  status: { phase: 'Running', podIP: '10.0.0.1', hostIP: '', restarts: 0, containerStatuses: [] },
});

/** The agent's view, as pushes would leave it: the shop namespace (enrolled or not) and some pods. */
function stateFor(node: string, pods: { name: string; node: string; sa: string }[], enrolled = true): AgentState {
  const s = new AgentState(node);
  s.apply({
    type: 'config',
    full: true,
    from: 0,
    to: 1,
    upserts: [
      { key: 'namespace/shop', value: { name: 'shop', labels: enrolled ? { 'ambit.dev/dataplane-mode': 'ambient' } : {} } },
      ...pods.map((p) => ({ key: `workload/shop/${p.name}`, value: { ip: '10.0.0.1', node: p.node, serviceAccount: p.sa, owner: '', labels: {} } })),
    ],
    deletes: [],
  });
  return s;
}

function manager(node: string, state: AgentState, ttlSeconds: number): CertificateManager {
  const m = new CertificateManager({
    state,
    ca: new CaClient({ url: () => url, node, token: () => `token-${node}`, ca: () => [ca.rootPem] }),
    trustDomain: 'cluster.local',
    ttlSeconds,
    keyType: 'ecdsa',
    log,
  });
  managers.push(m);
  return m;
}

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ambit-identity-'));
  store = new Store(join(dir, 'store'));
  ca = CertificateAuthority.open(join(dir, 'ca'), 'cluster.local');
  store.commit([pod('web-1', 'n1', 'web'), pod('web-2', 'n1', 'web'), pod('db-1', 'n2', 'db')]);
  const serving = ca.issueServing(['127.0.0.1'], []);
  const issuer = { ca, trustDomain: 'cluster.local', maxTtlSeconds: 3, defaultTtlSeconds: 3 };
  push = new PushServer({
    share: new ShareBuilder('istio-system'),
    nodes: ['n1', 'n2'],
    checkToken: fixedTokens(new Map([['n1', 'token-n1'], ['n2', 'token-n2']])),
    tls: { key: serving.keyPem, cert: serving.certPem },
    log,
    onRequest: caHandler({ issuer, cluster: store, log, metrics, trustBundle: () => ca.trustBundle() }),
  });
  push.server.listen(0, '127.0.0.1');
  await once(push.server, 'listening');
  url = `wss://127.0.0.1:${(push.server.address() as AddressInfo).port}`;
});

test.after(() => {
  for (const m of managers) m.stop();
  push.close();
  rmSync(dir, { recursive: true, force: true });
});

test('one certificate per enrolled identity on the node, valid as an SVID, none when not enrolled', async () => {
  const m = manager('n1', stateFor('n1', [{ name: 'web-1', node: 'n1', sa: 'web' }, { name: 'web-2', node: 'n1', sa: 'web' }]), 3600);
  const issued = once(m, 'issued');
  m.start();
  const [cert] = (await issued) as [WorkloadCertificate];
  assert.is(cert.id, web);
  assert.equal(m.list().map((c) => c.identity), [web]);
  const bundle = new TrustBundle({ 'cluster.local': ca.trustBundle() });
  assert.equal(validateSvid(cert.chain.flatMap(fromPem), bundle), { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'web' });
  assert.ok(cert.notAfter.getTime() - cert.notBefore.getTime() <= 3_000 + 60_000, 'the lifetime is capped by the CA');
  m.stop();

  const idle = manager('n1', stateFor('n1', [{ name: 'web-1', node: 'n1', sa: 'web' }], false), 3600);
  idle.start();
  assert.equal(idle.list(), []);
});

test("an agent is refused another node's identity, with the reason, and the refusal is counted", async () => {
  // n1 claims the db pod (which the controller knows runs on n2).
  const m = manager('n1', stateFor('n1', [{ name: 'db-1', node: 'n1', sa: 'db' }]), 3600);
  const failed = once(m, 'failed');
  m.start();
  const [id, reason] = (await failed) as [string, string];
  assert.is(id, 'spiffe://cluster.local/ns/shop/sa/db');
  assert.match(reason, 'node n1 runs no pod with identity spiffe://cluster.local/ns/shop/sa/db');
  assert.match(await metrics.registry.metrics(), 'ambit_ca_csr_refused_total{reason="identity-not-on-node",node="n1"} 1');
  m.stop();
});

test('a request body that is JSON but not an object is a 400, not a crash', async () => {
  const { request } = await import('node:https');
  const status = await new Promise<number>((resolve, reject) => {
    const req = request(new URL('/v1/certificates', url.replace('wss:', 'https:')), { method: 'POST', ca: ca.rootPem, agent: false, headers: { authorization: 'Bearer token-n1', 'x-ambit-node': 'n1' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end('null');
  });
  assert.is(status, 400);
});

test('rotation: new serials appear; a TLS connection opened before keeps working, new ones get the new certificate', async () => {
  const m = manager('n1', stateFor('n1', [{ name: 'web-1', node: 'n1', sa: 'web' }]), 3);
  const issued = once(m, 'issued');
  m.start();
  const [first] = (await issued) as [WorkloadCertificate];
  // A TLS server presenting the identity's current certificate, as the proxy's listeners will.
  const server = createServer({ SNICallback: (_name, cb) => cb(null, m.get(web)!.secureContext), minVersion: 'TLSv1.3' }, (s) => s.pipe(s));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const open = async () => {
    const s = connect({ port, host: '127.0.0.1', servername: 'web.shop', ca: ca.rootPem, checkServerIdentity: () => undefined });
    await once(s, 'secureConnect');
    return s;
  };
  const echo = async (s: TLSSocket, text: string) => {
    s.write(text);
    const [data] = (await once(s, 'data')) as [Buffer];
    return data.toString();
  };
  const serialOf = (s: TLSSocket) => s.getPeerCertificate().serialNumber.toLowerCase().replace(/^0+/, '');
  const sockets: TLSSocket[] = [];
  try {
    const before = await open();
    sockets.push(before);
    assert.is(serialOf(before), first.serial.replace(/^0+/, ''));
    const [second] = (await once(m, 'issued')) as [WorkloadCertificate];
    assert.is.not(second.serial, first.serial);
    const after = await open();
    sockets.push(after);
    assert.is(serialOf(after), second.serial.replace(/^0+/, ''));
    assert.is(await echo(before, 'still here'), 'still here');
    assert.is(await echo(after, 'new one'), 'new one');
  } finally {
    for (const s of sockets) s.destroy();
    server.close();
    m.stop();
  }
});

test('the certificate is dropped when the last pod of its identity leaves the node', async () => {
  const state = stateFor('n1', [{ name: 'web-1', node: 'n1', sa: 'web' }, { name: 'web-2', node: 'n1', sa: 'web' }]);
  const m = manager('n1', state, 3600);
  const issued = once(m, 'issued');
  m.start();
  await issued;
  state.apply({ type: 'config', full: false, from: 1, to: 2, upserts: [], deletes: ['workload/shop/web-1'] });
  assert.equal(m.list().map((c) => c.identity), [web], 'one pod of the identity is still there');
  const dropped = once(m, 'dropped');
  state.apply({ type: 'config', full: false, from: 2, to: 3, upserts: [], deletes: ['workload/shop/web-2'] });
  assert.equal(await dropped, [web]);
  assert.equal(m.list(), []);
});

test.run();
