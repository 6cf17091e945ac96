// HBONE is standard HTTP/2 CONNECT over mutual TLS 1.3: a stock HTTP/2 client (Node's own http2, no
// ambit code on the client side) holding an SVID of the cluster's CA opens a tunnel through a real
// agent's 15008 to a pod, and the destination agent counts it as mutual TLS from that identity.
// Whatever the data path becomes for speed, this must keep working.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertificateAuthority } from '../../controller/ca/authority.js';
import { sign } from '../../controller/ca/issuer.js';
import { caDir } from '../../controller/config.js';
import { ambit, ambitOk, eventually, leftovers, scrape, sh, stateDir, status, sum } from './helpers.js';

let tmp = '';

test.before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'ambit-e2e-interop-'));
});

test.after(async () => {
  await ambit(['down']);
  rmSync(tmp, { recursive: true, force: true });
});

test('nothing of the project is on the machine before the tests', async () => {
  assert.equal(await leftovers(), [], 'a cluster is up or an earlier run leaked; run `ambit down`');
});

test('a stock HTTP/2 client with an SVID tunnels through node-2\'s agent to an enrolled pod; the agent counts it as mutual TLS from that identity', async () => {
  await ambitOk(['up']);
  await ambitOk(['enroll', 'shop']);
  const web = await eventually('a captured web pod on node-2', async () => (await status()).pods.find((p) => p.labels.app === 'web' && p.node === 'node-2' && p.capture === 'captured'), 30_000);
  const node2 = (await status()).nodes.find((n) => n.name === 'node-2')!;

  // An SVID for client/curl from the cluster's own CA, as the client's agent would hold it.
  const ca = CertificateAuthority.open(caDir(stateDir), 'cluster.local');
  const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const issued = sign({ ca, trustDomain: 'cluster.local', maxTtlSeconds: 3600, defaultTtlSeconds: 3600 }, { trustDomain: 'cluster.local', namespace: 'client', serviceAccount: 'curl' }, keys.publicKey.export({ type: 'spki', format: 'der' }));
  writeFileSync(join(tmp, 'key.pem'), keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
  writeFileSync(join(tmp, 'cert.pem'), issued.chain.join(''));
  writeFileSync(join(tmp, 'ca.pem'), ca.trustBundle().join(''));

  // Only node:http2 and node:fs on the client side; run from node-1's namespace, as another node would.
  // The chain is checked against the cluster's CA; the host-name check is off because an SVID names
  // a SPIFFE ID (a URI SAN), not a host.
  const client = `
const http2 = require('node:http2'); const fs = require('node:fs'); const dir = ${JSON.stringify(tmp)};
const session = http2.connect('https://${node2.ip}:15008', {
  key: fs.readFileSync(dir + '/key.pem'), cert: fs.readFileSync(dir + '/cert.pem'), ca: fs.readFileSync(dir + '/ca.pem'),
  servername: 'web.shop.sa.cluster.local', minVersion: 'TLSv1.3', checkServerIdentity: () => undefined,
});
session.on('error', (e) => { console.log('session error ' + e.message); process.exit(2); });
const stream = session.request({ ':method': 'CONNECT', ':authority': '${web.ip}:8080' });
stream.on('response', (h) => console.log('status ' + h[':status']));
let body = '';
stream.setEncoding('utf8').on('data', (d) => (body += d));
stream.on('end', () => { console.log(body); session.close(); });
stream.end('GET /through-a-stock-client HTTP/1.1\\r\\nHost: web\\r\\nConnection: close\\r\\n\\r\\n');
setTimeout(() => { console.log('timeout'); process.exit(3); }, 10000).unref();
`;
  writeFileSync(join(tmp, 'client.cjs'), client);
  const out = await sh(`nsenter --net=/run/netns/ambit-node-node-1 ${process.execPath} ${join(tmp, 'client.cjs')} 2>&1`);
  assert.match(out, 'status 200');
  assert.match(out, 'HTTP/1.1 200');
  assert.match(out, `pod=${web.name}`);
  assert.match(out, 'path=/through-a-stock-client');

  const metrics = await scrape('node-2', node2.ip);
  assert.ok(sum(metrics, 'istio_tcp_connections_opened_total', { reporter: 'destination', source_principal: 'spiffe://cluster.local/ns/client/sa/curl', destination_workload: web.name.replace(/-[a-z0-9]+-[a-z0-9]+$/, ''), connection_security_policy: 'mutual_tls' }) >= 1, 'counted as mutual TLS from client/curl');
});

test('ambit down leaves nothing behind', async () => {
  await ambitOk(['down']);
  assert.equal(await leftovers(), []);
});

test.run();
