// Workload identity on the local cluster: each node's agent holds certificates for the identities
// of its enrolled pods (and no others), the CA refuses a node an identity that runs only on another
// node (log line and metric), and a certificate leaves with the last pod of its identity.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildCsr, fromPem, toPem } from '../../shared/identity/x509.js';
import { TrustBundle, validateSvid } from '../../shared/identity/svid.js';
import { ambit, ambitOk, eventually, leftovers, sh, stateDir, status } from './helpers.js';

let tmp = '';
const certs = async (node: string) => JSON.parse(await ambitOk(['query', node, 'certs', '-o', 'json'])) as { identity: string; state: string; serial: string }[];
const id = (ns: string, sa: string) => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;

/** Sends a CSR to the controller's CA as `node`, from inside that node (where the CA is reachable). */
async function requestAs(node: string, identity: string, tokenOf = node): Promise<{ status: string; body: Record<string, unknown> }> {
  const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const body = join(tmp, 'csr.json');
  writeFileSync(body, JSON.stringify({ csr: toPem(buildCsr(keys.privateKey, keys.publicKey, identity), 'CERTIFICATE REQUEST'), ttlSeconds: 600 }));
  // The agent's ServiceAccount token, bound to its node, as the kubelet projects it.
  const token = readFileSync(join(stateDir, 'agents', tokenOf, 'token'), 'utf8').trim();
  const out = await sh(
    `nsenter --net=/run/netns/ambit-node-${node} curl -s -w '\\n%{http_code}' --cacert ${join(stateDir, 'controller', 'ca', 'root.crt')} ` +
      `-H 'authorization: Bearer ${token}' -H 'x-ambit-node: ${node}' -H 'content-type: application/json' --data @${body} https://10.250.0.254:15012/v1/certificates`,
  );
  const lines = out.trimEnd().split('\n');
  const code = lines.pop()!;
  return { status: code, body: JSON.parse(lines.join('\n')) as Record<string, unknown> };
}

test.before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'ambit-e2e-'));
  assert.equal(await leftovers(), [], 'a cluster is up or an earlier run leaked; run `ambit down`');
  await ambitOk(['up']);
});

test.after(async () => {
  await ambit(['down']);
  rmSync(tmp, { recursive: true, force: true });
});

test('no certificates before enrollment; after it, each agent holds exactly its pods identities', async () => {
  assert.equal(await certs('node-1'), []);
  await ambitOk(['enroll', 'shop']);
  await ambitOk(['enroll', 'client']);
  const s = await status();
  for (const node of ['node-1', 'node-2']) {
    const want = [...new Set(s.pods.filter((p) => p.node === node).map((p) => id(p.namespace, p.serviceAccount)))].sort();
    const got = await eventually(`certificates on ${node}`, async () => {
      const c = await certs(node);
      return c.length === want.length && c.every((x) => x.state === 'ready') && c;
    });
    assert.equal(got.map((c) => c.identity).sort(), want, node);
  }
});

test("the CA refuses node-1 an identity that runs only on node-2, and says so in its log and metrics", async () => {
  const s = await status();
  const node2Only = s.pods.find((p) => p.node === 'node-2' && !s.pods.some((q) => q.node === 'node-1' && q.namespace === p.namespace && q.serviceAccount === p.serviceAccount))!;
  const r = await requestAs('node-1', id(node2Only.namespace, node2Only.serviceAccount));
  assert.is(r.status, '403');
  assert.equal((r.body.error as { reason: string }).reason, 'identity-not-on-node');
  assert.match((r.body.error as { message: string }).message, `node node-1 runs no pod with identity ${id(node2Only.namespace, node2Only.serviceAccount)}`);
  const metrics = await sh('nsenter --net=/run/netns/ambit-control curl -s http://127.0.0.1:15014/metrics');
  assert.match(metrics, 'ambit_ca_csr_refused_total{reason="identity-not-on-node",node="node-1"} 1');
  assert.match(readFileSync(join(stateDir, 'logs', 'controller.log'), 'utf8'), 'certificate request refused');

  // Its own pod's identity it gets, as a valid SVID.
  const own = s.pods.find((p) => p.node === 'node-1')!;
  const ok = await requestAs('node-1', id(own.namespace, own.serviceAccount));
  assert.is(ok.status, '200');
  const bundle = new TrustBundle({ 'cluster.local': ok.body.trustBundle as string[] });
  assert.equal(validateSvid((ok.body.chain as string[]).flatMap(fromPem), bundle).serviceAccount, own.serviceAccount);
});

test("a node's ServiceAccount token proves only its own node: node-2's token claiming node-1 is refused, and the controller says why", async () => {
  const s = await status();
  const own = s.pods.find((p) => p.node === 'node-1')!;
  const r = await requestAs('node-1', id(own.namespace, own.serviceAccount), 'node-2');
  assert.is(r.status, '401');
  assert.match(readFileSync(join(stateDir, 'logs', 'controller.log'), 'utf8'), 'the token is bound to node node-2, not node-1');
  // What TokenReview says of the agent's token, as any client of the API can ask.
  const token = readFileSync(join(stateDir, 'agents', 'node-1', 'token'), 'utf8').trim();
  const review = JSON.parse(await sh(`kubectl --kubeconfig ${join(stateDir, 'kubeconfig')} create --validate=false -o json -f - <<'EOF'\n${JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: ['ambit-controller'] } })}\nEOF`)) as { status: { authenticated: boolean; user: { username: string; extra: Record<string, string[]> } } };
  assert.is(review.status.authenticated, true);
  assert.is(review.status.user.username, 'system:serviceaccount:ambit-system:ambit-agent');
  assert.equal(review.status.user.extra['authentication.kubernetes.io/node-name'], ['node-1']);
});

test('a CA root rotation reaches the agents, which renew their certificates from the new root', async () => {
  const before = await certs('node-1');
  const out = await ambitOk(['ca', 'rotate', '--overlap', '1h']);
  assert.match(out, 'the previous root stays trusted for 3600 s');
  const renewed = await eventually('renewed certificates', async () => {
    const now = await certs('node-1');
    return now.length === before.length && now.every((c) => c.state === 'ready' && !before.some((b) => b.serial === c.serial)) && now;
  }, 15_000);
  assert.is(renewed.length, before.length);
  const dump = JSON.parse(await ambitOk(['query', 'node-1', 'config_dump', '-o', 'json'])) as { version: number };
  assert.ok(dump.version > 0);
  const bundle = await sh(`nsenter --net=/run/netns/ambit-node-node-1 curl -s http://127.0.0.1:15000/config_dump`);
  assert.is((JSON.parse(bundle) as { trustBundles: { roots: string[] }[] }).trustBundles[0]!.roots.length, 2, 'old and new root during the overlap');
});

test('unenrolling a namespace drops its certificates', async () => {
  const s = await status();
  const clientNode = s.pods.find((p) => p.namespace === 'client')!.node;
  await ambitOk(['unenroll', 'client']);
  await eventually('curl identity dropped', async () => !(await certs(clientNode)).some((c) => c.identity === id('client', 'curl')));
});

test('ambit down leaves nothing behind', async () => {
  await ambitOk(['down']);
  assert.equal(await leftovers(), []);
});

test.run();
