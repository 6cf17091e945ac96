// The figures `ambit estimate` multiplies: ambit's own, read from the committed benchmark results
// (bench/mesh.json, bench/push.json), and Istio's published ones, kept here with page and version.
// The arithmetic lives in model.ts; nothing here knows the size of anyone's cluster.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AmbitError, errorMessage } from '../errors.js';

/** Where a figure comes from: a file with its run's date and machine, or a page with its version. */
export interface Source {
  /** Stable key, e.g. `ambit-mesh`, `istio-1.24`. */
  id: string;
  title: string;
  /** A path in this repository, or a URL. */
  where: string;
  /** The run's date and machine, or the release and the date the page was read. */
  when: string;
}

/** One number with its source; `value` is null when the source publishes no such number. */
export interface Figure {
  value: number | null;
  unit: string;
  source: string;
  note?: string;
}

export interface AmbitFigures {
  /** The benchmark path read (the default capture, netfilter). */
  path: string;
  /** Latency one pod-to-pod request gains through both agents at the benchmark's fixed rate. */
  addedP50Ms: Figure;
  addedP99Ms: Figure;
  /** The fixed rate those latencies were measured at, requests/s. */
  latencyRate: number;
  /** CPU seconds of both agents (client side and server side) per 1,000 requests. */
  cpuSecondsPer1k: Figure;
  /** Requests/s one agent pair carried under full keep-alive load, the ceiling seen on that machine. */
  keepAliveRps: Figure;
  /** An agent's resident memory with nothing enrolled beyond the benchmark's pods. */
  agentBaseMiB: Figure;
  /** Memory one open connection costs, both agents together. */
  perConnectionKiB: Figure;
  /** Memory one more enrolled pod costs its node's agent. */
  perPodMiB: Figure;
  /** The push benchmark: cluster size it ran with, and what it measured. */
  push: {
    agents: number;
    workloads: number;
    services: number;
    changeP50Ms: Figure;
    changeP99Ms: Figure;
    allAckedMs: Figure;
    controllerRssMiB: Figure;
    controllerConnectCpuMs: Figure;
  };
}

export interface IstioFigures {
  version: string;
  /** Per proxy, at 1,000 requests/s of 1 KB through it. */
  sidecarVcpuPer1k: Figure;
  sidecarMemoryMB: Figure;
  ztunnelVcpuPer1k: Figure;
  ztunnelMemoryMB: Figure;
  waypointVcpuPer1k: Figure;
  waypointMemoryMB: Figure;
  /** Latency two sidecars add to a request, over no mesh, in the current release. */
  sidecarAddedP90Ms: Figure;
  sidecarAddedP99Ms: Figure;
  /** The last release that published them as numbers. */
  sidecarAddedP90MsEarlier: Figure;
  sidecarAddedP99MsEarlier: Figure;
  /** Two ztunnels (ambient, L4), the last release that published them as numbers. */
  ztunnelAddedP90Ms: Figure;
  ztunnelAddedP99Ms: Figure;
  waypointAddedP99Ms: Figure;
}

export interface Prices {
  coreMonthUsd: Figure;
  gibMonthUsd: Figure;
}

export interface Figures {
  ambit: AmbitFigures;
  istio: IstioFigures;
  prices: Prices;
  sources: Source[];
}

/** A committed benchmark result is missing or not in the shape this reader knows. */
export class FiguresUnreadable extends AmbitError {
  constructor(file: string, why: string) {
    super('FiguresUnreadable', `${file}: ${why}; rerun the benchmark that writes it (see BENCHMARKS.md) or restore it from git`);
  }
}

// ---- Istio's published figures ----

const istioLatest = 'https://istio.io/latest/docs/ops/deployment/performance-and-scalability/';
// The 1.24 page gives latency only as charts (PNG); the numbers below are from the last pages that
// printed them, read from the istio/istio.io sources of those releases.
const istio120 = 'https://github.com/istio/istio.io/blob/release-1.20/content/en/docs/ops/deployment/performance-and-scalability/index.md';
const istio122 = 'https://istio.io/v1.23/docs/ops/deployment/performance-and-scalability/';

const istioSources: Source[] = [
  { id: 'istio-1.24', title: 'Istio "Performance and Scalability", sidecar, ztunnel and waypoint at 1,000 req/s of 1 KB, 2 worker threads', where: istioLatest, when: 'measured with Istio 1.24, the newest on the page (later releases\' docs, e.g. /v1.31/, keep the 1.24 section); read 2026-12-01' },
  { id: 'istio-1.20', title: 'Istio "Performance and Scalability", latency of two sidecars at 1,000 req/s', where: istio120, when: 'Istio 1.20' },
  { id: 'istio-1.22', title: 'Istio "Performance and Scalability", latency of two ztunnels at 1,000 req/s', where: istio122, when: 'Istio 1.22' },
];

