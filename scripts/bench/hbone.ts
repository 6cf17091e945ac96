// Benchmark: the HBONE data path on loopback (app socket → pooled CONNECT stream → HboneServer → TCP, piped as outbound.ts
// and inbound.ts do) against a plain TCP proxy pair, side by side with ratios: keep-alive and new-connection rates and latency,
// new HBONE sessions, bulk Gbit/s, and the proxy process's CPU and RSS (the proxies run in a forked child).
//   node dist/scripts/bench/hbone.js [--seconds 5] [--rounds 1] [--phases rr,cps,up,down,sessions] [--columns direct,hbone] [--baseline-dist DIR] [--profile DIR]
// The two HTTP/2 implementations side by side, ratios against Node's:
//   node dist/scripts/bench/hbone.js --columns hbone+pipe=splice+h2=node,hbone+pipe=splice+h2=ambit,direct+pipe=splice

import { fork, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { existsSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { pipeline, type Duplex } from 'node:stream';
import { createSecureContext } from 'node:tls';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { listenerHere } from '../../native/netns.js';
import type { HboneServer, HboneTunnel } from '../../shared/hbone/server.js';
import type { HbonePool } from '../../shared/hbone/pool.js';
import { oid, seq, Tag, tlv } from '../../shared/identity/der.js';
import { TrustBundle } from '../../shared/identity/svid.js';
import { buildCertificate, keyId, oidClientAuth, oidServerAuth, toPem } from '../../shared/identity/x509.js';

const { values } = parseArgs({
  options: {
    role: { type: 'string' },
    seconds: { type: 'string' },
    rounds: { type: 'string' },
    columns: { type: 'string' },
    profile: { type: 'string' },
    'baseline-dist': { type: 'string' },
    phases: { type: 'string' },
  },
});

/** What a child proxy process runs: the plain pair or the HBONE path, with the app-side piping knobs. */
interface ProxySetup {
  mode: 'direct' | 'hbone';
  /** Where the dist/ with the HBONE modules lives (shared/hbone/, or agent/proxy/ before they moved); the current build when absent. */
  dist?: string;
  /** One listener is opened per target port; a connection to listener i reaches target i. */
  targets: number[];
  /** Targets (by index) whose connections each get a pool of their own, hence a new session and TLS handshake. */
  freshSessions: number[];
  appPipe: AppPipe;
  highWaterMark?: number;
  noDelay: boolean;
  streamWindow?: number;
  sessionWindow?: number;
  /** V8's young-generation semi-space, in MB (--max-semi-space-size): the agent's largest RSS lever. */
  semiSpaceMb?: number;
  /** Which HTTP/2 carries HBONE (pool and server alike); the build's default when absent. */
  h2?: 'node' | 'ambit';
  /**
   * Event loops carrying the proxies, as the agent's --workers: the process's main thread and
   * workers - 1 worker threads, each with its own pool, HBONE server and listeners, sharing every
   * port through SO_REUSEPORT.
   */
  workers?: number;
}

/** The ports one event loop's proxies listen on, in order: the others listen on the same ones. */
interface ProxyPorts {
  servers: number[];
  hbone?: number;
  identities?: Identities;
}

/**
 * How the app-side socket and the tunnel are joined: stream.pipeline both ways (the agent before
 * splice.ts), .pipe() both ways, the agent's splice.ts (pause/resume, no per-stream machinery), or
 * a splice that also gathers the writes of one event-loop turn into one writev (cork, then uncork
 * in setImmediate).
 */
type AppPipe = 'pipeline' | 'pipe' | 'coalesce' | 'splice';
const appPipes: AppPipe[] = ['pipeline', 'pipe', 'coalesce', 'splice'];

interface Usage {
  cpuMicros: number;
  rss: number;
  maxRss: number;
}

type ToChild = { type: 'start'; setup: ProxySetup } | { type: 'usage'; gc: boolean } | { type: 'stop' };
type FromChild = { type: 'ready'; ports: number[] } | { type: 'usage'; usage: Usage };

const payloadBytes = 100;
const bulkChunk = 64 * 1024;
const bulkCap = 1024 ** 3;

// ---------------------------------------------------------------- the proxy side (child process)

function name(cn: string): Buffer {
  return seq(tlv(Tag.set, seq(oid('2.5.4.3'), tlv(Tag.utf8String, Buffer.from(cn)))));
}

/** A throwaway CA and two SVIDs (client and server), as the agent would hold them. */
interface Identities {
  /** The CA's certificate, PEM. */
  root: string;
  client: { uri: string; key: string; cert: string };
  server: { uri: string; key: string; cert: string };
}

function identities(): Identities {
  const ca = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const caSpki = ca.publicKey.export({ type: 'spki', format: 'der' });
  const now = Date.now();
  const caDer = buildCertificate({ serial: Buffer.from([1]), issuerDer: name('bench root'), subjectDer: name('bench root'), notBefore: new Date(now - 3600_000), notAfter: new Date(now + 3600_000), spkiDer: caSpki, isCA: true, keyUsage: 32 | 64, signingKey: ca.privateKey });
  const leaf = (sa: string, serial: number, signingKey: KeyObject) => {
    const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const uri = `spiffe://cluster.local/ns/bench/sa/${sa}`;
    const der = buildCertificate({
      serial: Buffer.from([serial]),
      issuerDer: name('bench root'),
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 3600_000),
      spkiDer: keys.publicKey.export({ type: 'spki', format: 'der' }),
      uris: [uri],
      isCA: false,
      keyUsage: 1,
      extKeyUsage: [oidServerAuth, oidClientAuth],
      authorityKeyId: keyId(caSpki),
      signingKey,
    });
    return { uri, key: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, cert: toPem(der, 'CERTIFICATE') };
  };
  return { root: toPem(caDer, 'CERTIFICATE'), client: leaf('client', 2, ca.privateKey), server: leaf('server', 3, ca.privateKey) };
}

/** `from` into `to` with backpressure, the chunks of one event-loop turn written together. */
function coalesce(from: Duplex, to: Duplex): void {
  let corked = false;
  const uncork = () => {
    if (!corked) return;
    corked = false;
    to.uncork();
  };
  from.on('data', (chunk: Buffer) => {
    if (!corked) {
      corked = true;
      to.cork();
      setImmediate(uncork);
    }
    if (!to.write(chunk)) from.pause();
  });
  to.on('drain', () => from.resume());
  from.once('end', () => {
    uncork();
    to.end();
  });
}

/**
 * The URL of an HBONE module in the build at `dist`: shared/hbone/ since commit 4220b0d, agent/proxy/
 * (the server as hbone-server.js) in builds from before, so that --baseline-dist can name either.
 */
function hboneModule(dist: string, name: 'pool' | 'server' | 'splice'): string {
  const now = resolvePath(dist, 'shared/hbone', `${name}.js`);
  const before = resolvePath(dist, 'agent/proxy', `${name === 'server' ? 'hbone-server' : name}.js`);
  const path = existsSync(now) ? now : before;
  if (!existsSync(path)) throw new Error(`${dist} holds neither ${now} nor ${before}: is it a dist/ directory?`);
  return pathToFileURL(path).href;
}

async function runProxies(): Promise<void> {
  const [msg] = (await once(process, 'message')) as [ToChild];
  if (msg.type !== 'start') return;
  const o = msg.setup;
  const mine = await serveProxies(o);
  // The other event loops, on the same ports (the agent's workers: agent/workers/).
  const workers = Array.from({ length: (o.workers ?? 1) - 1 }, () => new Worker(fileURLToPath(import.meta.url), { workerData: { setup: o, ports: mine.ports } }));
  await Promise.all(workers.map((w) => once(w, 'message')));
  // The load side is gone (killed, crashed): so is the point of running.
  process.once('disconnect', () => process.exit(0));
  process.on('message', (m: ToChild) => {
    if (m.type === 'usage') {
      if (m.gc) (globalThis as { gc?: () => void }).gc?.();
      const cpu = process.cpuUsage();
      const usage: Usage = { cpuMicros: cpu.user + cpu.system, rss: process.memoryUsage().rss, maxRss: process.resourceUsage().maxRSS * 1024 };
      process.send!({ type: 'usage', usage } satisfies FromChild);
    } else if (m.type === 'stop') {
      for (const w of workers) w.postMessage('stop');
      // Exit (not wait for every socket) so that --cpu-prof writes its profile now.
      void Promise.all([mine.stop(), ...workers.map((w) => once(w, 'exit'))]).finally(() => process.exit(0));
    }
  });
  // In direct mode the servers come in pairs (B, then A in front of it): the load goes to A.
  process.send!({ type: 'ready', ports: mine.ports.servers.filter((_, i) => o.mode === 'hbone' || i % 2 === 1) } satisfies FromChild);
}

/** A worker thread of the proxy process: the same proxies, on the ports the main thread chose. */
async function runProxyWorker(): Promise<void> {
  const { setup, ports } = workerData as { setup: ProxySetup; ports: ProxyPorts };
  const mine = await serveProxies(setup, ports);
  parentPort!.once('message', () => void mine.stop().finally(() => process.exit(0)));
  parentPort!.postMessage('ready');
}

/** One event loop's proxies: on `fixed` ports (another event loop's, shared), or on new ones. */
async function serveProxies(o: ProxySetup, fixed?: ProxyPorts): Promise<{ ports: ProxyPorts; stop(): Promise<void> }> {
  const shared = (o.workers ?? 1) > 1;
  const nextPort = [...(fixed?.servers ?? [])];
  const socketOptions = { allowHalfOpen: true, ...(o.highWaterMark ? { highWaterMark: o.highWaterMark } : {}) };
  // The agent's own join (shared/hbone/splice.ts), from the column's build.
  const dist = o.dist ?? resolvePath(fileURLToPath(import.meta.url), '..', '..', '..');
  // Loaded only when asked for: builds from before splice.ts have none.
  const splice = o.appPipe === 'splice' ? ((await import(hboneModule(dist, 'splice'))) as typeof import('../../shared/hbone/splice.js')).splice : undefined;
  // Both directions, an error on either side ending both: outbound.ts's join and inbound.ts's joinTunnel.
  const join = (a: Socket, b: Duplex) => {
    const done = (err?: Error | null) => {
      if (!err) return;
      if (!a.destroyed) a.resetAndDestroy();
      b.destroy();
    };
    if (o.appPipe === 'pipeline') {
      pipeline(a, b, done);
      pipeline(b, a, done);
      return;
    }
    if (splice) return splice(a, b, done);
    a.on('error', done);
    b.on('error', done);
    // A side closed without an error (a client gone) takes the other with it, as pipeline does.
    a.once('close', () => b.destroy());
    b.once('close', () => a.destroy());
    if (o.appPipe === 'pipe') {
      a.pipe(b);
      b.pipe(a);
    } else {
      coalesce(a, b);
      coalesce(b, a);
    }
  };
  const dial = (port: number) => {
    const s = connect({ port, host: '127.0.0.1', ...socketOptions });
    if (o.noDelay) s.setNoDelay(true);
    return s;
  };
  const listen = async (onSocket: (s: Socket) => void) => {
    const server = createServer(socketOptions, (s) => {
      s.on('error', () => undefined);
      if (o.noDelay) s.setNoDelay(true);
      onSocket(s);
    });
    const port = nextPort.shift() ?? 0;
    if (shared) server.listen({ fd: listenerHere('127.0.0.1', port, { reusePort: true }) });
    else server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    return server;
  };
  const servers: Server[] = [];
  let pool: HbonePool | undefined;
  let hbone: HboneServer | undefined;
  let hbonePort = 0;
  let identitiesUsed: Identities | undefined;
  if (o.mode === 'direct') {
    for (const target of o.targets) {
      const b = await listen((s) => join(s, dial(target)));
      const bPort = (b.address() as AddressInfo).port;
      servers.push(b, await listen((s) => join(s, dial(bPort))));
    }
  } else {
    const { HbonePool } = (await import(hboneModule(dist, 'pool'))) as typeof import('../../shared/hbone/pool.js');
    const { createHboneServer } = (await import(hboneModule(dist, 'server'))) as typeof import('../../shared/hbone/server.js');
    // One CA and one certificate set for every event loop, as the agent's workers share its own.
    const ids = { ...(fixed?.identities ?? identities()), bundle: undefined as unknown as TrustBundle };
    ids.bundle = new TrustBundle({ 'cluster.local': [ids.root] });
    identitiesUsed = ids;
    const serverContext = createSecureContext({ key: ids.server.key, cert: ids.server.cert, minVersion: 'TLSv1.3' });
    // inbound.ts without policy: dial the destination, answer 200 once connected, pipe.
    const onTunnel = (t: HboneTunnel) => {
      const upstream = dial(t.authority.port);
      upstream.once('connect', () => {
        t.respond(200);
        join(upstream, t.stream);
      });
      upstream.once('error', () => upstream.connecting && t.respond(503));
    };
    const windows = { ...(o.streamWindow ? { streamWindowBytes: o.streamWindow } : {}), ...(o.sessionWindow ? { sessionWindowBytes: o.sessionWindow } : {}) };
    const h2 = o.h2 ? { h2: o.h2 } : {};
    hbone = createHboneServer({ trustBundle: () => ids.bundle, secureContext: () => serverContext, onTunnel, limits: windows, ...h2 });
    hbonePort = (await hbone.listen(fixed?.hbone ?? 0, '127.0.0.1')).port;
    pool = new HbonePool({ trustBundle: () => ids.bundle, ...windows, ...h2 });
    const clientContext = createSecureContext({ key: ids.client.key, cert: ids.client.cert, minVersion: 'TLSv1.3' });
    const shared = pool;
    // outbound.ts: the client waits, paused, for its tunnel, then is joined to it.
    for (const [i, target] of o.targets.entries()) {
      const fresh = o.freshSessions.includes(i);
      servers.push(
        await listen((client) => {
          client.pause();
          const p = fresh ? new HbonePool({ trustBundle: () => ids.bundle, ...windows, ...h2 }) : shared;
          if (fresh) client.once('close', () => p.close());
          p.connect({
            identity: ids.client.uri,
            secureContext: clientContext,
            nodeAddress: '127.0.0.1',
            nodePort: hbonePort,
            authority: `127.0.0.1:${target}`,
            expectedIdentity: ids.server.uri,
            servername: 'server.bench.sa.cluster.local',
            headers: { forwarded: 'for=127.0.0.1' },
          }).then(
            (stream) => {
              if (client.destroyed) return void stream.end();
              join(client, stream);
              client.resume();
            },
            () => client.resetAndDestroy(),
          );
        }),
      );
    }
  }
  return {
    ports: { servers: servers.map((s) => (s.address() as AddressInfo).port), ...(hbone ? { hbone: hbonePort } : {}), ...(identitiesUsed ? { identities: { root: identitiesUsed.root, client: identitiesUsed.client, server: identitiesUsed.server } } : {}) },
    async stop() {
      pool?.close();
      for (const s of servers) s.close();
      if (hbone) await hbone.close(100);
    },
  };
}

// ---------------------------------------------------------------- the load side (this process)

/** Echoes requests (keep-alive and new-connection figures), swallows uploads, and streams downloads. */
interface Backends {
  echo: number;
  sink: number;
  source: number;
  /** What the sink has received, and when it last did. */
  sunk: { bytes: number; last: number };
  close(): void;
}

async function backends(): Promise<Backends> {
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.setNoDelay(true);
    s.on('error', () => undefined);
    s.once('close', () => sockets.delete(s));
  };
  const sunk = { bytes: 0, last: 0 };
  const echo = createServer({ allowHalfOpen: true }, (s) => {
    track(s);
    s.pipe(s);
  });
  const sink = createServer((s) => {
    track(s);
    s.on('data', (c: Buffer) => {
      sunk.bytes += c.length;
      sunk.last = performance.now();
    });
  });
  const chunk = Buffer.alloc(bulkChunk, 'b');
  const source = createServer((s) => {
    track(s);
    let sent = 0;
    const pump = () => {
      while (!s.destroyed && sent < bulkCap) {
        sent += chunk.length;
        if (!s.write(chunk)) return;
      }
      if (sent >= bulkCap) s.end();
    };
    s.on('drain', pump);
    pump();
  });
  const servers = [echo, sink, source];
  for (const s of servers) s.listen(0, '127.0.0.1');
  await Promise.all(servers.map((s) => once(s, 'listening')));
  const [e, k, o] = servers.map((s) => (s.address() as AddressInfo).port) as [number, number, number];
  return {
    echo: e,
    sink: k,
    source: o,
    sunk,
    close() {
      for (const s of sockets) s.destroy();
      for (const s of servers) s.close();
    },
  };
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' }, () => resolve(s));
    s.setNoDelay(true);
    s.once('error', reject);
  });
}

