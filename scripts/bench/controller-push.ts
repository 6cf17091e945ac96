// Benchmark: the controller pushing a large cluster to many agents. A cluster of 10,000 workloads
// (pods) and 2,000 Services reaches the controller either through the Kubernetes API (list and
// watch, served by the local cluster's API handler in a child process: `api`, how the controller
// runs) or straight from an in-process store (`store`, how it ran before, the baseline); each feed
// runs in a process of its own so memory is not shared. The push server then serves 100 agents
// (real agent code, in two child processes so the controller's figures are its own). Printed, per
// feed and as ratios: the time until all have acknowledged, per-change push latency (p50/p99 from
// the change being stored until every agent acknowledged), the controller's CPU and memory, and for
// the API feed the cost of the initial list and of the watches, in the controller and in the API
// server. Baseline within a feed: one agent alone. Writes the API feed's figures (and the store's
// beside them) to bench/push.json (or --out DIR), which `ambit estimate` reads.
//
//   node dist/scripts/bench/controller-push.js [--workloads N] [--services N] [--agents N] [--changes N] [--feed api|store] [--out DIR]

import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { type ChangeEvent, Store } from '../../controller/store/store.js';
import { CertificateAuthority } from '../../controller/ca/authority.js';
import { ShareBuilder } from '../../controller/push/share.js';
import { PushServer } from '../../controller/push/server.js';
import { fixedTokens } from '../../controller/push/auth.js';
import { ClusterCache, pushedKinds } from '../../controller/kube/cache.js';
import { KubeClient } from '../../shared/kube/client.js';
import type { Pod, Resource, Service } from '../../shared/resources/types.js';

const { values } = parseArgs({ options: { workloads: { type: 'string' }, services: { type: 'string' }, agents: { type: 'string' }, changes: { type: 'string' }, out: { type: 'string' }, feed: { type: 'string' } } });
const W = Number(values.workloads ?? 10_000);
const S = Number(values.services ?? 2_000);
const A = Number(values.agents ?? 100);
const changes = Math.min(200, Number(values.changes ?? 30));
const namespaces = 50;

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;

