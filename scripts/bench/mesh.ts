// The mesh against direct traffic and established mutual-TLS proxies, side by side in one run, on
// the local cluster: a client pod on node-1, a server pod (nginx, iperf3) on node-2, and the paths
// between them alternated per measure: direct; ambit (HBONE) with netfilter capture; a haproxy
// pair, an nginx `stream` pair and a stunnel pair doing mutual TLS 1.3 with ECDSA P-256, one
// instance per node (haproxy and nginx with one thread or worker each); then, on a
// second cluster, ambit with eBPF capture (and direct again). Figures: wrk keep-alive requests/s
// and p50/p99, p50/p99 at a fixed moderate rate, new connections/s, iperf3 bulk throughput, the
// proxies' CPU per 1,000 requests and memory; then the agent's memory with idle connections and
// with 100 enrolled pods. Prints the tables with ratios and writes bench/mesh.{md,json,png}.
//
//   node dist/scripts/bench/mesh.js [--seconds 4] [--rate 1000] [--workers 1,2] [--profile]   (as root, no cluster up; ~4 min)
// --workers: the agents' event loops (--workers of `ambit agent`); a list runs ambit once per count,
// each on a cluster of its own (the agents' default when not given).
// --profile: both agents take a CPU profile during each measure of the ambit paths, and heap
// snapshots idle and with 1,000 idle connections; their summaries go to bench/mesh-profile.md (the
// sampling costs the measured figures a few percent, so read ratios from a run without it).

import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { HeapSummary, ProfileSummary } from '../../shared/telemetry/profile.js';
import { certificates as makeCertificates, cpuSeconds, createBench, deploy, f1, machine as describeMachine, node1, node2, parseWrk, rateClient, root, rssMb, sleep, withChildren, type WrkResult } from './lib.js';

const { values } = parseArgs({ options: { seconds: { type: 'string' }, rate: { type: 'string' }, out: { type: 'string' }, workers: { type: 'string' }, profile: { type: 'boolean' } } });
const workerCounts = values.workers === undefined ? [undefined] : values.workers.split(',').map((w) => {
  if (!/^\d+$/.test(w) || Number(w) < 1) throw new Error(`--workers ${values.workers}: a comma-separated list of whole numbers from 1`);
  return Number(w);
});
const secs = Math.min(30, Number(values.seconds ?? 4));
const rate = Math.min(5000, Number(values.rate ?? 1000));
const outDir = values.out ?? join(root, 'bench');
const bench = createBench('ambit-bench-mesh-', secs);
const { stateDir, work, run, ambit, inPod, agentPid, startInNode, peers } = bench;
const certificates = () => makeCertificates(bench);

// ---- the peer proxies ----

function haproxyConfig(side: 'a' | 'b', server: string): string {
  const global = `global\n  nbthread 1\n  maxconn 8000\n  ssl-default-bind-options ssl-min-ver TLSv1.3\n  ssl-default-server-options ssl-min-ver TLSv1.3\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n`;
  const tls = (crt: string) => `ssl crt ${join(work, crt)} ca-file ${join(work, 'ca.pem')} verify required`;
  if (side === 'a')
    return `${global}frontend http\n  bind ${node1}:18080\n  default_backend http\nbackend http\n  server b ${node2}:18443 ${tls('a.pem')}\nfrontend bulk\n  bind ${node1}:15201\n  default_backend bulk\nbackend bulk\n  server b ${node2}:15443 ${tls('a.pem')}\n`;
  return `${global}frontend http\n  bind ${node2}:18443 ${tls('b.pem')}\n  default_backend http\nbackend http\n  server s ${server}:8080\nfrontend bulk\n  bind ${node2}:15443 ${tls('b.pem')}\n  default_backend bulk\nbackend bulk\n  server s ${server}:5201\n`;
}