interface Latencies {
  count: number;
  ms: number;
  p50: number;
  p99: number;
  errors: number;
}

function summarize(samples: Float64Array, n: number, ms: number, errors: number): Latencies {
  const sorted = samples.subarray(0, n).sort();
  const at = (q: number) => (n ? sorted[Math.min(n - 1, Math.floor(q * n))]! : NaN);
  return { count: n, ms, p50: at(0.5), p99: at(0.99), errors };
}

/** `conns` keep-alive connections, each sending 100 bytes and awaiting the echo, again and again, for `ms`. */
async function requestResponse(port: number, conns: number, ms: number, maxRequests: number, during?: () => Promise<void>): Promise<Latencies> {
  const sockets = await Promise.all(Array.from({ length: conns }, () => open(port)));
  const samples = new Float64Array(maxRequests + conns);
  const payload = Buffer.alloc(payloadBytes, 'r');
  let n = 0;
  let errors = 0;
  const start = performance.now();
  const end = start + ms;
  let hard: NodeJS.Timeout | undefined;
  await new Promise<void>((done) => {
    let running = conns;
    const finish = () => {
      if (--running === 0) done();
    };
    // Nothing should stall, but a stalled tunnel must not hang the run.
    hard = setTimeout(() => {
      for (const s of sockets) s.destroy();
      done();
    }, ms + 10_000);
    for (const s of sockets) {
      let got = 0;
      let t0 = 0;
      let stopped = false;
      const send = () => {
        t0 = performance.now();
        if (t0 >= end || n >= maxRequests) {
          stopped = true;
          return finish();
        }
        got = 0;
        s.write(payload);
      };
      s.on('data', (c: Buffer) => {
        got += c.length;
        if (got < payloadBytes || stopped) return;
        samples[n++] = performance.now() - t0;
        send();
      });
      s.on('error', () => {
        errors++;
        if (!stopped) {
          stopped = true;
          finish();
        }
      });
      send();
    }
  });
  clearTimeout(hard);
  const elapsed = performance.now() - start;
  await during?.();
  // Closed gracefully (FIN through both proxies), within a bound.
  let closing: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(sockets.map((s) => (s.destroyed ? undefined : (s.end(), once(s, 'close'))))),
    new Promise<void>((r) => (closing = setTimeout(r, 5000))),
  ]);
  clearTimeout(closing);
  for (const s of sockets) s.destroy();
  return summarize(samples, n, elapsed, errors);
}

