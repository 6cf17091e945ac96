// The local cluster run with an operator's own CA, laid out as Istio's `cacerts` secret
// (ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem in <state>/controller/ca/cacerts/), made
// here with the openssl CLI as an operator would: the agents trust the operator's root and nothing
// else, the SVIDs they present on 15008 verify with `openssl s_client` against that root, and
// traffic between enrolled pods crosses HBONE with both ends' identities checked.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromPem } from '../../shared/identity/x509.js';
import { ambit, ambitOk, eventually, leftovers, scrape, sh, stateDir, status, sum } from './helpers.js';

let tmp = '';
const cacerts = join(stateDir, 'controller', 'ca', 'cacerts');
const certs = async (node: string) => JSON.parse(await ambitOk(['query', node, 'certs', '-o', 'json'])) as { identity: string; state: string; serial: string }[];
const id = (ns: string, sa: string) => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;
const sameCerts = (a: string, b: string) => fromPem(a).map((d) => d.toString('base64')).join() === fromPem(b).map((d) => d.toString('base64')).join();

/**
 * A root and an intermediate as Istio's tools/certs Makefiles make them (RSA keys, the intermediate
 * CA:true with pathlen 0), written into `dir` under Istio's names. The root's key stays in `work`.
 */
function makeOperatorCa(work: string, dir: string): void {
  writeFileSync(
    join(work, 'root.conf'),
    `[req]
distinguished_name = dn
x509_extensions = v3_root
prompt = no
[dn]
O = ambit e2e operator
CN = Operator Root CA
[v3_root]
basicConstraints = critical, CA:true
keyUsage = critical, digitalSignature, keyCertSign, cRLSign
subjectKeyIdentifier = hash
`,
  );
  writeFileSync(
    join(work, 'ca.conf'),
    `[req]
distinguished_name = dn
prompt = no
[dn]
O = ambit e2e operator
CN = Mesh Intermediate CA
L = cluster-1
[v3_ca]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, digitalSignature, nonRepudiation, keyEncipherment, keyCertSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
subjectAltName = DNS:istiod.istio-system.svc
`,
  );
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
  openssl('req', '-x509', '-newkey', 'rsa:4096', '-nodes', '-sha256', '-days', '3650', '-config', 'root.conf', '-keyout', 'root-key.pem', '-out', 'root-cert.pem');
  openssl('req', '-new', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-config', 'ca.conf', '-keyout', 'ca-key.pem', '-out', 'ca.csr');
  openssl('x509', '-req', '-in', 'ca.csr', '-sha256', '-days', '730', '-CA', 'root-cert.pem', '-CAkey', 'root-key.pem', '-set_serial', '0x' + Date.now().toString(16), '-extfile', 'ca.conf', '-extensions', 'v3_ca', '-out', 'ca-cert.pem');
  // The operator's own check, before handing the files over.
  openssl('verify', '-CAfile', 'root-cert.pem', 'ca-cert.pem');
  mkdirSync(dir, { recursive: true });
  for (const f of ['ca-cert.pem', 'ca-key.pem', 'root-cert.pem']) copyFileSync(join(work, f), join(dir, f));
  chmodSync(join(dir, 'ca-key.pem'), 0o600);
  // Istio's cert-chain.pem: the intermediate, then the root.
  writeFileSync(join(dir, 'cert-chain.pem'), readFileSync(join(work, 'ca-cert.pem'), 'utf8') + readFileSync(join(work, 'root-cert.pem'), 'utf8'));
}

test.before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'ambit-e2e-cacerts-'));
  assert.equal(await leftovers(), [], 'a cluster is up or an earlier run leaked; run `ambit down`');
  // `ambit up` keeps what is in the state directory; the CA reads cacerts/ when the controller starts.
  makeOperatorCa(tmp, cacerts);
  await ambitOk(['up']);
});

test.after(async () => {
  await ambit(['down']);
  // `ambit down` removes the state directory with the files; this is for a run that failed before it.
  rmSync(cacerts, { recursive: true, force: true });
  rmSync(tmp, { recursive: true, force: true });
});