const notPublished = (unit: string, note: string): Figure => ({ value: null, unit, source: 'istio-1.24', note });

export const istio: IstioFigures = {
  version: '1.24',
  sidecarVcpuPer1k: { value: 0.2, unit: 'vCPU', source: 'istio-1.24' },
  sidecarMemoryMB: { value: 60, unit: 'MB', source: 'istio-1.24', note: 'depends on the configuration a sidecar holds, not on the request rate' },
  ztunnelVcpuPer1k: { value: 0.06, unit: 'vCPU', source: 'istio-1.24' },
  ztunnelMemoryMB: { value: 12, unit: 'MB', source: 'istio-1.24' },
  waypointVcpuPer1k: { value: 0.25, unit: 'vCPU', source: 'istio-1.24' },
  waypointMemoryMB: { value: 60, unit: 'MB', source: 'istio-1.24' },
  sidecarAddedP90Ms: notPublished('ms', 'the 1.24 page shows latency as charts only'),
  sidecarAddedP99Ms: notPublished('ms', 'the 1.24 page shows latency as charts only'),
  sidecarAddedP90MsEarlier: { value: 0.228, unit: 'ms', source: 'istio-1.20' },
  sidecarAddedP99MsEarlier: { value: 0.298, unit: 'ms', source: 'istio-1.20' },
  ztunnelAddedP90Ms: { value: 0.17, unit: 'ms', source: 'istio-1.22' },
  ztunnelAddedP99Ms: { value: 0.2, unit: 'ms', source: 'istio-1.22' },
  waypointAddedP99Ms: notPublished('ms', 'no release prints the waypoint hop as a number; 1.22 and 1.24 chart it'),
};

// ---- prices ----

// AWS Fargate bills a pod's vCPU and memory separately, which is the shape of this question; a
// month is AWS's 730 hours. Plain EC2 or committed-use prices are lower: pass --price-core/--price-gib.
const hoursPerMonth = 730;
const priceSource: Source = {
  id: 'aws-fargate',
  title: 'AWS Fargate on-demand, Linux/x86, us-east-1: $0.04048 per vCPU-hour, $0.004445 per GB-hour, x 730 h',
  where: 'https://aws.amazon.com/fargate/pricing/',
  when: 'rates as published in 2026',
};

export const defaultPrices: Prices = {
  coreMonthUsd: { value: 0.04048 * hoursPerMonth, unit: 'USD', source: 'aws-fargate' },
  gibMonthUsd: { value: 0.004445 * hoursPerMonth, unit: 'USD', source: 'aws-fargate' },
};

// ---- ambit's recorded figures ----

interface MeshJson {
  date?: string;
  rate: number;
  machine: string;
  paths: { name: string; keepAlive: { rps: number; cpuPer1k: number }; rate: { p50: number; p99: number } }[];
  memory: Record<string, number>;
}

interface PushJson {
  date: string;
  machine: string;
  agents: number;
  workloads: number;
  services: number;
  allAckedMs: number | null;
  controllerConnectCpuMs: number | null;
  changeP50Ms: number | null;
  changeP99Ms: number | null;
  controllerRssAfterConnectMiB: number | null;
}

function readJson<T>(rootDir: string, file: string): T {
  try {
    return JSON.parse(readFileSync(join(rootDir, file), 'utf8')) as T;
  } catch (err) {
    throw new FiguresUnreadable(file, errorMessage(err));
  }
}

function num(file: string, what: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new FiguresUnreadable(file, `${what} is missing or not a number`);
  return v;
}

/** The path ambit estimate reads from the mesh benchmark: the default capture (netfilter). */
export const meshPath = 'ambit (iptables)';

/**
 * Reads ambit's figures from `<rootDir>/bench/mesh.json` and `<rootDir>/bench/push.json` and puts
 * Istio's published figures and the default prices beside them. Throws FiguresUnreadable naming the
 * file and field when a result is missing or malformed.
 */
