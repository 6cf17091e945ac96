// Benchmark: what heavy control-plane work on the agent costs the traffic sharing its event loop.
// An echo server runs on this process's loop while a worker thread sends it small requests
// open-loop (4 connections, one request each per millisecond) and times each round trip. Then,
// in alternating rounds, the agent takes full pushes of a large cluster (as the controller sends
// them: gzip members, 10,000 workloads, 2,000 services, 500 mesh-wide policies by default) and
// makes RSA key pairs, two ways:
//   sync:  the code before this change: gunzipSync, one JSON.parse, the whole check in one go,
//          JSON.stringify of every policy, generateKeyPairSync;
//   paced: the agent's code now: PushReceiver (gunzip on the thread pool, parse and check in
//          slices, policy revisions) and generateKeys (the thread pool).
// Prints round-trip and event-loop delay percentiles during the work, with sync/paced ratios.
//
//   node dist/scripts/bench/event-loop.js [--workloads N] [--services N] [--policies N] [--pushes N] [--keys N] [--rounds N]

import { monitorEventLoopDelay } from 'node:perf_hooks';
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { gunzipSync, gzipSync } from 'node:zlib';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { pino } from 'pino';
import { ShareBuilder } from '../../controller/push/share.js';
import { PushReceiver } from '../../agent/control/receiver.js';
import { generateKeys } from '../../agent/identity/manager.js';
import { AgentState } from '../../agent/state/state.js';
import type { ConfigPush } from '../../shared/protocol/config.js';
import type { Resource } from '../../shared/resources/types.js';

const { values } = parseArgs({ options: { workloads: { type: 'string' }, services: { type: 'string' }, policies: { type: 'string' }, pushes: { type: 'string' }, keys: { type: 'string' }, rounds: { type: 'string' } } });
const W = Number(values.workloads ?? 10_000);
const S = Number(values.services ?? 2_000);
const P = Number(values.policies ?? 500);
const pushes = Number(values.pushes ?? 3);
const keys = Number(values.keys ?? 4);
const rounds = Number(values.rounds ?? 3);
const nodes = 100;
const namespaces = 50;
const node = 'node-0';

