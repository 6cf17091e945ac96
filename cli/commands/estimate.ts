// `ambit estimate`: what the mesh would add to a cluster of a given size and load, from ambit's
// recorded benchmarks beside Istio's published figures, as tables for people or -o json. The
// arithmetic is shared/estimate/ (the dashboard uses it too); this file owns flags and layout.

import { parseArgs } from 'node:util';
import { estimate, loadFigures, parseInput, type Amount, type Estimate, type EstimateInput, type Resources } from '../../shared/estimate/index.js';
import type { CliContext } from '../context.js';
import { outputFormat, printData, table } from '../output.js';

const flagOf: Record<keyof EstimateInput, string> = {
  nodes: '--nodes',
  pods: '--pods',
  services: '--services',
  rps: '--rps',
  waypoints: '--waypoints',
  l7Share: '--l7-share',
  connections: '--connections',
  priceCore: '--price-core',
  priceGiB: '--price-gib',
};

export async function estimateCommand(ctx: CliContext, args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      nodes: { type: 'string' },
      pods: { type: 'string' },
      services: { type: 'string' },
      rps: { type: 'string' },
      waypoints: { type: 'string' },
      'l7-share': { type: 'string' },
      connections: { type: 'string' },
      'price-core': { type: 'string' },
      'price-gib': { type: 'string' },
      output: { type: 'string', short: 'o' },
    },
  });
  const format = outputFormat(values.output);
  const input = parseInput(
    {
      nodes: values.nodes,
      pods: values.pods,
      services: values.services,
      rps: values.rps,
      waypoints: values.waypoints,
      l7Share: values['l7-share'],
      connections: values.connections,
      priceCore: values['price-core'],
      priceGiB: values['price-gib'],
    },
    (field) => flagOf[field],
  );
  const result = estimate(input, loadFigures(ctx.root));
  if (printData(format, result)) return 0;
  process.stdout.write(render(result, values.connections === undefined));
  return 0;
}

// ---- layout ----

const num = (n: number, d: number) => n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
const whole = (n: number) => num(n, 0);
const cores = (n: number | null) => (n === null ? 'not measured' : n === 0 ? '0' : num(n, n < 0.1 ? 3 : 2));
const memory = (gib: number) => (gib === 0 ? '0' : gib < 1 ? `${whole(gib * 1024)} MiB` : `${num(gib, 1)} GiB`);
const usd = (n: number) => (n < 10 ? `$${num(n, 2)}` : `$${whole(n)}`);
const ms = (a: Amount) => (a.value === null ? 'not published' : `+${num(a.value, 2)} ms`);

const section = (title: string, body: string) => `${title}\n${body}`;