function cluster(): Resource[] {
  const out: Resource[] = [];
  for (let n = 0; n < namespaces; n++) out.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: `ns-${n}`, labels: { 'ambit.dev/dataplane-mode': 'ambient' } } });
  for (let i = 0; i < W; i++) {
    const ns = `ns-${i % namespaces}`;
    const app = `app-${i % S}`;
    const pod: Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `${app}-7d9f8c-${i.toString(36).padStart(5, '0')}`, namespace: ns, labels: { app, 'pod-template-hash': '7d9f8c6b5a' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${app}-7d9f8c6b5a`, uid: `rs-${app}`, controller: true }] },
      spec: { nodeName: `node-${i % A}`, serviceAccountName: `sa-${i % 200}`, containers: [{ name: 'app', command: ['serve'], ports: [{ containerPort: 8080, name: 'http' }] }] },
      status: { phase: 'Running', podIP: `10.${64 + Math.floor(i / 65536)}.${Math.floor(i / 256) % 256}.${i % 256}`, hostIP: '', restarts: 0, containerStatuses: [] },
    };
    out.push(pod);
  }
  for (let s = 0; s < S; s++) {
    const svc: Service = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: `app-${s}`, namespace: `ns-${s % namespaces}` },
      spec: { clusterIP: `10.96.${Math.floor(s / 256)}.${s % 256}`, selector: { app: `app-${s}` }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] },
    };
    out.push(svc);
  }
  return out;
}

/** The figures as JSON beside the table, with the run's date, size and machine, for `ambit estimate`. */
function writePushJson(figures: Record<string, unknown>): void {
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  const outDir = values.out ?? join(root, 'bench');
  const machine = `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Linux ${execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim()}, Node ${process.version}`;
  const command = `node dist/scripts/bench/controller-push.js --workloads ${W} --services ${S} --agents ${A} --changes ${changes}`;
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'push.json'), JSON.stringify({ date: new Date().toISOString().slice(0, 10), machine, command, agents: A, workloads: W, services: S, namespaces, ...figures }, null, 2) + '\n');
}

type Feed = 'store' | 'api';
type Figures = Record<string, number | null>;

/** Answers the next message of `type` from a child. */
function reply<T>(c: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: { type: string }) => {
      if (m.type !== type) return;
      c.off('message', on);
      resolve(m as T);
    };
    c.on('message', on);
  });
}

/** Where the controller's view of the cluster comes from, as the measured run uses it. */
interface Source {
  /** Figures of getting the cluster in (the store's commit, or the API's initial list). */
  figures: Figures;
  /** What the share is loaded from, and its revision. */
  resources: Resource[];
  revision(): number;
  onChange(fn: (e: ChangeEvent) => void): void;
  /** Stores one change (through the API server's store for `api`); answers its revision. */
  commit(r: Resource): Promise<number>;
  /** Resolves when the controller has seen revision `rv` of `kind`. */
  caughtUp(rv: number, kind: string): Promise<void>;
  /** The API server's CPU so far, in ms (none for `store`). */
  serverCpuMs?(): Promise<number>;
  stop(): void;
}

async function storeSource(dir: string, resources: Resource[]): Promise<Source> {
  const store = new Store(join(dir, 'store'));
  const t = performance.now();
  store.commit(resources);
  return {
    figures: { storeCommitMs: performance.now() - t },
    resources: store.list(),
    revision: () => store.currentRevision,
    onChange: (fn) => store.on('change', fn),
    commit: async (r) => store.commit([r]).revision,
    caughtUp: async () => {},
    stop: () => {},
  };
}

async function apiSource(dir: string, resources: Resource[], children: ChildProcess[]): Promise<Source> {
  const server = fork(fileURLToPath(new URL('./push-apiserver.js', import.meta.url)), [], { stdio: 'inherit' });
  children.push(server);
  await reply(server, 'ready');
  server.send({ type: 'start', dir });
  const started = await reply<{ server: string; ca: string; token: string }>(server, 'started');
  server.send({ type: 'seed', resources });
  await reply(server, 'committed');
  const serverCpuMs = async () => {
    server.send({ type: 'cpu' });
    const u = (await reply<{ usage: NodeJS.CpuUsage }>(server, 'cpu')).usage;
    return (u.user + u.system) / 1000;
  };
  const client = new KubeClient({ server: started.server, ca: started.ca, token: () => started.token, namespace: 'default', source: 'bench' });
  const cache = new ClusterCache(client, pushedKinds, pino({ level: 'silent' }));
  const server0 = await serverCpuMs();
  const cpu0 = process.cpuUsage();
  const t = performance.now();
  await cache.start();
  const listMs = performance.now() - t;
  const cpu = process.cpuUsage(cpu0);
  return {
    figures: { listMs, listControllerCpuMs: (cpu.user + cpu.system) / 1000, listApiServerCpuMs: (await serverCpuMs()) - server0 },
    resources: cache.list(),
    revision: () => cache.revision,
    onChange: (fn) => cache.on('change', fn),
    commit: async (r) => {
      server.send({ type: 'commit', resources: [r] });
      return (await reply<{ revision: number }>(server, 'committed')).revision;
    },
    caughtUp: async (rv, kind) => {
      await cache.waitForProgress(rv, 10_000, [kind]);
    },
    serverCpuMs,
    stop: () => {
      cache.stop();
      client.close();
    },
  };
}

/** One feed, in this process: the figures of the controller it measures. */
async function run(feed: Feed): Promise<Figures> {
  const dir = mkdtempSync(join(tmpdir(), 'ambit-bench-push-'));
  const children: ChildProcess[] = [];
  try {
    const source = feed === 'store' ? await storeSource(dir, cluster()) : await apiSource(dir, cluster(), children);
    let t = performance.now();
    const share = new ShareBuilder('istio-system');
    share.load(source.resources, source.revision());
    const shareMs = performance.now() - t;
    const ca = CertificateAuthority.open(join(dir, 'ca'), 'cluster.local');
    const serving = ca.issueServing(['127.0.0.1'], []);
    const tokens = new Map(Array.from({ length: A }, (_, i) => [`node-${i}`, `token-${i}`]));
    const push = new PushServer({ share, nodes: [...tokens.keys()], checkToken: fixedTokens(tokens), tls: { key: serving.keyPem, cert: serving.certPem }, log: pino({ level: 'silent' }) });
    push.server.listen(0, '127.0.0.1');
    await once(push.server, 'listening');
    const url = `wss://127.0.0.1:${(push.server.address() as AddressInfo).port}`;
    source.onChange((e) => {
      share.apply(e);
      push.publish();
    });
    const revision = () => source.revision();

    const worker = fileURLToPath(new URL('./push-agents.js', import.meta.url));
    const spawnWorker = async () => {
      const c = fork(worker, [], { stdio: 'inherit', execArgv: ['--max-old-space-size=8192'] });
      children.push(c);
      await once(c, 'message');
      return c;
    };
    const startAgents = async (c: ChildProcess, nodes: number[], full = false) => {
      c.send({ type: 'start', start: { url, ca: ca.rootPem, full, agents: nodes.map((i) => ({ node: `node-${i}`, token: `token-${i}` })) } });
      await once(c, 'message');
    };
    const allAcked = async (count: number, version: number, timeoutMs: number) => {
      const end = performance.now() + timeoutMs;
      while (performance.now() < end) {
        const acked = push.agents().filter((a) => a.connected && a.ackedVersion >= version).length;
        if (acked >= count) return true;
        await new Promise((r) => setTimeout(r, 2));
      }
      return false;
    };

    // Baseline: one agent alone, running the agent's real code.
    const solo = await spawnWorker();
    t = performance.now();
    await startAgents(solo, [0], true);
    await allAcked(1, revision(), 30_000);
    const soloMs = performance.now() - t;
    solo.send({ type: 'stop' });
    await once(solo, 'exit');

    // All agents, split over two processes.
    const workers = [await spawnWorker(), await spawnWorker()];
    const cpu0 = process.cpuUsage();
    t = performance.now();
    await Promise.all(workers.map((w, k) => startAgents(w, Array.from({ length: A }, (_, i) => i).filter((i) => i % 2 === k))));
    const ok = await allAcked(A, revision(), 60_000);
    const allMs = performance.now() - t;
    const cpu = process.cpuUsage(cpu0);
    const controllerCpuMs = (cpu.user + cpu.system) / 1000;
    const memAfterConnect = process.memoryUsage();

    // Per-change latency, from the change being stored until every agent acknowledged it: alternate
    // a policy update (a few nodes) and a new pod (every node).
    const latencies: number[] = [];
    const seen: number[] = [];
    const server0 = (await source.serverCpuMs?.()) ?? 0;
    const changeCpu0 = process.cpuUsage();
    for (let i = 0; i < changes; i++) {
      const ns = `ns-${i % namespaces}`;
      const r: Resource =
        i % 2 === 0
          ? { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'deny-bad', namespace: ns }, spec: { action: 'DENY', rules: [{ from: [{ source: { namespaces: [`bad-${i}`] } }] }] } }
          : {
              apiVersion: 'v1',
              kind: 'Pod',
              metadata: { name: `extra-${i}`, namespace: ns, labels: { app: 'app-1' } },
              spec: { nodeName: `node-${i % A}`, containers: [{ name: 'c', command: ['x'] }] },
              status: { phase: 'Running', podIP: `10.100.0.${i}`, hostIP: '', restarts: 0, containerStatuses: [] },
            };
      const c0 = performance.now();
      const rv = await source.commit(r);
      await source.caughtUp(rv, r.kind);
      seen.push(performance.now() - c0);
      await allAcked(A, revision(), 10_000);
      latencies.push(performance.now() - c0);
    }
    const changeCpu = process.cpuUsage(changeCpu0);
    const serverChangeCpuMs = source.serverCpuMs ? (await source.serverCpuMs()) - server0 : null;
    const q = (xs: number[], f: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(f * xs.length))]!;
    const mem = process.memoryUsage();
    const full = share.fullPush('node-0');
    const fullBytes = full.common.length + full.own.reduce((n, x) => n + x.length, 0);
    for (const w of workers) w.send({ type: 'stop' });
    await Promise.all(workers.map((w) => once(w, 'exit')));
    push.close();
    source.stop();
    return {
      ...source.figures,
      shareMs,
      soloMs,
      allAckedMs: ok ? allMs : null,
      controllerConnectCpuMs: controllerCpuMs,
      changes,
      changeP50Ms: q(latencies, 0.5),
      changeP99Ms: q(latencies, 0.99),
      changeSeenP50Ms: q(seen, 0.5),
      changeControllerCpuMs: (changeCpu.user + changeCpu.system) / 1000,
      changeApiServerCpuMs: serverChangeCpuMs,
      controllerRssAfterConnectMiB: memAfterConnect.rss / 2 ** 20,
      controllerRssEndMiB: mem.rss / 2 ** 20,
      controllerHeapEndMiB: mem.heapUsed / 2 ** 20,
      fullPushBytes: fullBytes,
      fullPushGzipBytes: full.commonGzip.length,
    };
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs a feed in a process of its own and returns its figures. */
async function inChild(feed: Feed): Promise<Figures> {
  const args = ['--feed', feed, '--workloads', String(W), '--services', String(S), '--agents', String(A), '--changes', String(changes)];
  const c = fork(fileURLToPath(import.meta.url), args, { stdio: 'inherit', execArgv: process.execArgv });
  const [figures] = (await Promise.race([once(c, 'message'), once(c, 'exit').then(([code]) => Promise.reject(new Error(`the ${feed} feed exited with ${code}`)))])) as [Figures];
  await once(c, 'exit');
  return figures;
}