function nginxPeerConfig(side: 'a' | 'b', server: string): string {
  const top = `load_module /usr/lib/nginx/modules/ngx_stream_module.so;\nworker_processes 1;\ndaemon off;\npid ${join(work, `nginx-${side}.pid`)};\nerror_log ${join(work, `nginx-${side}.log`)} warn;\nevents { worker_connections 8192; }\n`;
  // nginx checks the upstream's name, not its address: the certificates carry DNS:bench-peer for it.
  const client = (listen: number, upstream: number) =>
    `  server { listen ${node1}:${listen}; proxy_pass ${node2}:${upstream}; proxy_ssl on; proxy_ssl_protocols TLSv1.3; proxy_ssl_certificate ${join(work, 'a.crt')}; proxy_ssl_certificate_key ${join(work, 'a.key')}; proxy_ssl_trusted_certificate ${join(work, 'ca.pem')}; proxy_ssl_verify on; proxy_ssl_name bench-peer; proxy_ssl_session_reuse on; }\n`;
  const serverSide = (listen: number, upstream: string) =>
    `  server { listen ${node2}:${listen} ssl; ssl_protocols TLSv1.3; ssl_certificate ${join(work, 'b.crt')}; ssl_certificate_key ${join(work, 'b.key')}; ssl_client_certificate ${join(work, 'ca.pem')}; ssl_verify_client on; proxy_pass ${upstream}; }\n`;
  if (side === 'a') return `${top}stream {\n${client(28080, 28443)}${client(35201, 35443)}}\n`;
  return `${top}stream {\n${serverSide(28443, `${server}:8080`)}${serverSide(35443, `${server}:5201`)}}\n`;
}

function stunnelConfig(side: 'a' | 'b', server: string): string {
  // Options before the first section are every service's (the fd limit here is 20,000).
  const common = `foreground = yes\npid =\ncert = ${join(work, `${side}.crt`)}\nkey = ${join(work, `${side}.key`)}\nCAfile = ${join(work, 'ca.pem')}\nverifyChain = yes\nsslVersionMin = TLSv1.3\n`;
  if (side === 'a') return `${common}[http]\nclient = yes\naccept = ${node1}:19080\nconnect = ${node2}:19443\n[bulk]\nclient = yes\naccept = ${node1}:25201\nconnect = ${node2}:25443\n`;
  return `${common}requireCert = yes\n[http]\naccept = ${node2}:19443\nconnect = ${server}:8080\n[bulk]\naccept = ${node2}:25443\nconnect = ${server}:5201\n`;
}

// ---- measures ----

interface Figures {
  keepAlive?: { rps: number; p50: number; p99: number; cpuPer1k: number };
  rate?: { p50: number; p99: number; ok: number; errors: number };
  newConnections?: { cps: number; errors: number };
  bulkGbps?: number;
  rssMb?: number;
}

interface Path {
  name: string;
  ns: string;
  client: string;
  url: string;
  bulk: { host: string; port: number };
  pids: () => number[];
  figures: Figures;
}

async function wrk(p: Path, extra: string[]): Promise<WrkResult> {
  return parseWrk(await inPod(p.ns, p.client, ['wrk', '-t1', '-c32', `-d${secs}s`, '--latency', ...extra, p.url]));
}

const measures: Record<string, (p: Path) => Promise<void>> = {
  async keepAlive(p) {
    const pids = p.pids();
    const cpu0 = cpuSeconds(pids);
    const r = await wrk(p, []);
    const cpu = cpuSeconds(pids) - cpu0;
    p.figures.keepAlive = { rps: r.rps, p50: r.p50, p99: r.p99, cpuPer1k: pids.length ? (cpu / r.requests) * 1000 : 0 };
    p.figures.rssMb = pids.length ? rssMb(pids) : 0;
  },
  async rate(p) {
    const out = await inPod(p.ns, p.client, [process.execPath, rateClient, p.url, String(rate), String(secs), '16']);
    const r = JSON.parse(out.trim().split('\n').pop()!) as { p50: number; p99: number; ok: number; errors: number };
    p.figures.rate = r;
  },
  async newConnections(p) {
    const r = await wrk(p, ['-H', 'Connection: close']);
    p.figures.newConnections = { cps: r.rps, errors: r.errors };
  },
  async bulk(p) {
    const out = await inPod(p.ns, p.client, ['iperf3', '-c', p.bulk.host, '-p', String(p.bulk.port), '-t', String(secs), '-J']);
    const j = JSON.parse(out) as { end?: { sum_received?: { bits_per_second: number } } };
    p.figures.bulkGbps = (j.end?.sum_received?.bits_per_second ?? NaN) / 1e9;
  },
};

