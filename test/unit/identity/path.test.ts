// The certification path under an SVID, judged as OpenSSL judges it: an intermediate with a critical
// extension nobody knows, name constraints that leave the SVID's URI out, a path longer than a CA's
// pathLen allows, or a root past its validity is refused, on its own and through real HBONE
// handshakes on loopback in both directions; the same CAs without the fault pass.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHboneServer } from '../../../shared/hbone/server.js';
import { HboneConnectFailed, HbonePeerUntrusted } from '../../../shared/hbone/protocol.js';
import { HbonePool } from '../../../shared/hbone/pool.js';
import { SvidInvalid, type TrustBundle, validateSvid } from '../../../shared/identity/svid.js';
import { fromPem } from '../../../shared/identity/x509.js';
import { bundleOf, dialTunnel, echoServer, makeSvid, readAll, type TestSvid } from '../proxy/helpers.js';
import { makeCa, type TestCa, unknownExtension, uriNameConstraints } from './helpers.js';

const hour = 3600_000;

interface Case {
  name: string;
  /** The roots the verifier trusts. */
  roots: TestCa[];
  /** Issues an SVID for shop/<sa> through the CAs under test. */
  svid(ns: string, sa: string): TestSvid;
}

function throughIntermediate(mid: TestCa): (ns: string, sa: string) => TestSvid {
  return (ns, sa) => makeSvid(mid, ns, sa, [mid.der]);
}

function caseOf(name: string, build: () => { roots: TestCa[]; svid(ns: string, sa: string): TestSvid }): Case {
  return { name, ...build() };
}

/** Each refused case, and the same shape without its fault, which must pass. */
const refused: Case[] = [
  caseOf('an intermediate with an unknown critical extension', () => {
    const root = makeCa('path root');
    return { roots: [root], svid: throughIntermediate(makeCa('odd intermediate', root, { extensions: [unknownExtension(true)] })) };
  }),
  caseOf("an intermediate whose name constraints permit only another trust domain's URIs", () => {
    const root = makeCa('path root');
    return { roots: [root], svid: throughIntermediate(makeCa('other-domain intermediate', root, { extensions: [uriNameConstraints('permitted', ['other.example'])] })) };
  }),
  caseOf("an intermediate whose name constraints exclude the SVID's trust domain", () => {
    const root = makeCa('path root');
    return { roots: [root], svid: throughIntermediate(makeCa('excluding intermediate', root, { extensions: [uriNameConstraints('excluded', ['cluster.local'])] })) };
  }),
  caseOf('an intermediate with pathLen 0 that issued another CA in the path', () => {
    const root = makeCa('path root');
    const mid = makeCa('pathlen-0 intermediate', root, { pathLen: 0 });
    const sub = makeCa('sub intermediate', mid);
    return { roots: [root], svid: (ns, sa) => makeSvid(sub, ns, sa, [sub.der, mid.der]) };
  }),
  caseOf('a root that has expired', () => {
    const root = makeCa('expired root', undefined, { notBefore: new Date(Date.now() - 48 * hour), notAfter: new Date(Date.now() - 24 * hour) });
    return { roots: [root], svid: throughIntermediate(makeCa('intermediate of an expired root', root)) };
  }),
];

const accepted: Case[] = [
  caseOf('an intermediate with an unknown extension that is not critical', () => {
    const root = makeCa('path root');
    return { roots: [root], svid: throughIntermediate(makeCa('lax intermediate', root, { extensions: [unknownExtension(false)] })) };
  }),
  caseOf("an intermediate whose name constraints permit the SVID's trust domain", () => {
    const root = makeCa('path root');
    return { roots: [root], svid: throughIntermediate(makeCa('constrained intermediate', root, { extensions: [uriNameConstraints('permitted', ['cluster.local'])] })) };
  }),
  caseOf('an intermediate with pathLen 0 that issued the SVID itself', () => {
    const root = makeCa('path root');
    return { roots: [root], svid: throughIntermediate(makeCa('pathlen-0 intermediate', root, { pathLen: 0 })) };
  }),
  caseOf('a root within its validity, with an intermediate', () => {
    const root = makeCa('path root');
    return { roots: [root], svid: throughIntermediate(makeCa('plain intermediate', root)) };
  }),
];

function reason(svid: TestSvid, bundle: TrustBundle): string {
  try {
    validateSvid(fromPem(svid.certPem), bundle);
    return 'valid';
  } catch (err) {
    assert.instance(err, SvidInvalid);
    return (err as SvidInvalid).reason;
  }
}

for (const c of refused) {
  test(`the validator refuses an SVID through ${c.name}: untrusted-chain, with OpenSSL's reason`, () => {
    const bundle = bundleOf(...c.roots);
    assert.is(reason(c.svid('shop', 'web'), bundle), 'untrusted-chain');
    assert.throws(() => validateSvid(fromPem(c.svid('shop', 'web').certPem), bundle), /does not chain to a root of cluster\.local: .+, at /);
  });
}

for (const c of accepted) {
  test(`the validator accepts an SVID through ${c.name}`, () => {
    assert.is(reason(c.svid('shop', 'web'), bundleOf(...c.roots)), 'valid');
  });
}

/** An HBONE server presenting `serverSvid` before an echo server, and a pool presenting `clientSvid`; both trust `bundle`. */
async function tunnel(serverSvid: TestSvid, clientSvid: TestSvid, bundle: TrustBundle): Promise<{ result: string | Error; refusedByServer: number; tunnels: number }> {
  const echo = await echoServer();
  const server = createHboneServer({ key: serverSvid.keyPem, cert: serverSvid.certPem, trustBundle: () => bundle, onTunnel: dialTunnel });
  const { port } = await server.listen(0, '127.0.0.1');
  const pool = new HbonePool({ trustBundle: () => bundle });
  try {
    let result: string | Error;
    try {
      const stream = await pool.connect({ identity: clientSvid.uri, key: clientSvid.keyPem, cert: clientSvid.certPem, nodeAddress: '127.0.0.1', nodePort: port, authority: `127.0.0.1:${echo.port}` });
      stream.end('through the path');
      result = await readAll(stream);
    } catch (err) {
      result = err as Error;
    }
    return { result, refusedByServer: server.counters.refused['untrusted-chain'], tunnels: server.counters.tunnels };
  } finally {
    pool.close();
    await server.close(200);
    await echo.close();
  }
}

for (const c of refused) {
  test(`over HBONE, ${c.name} under the client's SVID makes the server refuse it, and under the server's makes the client refuse`, async () => {
    const good = makeCa('good root');
    const bundle = bundleOf(good, ...c.roots);
    const fine = makeSvid(good, 'shop', 'api');
    const bad = c.svid('shop', 'web');

    const inbound = await tunnel(fine, bad, bundle);
    assert.instance(inbound.result, HboneConnectFailed);
    assert.is((inbound.result as HboneConnectFailed).stage, 'refused-certificate');
    assert.is(inbound.refusedByServer, 1);
    assert.is(inbound.tunnels, 0);

    const outbound = await tunnel(bad, fine, bundle);
    assert.instance(outbound.result, HbonePeerUntrusted);
    assert.is((outbound.result as HbonePeerUntrusted).reason, 'untrusted-chain');
    assert.is(outbound.tunnels, 0, 'no CONNECT reached the refused server');
  });
}

for (const c of accepted) {
  test(`over HBONE, ${c.name} carries a tunnel both ways`, async () => {
    const bundle = bundleOf(...c.roots);
    const r = await tunnel(c.svid('shop', 'api'), c.svid('shop', 'web'), bundle);
    assert.is(r.result, 'through the path');
  });
}

test.run();