/** `concurrency` loops, each opening a connection, sending 100 bytes, awaiting the echo, closing, and again, for `ms`. */
async function newConnections(port: number, concurrency: number, ms: number, maxConns: number): Promise<Latencies> {
  const samples = new Float64Array(maxConns + concurrency);
  const payload = Buffer.alloc(payloadBytes, 'c');
  let n = 0;
  let started = 0;
  let errors = 0;
  const start = performance.now();
  const end = start + ms;
  const live = new Set<Socket>();
  const loop = () =>
    new Promise<void>((done) => {
      const next = () => {
        const t0 = performance.now();
        if (t0 >= end || started >= maxConns) return done();
        started++;
        let got = 0;
        let answered = false;
        const s = connect({ port, host: '127.0.0.1' }, () => s.write(payload));
        live.add(s);
        s.setNoDelay(true);
        s.on('data', (c: Buffer) => {
          got += c.length;
          if (got < payloadBytes || answered) return;
          answered = true;
          samples[n++] = performance.now() - t0;
          s.end();
        });
        s.on('error', () => undefined);
        s.once('close', () => {
          live.delete(s);
          if (!answered) errors++;
          next();
        });
      };
      next();
    });
  let hard: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(Array.from({ length: concurrency }, loop)),
    new Promise<void>((r) => (hard = setTimeout(r, ms + 10_000))),
  ]);
  clearTimeout(hard);
  for (const s of live) s.destroy();
  return summarize(samples, n, performance.now() - start, errors);
}

