// Benchmark: the controller pushing a large cluster to many agents. Feeds the store 10,000
// workloads (pods) and 2,000 Services, starts the push server, connects 100 agents (real agent
// code, in two child processes so the controller's figures are its own), and prints: the time
// until all have acknowledged, per-change push latency (p50/p99 until every agent acknowledged),
// and the controller's memory. Baseline in the same run: one agent alone. Writes the figures to
// bench/push.json (or --out DIR), which `ambit estimate` reads for the controller and propagation.
//
//   node dist/scripts/bench/controller-push.js [--workloads N] [--services N] [--agents N] [--changes N] [--out DIR]

import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { Store } from '../../controller/store/store.js';
import { CertificateAuthority } from '../../controller/ca/authority.js';
import { ShareBuilder } from '../../controller/push/share.js';
import { PushServer } from '../../controller/push/server.js';
import { ownerAnnotation, type Pod, type Resource, type Service } from '../../shared/resources/types.js';

const { values } = parseArgs({ options: { workloads: { type: 'string' }, services: { type: 'string' }, agents: { type: 'string' }, changes: { type: 'string' }, out: { type: 'string' } } });
const W = Number(values.workloads ?? 10_000);
const S = Number(values.services ?? 2_000);
const A = Number(values.agents ?? 100);
const changes = Math.min(200, Number(values.changes ?? 30));
const namespaces = 50;

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;
const ms = (n: number) => `${n.toFixed(0)} ms`;

function cluster(): Resource[] {
  const out: Resource[] = [];
  for (let n = 0; n < namespaces; n++) out.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: `ns-${n}`, labels: { 'ambit.dev/dataplane-mode': 'ambient' } } });
  for (let i = 0; i < W; i++) {
    const ns = `ns-${i % namespaces}`;
    const app = `app-${i % S}`;
    const pod: Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `${app}-7d9f8c-${i.toString(36).padStart(5, '0')}`, namespace: ns, labels: { app, 'pod-template-hash': '7d9f8c6b5a' }, annotations: { [ownerAnnotation]: `Deployment/${app}` } },
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
function writePushJson(figures: Record<string, number | null>): void {
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  const outDir = values.out ?? join(root, 'bench');
  const machine = `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Linux ${execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim()}, Node ${process.version}`;
  const command = `node dist/scripts/bench/controller-push.js --workloads ${W} --services ${S} --agents ${A} --changes ${changes}`;
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'push.json'), JSON.stringify({ date: new Date().toISOString().slice(0, 10), machine, command, agents: A, workloads: W, services: S, namespaces, ...figures }, null, 2) + '\n');
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ambit-bench-push-'));
  const children: ChildProcess[] = [];
  try {
    const store = new Store(join(dir, 'store'));
    let t = performance.now();
    store.commit(cluster());
    const storeMs = performance.now() - t;
    t = performance.now();
    const share = new ShareBuilder('istio-system');
    share.load(store.list(), store.currentRevision);
    const shareMs = performance.now() - t;
    const ca = await CertificateAuthority.open(join(dir, 'ca'), 'cluster.local');
    const serving = await ca.issueServing(['127.0.0.1'], []);
    const tokens = new Map(Array.from({ length: A }, (_, i) => [`node-${i}`, `token-${i}`]));
    const push = new PushServer({ share, tokens, tls: { key: serving.keyPem, cert: serving.certPem }, log: pino({ level: 'silent' }) });
    store.on('change', (e) => {
      share.apply(e);
      push.publish();
    });
    push.server.listen(0, '127.0.0.1');
    await once(push.server, 'listening');
    const url = `wss://127.0.0.1:${(push.server.address() as AddressInfo).port}`;

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
    const allAcked = async (count: number, revision: number, timeoutMs: number) => {
      const end = performance.now() + timeoutMs;
      while (performance.now() < end) {
        const acked = push.agents().filter((a) => a.connected && a.ackedVersion >= revision).length;
        if (acked >= count) return true;
        await new Promise((r) => setTimeout(r, 2));
      }
      return false;
    };

    // Baseline: one agent alone, running the agent's real code.
    const solo = await spawnWorker();
    t = performance.now();
    await startAgents(solo, [0], true);
    await allAcked(1, store.currentRevision, 30_000);
    const soloMs = performance.now() - t;
    solo.send({ type: 'stop' });
    await once(solo, 'exit');

    // All agents, split over two processes.
    const workers = [await spawnWorker(), await spawnWorker()];
    const cpu0 = process.cpuUsage();
    t = performance.now();
    await Promise.all(workers.map((w, k) => startAgents(w, Array.from({ length: A }, (_, i) => i).filter((i) => i % 2 === k))));
    const ok = await allAcked(A, store.currentRevision, 60_000);
    const allMs = performance.now() - t;
    const cpu = process.cpuUsage(cpu0);
    const controllerCpuMs = (cpu.user + cpu.system) / 1000;
    const memAfterConnect = process.memoryUsage();

    // Per-change latency: alternate a policy update (a few nodes) and a new pod (every node).
    const latencies: number[] = [];
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
      const e = store.commit([r]);
      await allAcked(A, e.revision, 10_000);
      latencies.push(performance.now() - c0);
    }
    latencies.sort((a, b) => a - b);
    const p = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
    const mem = process.memoryUsage();
    const full = share.fullPush('node-0');
    const fullBytes = full.common.length + full.own.reduce((n, s) => n + s.length, 0);

    const rows: [string, string, string][] = [
      ['cluster', `${W} workloads, ${S} services, ${namespaces} namespaces`, ''],
      ['store commit of the cluster', ms(storeMs), ''],
      ['share computation (all entries)', ms(shareMs), ''],
      ['full push size per agent', mb(fullBytes), `sent gzip-compressed: ${(full.commonGzip.length / 1024).toFixed(0)} KB`],
      ['baseline: 1 real agent connected and acknowledged', ms(soloMs), 'agent code: ControllerConnection + AgentState'],
      [`${A} simulated agents connected and acknowledged`, ok ? ms(allMs) : 'TIMEOUT', `goal 1000 ms: ${(allMs / 1000).toFixed(2)}x of goal; ${(allMs / soloMs).toFixed(1)}x the 1-agent time`],
      ['controller CPU time for those connects', ms(controllerCpuMs), `the rest is the ${A} simulated agents on the same 2 cores`],
      [`per-change push latency, all ${A} acked (p50)`, ms(p(0.5)), `${changes} changes`],
      [`per-change push latency, all ${A} acked (p99)`, ms(p(0.99)), ''],
      ['controller RSS after connect', mb(memAfterConnect.rss), `goal 300 MB: ${(memAfterConnect.rss / (300 * 1024 * 1024)).toFixed(2)}x of goal`],
      ['controller RSS at the end', mb(mem.rss), `heap used ${mb(mem.heapUsed)}`],
    ];
    process.stdout.write('\n| measure | value | note |\n| --- | --- | --- |\n');
    for (const r of rows) process.stdout.write(`| ${r.join(' | ')} |\n`);
    writePushJson({
      allAckedMs: ok ? allMs : null,
      soloMs,
      controllerConnectCpuMs: controllerCpuMs,
      changes,
      changeP50Ms: p(0.5),
      changeP99Ms: p(0.99),
      controllerRssAfterConnectMiB: memAfterConnect.rss / 2 ** 20,
      controllerRssEndMiB: mem.rss / 2 ** 20,
      fullPushBytes: fullBytes,
      fullPushGzipBytes: full.commonGzip.length,
    });
    for (const w of workers) w.send({ type: 'stop' });
    await Promise.all(workers.map((w) => once(w, 'exit')));
    push.close();
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