// ---- where the agents' time and memory go (--profile) ----

/** Per ambit path and measure, each agent's summary per event loop (`ambit query NODE profile`). */
const profiles: { path: string; measure: string; node: string; threads: (ProfileSummary & { thread: number })[] }[] = [];
/** Heap summaries per node and thread, idle and holding 1,000 idle connections. */
const heaps: { node: string; when: string; threads: (HeapSummary & { thread: number })[] }[] = [];

/**
 * Runs `measure` while both agents sample their stacks: the load starts once both profiles have
 * begun, and the window is longer than the load by the time a pod's client takes to start.
 */
async function profiled(p: Path, name: string, measure: (p: Path) => Promise<void>): Promise<void> {
  const started: Promise<void>[] = [];
  const taking = ['node-1', 'node-2'].map((node) => {
    const child = spawn(join(root, 'bin', 'ambit'), ['query', node, 'profile', '--seconds', String(secs + 2), '-o', 'json'], { env: { ...process.env, AMBIT_STATE_DIR: stateDir }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    started.push(new Promise((resolve) => child.stderr.on('data', (d: Buffer) => ((err += d.toString()), err.includes('profiling') && resolve()))));
    return new Promise<void>((resolve, reject) =>
      child.on('exit', (code) => {
        if (code !== 0) return reject(new Error(`profile of ${node}: ${err.trim()}`));
        profiles.push({ path: p.name, measure: name, node, threads: JSON.parse(out) as (ProfileSummary & { thread: number })[] });
        resolve();
      }),
    );
  });
  await Promise.race([Promise.all(started), Promise.all(taking)]);
  await measure(p);
  await Promise.all(taking);
}

async function heapOf(node: string, when: string): Promise<void> {
  heaps.push({ node, when, threads: JSON.parse(await ambit(['query', node, 'heap', '-o', 'json'], 180_000)) as (HeapSummary & { thread: number })[] });
}

function profileReport(): string {
  const pct = (x: number) => `${(x * 100).toFixed(0)}%`;
  let out = '## Where the agents\' time goes (CPU profiles during each measure)\n\nShares of each event loop\'s busy time; busy is the share of the window it was not idle (the window opens about 2 s before the load starts).\n\n';
  out += '| path | measure | agent | thread | busy | top areas | top functions |\n| --- | --- | --- | --- | --- | --- | --- |\n';
  for (const r of profiles) {
    for (const t of r.threads) {
      const areas = t.areas.slice(0, 4).map((a) => `${a.area} ${pct(a.share)}`).join('; ');
      const fns = t.functions.slice(0, 5).map((f) => `${f.name}${f.where ? ` (${f.where})` : ''} ${pct(f.share)}`).join('; ');
      out += `| ${r.path} | ${r.measure} | ${r.node} | ${t.thread} | ${pct(t.busyShare)} | ${areas} | ${fns} |\n`;
    }
  }
  if (!heaps.length) return out;
  out += '\n## What the agents\' heaps hold (heap snapshots, objects\' own sizes)\n\n| agent | when | thread | MB of objects | largest groups (KB) |\n| --- | --- | --- | --- | --- |\n';
  for (const h of heaps) for (const t of h.threads) out += `| ${h.node} | ${h.when} | ${t.thread} | ${(t.totalBytes / 1048576).toFixed(1)} | ${t.groups.slice(0, 8).map((g) => `${g.name} ${(g.bytes / 1024).toFixed(0)}`).join('; ')} |\n`;
  const total = (node: string, when: string) => heaps.find((h) => h.node === node && h.when === when)?.threads.reduce((a, t) => a + t.totalBytes, 0);
  for (const node of ['node-1', 'node-2']) {
    const idle = total(node, 'idle');
    const held = total(node, '1000 idle connections');
    if (idle !== undefined && held !== undefined) out += `\nHeap per idle connection, ${node}: ${((held - idle) / 1000 / 1024).toFixed(1)} KB (objects' own sizes, every thread, 1,000 connections held against idle).\n`;
  }
  return out;
}

// ---- the cluster ----

function nginxConfig(): string {
  const dir = join(work, 'nginx');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'nginx.conf');
  writeFileSync(
    file,
    `worker_processes 1;\nuser root;\npid ${dir}/nginx.pid;\nerror_log stderr;\nevents { worker_connections 20000; }\nhttp {\n  access_log off;\n  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;\n  keepalive_requests 1000000;\n  server { listen 8080 reuseport; location / { return 200 "ok\\n"; } }\n}\n`,
  );
  return file;
}

async function cluster(mode: 'iptables' | 'ebpf'): Promise<{ plainServer: string; meshServer: string }> {
  await ambit(['up', '--no-samples', '--redirect', mode]);
  const conf = nginxConfig();
  const server = `        - { name: nginx, command: [nginx, -c, ${conf}, -g, "daemon off;"] }\n        - { name: iperf, command: [iperf3, -s, -p, "5201"] }`;
  const client = `        - { name: c, command: [sleep, infinity] }`;
  const file = join(work, `bench-${mode}.yaml`);
  writeFileSync(
    file,
    `apiVersion: v1\nkind: Namespace\nmetadata: { name: bench-plain }\n---\napiVersion: v1\nkind: Namespace\nmetadata: { name: bench-mesh, labels: { ambit.dev/dataplane-mode: ambient } }\n---\n` +
      deploy('client', 'bench-plain', 'node-1', client) +
      deploy('server', 'bench-plain', 'node-2', server) +
      deploy('client', 'bench-mesh', 'node-1', client) +
      deploy('server', 'bench-mesh', 'node-2', server),
  );
  await ambit(['apply', '-f', file]);
  let pods: { namespace: string; labels: Record<string, string>; ip: string; phase: string; capture?: string }[] = [];
  for (let i = 0; i < 300; i++) {
    pods = (JSON.parse(await ambit(['status', '-o', 'json'])) as { pods: typeof pods }).pods;
    if (pods.length === 4 && pods.every((p) => p.phase === 'Running' && (p.namespace === 'bench-plain' || p.capture === 'captured'))) break;
    await sleep(100);
  }
  const ip = (ns: string) => pods.find((p) => p.namespace === ns && p.labels.app === 'server')!.ip;
  await sleep(1000); // nginx and iperf3 listening
  return { plainServer: ip('bench-plain'), meshServer: ip('bench-mesh') };
}

async function memoryScale(meshServer: string, label: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const agents = () => ({ 'node-1': rssMb([agentPid('node-1')]), 'node-2': rssMb([agentPid('node-2')]) });
  await sleep(1500);
  const idle0 = agents();
  out['agent RSS, node-1 (client side), idle'] = idle0['node-1'];
  out['agent RSS, node-2 (server side), idle'] = idle0['node-2'];
  for (const n of [100, 1000]) {
    // Connections opened through the mesh and held, idle.
    const holder = `const net=require('net');let open=0;const all=[];for(let i=0;i<${n};i++){const s=net.connect(8080,'${meshServer}',()=>{if(++open===${n})console.log('open')});s.on('error',e=>{console.error(e.code);process.exit(1)});all.push(s)}setTimeout(()=>process.exit(0),${secs * 1000 + 6000})`;
    const done = inPod('bench-mesh', 'client', [process.execPath, '-e', holder]);
    for (let i = 0; i < 100; i++) {
      const m = agents();
      await sleep(200);
      if (i > 10 && Math.abs(agents()['node-1'] - m['node-1']) < 0.5) break;
    }
    const m = agents();
    out[`agent RSS, node-1, ${n} idle connections`] = m['node-1'];
    out[`agent RSS, node-2, ${n} idle connections`] = m['node-2'];
    // A snapshot grows the agent's RSS for a while: taken after the RSS figures, idle's after the run.
    if (values.profile && n === 1000) for (const node of ['node-1', 'node-2']) await heapOf(node, '1000 idle connections');
    await done.catch(() => undefined);
  }
  out['per idle connection, node-1 (KB)'] = ((out['agent RSS, node-1, 1000 idle connections']! - idle0['node-1']) * 1024) / 1000;
  out['per idle connection, node-2 (KB)'] = ((out['agent RSS, node-2, 1000 idle connections']! - idle0['node-2']) * 1024) / 1000;
  // 100 enrolled pods on node-1.
  const file = join(work, 'pods.yaml');
  writeFileSync(file, deploy('idle', 'bench-mesh', 'node-1', '        - { name: c, command: [sleep, infinity] }').replace('spec:\n  selector', 'spec:\n  replicas: 100\n  selector'));
  await ambit(['apply', '-f', file]);
  for (let i = 0; i < 600; i++) {
    const pods = (JSON.parse(await ambit(['status', '-o', 'json'])) as { pods: { labels: Record<string, string>; capture?: string }[] }).pods.filter((p) => p.labels.app === 'idle');
    if (pods.length === 100 && pods.every((p) => p.capture === 'captured')) break;
    await sleep(200);
  }
  await sleep(2000);
  out['agent RSS, node-1, 100 more enrolled pods'] = rssMb([agentPid('node-1')]);
  if (values.profile) {
    await ambit(['delete', '-f', file]);
    for (let i = 0; i < 300; i++) {
      const pods = (JSON.parse(await ambit(['status', '-o', 'json'])) as { pods: { labels: Record<string, string> }[] }).pods;
      if (!pods.some((p) => p.labels.app === 'idle')) break;
      await sleep(200);
    }
    await sleep(3000);
    for (const node of ['node-1', 'node-2']) await heapOf(node, 'idle');
  }
  // Each worker count's run measured apart: its figures say which.
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [`${k}${label}`, v]));
}

