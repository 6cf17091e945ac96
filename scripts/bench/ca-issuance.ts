// Benchmark: the CA's issuance rate and the agent's time from first pod to certificate.
//  1. CSRs verified and signed per second on one core (this process is single-threaded), for
//     ambit's issuer (DER written directly, node:crypto) against @peculiar/x509's generator as the
//     library baseline, with ECDSA P-256 and RSA 2048 workload keys.
//  2. From a pod's enrollment to its certificate in the agent: the CertificateManager against the
//     real CA service over HTTPS, fresh each time.
//
//   node dist/scripts/bench/ca-issuance.js [--csrs N] [--rounds N]

import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { generateKeyPairSync, webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { CertificateAuthority } from '../../controller/ca/authority.js';
import { csrIdentity, sign } from '../../controller/ca/issuer.js';
import { caHandler } from '../../controller/ca/service.js';
import { ControllerMetrics } from '../../controller/metrics.js';
import { PushServer } from '../../controller/push/server.js';
import { fixedTokens } from '../../controller/push/auth.js';
import { ShareBuilder } from '../../controller/push/share.js';
import { Store } from '../../controller/store/store.js';
import { AgentState } from '../../agent/state/state.js';
import { CaClient } from '../../agent/identity/caclient.js';
import { CertificateManager } from '../../agent/identity/manager.js';
import { buildCsr } from '../../shared/identity/x509.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);
const { values } = parseArgs({ options: { csrs: { type: 'string' }, rounds: { type: 'string' } } });
const N = Math.min(20_000, Number(values.csrs ?? 3000));
const rounds = Math.min(200, Number(values.rounds ?? 30));
const log = pino({ level: 'silent' });

function csrs(type: 'ec' | 'rsa', n: number): Buffer[] {
  const out: Buffer[] = [];
  // Key generation is the agent's cost, not the CA's: a few keys, many CSRs.
  const keys = Array.from({ length: Math.min(n, type === 'rsa' ? 5 : 50) }, () => (type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' })));
  for (let i = 0; i < n; i++) {
    const k = keys[i % keys.length]!;
    out.push(buildCsr(k.privateKey, k.publicKey, `spiffe://cluster.local/ns/ns-${i % 50}/sa/sa-${i}`));
  }
  return out;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ambit-bench-ca-'));
  try {
    const ca = CertificateAuthority.open(join(dir, 'ca'), 'cluster.local');
    const issuer = { ca, trustDomain: 'cluster.local', maxTtlSeconds: 86400, defaultTtlSeconds: 86400 };
    const rows: string[][] = [];
    const rate = (n: number, ms: number) => n / (ms / 1000);
    for (const type of ['ec', 'rsa'] as const) {
      const batch = csrs(type, N);
      let t = performance.now();
      for (const der of batch) {
        const { identity, spkiDer } = csrIdentity(der, 'cluster.local');
        sign(issuer, identity, spkiDer);
      }
      const ours = rate(N, performance.now() - t);

      // Baseline: the same work with @peculiar/x509 (parse and verify the CSR, generate, sign).
      const caKeys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
      const alg = { name: 'ECDSA', hash: 'SHA-256' };
      const n = Math.min(N, 1000);
      t = performance.now();
      for (const der of batch.slice(0, n)) {
        const req = new x509.Pkcs10CertificateRequest(new Uint8Array(der));
        const san = req.extensions.find((e) => e.type === '2.5.29.17')!;
        if (!(await req.verify())) throw new Error('CSR does not verify');
        await x509.X509CertificateGenerator.create({
          serialNumber: '01ab',
          subject: '',
          issuer: 'CN=ambit',
          notBefore: new Date(),
          notAfter: new Date(Date.now() + 86400_000),
          publicKey: await req.publicKey.export(),
          signingKey: caKeys.privateKey,
          signingAlgorithm: alg,
          extensions: [new x509.Extension(san.type, true, san.value), new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true), new x509.BasicConstraintsExtension(false, undefined, true)],
        });
      }
      const baseline = rate(n, performance.now() - t);
      const label = type === 'ec' ? 'ECDSA P-256' : 'RSA 2048';
      rows.push([`CSRs verified and signed per second, ${label} keys, ambit issuer`, ours.toFixed(0), `goal 2000/s: ${(ours / 2000).toFixed(2)}x`]);
      rows.push([`the same with @peculiar/x509 (baseline)`, baseline.toFixed(0), `ambit ${(ours / baseline).toFixed(1)}x the baseline`]);
    }

    // First pod to certificate, through the real CA service.
    const store = new Store(join(dir, 'store'));
    store.commit([{ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-1', namespace: 'shop' }, spec: { nodeName: 'n1', serviceAccountName: 'web', containers: [{ name: 'c', command: ['x'] }] }, status: { phase: 'Running', podIP: '10.0.0.1', hostIP: '', restarts: 0, containerStatuses: [] } }]);
    const serving = ca.issueServing(['127.0.0.1'], []);
    const push = new PushServer({
      share: new ShareBuilder('istio-system'),
      nodes: ['n1'],
      checkToken: fixedTokens(new Map([['n1', 't1']])),
      tls: { key: serving.keyPem, cert: serving.certPem },
      log,
      onRequest: caHandler({ issuer, cluster: store, log, metrics: new ControllerMetrics(), trustBundle: () => ca.trustBundle() }),
    });
    push.server.listen(0, '127.0.0.1');
    await once(push.server, 'listening');
    const url = `wss://127.0.0.1:${(push.server.address() as AddressInfo).port}`;
    const times: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const state = new AgentState('n1');
      const m = new CertificateManager({ state, ca: new CaClient({ url: () => url, node: 'n1', token: () => 't1', ca: () => [ca.rootPem] }), trustDomain: 'cluster.local', ttlSeconds: 3600, keyType: 'ecdsa', log });
      m.start();
      const t0 = performance.now();
      const issued = once(m, 'issued');
      state.apply({
        type: 'config',
        full: true,
        from: 0,
        to: 1,
        upserts: [
          { key: 'namespace/shop', value: { name: 'shop', labels: { 'ambit.dev/dataplane-mode': 'ambient' } } },
          { key: 'workload/shop/web-1', value: { ip: '10.0.0.1', node: 'n1', serviceAccount: 'web', owner: '', labels: {} } },
        ],
        deletes: [],
      });
      await issued;
      times.push(performance.now() - t0);
      m.stop();
    }
    push.close();
    times.sort((a, b) => a - b);
    const q = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))]!.toFixed(1);
    rows.push([`agent: pod enrolled to certificate ready, p50 (${rounds} rounds)`, `${q(0.5)} ms`, 'key generation, CSR, HTTPS to the CA, signing']);
    rows.push(['agent: pod enrolled to certificate ready, p99', `${q(0.99)} ms`, 'the first round includes the TLS handshake to the CA']);
    process.stdout.write('\n| measure | value | note |\n| --- | --- | --- |\n');
    for (const r of rows) process.stdout.write(`| ${r.join(' | ')} |\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
