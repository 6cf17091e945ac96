// Fixtures for the HBONE tests: SVIDs with their private keys as PEM (a leaf signed by a test CA,
// optionally through an intermediate, naming one SPIFFE ID), a TCP echo server to tunnel to, and a
// stand-in tunnel handler (dial the authority, answer, pipe) for tests of the HBONE ends themselves.
// The agent's own inbound (its dial, its answers, its counts) is tested through handleTunnel.

import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { pipeline, type Readable } from 'node:stream';
import http2 from 'node:http2';
import { connect as tlsConnect } from 'node:tls';
import { createHboneServer, type HboneServer, type HboneServerLimits, type HboneTunnel } from '../../../shared/hbone/server.js';
import { HbonePool, type HbonePoolOptions, type HboneConnectRequest } from '../../../shared/hbone/pool.js';
import type { H2Implementation } from '../../../shared/hbone/protocol.js';
import { TrustBundle } from '../../../shared/identity/svid.js';
import { buildCertificate, oidClientAuth, oidServerAuth, toPem } from '../../../shared/identity/x509.js';
import { makeCa, type TestCa } from '../identity/helpers.js';

export { makeCa, type TestCa };

export interface TestSvid {
  uri: string;
  keyPem: string;
  /** Leaf first, then the intermediates; PEM concatenated, as a TLS `cert` option takes it. */
  certPem: string;
}

let serial = 0x1000;

/** An SVID for spiffe://cluster.local/ns/<ns>/sa/<sa>, issued by `ca`; `chain` are the intermediates up from `ca`, DER. */
export function makeSvid(ca: TestCa, ns: string, sa: string, chain: Buffer[] = []): TestSvid {
  const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const uri = `spiffe://cluster.local/ns/${ns}/sa/${sa}`;
  serial++;
  const der = buildCertificate({
    serial: Buffer.from([serial >> 8, serial & 0xff]),
    issuerDer: ca.name,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3600_000),
    spkiDer: keys.publicKey.export({ type: 'spki', format: 'der' }),
    uris: [uri],
    isCA: false,
    keyUsage: 1,
    extKeyUsage: [oidServerAuth, oidClientAuth],
    authorityKeyId: ca.keyId,
    signingKey: ca.key,
  });
  return {
    uri,
    keyPem: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    certPem: [der, ...chain].map((d) => toPem(d, 'CERTIFICATE')).join(''),
  };
}

export function bundleOf(...roots: TestCa[]): TrustBundle {
  return new TrustBundle({ 'cluster.local': roots.map((r) => toPem(r.der, 'CERTIFICATE')) });
}

/** A TCP echo server that answers a half-close by closing its side once it has echoed everything. */
export async function echoServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    s.pipe(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    async close() {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

/** A stand-in for the agent's inbound, without policy: dial the authority, answer 200 and pipe, or 503. */
export function dialTunnel(tunnel: HboneTunnel): void {
  // Half-open, so the destination's FIN ends only its direction of the tunnel.
  const upstream = connect({ port: tunnel.authority.port, host: tunnel.authority.ip, allowHalfOpen: true });
  upstream.once('connect', () => {
    tunnel.respond(200);
    const done = (err?: Error | null) => {
      if (err) upstream.destroy();
    };
    pipeline(tunnel.stream, upstream, done);
    pipeline(upstream, tunnel.stream, done);
  });
  upstream.once('error', () => tunnel.respond(503));
}

/** Everything a stream gives until its end, as text. */
export async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

// The fixture both HBONE test files use: a CA with an intermediate, a server and a client identity.

export const root = makeCa('hbone root');
export const mid = makeCa('hbone intermediate', root);
export const other = makeCa('another root');
export const bundle = bundleOf(root);
export const api = makeSvid(root, 'shop', 'api');
export const web = makeSvid(mid, 'shop', 'web', [mid.der]);

export interface Fixture {
  server: HboneServer;
  port: number;
  echoPort: number;
  pool: HbonePool;
  request(extra?: Partial<HboneConnectRequest>): HboneConnectRequest;
  close(): Promise<void>;
}

/** An HBONE server presenting `serverSvid` (default api) in front of an echo server, and a pool whose requests present web's SVID. */
export async function fixture(o: { limits?: Partial<HboneServerLimits>; pool?: Partial<HbonePoolOptions>; serverSvid?: TestSvid; onTunnel?: (t: HboneTunnel) => void; serverH2?: H2Implementation } = {}): Promise<Fixture> {
  const echo = await echoServer();
  const svid = o.serverSvid ?? api;
  const server = createHboneServer({ key: svid.keyPem, cert: svid.certPem, trustBundle: () => bundle, limits: o.limits ?? {}, onTunnel: o.onTunnel ?? dialTunnel, ...(o.serverH2 ? { h2: o.serverH2 } : {}) });
  const { port } = await server.listen(0, '127.0.0.1');
  const pool = new HbonePool({ trustBundle: () => bundle, ...o.pool });
  return {
    server,
    port,
    echoPort: echo.port,
    pool,
    request: (extra = {}) => ({ identity: web.uri, key: web.keyPem, cert: web.certPem, nodeAddress: '127.0.0.1', nodePort: port, authority: `127.0.0.1:${echo.port}`, ...extra }),
    async close() {
      pool.close();
      await server.close(200);
      await echo.close();
    },
  };
}

export async function echoed(f: Fixture, text: string, extra?: Partial<HboneConnectRequest>): Promise<string> {
  const stream = await f.pool.connect(f.request(extra));
  stream.end(text);
  return readAll(stream);
}

export async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

export async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  for (const end = Date.now() + timeoutMs; !condition(); ) {
    if (Date.now() > end) throw new Error('timed out waiting for a condition');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A bare HTTP/2 session over TLS, without the pool's checks, to send what the pool never would. */
export async function rawSession(port: number, creds?: TestSvid): Promise<http2.ClientHttp2Session> {
  const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['h2'], ...(creds ? { key: creds.keyPem, cert: creds.certPem } : {}) });
  await once(socket, 'secureConnect');
  const session = http2.connect(`https://127.0.0.1:${port}`, { createConnection: () => socket });
  session.on('error', () => undefined);
  return session;
}

/** A loopback port where nothing listens. */
export async function closedPort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  s.close();
  await once(s, 'close');
  return port;
}