function cluster(): Resource[] {
  const out: Resource[] = [];
  for (let n = 0; n < namespaces; n++) out.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: `ns-${n}`, labels: { 'ambit.dev/dataplane-mode': 'ambient' } } });
  for (let i = 0; i < W; i++) {
    const app = `app-${i % S}`;
    out.push({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `${app}-7d9f8c-${i.toString(36).padStart(5, '0')}`, namespace: `ns-${i % namespaces}`, labels: { app, 'pod-template-hash': '7d9f8c6b5a' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${app}-7d9f8c6b5a`, uid: `rs-${app}`, controller: true }] },
      spec: { nodeName: `node-${i % nodes}`, serviceAccountName: `sa-${i % 200}`, containers: [{ name: 'app', command: ['serve'] }] },
      status: { phase: 'Running', podIP: `10.${64 + Math.floor(i / 65536)}.${Math.floor(i / 256) % 256}.${i % 256}`, hostIP: `192.168.1.${i % nodes}`, restarts: 0, containerStatuses: [] },
    } as Resource);
  }
  for (let s = 0; s < S; s++) {
    out.push({ apiVersion: 'v1', kind: 'Service', metadata: { name: `app-${s}`, namespace: `ns-${s % namespaces}` }, spec: { clusterIP: `10.96.${Math.floor(s / 256)}.${s % 256}`, selector: { app: `app-${s}` }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } } as Resource);
  }
  // Mesh-wide (root namespace), so every node's push carries all of them.
  for (let p = 0; p < P; p++) {
    const principals = [`cluster.local/ns/ns-${p % namespaces}/sa/sa-${p % 200}`];
    out.push({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: `allow-${p}`, namespace: 'istio-system' }, spec: { selector: { matchLabels: { app: `app-${p}` } }, action: 'ALLOW', rules: [{ from: [{ source: { principals } }], to: [{ operation: { ports: ['8080'] } }] }] } });
  }
  return out;
}

/** A full push for `node` exactly as controller/push/server.ts frames it. */
function fullPushMessage(share: ShareBuilder, to: number): Buffer {
  const { common, commonGzip, own } = share.fullPush(node);
  const head = gzipSync(`{"type":"config","full":true,"from":0,"to":${to},"upserts":[`);
  const tail = gzipSync(`${common.length && own.length ? ',' : ''}${own.join(',')}],"deletes":[]}`);
  return Buffer.concat([head, commonGzip, tail]);
}

// The load: its own thread and loop, so its timing is not what it measures.
const loadSource = `
const { parentPort, workerData } = require('node:worker_threads');
const net = require('node:net');
let samples = [];
let seq = 0;
const sockets = [];
for (let c = 0; c < 4; c++) {
  const s = net.connect(workerData.port, '127.0.0.1');
  s.setNoDelay(true);
  let pending = Buffer.alloc(0);
  s.on('data', (d) => {
    pending = pending.length ? Buffer.concat([pending, d]) : d;
    const now = performance.now();
    let o = 0;
    for (; o + 16 <= pending.length; o += 16) samples.push(now - pending.readDoubleLE(o));
    pending = pending.subarray(o);
  });
  sockets.push(s);
}
const frame = Buffer.alloc(16);
const timer = setInterval(() => {
  for (const s of sockets) {
    frame.writeDoubleLE(performance.now(), 0);
    frame.writeDoubleLE(seq++, 8);
    s.write(Buffer.from(frame));
  }
}, 1);
parentPort.on('message', (m) => {
  if (m === 'take') { parentPort.postMessage(samples); samples = []; }
  if (m === 'stop') { clearInterval(timer); for (const s of sockets) s.destroy(); parentPort.close(); }
});
`;

interface Figures {
  rttP50: number;
  rttP99: number;
  rttMax: number;
  loopP99: number;
  loopMax: number;
  workMs: number;
  requests: number;
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0;

async function main(): Promise<void> {
  let t = performance.now();
  const share = new ShareBuilder('istio-system');
  share.load(cluster(), 1);
  const message = fullPushMessage(share, 1);
  const entries = (JSON.parse(gunzipSync(message).toString()) as ConfigPush).upserts.length;
  console.log(`cluster: ${W} workloads, ${S} services, ${P} policies; ${node}'s full push: ${entries} entries, ${(message.length / 1024).toFixed(0)} KiB gzip (built in ${(performance.now() - t).toFixed(0)} ms)`);
  console.log(`work per round: ${pushes} full pushes, ${keys} RSA-2048 key pairs; load: 4 connections x 1 request/ms, 16-byte echo; ${rounds} rounds, alternating\n`);

  const server = createServer((s) => {
    s.setNoDelay(true);
    s.on('data', (d) => s.write(d));
    s.on('error', () => undefined); // the load's sockets close at the end

  });
  server.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const load = new Worker(loadSource, { eval: true, workerData: { port: (server.address() as AddressInfo).port } });
  const take = () => new Promise<number[]>((resolve) => {
    load.once('message', resolve);
    load.postMessage('take');
  });
  const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
  const log = pino({ level: 'silent' });

  const syncState = new AgentState(node);
  const pacedState = new AgentState(node);
  const receiver = new PushReceiver({ state: pacedState, log, resync: () => undefined });
  let version = 1;
  const variants: Record<string, () => Promise<void>> = {
    idle: () => pause(300),
    sync: async () => {
      for (let i = 0; i < pushes; i++) {
        const push = JSON.parse(gunzipSync(message, { maxOutputLength: 512 * 1024 * 1024 }).toString()) as ConfigPush;
        push.to = ++version;
        syncState.apply(push);
        JSON.stringify([...syncState.policies.values()]);
        await pause(20);
      }
      for (let i = 0; i < keys; i++) {
        generateKeyPairSync('rsa', { modulusLength: 2048 });
        await pause(20);
      }
    },
    paced: async () => {
      for (let i = 0; i < pushes; i++) {
        receiver.receive(message, true, () => undefined);
        await receiver.idle();
        await pause(20);
      }
      await Promise.all(Array.from({ length: keys }, () => generateKeys('rsa')));
    },
  };

  const results: Record<string, Figures[]> = { idle: [], sync: [], paced: [] };
  await pause(500);
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  for (let r = 0; r < rounds; r++) {
    for (const name of ['idle', 'sync', 'paced']) {
      await pause(200);
      await take();
      h.reset();
      t = performance.now();
      await variants[name]!();
      const workMs = performance.now() - t;
      await pause(50);
      const rtt = (await take()).sort((a, b) => a - b);
      results[name]!.push({ rttP50: pct(rtt, 50), rttP99: pct(rtt, 99), rttMax: rtt.at(-1) ?? 0, loopP99: h.percentile(99) / 1e6, loopMax: h.max / 1e6, workMs, requests: rtt.length });
    }
  }
  h.disable();
  load.postMessage('stop');
  server.close();

  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const of = (name: string, k: keyof Figures) => median(results[name]!.map((f) => f[k]));
  const row = (label: string, k: keyof Figures) => {
    const [i, s, p] = ['idle', 'sync', 'paced'].map((n) => of(n, k)) as [number, number, number];
    console.log(`${label.padEnd(24)} ${i.toFixed(1).padStart(8)} ${s.toFixed(1).padStart(8)} ${p.toFixed(1).padStart(8)} ${(s / p).toFixed(1).padStart(8)}x`);
  };
  console.log(`medians over ${rounds} rounds (ms)         idle     sync    paced  sync/paced`);
  row('echo round trip p50', 'rttP50');
  row('echo round trip p99', 'rttP99');
  row('echo round trip max', 'rttMax');
  row('event-loop delay p99', 'loopP99');
  row('event-loop delay max', 'loopMax');
  row('work took (wall)', 'workMs');
  console.log(`\nper round:  ${['sync', 'paced'].map((n) => `${n} p99 ${results[n]!.map((f) => f.rttP99.toFixed(1)).join(' / ')} ms`).join('; ')}`);
  if (syncState.workloads.size !== pacedState.workloads.size || syncState.policies.size !== pacedState.policies.size) throw new Error('the two paths ended in different states');
}

await main();