/** One connection writing 64 KiB chunks as fast as the path takes them, for `ms` or 1 GiB; Gbit/s as the sink saw it. */
async function bulkUp(port: number, sunk: { bytes: number; last: number }, ms: number): Promise<{ gbps: number; bytes: number; ms: number }> {
  const s = await open(port);
  s.on('error', () => undefined);
  const chunk = Buffer.alloc(bulkChunk, 'u');
  const before = sunk.bytes;
  const start = performance.now();
  let written = 0;
  await new Promise<void>((done) => {
    const pump = () => {
      while (written < bulkCap && performance.now() - start < ms) {
        written += chunk.length;
        if (!s.write(chunk)) return;
      }
      s.off('drain', pump);
      done();
    };
    s.on('drain', pump);
    s.once('close', done);
    pump();
  });
  // What is still in flight through the proxies counts, up to the time it arrives.
  for (const giveUp = performance.now() + 10_000; sunk.bytes - before < written && performance.now() < giveUp; ) await new Promise((r) => setTimeout(r, 5));
  s.destroy();
  const bytes = sunk.bytes - before;
  const elapsed = sunk.last - start;
  return { gbps: (bytes * 8) / (elapsed / 1000) / 1e9, bytes, ms: elapsed };
}

/** One connection reading what the source streams, for `ms` or 1 GiB. */
async function bulkDown(port: number, ms: number): Promise<{ gbps: number; bytes: number; ms: number }> {
  const start = performance.now();
  const s = await open(port);
  let bytes = 0;
  let last = start;
  await new Promise<void>((done) => {
    const timer = setTimeout(done, ms);
    s.on('data', (c: Buffer) => {
      bytes += c.length;
      last = performance.now();
      if (bytes >= bulkCap) done();
    });
    s.on('error', () => undefined);
    s.once('close', () => {
      clearTimeout(timer);
      done();
    });
  });
  s.destroy();
  const elapsed = last - start;
  return { gbps: (bytes * 8) / (elapsed / 1000) / 1e9, bytes, ms: elapsed };
}