// ---- report ----

const peerNames = ['haproxy', 'nginx', 'stunnel'];

function report(paths: Path[], memory: Record<string, number>): string {
  const direct = paths.find((p) => p.name === 'direct')!;
  const peersOnly = paths.filter((p) => peerNames.includes(p.name));
  const best = (pick: (f: Figures) => number | undefined, higher: boolean) =>
    peersOnly.reduce<Path | undefined>((b, p) => {
      const v = pick(p.figures);
      if (v === undefined || Number.isNaN(v)) return b;
      return !b || (higher ? v > pick(b.figures)! : v < pick(b.figures)!) ? p : b;
    }, undefined);
  const rows: string[] = [];
  const line = (cells: string[]) => rows.push(`| ${cells.join(' | ')} |`);
  const ratio = (v: number | undefined, base: number | undefined) => (v === undefined || !base ? '-' : `${(v / base).toFixed(2)}x`);
  type Col = [string, (f: Figures) => number | undefined, number, boolean];
  const cols: Col[] = [
    ['keep-alive req/s', (f) => f.keepAlive?.rps, 0, true],
    ['keep-alive p50 ms', (f) => f.keepAlive?.p50, 2, false],
    ['keep-alive p99 ms', (f) => f.keepAlive?.p99, 2, false],
    [`p50 ms at ${rate}/s`, (f) => f.rate?.p50, 2, false],
    [`p99 ms at ${rate}/s`, (f) => f.rate?.p99, 2, false],
    ['new conn/s', (f) => f.newConnections?.cps, 0, true],
    ['bulk Gbit/s', (f) => f.bulkGbps, 2, true],
    ['proxy CPU s / 1k req', (f) => f.keepAlive?.cpuPer1k, 3, false],
    ['proxy RSS MB', (f) => f.rssMb, 0, false],
  ];
  line(['path', ...cols.map((c) => c[0])]);
  line(['---', ...cols.map(() => '---')]);
  for (const p of paths) line([p.name, ...cols.map((c) => f1(c[1](p.figures), c[2]))]);
  rows.push('');
  rows.push('Ratios (the mesh against direct, and against the best of haproxy, nginx and stunnel for each figure):');
  rows.push('');
  line(['path', 'figure', 'vs direct', 'best peer', 'vs best peer']);
  line(['---', '---', '---', '---', '---']);
  for (const p of paths.filter((x) => x.name.startsWith('ambit'))) {
    for (const c of cols) {
      const b = best(c[1], c[3]);
      line([p.name, c[0], ratio(c[1](p.figures), c[1](direct.figures)), b ? `${b.name} ${f1(c[1](b.figures), c[2])}` : '-', ratio(c[1](p.figures), b ? c[1](b.figures) : undefined)]);
    }
  }
  rows.push('');
  rows.push('Memory of the agents:');
  rows.push('');
  line(['measure', 'MB (or KB)']);
  line(['---', '---']);
  for (const [k, v] of Object.entries(memory)) line([k, f1(v)]);
  return rows.join('\n') + '\n';
}