async function main(): Promise<void> {
  if (values.feed) {
    if (values.feed !== 'api' && values.feed !== 'store') throw new Error(`--feed ${values.feed}: must be api or store`);
    const figures = await run(values.feed);
    if (process.send) process.send(figures);
    else process.stdout.write(JSON.stringify(figures, null, 2) + '\n');
    return;
  }
  process.stdout.write(`cluster: ${W} workloads, ${S} services, ${namespaces} namespaces, ${A} agents, ${changes} changes\n`);
  const store = await inChild('store');
  const api = await inChild('api');
  const fmt = (v: number | null | undefined, unit: string) => (v === null || v === undefined ? '-' : unit === 'MB' ? `${v.toFixed(1)} MB` : `${v.toFixed(0)} ms`);
  const ratio = (a: number | null | undefined, b: number | null | undefined) => (a && b ? `${(a / b).toFixed(2)}x` : '-');
  const rows: [string, string, string][] = [
    ['initial list of every kind through the API (wall)', 'listMs', 'ms'],
    ['  its controller CPU (HTTPS, JSON parse, caches)', 'listControllerCpuMs', 'ms'],
    ['  its API server CPU (serialise 12k objects)', 'listApiServerCpuMs', 'ms'],
    ['share computation (all entries)', 'shareMs', 'ms'],
    ['baseline: 1 real agent connected and acknowledged', 'soloMs', 'ms'],
    [`${A} simulated agents connected and acknowledged (goal 1000 ms)`, 'allAckedMs', 'ms'],
    ['controller CPU for those connects', 'controllerConnectCpuMs', 'ms'],
    [`per-change: stored until the controller saw it (p50)`, 'changeSeenP50Ms', 'ms'],
    [`per-change: stored until all ${A} acked (p50)`, 'changeP50Ms', 'ms'],
    [`per-change: stored until all ${A} acked (p99; goal 100 ms)`, 'changeP99Ms', 'ms'],
    [`controller CPU over the ${changes} changes`, 'changeControllerCpuMs', 'ms'],
    [`API server CPU over the ${changes} changes (watch events)`, 'changeApiServerCpuMs', 'ms'],
    ['controller RSS after connect', 'controllerRssAfterConnectMiB', 'MB'],
    ['controller RSS at the end', 'controllerRssEndMiB', 'MB'],
    ['controller heap used at the end', 'controllerHeapEndMiB', 'MB'],
  ];
  process.stdout.write('\n| measure | through the API | from the store (before) | API / store |\n| --- | --- | --- | --- |\n');
  for (const [label, key, unit] of rows) process.stdout.write(`| ${label} | ${fmt(api[key], unit)} | ${fmt(store[key], unit)} | ${ratio(api[key], store[key])} |\n`);
  process.stdout.write(`\nfull push per agent: ${mb(api.fullPushBytes ?? 0)} (gzip ${((api.fullPushGzipBytes ?? 0) / 1024).toFixed(0)} KB)\n`);
  writePushJson({ feed: 'api', ...api, store });
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