interface ModeResult {
  rr: Latencies;
  rrCpuMs: number;
  rrRss: number;
  cps: Latencies;
  cpsCpuMs: number;
  sessions: Latencies;
  sessionsCpuMs: number;
  up: { gbps: number; bytes: number };
  upCpuMs: number;
  down: { gbps: number; bytes: number };
  downCpuMs: number;
  maxRss: number;
}

/** A column's proxy process, started and warmed up; it stays up for every round and phase. */
interface Proxies {
  column: Column;
  child: ChildProcess;
  ports: { echo: number; sink: number; source: number; sessions: number };
  /** The process's CPU time and memory, after a full GC when `gc` (so that no phase pays for another's garbage). */
  usage(gc?: boolean): Promise<Usage>;
}

async function startProxies(column: Column, back: Backends): Promise<Proxies> {
  const execArgv = ['--expose-gc', ...(column.setup.semiSpaceMb ? [`--max-semi-space-size=${column.setup.semiSpaceMb}`] : []), ...(values.profile ? ['--cpu-prof', '--cpu-prof-dir', values.profile, '--cpu-prof-name', `${column.label.replace(/[^\w=.-]+/g, '_')}-${Date.now()}.cpuprofile`] : [])];
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--role', 'proxies'], { stdio: 'inherit', execArgv });
  // A child that dies (or hangs) before it answers fails the run instead of stalling it.
  const reply = async (): Promise<FromChild> => {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), 30_000);
    try {
      return await Promise.race([
        once(child, 'message', { signal: ac.signal }).then(([m]) => m as FromChild),
        once(child, 'exit', { signal: ac.signal }).then(([code]) => {
          throw new Error(`the proxy process exited (${code}) before it answered`);
        }),
      ]);
    } finally {
      clearTimeout(timer);
      ac.abort();
    }
  };
  const setup: ProxySetup = { ...column.setup, targets: [back.echo, back.sink, back.source, back.echo], freshSessions: [3] };
  child.send({ type: 'start', setup } satisfies ToChild);
  const ready = await reply();
  if (ready.type !== 'ready') throw new Error('the proxy process did not start');
  const [echo, sink, source, sessions] = ready.ports as [number, number, number, number];
  const p: Proxies = {
    column,
    child,
    ports: { echo, sink, source, sessions },
    async usage(gc = false) {
      child.send({ type: 'usage', gc } satisfies ToChild);
      const m = await reply();
      if (m.type !== 'usage') throw new Error('unexpected message from the proxy process');
      return m.usage;
    },
  };
  // Warm-up: JIT, the pooled session and TLS ticket, socket buffers.
  await requestResponse(echo, 16, 600, 1e6);
  await newConnections(echo, 8, 400, 5000);
  return p;
}