async function chart(paths: Path[]): Promise<void> {
  const data = join(work, 'chart.dat');
  writeFileSync(data, paths.map((p) => `"${p.name}" ${p.figures.keepAlive?.rps ?? 0} ${p.figures.newConnections?.cps ?? 0} ${(p.figures.bulkGbps ?? 0).toFixed(3)}`).join('\n') + '\n');
  const png = join(outDir, 'mesh.png');
  const plot = (col: number, title: string) => `set title "${title}"\nplot "${data}" using ${col}:xtic(1) notitle with boxes lc rgb "#3b7dd8"\n`;
  writeFileSync(
    join(work, 'chart.gp'),
    `set terminal png size 1200,420 font ",10"\nset output "${png}"\nset style fill solid 0.8\nset boxwidth 0.6\nset yrange [0:*]\nset xtics rotate by -20\nset grid ytics\nset multiplot layout 1,3 title "ambit against direct and established mTLS proxies (same machine, same run)"\n${plot(2, 'keep-alive requests/s')}${plot(3, 'new connections/s')}${plot(4, 'bulk Gbit/s')}unset multiplot\n`,
  );
  await run('gnuplot', [join(work, 'chart.gp')]);
}

async function main(): Promise<void> {
  const started = performance.now();
  mkdirSync(outDir, { recursive: true });
  await certificates();
  const paths: Path[] = [];
  let memory: Record<string, number> = {};
  try {
    const runs = (['iptables', 'ebpf'] as const).flatMap((mode) => workerCounts.map((workers) => ({ mode, workers })));
    for (const [i, { mode, workers }] of runs.entries()) {
      if (workers === undefined) delete process.env.AMBIT_AGENT_WORKERS;
      else process.env.AMBIT_AGENT_WORKERS = String(workers);
      const c = await cluster(mode);
      const agents = () => [agentPid('node-1'), agentPid('node-2')];
      const label = workers === undefined ? '' : `, ${workers} worker${workers === 1 ? '' : 's'}`;
      const here: Path[] = [
        { name: i === 0 ? 'direct' : `direct (cluster ${i + 1})`, ns: 'bench-plain', client: 'client', url: `http://${c.plainServer}:8080/`, bulk: { host: c.plainServer, port: 5201 }, pids: () => [], figures: {} },
        { name: `ambit (${mode}${label})`, ns: 'bench-mesh', client: 'client', url: `http://${c.meshServer}:8080/`, bulk: { host: c.meshServer, port: 5201 }, pids: agents, figures: {} },
      ];
      if (i === 0) {
        const hA = join(work, 'haproxy-a.cfg');
        const hB = join(work, 'haproxy-b.cfg');
        const nA = join(work, 'nginx-a.conf');
        const nB = join(work, 'nginx-b.conf');
        writeFileSync(nA, nginxPeerConfig('a', c.plainServer));
        writeFileSync(nB, nginxPeerConfig('b', c.plainServer));
        const sA = join(work, 'stunnel-a.conf');
        const sB = join(work, 'stunnel-b.conf');
        writeFileSync(hA, haproxyConfig('a', c.plainServer));
        writeFileSync(hB, haproxyConfig('b', c.plainServer));
        writeFileSync(sA, stunnelConfig('a', c.plainServer));
        writeFileSync(sB, stunnelConfig('b', c.plainServer));
        const haproxy = [startInNode('node-1', ['haproxy', '-db', '-f', hA]), startInNode('node-2', ['haproxy', '-db', '-f', hB])];
        const stunnel = [startInNode('node-1', ['stunnel4', sA]), startInNode('node-2', ['stunnel4', sB])];
        // The master forks one worker, which does the work: both count (the master is idle).
        const nginx = [startInNode('node-1', ['nginx', '-c', nA, '-e', join(work, 'nginx-a.log')]), startInNode('node-2', ['nginx', '-c', nB, '-e', join(work, 'nginx-b.log')])];
        await sleep(1000);
        here.push({ name: 'haproxy', ns: 'bench-plain', client: 'client', url: `http://${node1}:18080/`, bulk: { host: node1, port: 15201 }, pids: () => haproxy, figures: {} });
        here.push({ name: 'nginx', ns: 'bench-plain', client: 'client', url: `http://${node1}:28080/`, bulk: { host: node1, port: 35201 }, pids: () => withChildren(nginx), figures: {} });
        here.push({ name: 'stunnel', ns: 'bench-plain', client: 'client', url: `http://${node1}:19080/`, bulk: { host: node1, port: 25201 }, pids: () => stunnel, figures: {} });
      }
      // Alternate: each measure over every path in turn, so drift hits all of them alike.
      for (const [name, measure] of Object.entries(measures)) {
        for (const p of here) {
          process.stderr.write(`bench: ${name} over ${p.name}\n`);
          await (values.profile && p.name.startsWith('ambit') ? profiled(p, name, measure) : measure(p)).catch((err: Error) => process.stderr.write(`bench: ${name} over ${p.name} failed: ${err.message}\n`));
        }
      }
      if (mode === 'iptables') {
        for (const child of peers.splice(0)) child.kill('SIGTERM');
        process.stderr.write('bench: memory scale\n');
        memory = { ...memory, ...(await memoryScale(c.meshServer, label)) };
      }
      paths.push(...here);
      await ambit(['down']);
    }
  } finally {
    for (const child of peers) child.kill('SIGKILL');
    await ambit(['down']).catch(() => undefined);
  }
  const table = report(paths, memory);
  const machine = await describeMachine(bench);
  const header = `Command: \`node dist/scripts/bench/mesh.js --seconds ${secs} --rate ${rate}${values.workers ? ` --workers ${values.workers}` : ''}${values.profile ? ' --profile' : ''}\` (${new Date().toISOString().slice(0, 10)}, ${((performance.now() - started) / 1000).toFixed(0)} s)\nMachine: ${machine}\n\n`;
  process.stdout.write(`\n${header}${table}`);
  writeFileSync(join(outDir, 'mesh.md'), header + table);
  if (values.profile) {
    const text = profileReport();
    process.stdout.write(`\n${text}`);
    writeFileSync(join(outDir, 'mesh-profile.md'), header + text);
  }
  writeFileSync(join(outDir, 'mesh.json'), JSON.stringify({ date: new Date().toISOString().slice(0, 10), secs, rate, machine, paths: paths.map((p) => ({ name: p.name, ...p.figures })), memory }, null, 2));
  await chart(paths).catch((err: Error) => process.stderr.write(`bench: chart: ${err.message}\n`));
}

main()
  .catch((err) => {
    process.stderr.write(`${(err as Error).stack}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });
