// `ambit estimate` and shared/estimate: the arithmetic tied to the committed benchmark results (read
// here from bench/*.json, not from the module under test), Istio's figures tied to their page, and
// the refusals a user sees for bad flags.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { estimate, loadFigures, parseInput, type Estimate, type EstimateInput } from '../../../shared/estimate/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const cli = join(root, 'dist', 'cli', 'ambit.js');
const mesh = JSON.parse(readFileSync(join(root, 'bench', 'mesh.json'), 'utf8')) as {
  rate: number;
  paths: { name: string; keepAlive: { rps: number; cpuPer1k: number }; rate: { p50: number; p99: number } }[];
  memory: Record<string, number>;
};
const push = JSON.parse(readFileSync(join(root, 'bench', 'push.json'), 'utf8')) as { workloads: number; services: number; agents: number; controllerRssAfterConnectMiB: number; changeP50Ms: number; changeP99Ms: number };
const ambitPath = mesh.paths.find((p) => p.name === 'ambit (iptables)')!;
const direct = mesh.paths.find((p) => p.name === 'direct')!;
const figures = loadFigures(root);

const base: EstimateInput = { nodes: 10, pods: 1000, services: 200, rps: 5000, waypoints: 0, l7Share: 0, connections: 1000 };
const run = (over: Partial<EstimateInput> = {}): Estimate => estimate({ ...base, ...over }, figures);
const close = (actual: number | null, expected: number, what: string) => assert.ok(actual !== null && Math.abs(actual - expected) <= 1e-9 * Math.max(1, Math.abs(expected)), `${what}: ${actual} != ${expected}`);

test('agent CPU for N req/s is N/1000 times the CPU per 1,000 requests recorded in bench/mesh.json', () => {
  assert.ok(ambitPath.keepAlive.cpuPer1k > 0, 'the recorded figure is a real measurement');
  for (const rps of [0, 1000, 5000, 123_456]) close(run({ rps }).ambit.agents.cores, (rps / 1000) * ambitPath.keepAlive.cpuPer1k, `cores at ${rps} req/s`);
  close(run({ nodes: 4 }).ambit.agents.perNode.cores, (5 * ambitPath.keepAlive.cpuPer1k) / 4, 'per node');
});

test('latency per hop is the ambit path minus the direct path at the recorded fixed rate', () => {
  const e = run();
  close(e.latency.ambit.p50Ms.value, ambitPath.rate.p50 - direct.rate.p50, 'p50');
  close(e.latency.ambit.p99Ms.value, ambitPath.rate.p99 - direct.rate.p99, 'p99');
  assert.is(e.latency.rate, mesh.rate);
  // The load does not change a measured latency: it was measured at one rate, and says so.
  assert.is(run({ rps: 50 }).latency.ambit.p99Ms.value, e.latency.ambit.p99Ms.value);
});

test('agent memory is a base per node, plus per enrolled pod, plus per open connection, from the recorded memory measures', () => {
  const m = mesh.memory;
  const baseMiB = (m['agent RSS, node-1 (client side), idle']! + m['agent RSS, node-2 (server side), idle']!) / 2;
  const perPodMiB = (m['agent RSS, node-1, 100 more enrolled pods']! - m['agent RSS, node-1 (client side), idle']!) / 100;
  // A side whose RSS fell while the connections opened counts as no cost (V8 collected meanwhile).
  const perConnKiB = Math.max(0, m['per idle connection, node-1 (KB)']!) + Math.max(0, m['per idle connection, node-2 (KB)']!);
  const e = run({ nodes: 7, pods: 300, connections: 4000 });
  close(e.ambit.agents.memoryGiB * 1024, 7 * baseMiB + 300 * perPodMiB + (4000 * perConnKiB) / 1024, 'agents MiB');
  // Each term scales alone: 1,000 more pods cost 1,000 x the per-pod figure, and nothing else moves.
  close((run({ pods: 2000 }).ambit.agents.memoryGiB - run({ pods: 1000 }).ambit.agents.memoryGiB) * 1024, 1000 * perPodMiB, 'per pod');
  close((run({ nodes: 11 }).ambit.agents.memoryGiB - run({ nodes: 10 }).ambit.agents.memoryGiB) * 1024, baseMiB, 'per node');
  close((run({ connections: 2024 }).ambit.agents.memoryGiB - run({ connections: 1000 }).ambit.agents.memoryGiB) * 1024, perConnKiB, 'per 1,024 connections');
});