export function render(e: Estimate, connectionsDefaulted: boolean): string {
  const ref = new Map(e.sources.map((s, i) => [s.id, `[${i + 1}]`]));
  const refs = (ids: string[]) => ids.map((id) => ref.get(id) ?? id).join(' ');
  const { nodes, pods, services, rps, waypoints, l7Share, connections } = e.input;
  const out: string[] = [];

  out.push(
    `ambit estimate: ${whole(nodes)} nodes, ${whole(pods)} pods, ${whole(services)} services, ${whole(rps)} req/s, ` +
      (waypoints > 0 ? `${whole(waypoints)} waypoints for ${whole(l7Share * 100)}% of requests` : 'no waypoints') +
      `, ${whole(connections)} open connections${connectionsDefaulted ? ' (one per pod; --connections to change)' : ''}\n`,
  );

  const l = e.latency;
  const latencyRows = [
    ['ambit', ms(l.ambit.p50Ms), '-', ms(l.ambit.p99Ms), refs(l.ambit.p50Ms.sources)],
    ...(waypoints > 0 ? [['  + waypoint hop', 'not measured', 'not published', 'not published', refs(l.ambit.waypointHopMs.sources)]] : []),
    ['Istio sidecars (1.24)', '-', ms(l.sidecars.p90Ms), ms(l.sidecars.p99Ms), refs(l.sidecars.p90Ms.sources)],
    ['Istio sidecars (1.20)', '-', ms(l.sidecars.earlierP90Ms), ms(l.sidecars.earlierP99Ms), refs(l.sidecars.earlierP90Ms.sources)],
    ['Istio ambient (1.22)', '-', ms(l.istioAmbient.p90Ms), ms(l.istioAmbient.p99Ms), refs(l.istioAmbient.p90Ms.sources)],
  ];
  out.push(
    section(
      'LATENCY ADDED PER HOP (one pod-to-pod request, over no mesh)',
      table(['MESH', 'P50', 'P90', 'P99', 'SOURCE'], latencyRows) +
        `ambit: at ${whole(l.rate)} req/s over 16 keep-alive connections, minus the direct path in the same run, on 2 shared cores.\n` +
        `Istio publishes 1.24's latency as charts only; 1.20 and 1.22 printed numbers (1,000 req/s of 1 KB). Different machines and percentiles.\n`,
    ),
  );

  const a = e.ambit;
  const row = (name: string, r: Resources, note = r.note ?? '') => [name, cores(r.cores), memory(r.memoryGiB), refs(r.sources), note];
  const resourceRows = [
    row(`ambit agents (${whole(nodes)})`, a.agents, `per node: ${cores(a.agents.perNode.cores)} cores, ${whole(a.agents.perNode.memoryMiB)} MiB`),
    ...(waypoints > 0 ? [row(`ambit waypoints (${whole(waypoints)})`, a.waypoints)] : []),
    row('ambit controller', a.controller),
    row('ambit total', a.total),
    row(`Istio sidecars (${whole(pods)})`, e.sidecars),
    row(`Istio ambient (${whole(nodes)} ztunnels)`, e.istioAmbient),
  ];
  out.push(section('CPU AND MEMORY', table(['PART', 'CPU CORES', 'MEMORY', 'SOURCE', 'NOTE'], resourceRows)));

  const m = e.monthlyUsd;
  const prices = `$${num(m.coreMonth.value ?? 0, 2)} per core-month and $${num(m.gibMonth.value ?? 0, 2)} per GiB-month ${m.coreMonth.sources.length ? refs(m.coreMonth.sources) : '(given)'}`;
  const costRows = [
    ['ambit', usd(m.ambit)],
    ['Istio sidecars', usd(m.sidecars)],
    ['Istio ambient', usd(m.istioAmbient)],
  ];
  out.push(section(`MONTHLY COST of the resources above, at ${prices}`, table(['MESH', 'PER MONTH'], costRows)));

  const p = e.propagation;
  const measured = `${whole(p.measured.agents)} agents, ${whole(p.measured.workloads)} workloads, ${whole(p.measured.services)} services`;
  const change = p.changeP50Ms.value === null || p.changeP99Ms.value === null ? 'not recorded' : `p50 ${whole(p.changeP50Ms.value)} ms, p99 ${whole(p.changeP99Ms.value)} ms`;
  const inSync = p.allInSyncMs.value === null ? 'not recorded' : `${num(p.allInSyncMs.value / 1000, 1)} s`;
  out.push(
    section(
      `CONFIG PROPAGATION (measured with ${measured}) ${refs(p.changeP50Ms.sources)}`,
      table(
        ['WHAT', 'TIME'],
        [
          ['a change in force on every node', change],
          ['every agent connected and in sync', inSync],
        ],
      ),
    ),
  );

  if (e.recommendations.length) out.push(section('RECOMMENDATIONS', e.recommendations.map((r) => `- ${r}\n`).join('')));
  out.push(section('SOURCES', e.sources.map((s) => `${ref.get(s.id)} ${s.title}: ${s.where} (${s.when})\n`).join('')));
  return out.join('\n');
}