const phaseNames = ['rr', 'cps', 'up', 'down', 'sessions'] as const;
type Phase = (typeof phaseNames)[number];

function emptyResult(): ModeResult {
  const none: Latencies = { count: NaN, ms: NaN, p50: NaN, p99: NaN, errors: NaN };
  return { rr: none, rrCpuMs: NaN, rrRss: NaN, cps: none, cpsCpuMs: NaN, sessions: none, sessionsCpuMs: NaN, up: { gbps: NaN, bytes: NaN }, upCpuMs: NaN, down: { gbps: NaN, bytes: NaN }, downCpuMs: NaN, maxRss: NaN };
}

/** Runs one figure against one column's proxies, into `r`, with the proxy process's CPU time meanwhile. */
async function runPhase(p: Proxies, phase: Phase, r: ModeResult, back: Backends, ms: number): Promise<void> {
  const u0 = await p.usage(true);
  const cpuMs = async () => ((await p.usage()).cpuMicros - u0.cpuMicros) / 1000;
  const { echo, sink, source, sessions } = p.ports;
  switch (phase) {
    case 'rr':
      r.rr = await requestResponse(echo, 64, ms, 2_000_000, async () => void (r.rrRss = (await p.usage()).rss));
      r.rrCpuMs = await cpuMs();
      break;
    case 'cps':
      r.cps = await newConnections(echo, 32, ms, 200_000);
      r.cpsCpuMs = await cpuMs();
      break;
    case 'up':
      r.up = await bulkUp(sink, back.sunk, Math.min(ms, 4000));
      r.upCpuMs = await cpuMs();
      break;
    case 'down':
      r.down = await bulkDown(source, Math.min(ms, 4000));
      r.downCpuMs = await cpuMs();
      break;
    case 'sessions':
      r.sessions = await newConnections(sessions, 8, Math.min(ms, 3000), 50_000);
      r.sessionsCpuMs = await cpuMs();
      break;
  }
}

interface Column {
  label: string;
  setup: Omit<ProxySetup, 'targets' | 'freshSessions'>;
}

