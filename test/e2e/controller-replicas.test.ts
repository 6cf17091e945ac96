// A second controller replica, as a Deployment of two would run one: the same `ambit controller`
// outside the local cluster's process, given only a kubeconfig. It follows (the Lease stays with
// the first), signs with the CA keys it read from the Secret, serves an agent that proves its node
// with its ServiceAccount token, and picks up the leader's root rotation through the Secret.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type ChildProcess, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildCsr, fromPem, toPem } from '../../shared/identity/x509.js';
import { TrustBundle, validateSvid } from '../../shared/identity/svid.js';
import { ambit, ambitOk, eventually, leftovers, root, sh, stateDir, status } from './helpers.js';

let tmp = '';
let replica: ChildProcess | undefined;
const kubectl = (args: string) => sh(`kubectl --kubeconfig ${join(stateDir, 'kubeconfig')} ${args}`);
const control = '10.250.0.254';
const replicaPort = 15112;

test.before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'ambit-e2e-replicas-'));
  assert.equal(await leftovers(), [], 'a cluster is up or an earlier run leaked; run `ambit down`');
  await ambitOk(['up']);
});

test.after(async () => {
  if (replica?.exitCode === null) {
    replica.kill('SIGTERM');
    await new Promise((r) => replica!.once('exit', r));
  }
  await ambit(['down']);
  rmSync(tmp, { recursive: true, force: true });
});

test('a second replica given only a kubeconfig follows, with the same CA keys read from the Secret', async () => {
  // The API as the control plane's namespace reaches it (the kubeconfig names the host's loopback).
  const kubeconfig = join(tmp, 'kubeconfig');
  writeFileSync(kubeconfig, readFileSync(join(stateDir, 'kubeconfig')));
  const cluster = (await sh(`kubectl --kubeconfig ${kubeconfig} config view -o jsonpath='{.clusters[0].name}'`)).trim();
  await sh(`kubectl --kubeconfig ${kubeconfig} config set-cluster ${cluster} --server=https://${control}:6443`);
  const args = ['--state-dir', join(tmp, 'state'), 'controller', '--kubeconfig', kubeconfig, '--identity', 'replica-b', '--agent-listen', `${control}:${replicaPort}`, '--agent-address', control, '--webhook-port', '15117', '--monitoring-listen', '127.0.0.1:15114', '--dashboard-listen', 'off', '--nodes', 'node-1,node-2'];
  replica = spawn('nsenter', ['--net=/run/netns/ambit-control', '--', process.execPath, join(root, 'dist', 'cli', 'ambit.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  replica.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  replica.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  await eventually('the second replica ready', async () => log.includes('controller ready') || (replica!.exitCode !== null && assert.unreachable(`the replica exited: ${log}`)), 20_000);
  assert.match(log, 'CA keys loaded from the Kubernetes API');
  const bundleOf = (dir: string) => readFileSync(join(dir, 'controller', 'ca', 'trust-bundle.pem'), 'utf8');
  assert.is(bundleOf(join(tmp, 'state')), bundleOf(stateDir), 'both replicas trust and sign with the one root');
  const holder = (await kubectl("get lease ambit-controller -n ambit-system -o jsonpath='{.spec.holderIdentity}'")).trim();
  assert.ok(holder && holder !== 'replica-b', `the first replica keeps the Lease (holder ${holder})`);
});

test("the follower serves agents: node-1's token gets a certificate for node-1's pod, chained to the shared root; node-2's token claiming node-1 does not", async () => {
  const own = (await status()).pods.find((p) => p.node === 'node-1')!;
  const identity = `spiffe://cluster.local/ns/${own.namespace}/sa/${own.serviceAccount}`;
  const ask = async (tokenOf: string) => {
    const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const body = join(tmp, 'csr.json');
    writeFileSync(body, JSON.stringify({ csr: toPem(buildCsr(keys.privateKey, keys.publicKey, identity), 'CERTIFICATE REQUEST'), ttlSeconds: 600 }));
    const token = readFileSync(join(stateDir, 'agents', tokenOf, 'token'), 'utf8').trim();
    const out = await sh(
      `nsenter --net=/run/netns/ambit-node-node-1 curl -s -w '\\n%{http_code}' --cacert ${join(stateDir, 'controller', 'ca', 'trust-bundle.pem')} ` +
        `-H 'authorization: Bearer ${token}' -H 'x-ambit-node: node-1' -H 'content-type: application/json' --data @${body} https://${control}:${replicaPort}/v1/certificates`,
    );
    const lines = out.trimEnd().split('\n');
    return { status: lines.pop(), body: JSON.parse(lines.join('\n') || '{}') as { chain?: string[]; trustBundle?: string[] } };
  };
  const ok = await ask('node-1');
  assert.is(ok.status, '200', JSON.stringify(ok.body));
  const bundle = new TrustBundle({ 'cluster.local': readFileSync(join(stateDir, 'controller', 'ca', 'trust-bundle.pem'), 'utf8').split(/(?<=-----END CERTIFICATE-----\n)/).filter(Boolean) });
  assert.is(validateSvid(ok.body.chain!.flatMap(fromPem), bundle).serviceAccount, own.serviceAccount);
  assert.is((await ask('node-2')).status, '401');
});

test("the leader's root rotation reaches the follower through the Secret: it trusts both roots and signs from the new one", async () => {
  await ambitOk(['ca', 'rotate', '--overlap', '1h']);
  const roots = (dir: string) => (readFileSync(join(dir, 'controller', 'ca', 'trust-bundle.pem'), 'utf8').match(/BEGIN CERTIFICATE/g) ?? []).length;
  await eventually('the follower reloaded the rotated CA', async () => roots(join(tmp, 'state')) === 2, 10_000);
  assert.is(readFileSync(join(tmp, 'state', 'controller', 'ca', 'root.crt'), 'utf8'), readFileSync(join(stateDir, 'controller', 'ca', 'root.crt'), 'utf8'));
});

test('the follower stops cleanly and leaves its state behind only in its own directory', async () => {
  replica!.kill('SIGTERM');
  const code = await new Promise((r) => replica!.once('exit', r));
  assert.is(code, 0);
  assert.ok(existsSync(join(tmp, 'state', 'controller')));
});

test.run();
