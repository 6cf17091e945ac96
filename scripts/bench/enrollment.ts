// Benchmark: enrolling a namespace of 50 running pods, once per redirect mode (netfilter, then
// eBPF) in the same run. Brings up the local cluster (no samples), runs 50 pods spread over the
// nodes, labels their namespace, and reports how long each pod took to be captured once its agent
// knew of the change (p50/p99, goal 100 ms), and the wall time from the label to the last pod
// captured. Cleans up after itself like every test.
//
//   node dist/scripts/bench/enrollment.js [--pods N] [--modes iptables,ebpf]   (as root, no cluster up)

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { pods: { type: 'string' }, modes: { type: 'string' } } });
const modes = (values.modes ?? 'iptables,ebpf').split(',');
const N = Math.min(120, Number(values.pods ?? 50));
const root = resolve(fileURLToPath(import.meta.url), '..', '..', '..', '..');
const stateDir = mkdtempSync(join(tmpdir(), 'ambit-bench-enroll-'));

function ambit(args: string[]): Promise<string> {
  return new Promise((done, fail) =>
    execFile(join(root, 'bin', 'ambit'), args, { env: { ...process.env, AMBIT_STATE_DIR: stateDir }, maxBuffer: 64 * 1024 * 1024, timeout: 120_000 }, (err, stdout, stderr) =>
      err ? fail(new Error(`ambit ${args.join(' ')}: ${stderr || err.message}`)) : done(stdout),
    ),
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Result {
  mode: string;
  latencies: number[];
  wall: number;
}

async function measure(mode: string): Promise<Result> {
  try {
    await ambit(['up', '--no-samples', '--redirect', mode]);
    const file = join(stateDir, 'bench.yaml');
    writeFileSync(
      file,
      `apiVersion: v1
kind: Namespace
metadata: { name: bench }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: idle, namespace: bench }
spec:
  replicas: ${N}
  selector: { matchLabels: { app: idle } }
  template:
    metadata: { labels: { app: idle } }
    spec:
      containers: [{ name: c, command: [sleep, infinity] }]
`,
    );
    await ambit(['apply', '-f', file]);
    for (let i = 0; i < 600; i++) {
      const s = JSON.parse(await ambit(['status', '-o', 'json'])) as { pods: { phase: string }[] };
      if (s.pods.length === N && s.pods.every((p) => p.phase === 'Running')) break;
      await sleep(100);
    }
    const nodes = (JSON.parse(await ambit(['status', '-o', 'json'])) as { nodes: { name: string }[] }).nodes.map((n) => n.name);
    const t0 = performance.now();
    await ambit(['enroll', 'bench']);
    let latencies: number[] = [];
    let wall = 0;
    for (let i = 0; i < 600; i++) {
      latencies = [];
      for (const node of nodes) {
        const dump = JSON.parse(await ambit(['query', node, 'config_dump', '-o', 'json'])) as { capture: { captured: string[]; latencyMs: Record<string, number> } };
        for (const [pod, ms] of Object.entries(dump.capture.latencyMs ?? {})) if (pod.startsWith('bench/')) latencies.push(ms);
      }
      if (latencies.length >= N) {
        wall = performance.now() - t0;
        break;
      }
      await sleep(50);
    }
    latencies.sort((a, b) => a - b);
    return { mode, latencies, wall };
  } finally {
    await ambit(['down']).catch((err: Error) => process.stderr.write(`cleanup: ${err.message}\n`));
  }
}

async function main(): Promise<void> {
  const results: Result[] = [];
  try {
    for (const mode of modes) results.push(await measure(mode));
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
  const q = (r: Result, p: number) => r.latencies[Math.min(r.latencies.length - 1, Math.floor(p * r.latencies.length))] ?? NaN;
  process.stdout.write(`\n${N} pods over the local cluster's nodes; per pod: from the agent knowing of the label to the pod captured (goal 100 ms)\n\n`);
  process.stdout.write('| mode | pods captured | p50 | p99 | p99 vs goal | label to last pod captured (wall, with the CLI polling) |\n| --- | --- | --- | --- | --- | --- |\n');
  for (const r of results) {
    process.stdout.write(`| ${r.mode} | ${r.latencies.length} of ${N} | ${q(r, 0.5).toFixed(1)} ms | ${q(r, 0.99).toFixed(1)} ms | ${(q(r, 0.99) / 100).toFixed(2)}x | ${r.wall.toFixed(0)} ms |\n`);
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exitCode = 1;
});