/**
 * `hbone+pipe=coalesce+hwm=65536`: a mode, then options: pipe=pipeline|pipe|splice|coalesce (app side),
 * hwm=BYTES and nodelay=1 (app sockets), window=BYTES and session-window=BYTES (HTTP/2 receive
 * windows), h2=node|ambit (Node's http2 or shared/hbone/h2/ on both ends), workers=N (N event loops
 * sharing the ports through SO_REUSEPORT, as the agent's --workers), semi=MB (V8's --max-semi-space-size for the proxies), dist=DIR (another build, e.g. a copy of dist/ from before a change; --baseline-dist DIR
 * adds one as the column "hbone (baseline)").
 */
function parseColumn(spec: string, label = spec): Column {
  const [mode, ...options] = spec.split('+');
  if (mode !== 'direct' && mode !== 'hbone') throw new Error(`column ${spec}: the mode is direct or hbone`);
  const setup: Omit<ProxySetup, 'targets' | 'freshSessions'> = { mode, appPipe: 'pipeline', noDelay: false };
  for (const option of options) {
    const [key, value = ''] = option.split('=');
    const bytes = Number(value);
    if (key === 'pipe' && appPipes.includes(value as AppPipe)) setup.appPipe = value as AppPipe;
    else if (key === 'hwm' && bytes > 0) setup.highWaterMark = bytes;
    else if (key === 'nodelay') setup.noDelay = value !== '0';
    else if (key === 'window' && bytes > 0) setup.streamWindow = bytes;
    else if (key === 'session-window' && bytes > 0) setup.sessionWindow = bytes;
    else if (key === 'dist' && value) setup.dist = resolvePath(value);
    else if (key === 'semi' && bytes > 0) setup.semiSpaceMb = bytes;
    else if (key === 'h2' && (value === 'node' || value === 'ambit')) setup.h2 = value;
    else if (key === 'workers' && Number.isInteger(bytes) && bytes >= 1) setup.workers = bytes;
    else throw new Error(`column ${spec}: unknown option ${option}`);
  }
  return { label, setup };
}