export function loadFigures(rootDir: string): Figures {
  const meshFile = 'bench/mesh.json';
  const pushFile = 'bench/push.json';
  const mesh = readJson<MeshJson>(rootDir, meshFile);
  const push = readJson<PushJson>(rootDir, pushFile);
  const path = mesh.paths?.find((p) => p.name === meshPath);
  const direct = mesh.paths?.find((p) => p.name === 'direct');
  if (!path || !direct) throw new FiguresUnreadable(meshFile, `paths "${meshPath}" and "direct" are both needed`);
  const m = (key: string) => num(meshFile, `memory["${key}"]`, mesh.memory?.[key]);

  const idle1 = m('agent RSS, node-1 (client side), idle');
  const idle2 = m('agent RSS, node-2 (server side), idle');
  // An agent whose RSS fell while the connections opened (V8 collected in between) measured no
  // cost, not a gain: each side counts at least zero, and the note says when one was clamped.
  const perSide = [m('per idle connection, node-1 (KB)'), m('per idle connection, node-2 (KB)')];
  const perConn = perSide.reduce((a, b) => a + Math.max(0, b), 0);
  const clamped = perSide.some((x) => x < 0);
  const pods100 = m('agent RSS, node-1, 100 more enrolled pods');
  const mesh_ = 'ambit-mesh';
  const push_ = 'ambit-push';
  const rate = num(meshFile, 'rate', mesh.rate);
  const pushed = (v: number | null, unit: string, what: string): Figure =>
    v === null || v === undefined ? { value: null, unit, source: push_, note: `${what} not recorded in ${pushFile}` } : { value: num(pushFile, what, v), unit, source: push_ };

  const ambit: AmbitFigures = {
    path: meshPath,
    latencyRate: rate,
    addedP50Ms: { value: num(meshFile, 'rate.p50', path.rate?.p50) - num(meshFile, 'direct rate.p50', direct.rate?.p50), unit: 'ms', source: mesh_, note: `"${meshPath}" minus "direct", p50 at ${rate} req/s` },
    addedP99Ms: { value: num(meshFile, 'rate.p99', path.rate?.p99) - num(meshFile, 'direct rate.p99', direct.rate?.p99), unit: 'ms', source: mesh_, note: `"${meshPath}" minus "direct", p99 at ${rate} req/s` },
    cpuSecondsPer1k: { value: num(meshFile, 'keepAlive.cpuPer1k', path.keepAlive?.cpuPer1k), unit: 'CPU s', source: mesh_, note: 'both agents, per 1,000 keep-alive requests' },
    keepAliveRps: { value: num(meshFile, 'keepAlive.rps', path.keepAlive?.rps), unit: 'req/s', source: mesh_ },
    agentBaseMiB: { value: (idle1 + idle2) / 2, unit: 'MiB', source: mesh_, note: 'mean of the two agents idle after the load runs' },
    perConnectionKiB: { value: perConn, unit: 'KiB', source: mesh_, note: `client-side plus server-side agent, from 1,000 idle connections${clamped ? ` (a side whose RSS fell meanwhile, by V8's collection, counts as 0: measured ${perSide.map((x) => x.toFixed(1)).join(' and ')} KiB)` : ''}` },
    // Against the idle reading before the connection test: an upper bound, as V8's heap may still
    // hold what those 1,000 connections grew it by (BENCHMARKS.md: 84-136 MB depending on GC).
    perPodMiB: { value: (pods100 - idle1) / 100, unit: 'MiB', source: mesh_, note: 'upper bound: 100 pods enrolled on one node, against that agent idle' },
    push: {
      agents: num(pushFile, 'agents', push.agents),
      workloads: num(pushFile, 'workloads', push.workloads),
      services: num(pushFile, 'services', push.services),
      changeP50Ms: pushed(push.changeP50Ms, 'ms', 'changeP50Ms'),
      changeP99Ms: pushed(push.changeP99Ms, 'ms', 'changeP99Ms'),
      allAckedMs: pushed(push.allAckedMs, 'ms', 'allAckedMs'),
      controllerRssMiB: pushed(push.controllerRssAfterConnectMiB, 'MiB', 'controllerRssAfterConnectMiB'),
      controllerConnectCpuMs: pushed(push.controllerConnectCpuMs, 'ms', 'controllerConnectCpuMs'),
    },
  };
  const n = (v: number) => v.toLocaleString('en-US');
  const sources: Source[] = [
    { id: mesh_, title: `ambit mesh benchmark (npm run bench:mesh), path "${meshPath}"`, where: meshFile, when: `${mesh.date ?? 'date not recorded'}, ${mesh.machine}` },
    { id: push_, title: `ambit push benchmark (npm run bench:push), ${n(push.agents)} agents, ${n(push.workloads)} workloads, ${n(push.services)} services`, where: pushFile, when: `${push.date}, ${push.machine}` },
    ...istioSources,
    priceSource,
  ];
  return { ambit, istio, prices: defaultPrices, sources };
}