test("the sidecar mesh is one Envoy per pod at Istio's published figure, two on every request", () => {
  const i = figures.istio;
  // Istio 1.24's page: 0.20 vCPU and 60 MB per sidecar, 0.06 vCPU and 12 MB per ztunnel, 0.25 vCPU and 60 MB per waypoint.
  assert.equal([i.sidecarVcpuPer1k.value, i.sidecarMemoryMB.value, i.ztunnelVcpuPer1k.value, i.ztunnelMemoryMB.value, i.waypointVcpuPer1k.value, i.waypointMemoryMB.value], [0.2, 60, 0.06, 12, 0.25, 60]);
  assert.match(figures.sources.find((s) => s.id === i.sidecarMemoryMB.source)!.where, /^https:\/\/istio\.io\/.*performance-and-scalability/);
  const e = run({ pods: 2500, rps: 8000 });
  close(e.sidecars.memoryGiB, (2500 * 60e6) / 2 ** 30, 'sidecar memory = pods x 60 MB');
  close(e.sidecars.cores, 2 * 8 * 0.2, 'two sidecars per request');
  close(e.istioAmbient.memoryGiB, (10 * 12e6) / 2 ** 30, 'one ztunnel per node');
});

test("waypoints cost Istio's waypoint figure for the L7 share of requests only, and say whose figure it is", () => {
  const none = run();
  assert.is(none.ambit.waypoints.cores, 0);
  const e = run({ waypoints: 3, l7Share: 0.4 });
  close(e.ambit.waypoints.cores, 5 * 0.4 * 0.25, 'cores');
  close(e.ambit.waypoints.memoryGiB, (3 * 60e6) / 2 ** 30, 'memory');
  assert.equal(e.ambit.waypoints.sources, ['istio-1.24']);
  assert.match(e.ambit.waypoints.note!, /Istio's waypoint figure/);
  close(e.ambit.total.cores, e.ambit.agents.cores! + e.ambit.waypoints.cores!, 'total cores');
  assert.is(e.latency.ambit.waypointHopMs.value, null, 'the waypoint hop is not measured, so no number is given');
});

test('the controller uses the recorded push figures up to their size and grows in proportion beyond it', () => {
  close(run({ pods: 10 }).ambit.controller.memoryGiB * 1024, push.controllerRssAfterConnectMiB, 'small cluster');
  close(run({ pods: push.workloads * 3 }).ambit.controller.memoryGiB * 1024, push.controllerRssAfterConnectMiB * 3, '3x the workloads');
  close(run({ services: push.services * 2 }).ambit.controller.memoryGiB * 1024, push.controllerRssAfterConnectMiB * 2, '2x the services');
  close(run({ nodes: push.agents * 4 }).ambit.controller.memoryGiB * 1024, push.controllerRssAfterConnectMiB, 'more agents are flagged, not scaled');
  assert.is(run().ambit.controller.cores, null, 'controller CPU is not measured, so not guessed');
  const e = run();
  assert.is(e.propagation.changeP50Ms.value, push.changeP50Ms);
  assert.is(e.propagation.changeP99Ms.value, push.changeP99Ms);
  assert.not.ok(e.propagation.beyondMeasured);
  assert.ok(run({ nodes: push.agents + 1 }).propagation.beyondMeasured);
});

test('the monthly cost is cores x price per core-month plus GiB x price per GiB-month, at stated defaults', () => {
  const e = run({ waypoints: 1, l7Share: 0.5 });
  close(e.monthlyUsd.coreMonth.value, 0.04048 * 730, 'default core-month');
  assert.equal(e.monthlyUsd.coreMonth.sources, ['aws-fargate']);
  close(e.monthlyUsd.ambit, e.ambit.total.cores! * e.input.priceCore + e.ambit.total.memoryGiB * e.input.priceGiB, 'ambit');
  const given = run({ priceCore: 10, priceGiB: 1 });
  close(given.monthlyUsd.sidecars, given.sidecars.cores! * 10 + given.sidecars.memoryGiB, 'given prices');
  assert.is(given.monthlyUsd.coreMonth.note, 'given');
});

test('every amount names a listed source, and what no source publishes is null, not a number', () => {
  const e = run({ waypoints: 2, l7Share: 0.3 });
  const ids = new Set(e.sources.map((s) => s.id));
  const walk = (v: unknown, at: string): void => {
    if (!v || typeof v !== 'object') return;
    const o = v as Record<string, unknown>;
    if (Array.isArray(o.sources) && at !== '') for (const id of o.sources as string[]) assert.ok(ids.has(id), `${at} names unknown source ${id}`);
    for (const [k, x] of Object.entries(o)) if (k !== 'sources') walk(x, `${at}.${k}`);
  };
  walk(e, '');
  for (const s of e.sources) assert.ok(s.where && s.when, `${s.id} says where and when`);
  assert.match(e.sources.find((s) => s.id === 'ambit-mesh')!.when, /^\d{4}-\d\d-\d\d, .*AMD EPYC/);
  assert.is(e.latency.sidecars.p90Ms.value, null);
  assert.match(e.latency.sidecars.p90Ms.note!, /charts only/);
});

test('recommendations follow the figure that is high, and only then', () => {
  const has = (e: Estimate, re: RegExp) => e.recommendations.some((r) => re.test(r));
  assert.ok(has(run({ waypoints: 2, l7Share: 0.8 }), /^Waypoints: .* only where L7 is needed/));
  assert.not.ok(has(run(), /^Waypoints/));
  assert.ok(has(run({ pods: 20_000, connections: 0 }), /^Agent memory is mostly per-pod state/));
  // Each request passes two agents; the warning starts at half the keep-alive rate one agent pair carried.
  const ceiling = ambitPath.keepAlive.rps;
  assert.ok(has(run({ nodes: 10, rps: (0.6 * ceiling * 10) / 2 }), /^Agent load/));
  assert.not.ok(has(run({ nodes: 10, rps: (0.4 * ceiling * 10) / 2 }), /^Agent load/));
  assert.ok(has(run({ nodes: 500 }), /measured with 100 agents/));
  assert.ok(has(run({ services: 5000 }), /1,000 services/));
});

test('input: each refusal names the flag, and defaults are the documented ones', () => {
  const flag = (f: string) => `--${f.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  const ok = { nodes: '3', pods: '10', services: '4', rps: '100' };
  const refused = (raw: Record<string, string>, re: RegExp) => assert.throws(() => parseInput(raw, flag as never), re);
  refused({ pods: '10', services: '4', rps: '100' }, /--nodes is required/);
  refused({ ...ok, pods: '-5' }, /--pods must not be negative, got -5/);
  refused({ ...ok, rps: 'lots' }, /--rps must be a number, got "lots"/);
  refused({ ...ok, rps: '12abc' }, /--rps must be a number/);
  refused({ ...ok, pods: '2.5' }, /--pods must be a whole number/);
  refused({ ...ok, nodes: '0' }, /--nodes must be at least 1/);
  refused({ ...ok, waypoints: '1', l7Share: '1.5' }, /--l7-share must be between 0 and 1, got 1.5/);
  refused({ ...ok, l7Share: '0.3' }, /--l7-share is 0.3, but no waypoint carries it: give --waypoints N/);
  const d = parseInput(ok);
  assert.equal(d, { nodes: 3, pods: 10, services: 4, rps: 100, waypoints: 0, l7Share: 0, connections: 10 });
  assert.is(parseInput({ ...ok, waypoints: '2' }).l7Share, 1, 'waypoints with no share carry all requests');
});

const ambit = (...args: string[]) => spawnSync(process.execPath, [cli, 'estimate', ...args], { encoding: 'utf8' });

test('the CLI refuses bad flags with a message naming the flag and exit 1', () => {
  const cases: [string[], RegExp][] = [
    [['--pods', '10', '--services', '4', '--rps', '100'], /error: EstimateInputInvalid: --nodes is required/],
    [['--nodes', '3', '--pods=-1', '--services', '4', '--rps', '100'], /--pods must not be negative/],
    [['--nodes', '3', '--pods', '10', '--services', 'x', '--rps', '100'], /--services must be a number, got "x"/],
    [['--nodes', '3', '--pods', '10', '--services', '4', '--rps', '100', '--waypoints', '1', '--l7-share', '2'], /--l7-share must be between 0 and 1/],
    [['--nodes', '3', '--pods', '10', '--services', '4', '--rps', '100', '-o', 'xml'], /-o xml: must be json, yaml or wide/],
  ];
  for (const [args, re] of cases) {
    const r = ambit(...args);
    assert.is(r.status, 1, `exit status for ${args.join(' ')}`);
    assert.match(r.stderr, re);
    assert.is(r.stdout, '');
  }
});

test('the CLI prints the same estimate as the module, as a table and as JSON', () => {
  const args = ['--nodes', '10', '--pods', '1000', '--services', '200', '--rps', '5000', '--waypoints', '1', '--l7-share', '0.2'];
  const json = ambit(...args, '-o', 'json');
  assert.is(json.status, 0, json.stderr);
  const fromCli = JSON.parse(json.stdout) as Estimate;
  assert.equal(fromCli, JSON.parse(JSON.stringify(run({ waypoints: 1, l7Share: 0.2 }))));
  const text = ambit(...args);
  assert.is(text.status, 0, text.stderr);
  assert.match(text.stdout, /^ambit estimate: 10 nodes, 1,000 pods, 200 services, 5,000 req\/s, 1 waypoints for 20% of requests/);
  assert.match(text.stdout, /Istio sidecars \(1,000\)\s+2\.00\s+55\.9 GiB/);
  assert.match(text.stdout, /\[1\] ambit mesh benchmark .*: bench\/mesh\.json \(/);
});

test('a missing benchmark result is refused naming the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ambit-estimate-'));
  try {
    assert.throws(() => loadFigures(dir), /bench\/mesh\.json: .*rerun the benchmark/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
