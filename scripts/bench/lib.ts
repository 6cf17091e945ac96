// What the benchmarks on the local cluster share (mesh.ts, waypoint.ts): running `ambit` and
// commands in pods against one state directory, starting peer proxies inside a node's network
// namespace, the CPU and memory of a set of processes from /proc, mutual-TLS certificates for the
// peers, wrk's output parsed, and the table cells. Each benchmark keeps its own paths and report.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root (this file runs from dist/scripts/bench/). */
export const root = resolve(fileURLToPath(import.meta.url), '..', '..', '..', '..');
export const node1 = '10.250.0.1';
export const node2 = '10.250.0.2';
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Bench {
  /** The cluster's state directory (AMBIT_STATE_DIR of every `ambit` call). */
  stateDir: string;
  /** Scratch files: certificates, peer configurations. */
  work: string;
  run(file: string, args: string[], timeoutMs?: number): Promise<string>;
  ambit(args: string[], timeoutMs?: number): Promise<string>;
  sh(cmd: string): Promise<string>;
  /** A command inside a pod (its cgroup and namespace: the eBPF capture goes by cgroup). */
  inPod(ns: string, deploy: string, argv: string[], timeoutMs?: number): Promise<string>;
  agentPid(node: string): number;
  /** A peer proxy in a node's network namespace; `peers` holds it until the caller kills it. */
  startInNode(node: string, argv: string[]): number;
  peers: ChildProcess[];
}

/** A fresh state and scratch directory; `secs` bounds a pod command (the measure plus 30 s). */
export function createBench(stateDirPrefix: string, secs: number): Bench {
  const stateDir = mkdtempSync(join(tmpdir(), stateDirPrefix));
  const work = mkdtempSync(join(tmpdir(), 'ambit-bench-work-'));
  const env = { ...process.env, AMBIT_STATE_DIR: stateDir };
  const run = (file: string, args: string[], timeoutMs = 120_000): Promise<string> =>
    new Promise((done, fail) =>
      execFile(file, args, { env, maxBuffer: 64 * 1024 * 1024, timeout: timeoutMs }, (err, stdout, stderr) => (err ? fail(new Error(`${file} ${args.slice(0, 6).join(' ')}: ${stderr || err.message}`)) : done(stdout))),
    );
  const ambit = (args: string[], timeoutMs?: number) => run(join(root, 'bin', 'ambit'), args, timeoutMs);
  const peers: ChildProcess[] = [];
  return {
    stateDir,
    work,
    run,
    ambit,
    sh: (cmd) => run('/bin/sh', ['-c', cmd]),
    inPod: (ns, deploy, argv, timeoutMs = (secs + 30) * 1000) => ambit(['exec', '-n', ns, `deploy/${deploy}`, '--', ...argv], timeoutMs),
    agentPid: (node) => Number(readFileSync(join(stateDir, 'agents', node, 'pid'), 'utf8')),
    startInNode(node, argv) {
      const child = spawn('nsenter', [`--net=/run/netns/ambit-node-${node}`, '--', ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
      child.stderr?.resume();
      peers.push(child);
      return child.pid!;
    },
    peers,
  };
}

// ---- processes whose CPU and memory count: the proxies of a path ----

export function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11]) + Number(fields[12]); // utime, stime
  }
  return ticks / 100;
}

export function rssMb(pids: number[]): number {
  let kb = 0;
  for (const pid of pids) kb += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  return kb / 1024;
}

/** The processes and their children (nginx's workers). */
export function withChildren(pids: number[]): number[] {
  const out: number[] = [];
  for (const pid of pids) {
    out.push(pid);
    try {
      for (const child of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) out.push(...withChildren([Number(child)]));
    } catch {
      // Gone.
    }
  }
  return out;
}

// ---- the peer proxies' certificates ----

/** A CA and two ECDSA P-256 leaves, a (node-1's side) and b (node-2's), in `work`: {a,b}.{crt,key,pem}, ca.pem. */
export async function certificates(b: Bench): Promise<void> {
  const { work, sh } = b;
  const ext = join(work, 'ext.cnf');
  writeFileSync(ext, 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:10.250.0.1,IP:10.250.0.2,DNS:bench-peer\n');
  await sh(`cd ${work} && openssl ecparam -name prime256v1 -genkey -noout -out ca.key && openssl req -x509 -new -key ca.key -subj /CN=bench-ca -days 2 -out ca.pem 2>/dev/null`);
  for (const n of ['a', 'b']) {
    await sh(`cd ${work} && openssl ecparam -name prime256v1 -genkey -noout -out ${n}.key && openssl req -new -key ${n}.key -subj /CN=${n} -out ${n}.csr 2>/dev/null && openssl x509 -req -in ${n}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out ${n}.crt 2>/dev/null && cat ${n}.crt ${n}.key > ${n}.pem`);
  }
}

// ---- wrk ----

export interface WrkResult {
  rps: number;
  requests: number;
  p50: number;
  p99: number;
  /** Socket errors (connect, read, write, timeout) and non-2xx/3xx answers together. */
  errors: number;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
  non2xx: number;
}

/** A wrk latency ("1.15ms", "820.00us", "1.02s") in milliseconds. */
export function ms(text: string): number {
  const m = /([\d.]+)(us|ms|s)/.exec(text);
  if (!m) return NaN;
  return Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1);
}

export function parseWrk(out: string): WrkResult {
  const s = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)?.slice(1).map(Number) ?? [0, 0, 0, 0];
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN),
    requests: Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN),
    // The distribution's lines, not the "+/- Stdev" percentages of the summary above them.
    p50: ms(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? ''),
    p99: ms(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? ''),
    errors: s.reduce((a, b) => a + b, 0) + non2xx,
    socketErrors: { connect: s[0]!, read: s[1]!, write: s[2]!, timeout: s[3]! },
    non2xx,
  };
}

/** The fixed-rate client (rate-client.ts), as a pod runs it. */
export const rateClient = join(root, 'dist', 'scripts', 'bench', 'rate-client.js');

// ---- the cluster's resources ----

export const deploy = (name: string, ns: string, node: string, containers: string) => `apiVersion: apps/v1
kind: Deployment
metadata: { name: ${name}, namespace: ${ns} }
spec:
  selector: { matchLabels: { app: ${name} } }
  template:
    metadata: { labels: { app: ${name} } }
    spec:
      nodeName: ${node}
      containers:
${containers}
---
`;

// ---- report ----

export const f1 = (n: number | null | undefined, d = 1) => (typeof n !== 'number' || Number.isNaN(n) ? '-' : n.toFixed(d));

export async function machine(b: Bench): Promise<string> {
  return `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Linux ${(await b.sh('uname -r')).trim()}, Node ${process.version}`;
}