test("the controller signs with the operator's intermediate and publishes only the operator's root", async () => {
  const root = readFileSync(join(tmp, 'root-cert.pem'), 'utf8');
  assert.not.ok(existsSync(join(stateDir, 'controller', 'ca', 'root.key')), 'no root of its own was made');
  assert.ok(sameCerts(readFileSync(join(stateDir, 'controller', 'ca', 'trust-bundle.pem'), 'utf8'), root), 'trust-bundle.pem is the operator root');
  for (const node of ['node-1', 'node-2']) {
    const dump = await eventually(`${node}'s trust bundle`, async () => {
      const text = await sh(`nsenter --net=/run/netns/ambit-node-${node} curl -s http://127.0.0.1:15000/config_dump`);
      const d = JSON.parse(text) as { trustBundles: { roots: string[] }[] };
      return d.trustBundles.length > 0 && d;
    });
    assert.is(dump.trustBundles.length, 1, node);
    assert.ok(sameCerts(dump.trustBundles[0]!.roots.join(''), root), `${node} trusts the operator root and only it`);
  }
  // Agents reach the controller through TLS too: its serving certificate comes from the intermediate.
  const agents = JSON.parse(await ambitOk(['agents', '-o', 'json'])) as { agents: unknown[] };
  assert.is(agents.agents.length, 2);
});

test("enrolled pods get SVIDs that chain to the operator's root, and talk over HBONE with both identities checked", async () => {
  await ambitOk(['enroll', 'shop']);
  await ambitOk(['enroll', 'client']);
  const s = await eventually('every sample pod running and captured', async () => {
    const st = await status();
    return st.pods.length >= 4 && st.pods.every((p) => p.phase === 'Running' && p.capture === 'captured') && st;
  }, 30_000);
  for (const node of ['node-1', 'node-2']) {
    const want = [...new Set(s.pods.filter((p) => p.node === node).map((p) => id(p.namespace, p.serviceAccount)))].sort();
    const got = await eventually(`certificates on ${node}`, async () => {
      const c = await certs(node);
      return c.length === want.length && c.every((x) => x.state === 'ready') && c;
    }, 15_000);
    assert.equal(got.map((c) => c.identity).sort(), want, node);
  }

  // The certificate web presents on its node's 15008 (asked for by name, as agents do), checked by
  // OpenSSL against the operator's root alone: the chain an agent serves is the operator's.
  const web = s.pods.find((p) => p.namespace === 'shop' && p.labels.app === 'web')!;
  const webNode = s.nodes.find((n) => n.name === web.node)!;
  const other = s.nodes.find((n) => n.name !== web.node)!;
  const rootFile = join(tmp, 'root-cert.pem');
  const served = await sh(
    `nsenter --net=/run/netns/ambit-node-${other.name} openssl s_client -connect ${webNode.ip}:15008 -servername web.shop.sa.cluster.local ` +
      `-alpn h2 -CAfile ${rootFile} -verify_return_error -showcerts </dev/null 2>&1`,
  );
  assert.match(served, 'Verify return code: 0 (ok)');
  const chain = fromPem(served).map((d) => new X509Certificate(d));
  assert.ok(chain.length >= 2, 'leaf and intermediate served');
  assert.is(chain[0]!.subjectAltName, 'URI:spiffe://cluster.local/ns/shop/sa/web');
  assert.match(chain[1]!.subject, 'CN=Mesh Intermediate CA');

  // Traffic between enrolled pods, through the Service: HBONE, mutual TLS, the caller's identity
  // as the destination agent verified it from the operator-issued SVID.
  const client = s.pods.find((p) => p.namespace === 'client')!;
  // The destination names the Service the client addressed (not the pod address), and a connection that ran.
  const opened = (t: string) => sum(t, 'istio_tcp_connections_opened_total', { reporter: 'destination', connection_security_policy: 'mutual_tls', source_principal: id('client', 'curl'), destination_service: 'web.shop.svc.cluster.local', response_flags: '-' });
  const scrapeAll = async () => (await Promise.all(s.nodes.map((n) => scrape(n.name, n.ip)))).join('\n');
  const before = opened(await scrapeAll());
  for (let i = 0; i < 3; i++) {
    const r = await ambit(['exec', '-n', 'client', client.name, '--', 'curl', '-sS', '--max-time', '5', `http://web.shop/cacerts-${i}`]);
    assert.is(r.code, 0, `curl ${i}: ${r.stderr}`);
    assert.match(r.stdout, 'pod=web-v');
  }
  await eventually('the destination agents counted three mutual-TLS connections from client/curl', async () => opened(await scrapeAll()) - before >= 3);
  const refused = (t: string) => sum(t, 'ambit_agent_proxy_events', { event: 'hbone_server_refused_untrusted-chain' });
  assert.is(refused(await scrapeAll()), 0, 'no SVID of the operator CA was refused');
});

test('a root rotation is refused while the operator supplies the CA', async () => {
  const r = await ambit(['ca', 'rotate', '--overlap', '1h']);
  assert.is.not(r.code, 0);
  assert.match(r.stderr + r.stdout, 'operator-supplied cacerts');
});

test('ambit down leaves nothing behind, the cacerts files included', async () => {
  await ambitOk(['down']);
  assert.not.ok(existsSync(cacerts));
  assert.equal(await leftovers(), []);
});

test.run();
