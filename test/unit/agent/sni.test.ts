// The certificate the node's HBONE listener presents, picked by the server name (SNI) a client
// asks for: each local identity gets its own, a name of no local identity gets none, and after a
// rotation new handshakes get the new certificate (the lookup is cached, and the cache follows).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { connect, type TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { CertificateAuthority } from '../../../controller/ca/authority.js';
import { csrIdentity, sign } from '../../../controller/ca/issuer.js';
import type { AgentState } from '../../../agent/state/state.js';
import { stateWith } from '../../helpers/state.js';
import type { CaClient } from '../../../agent/identity/caclient.js';
import { CertificateManager, type WorkloadCertificate } from '../../../agent/identity/manager.js';
import { createHboneServer, type HboneServer } from '../../../shared/hbone/server.js';
import { serverName } from '../../../agent/proxy/outbound.js';
import { TrustBundle } from '../../../shared/identity/svid.js';
import { fromPem } from '../../../shared/identity/x509.js';

const log = pino({ level: 'silent' });
let dir = '';
let ca: CertificateAuthority;

/** The CA's signing code without its HTTPS front (caclient.ts and the service have tests of their own). */
function localCa(): CaClient {
  const issuer = { ca, trustDomain: 'cluster.local', maxTtlSeconds: 3600, defaultTtlSeconds: 3600 };
  return {
    requestCertificate: async (csrPem: string, ttlSeconds: number) => {
      const { identity, spkiDer } = csrIdentity(fromPem(csrPem)[0]!, 'cluster.local');
      return { ...sign(issuer, identity, spkiDer, ttlSeconds), trustBundle: ca.trustBundle() };
    },
  } as unknown as CaClient;
}

/** An enrolled namespace with a workload per service account, and a trust bundle whose root is `root`. */
function meshWith(sas: string[], root = 'the first root'): AgentState {
  return stateWith('n1', [
    { key: 'namespace/shop', value: { name: 'shop', labels: { 'ambit.dev/dataplane-mode': 'ambient' } } },
    { key: 'trustbundle/cluster.local', value: { trustDomain: 'cluster.local', roots: [root] } },
    ...sas.map((sa) => ({ key: `workload/shop/${sa}-1`, value: { ip: '10.0.0.1', node: 'n1', serviceAccount: sa, owner: '' } })),
  ]);
}

async function serve(m: CertificateManager): Promise<{ server: HboneServer; port: number }> {
  const server = createHboneServer({ secureContext: (name) => m.forServerName(name, serverName)?.secureContext, trustBundle: () => new TrustBundle({ 'cluster.local': ca.trustBundle() }), onTunnel: (t) => t.respond(404), log });
  const address = await server.listen(0, '127.0.0.1');
  return { server, port: address.port };
}

/** The serial the server presented for `name`, or the handshake's error. */
async function presented(port: number, name: string): Promise<string> {
  const s: TLSSocket = connect({ port, host: '127.0.0.1', servername: name, ALPNProtocols: ['h2'], ca: ca.trustBundle(), checkServerIdentity: () => undefined });
  try {
    await once(s, 'secureConnect');
    return s.getPeerCertificate().serialNumber.toLowerCase().replace(/^0+/, '');
  } catch (err) {
    return `error: ${(err as Error).message}`;
  } finally {
    s.destroy();
  }
}

const bare = (c: WorkloadCertificate) => c.serial.toLowerCase().replace(/^0+/, '');
const sni = (sa: string) => `${sa}.shop.sa.cluster.local`;

test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'wtloop-sni-'));
  ca = CertificateAuthority.open(join(dir, 'ca'), 'cluster.local');
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('each identity is presented under its own server name; an unknown name gets no certificate', async () => {
  const m = new CertificateManager({ state: meshWith(['web', 'db']), ca: localCa(), trustDomain: 'cluster.local', ttlSeconds: 3600, keyType: 'ecdsa', log });
  const both = new Promise<void>((resolve) => {
    let n = 0;
    m.on('issued', () => ++n === 2 && resolve());
  });
  m.start();
  await both;
  const { server, port } = await serve(m);
  try {
    assert.is(await presented(port, sni('web')), bare(m.get('spiffe://cluster.local/ns/shop/sa/web')!));
    assert.is(await presented(port, sni('db')), bare(m.get('spiffe://cluster.local/ns/shop/sa/db')!));
    assert.match(await presented(port, sni('nobody')), /^error: /);
  } finally {
    m.stop();
    await server.close(0);
  }
});

test('after a rotation, new handshakes get the new certificate; after the last pod leaves, none', async () => {
  const state = meshWith(['web']);
  const m = new CertificateManager({ state, ca: localCa(), trustDomain: 'cluster.local', ttlSeconds: 3600, keyType: 'ecdsa', log });
  const issued = once(m, 'issued');
  m.start();
  const [first] = (await issued) as [WorkloadCertificate];
  const { server, port } = await serve(m);
  try {
    assert.is(await presented(port, sni('web')), bare(first));
    // A new CA root makes the manager renew every certificate (within 3 s, spread out).
    const rotated = once(m, 'issued');
    state.apply({ type: 'config', full: false, from: 1, to: 2, upserts: [{ key: 'trustbundle/cluster.local', value: { trustDomain: 'cluster.local', roots: ['the next root'] } }], deletes: [] });
    const [second] = (await rotated) as [WorkloadCertificate];
    assert.is.not(bare(second), bare(first));
    assert.is(await presented(port, sni('web')), bare(second));
    state.apply({ type: 'config', full: false, from: 2, to: 3, upserts: [], deletes: ['workload/shop/web-1'] });
    assert.match(await presented(port, sni('web')), /^error: /);
  } finally {
    m.stop();
    await server.close(0);
  }
});

test.run();