/** The sum over the phases that ran (a phase left out is NaN). */
function sumOfRun(xs: number[]): number {
  const ran = xs.filter((x) => !Number.isNaN(x));
  return ran.length ? ran.reduce((a, b) => a + b, 0) : NaN;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function main(): Promise<void> {
  const seconds = Math.min(30, Math.max(1, Number(values.seconds ?? 5)));
  const rounds = Math.min(10, Math.max(1, Number(values.rounds ?? 1)));
  const columns = (values.columns ?? 'direct,hbone').split(',').map((c) => parseColumn(c));
  const baseline = values['baseline-dist'] ? parseColumn(`hbone+dist=${values['baseline-dist']}`, 'hbone (baseline)') : undefined;

  const current = columns.find((c) => c.label === 'hbone');
  if (baseline) columns.splice(current ? columns.indexOf(current) : columns.length, 0, baseline);
  if (new Set(columns.map((c) => c.label)).size !== columns.length) throw new Error('each column once');
  const back = await backends();
  const results = new Map<string, ModeResult[]>(columns.map((c) => [c.label, []]));
  const phases = (values.phases ?? phaseNames.join(',')).split(',').map((x) => {
    const phase = phaseNames.find((n) => n === x);
    if (!phase) throw new Error(`unknown phase ${x}: ${phaseNames.join(', ')}`);
    return phase;
  });
  const t0 = performance.now();
  const running: Proxies[] = [];
  try {
    for (const c of columns) running.push(await startProxies(c, back));
    // Every figure runs for each column in turn, round after round: a noisy neighbour (this machine
    // has two cores) then hurts the columns alike instead of spoiling one.
    for (let round = 0; round < rounds; round++) {
      const r = running.map(() => emptyResult());
      for (const phase of phases) {
        process.stderr.write(`round ${round + 1}/${rounds}: ${phase}\n`);
        for (const [i, p] of running.entries()) await runPhase(p, phase, r[i]!, back, seconds * 1000);
      }
      for (const [i, p] of running.entries()) {
        r[i]!.maxRss = (await p.usage()).maxRss;
        results.get(p.column.label)!.push(r[i]!);
      }
    }
    for (const p of running) p.child.send({ type: 'stop' } satisfies ToChild);
    await Promise.all(running.map((p) => (p.child.exitCode === null ? once(p.child, 'exit') : undefined)));
  } finally {
    for (const p of running) if (p.child.exitCode === null) p.child.kill();
    back.close();
  }
  type Row = { name: string; unit: string; get: (m: ModeResult) => number; digits: number };
  const rows: Row[] = [
    { name: 'keep-alive req/s (64 conns, 100 B)', unit: '', get: (m) => m.rr.count / (m.rr.ms / 1000), digits: 0 },
    { name: 'keep-alive latency p50', unit: ' ms', get: (m) => m.rr.p50, digits: 3 },
    { name: 'keep-alive latency p99', unit: ' ms', get: (m) => m.rr.p99, digits: 3 },
    { name: 'proxy CPU per 1,000 keep-alive req', unit: ' s', get: (m) => m.rrCpuMs / m.rr.count, digits: 4 },
    { name: 'proxy CPU use, keep-alive', unit: '%', get: (m) => (100 * m.rrCpuMs) / m.rr.ms, digits: 0 },
    { name: 'new connections/s (32 at once, 1 req each)', unit: '', get: (m) => m.cps.count / (m.cps.ms / 1000), digits: 0 },
    { name: 'new connection to answer p50', unit: ' ms', get: (m) => m.cps.p50, digits: 3 },
    { name: 'new connection to answer p99', unit: ' ms', get: (m) => m.cps.p99, digits: 3 },
    { name: 'proxy CPU per 1,000 new connections', unit: ' s', get: (m) => m.cpsCpuMs / m.cps.count, digits: 4 },
    { name: 'failed connections', unit: '', get: (m) => sumOfRun([m.rr.errors, m.cps.errors, m.sessions.errors]), digits: 0 },
    { name: 'bulk upload, 1 conn', unit: ' Gbit/s', get: (m) => m.up.gbps, digits: 2 },
    { name: 'proxy CPU per GB uploaded', unit: ' s', get: (m) => m.upCpuMs / (m.up.bytes / 1e6), digits: 3 },
    { name: 'bulk download, 1 conn', unit: ' Gbit/s', get: (m) => m.down.gbps, digits: 2 },
    { name: 'proxy CPU per GB downloaded', unit: ' s', get: (m) => m.downCpuMs / (m.down.bytes / 1e6), digits: 3 },
    { name: 'new connections/s, each on a new HBONE session (8 at once)', unit: '', get: (m) => m.sessions.count / (m.sessions.ms / 1000), digits: 0 },
    { name: 'proxy CPU per 1,000 of those', unit: ' s', get: (m) => m.sessionsCpuMs / m.sessions.count, digits: 4 },
    { name: 'proxy RSS with 64 open conns', unit: ' MB', get: (m) => m.rrRss / 1e6, digits: 1 },
    { name: 'proxy peak RSS', unit: ' MB', get: (m) => m.maxRss / 1e6, digits: 1 },
  ];
  // Every column against the first (direct by default), and the build against the baseline build.
  const [base, ...others] = columns as [Column, ...Column[]];
  const header = ['measure', ...columns.map((c) => c.label), ...others.map((c) => `${c.label} / ${base.label}`)];
  if (baseline && current) header.push('hbone / baseline');
  let out = `\n${rounds > 1 ? `median of ${rounds} rounds; ` : ''}${seconds} s per figure (bulk ${Math.min(seconds, 4)} s), Node ${process.version}, app side joined with stream.pipeline unless a column says otherwise\n\n`;
  out += `| ${header.join(' | ')} |\n| ${header.map((_, i) => (i ? '---:' : '---')).join(' | ')} |\n`;
  for (const row of rows) {
    const v = new Map(columns.map((c) => [c.label, median(results.get(c.label)!.map(row.get))]));
    if (columns.every((c) => Number.isNaN(v.get(c.label)))) continue;
    const cells = columns.map((c) => `${v.get(c.label)!.toFixed(row.digits)}${row.unit}`);
    const ratio = (a: number, b: number) => (b && Number.isFinite(a / b) ? `${(a / b).toFixed(2)}x` : '-');
    for (const c of others) cells.push(ratio(v.get(c.label)!, v.get(base.label)!));
    if (baseline && current) cells.push(ratio(v.get(current.label)!, v.get(baseline.label)!));
    out += `| ${row.name} | ${cells.join(' | ')} |\n`;
  }
  out += `\nratios: value over value (req/s and Gbit/s higher is better; latency, CPU and RSS lower is better). ${((performance.now() - t0) / 1000).toFixed(0)} s in all.\n`;
  process.stdout.write(out);
}

if (!isMainThread) {
  runProxyWorker().catch((err) => {
    process.stderr.write(`${(err as Error).stack}\n`);
    process.exit(1);
  });
} else if (values.role === 'proxies') {
  runProxies().catch((err) => {
    process.stderr.write(`${(err as Error).stack}\n`);
    process.exit(1);
  });
} else {
  main().catch((err) => {
    process.stderr.write(`${(err as Error).stack}\n`);
    process.exit(1);
  });
}
