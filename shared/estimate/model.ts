// The impact calculator's arithmetic: what ambit adds to a cluster of a given size and load (latency
// per hop, CPU and memory of agents, waypoints and controller, config propagation, monthly cost),
// beside Istio's sidecar and ambient modes for the same load. Pure: figures come in (figures.ts),
// nothing is read or printed here, so the CLI and a dashboard page show the same numbers.

import type { Figure, Figures, Source } from './figures.js';
import type { EstimateInput } from './input.js';

/** One computed value and the sources it was computed from; `value` null means no source has it. */
export interface Amount {
  value: number | null;
  unit: string;
  sources: string[];
  note?: string;
}

/** CPU and memory of one part. `cores` is null where nothing measured it. */
export interface Resources {
  cores: number | null;
  memoryGiB: number;
  sources: string[];
  note?: string;
}

export interface Estimate {
  input: Required<EstimateInput>;
  latency: {
    /** Requests/s the figures were measured at. */
    rate: number;
    ambit: { p50Ms: Amount; p99Ms: Amount; waypointHopMs: Amount };
    sidecars: { p90Ms: Amount; p99Ms: Amount; earlierP90Ms: Amount; earlierP99Ms: Amount };
    istioAmbient: { p90Ms: Amount; p99Ms: Amount };
  };
  ambit: {
    agents: Resources & { perNode: { cores: number; memoryMiB: number } };
    waypoints: Resources;
    controller: Resources;
    total: Resources;
  };
  /** Istio in sidecar mode: one Envoy per pod, two on every request's path. */
  sidecars: Resources;
  /** Istio in ambient mode: one ztunnel per node, and the same waypoints. */
  istioAmbient: Resources;
  monthlyUsd: { ambit: number; sidecars: number; istioAmbient: number; coreMonth: Amount; gibMonth: Amount };
  /** Measured at one size (`measured`); `beyondMeasured` when the cluster has more nodes than agents measured. */
  propagation: { changeP50Ms: Amount; changeP99Ms: Amount; allInSyncMs: Amount; measured: { agents: number; workloads: number; services: number }; beyondMeasured: boolean };
  recommendations: string[];
  sources: Source[];
}

const GiB = 2 ** 30;
const mibToGiB = (mib: number) => mib / 1024;
// Istio writes MB; read literally (10^6 bytes), the smaller reading, so sidecars are not overstated.
const mbToGiB = (mb: number) => (mb * 1e6) / GiB;

const amount = (f: Figure, note?: string): Amount => ({ value: f.value, unit: f.unit, sources: [f.source], ...((note ?? f.note) !== undefined && { note: note ?? f.note }) });
const need = (f: Figure): number => {
  // The recorded ambit figures are checked on load; a null here is a figures.ts mistake, not input.
  if (f.value === null) throw new Error(`figure from ${f.source} has no value`);
  return f.value;
};

/**
 * The estimate for `input` from `figures` (see loadFigures). Every amount names its sources by
 * the ids in `result.sources`.
 */
export function estimate(input: EstimateInput, figures: Figures): Estimate {
  const { ambit: a, istio: i } = figures;
  const priceCore = input.priceCore ?? need(figures.prices.coreMonthUsd);
  const priceGiB = input.priceGiB ?? need(figures.prices.gibMonthUsd);
  const full: Required<EstimateInput> = { ...input, priceCore, priceGiB };
  const { nodes, pods, services, rps, waypoints, l7Share, connections } = full;
  const k = rps / 1000;

  // Agents: CPU follows requests (the benchmark counts both agents of a request together); memory
  // is a base per node, plus per enrolled pod, plus per open connection (both ends together).
  const agentCores = k * need(a.cpuSecondsPer1k);
  const baseMiB = nodes * need(a.agentBaseMiB);
  const podsMiB = pods * need(a.perPodMiB);
  const connMiB = (connections * need(a.perConnectionKiB)) / 1024;
  const agentMiB = baseMiB + podsMiB + connMiB;
  const agents = {
    cores: agentCores,
    memoryGiB: mibToGiB(agentMiB),
    sources: ['ambit-mesh'],
    perNode: { cores: agentCores / nodes, memoryMiB: agentMiB / nodes },
  };

  // Waypoints: no ambit measurement yet, so Istio's waypoint figure, for the L7 share of requests.
  const waypointRes: Resources =
    waypoints > 0
      ? { cores: k * l7Share * need(i.waypointVcpuPer1k), memoryGiB: waypoints * mbToGiB(need(i.waypointMemoryMB)), sources: ['istio-1.24'], note: "Istio's waypoint figure; ambit's waypoint is not benchmarked yet" }
      : { cores: 0, memoryGiB: 0, sources: [] };

  // Controller: measured at one size; above it, memory grows in proportion to the configuration it
  // holds (workloads, services), the larger ratio of the two. Agents beyond the measured count are
  // flagged in propagation rather than guessed. CPU between changes was not measured.
  const p = a.push;
  const scale = Math.max(1, pods / p.workloads, services / p.services);
  const n = (v: number) => v.toLocaleString('en-US');
  const controllerMiB = p.controllerRssMiB.value;
  const controller: Resources = {
    cores: null,
    memoryGiB: controllerMiB === null ? 0 : mibToGiB(controllerMiB * scale),
    sources: ['ambit-push'],
    note: [
      controllerMiB === null ? 'memory not recorded' : scale > 1 ? `memory scaled ${scale.toFixed(1)}x from the measured ${n(p.workloads)} workloads, ${n(p.services)} services` : undefined,
      `CPU not measured between changes${p.controllerConnectCpuMs.value !== null ? `; connecting ${p.agents} agents took ${(p.controllerConnectCpuMs.value / 1000).toFixed(1)} CPU s` : ''}`,
    ]
      .filter(Boolean)
      .join('; '),
  };
  const total: Resources = {
    cores: agents.cores + (waypointRes.cores ?? 0),
    memoryGiB: agents.memoryGiB + waypointRes.memoryGiB + controller.memoryGiB,
    sources: [...new Set([...agents.sources, ...waypointRes.sources, ...controller.sources])],
    note: 'controller CPU not included (not measured)',
  };

  // Istio: every request passes two proxies (the client's and the server's sidecar, or ztunnel).
  const sidecars: Resources = {
    cores: 2 * k * need(i.sidecarVcpuPer1k),
    memoryGiB: pods * mbToGiB(need(i.sidecarMemoryMB)),
    sources: ['istio-1.24'],
    note: 'two sidecars per request; istiod not included',
  };
  const istioAmbient: Resources = {
    cores: 2 * k * need(i.ztunnelVcpuPer1k) + (waypointRes.cores ?? 0),
    memoryGiB: nodes * mbToGiB(need(i.ztunnelMemoryMB)) + waypointRes.memoryGiB,
    sources: ['istio-1.24'],
    note: `two ztunnels per request${waypoints > 0 ? ', plus the same waypoints' : ''}; istiod not included`,
  };

  const monthly = (r: Resources) => (r.cores ?? 0) * priceCore + r.memoryGiB * priceGiB;
  const priceAmount = (given: number | undefined, f: Figure): Amount => (given === undefined ? amount(f) : { value: given, unit: 'USD', sources: [], note: 'given' });

  const beyondMeasured = nodes > p.agents;
  const result: Estimate = {
    input: full,
    latency: {
      rate: a.latencyRate,
      ambit: {
        p50Ms: amount(a.addedP50Ms),
        p99Ms: amount(a.addedP99Ms),
        waypointHopMs:
          waypoints > 0 ? { value: null, unit: 'ms', sources: ['istio-1.24'], note: `not measured: ambit has no waypoint benchmark and Istio publishes the waypoint hop as charts only; applies to ${Math.round(l7Share * 100)}% of requests` } : { value: 0, unit: 'ms', sources: [] },
      },
      sidecars: { p90Ms: amount(i.sidecarAddedP90Ms), p99Ms: amount(i.sidecarAddedP99Ms), earlierP90Ms: amount(i.sidecarAddedP90MsEarlier), earlierP99Ms: amount(i.sidecarAddedP99MsEarlier) },
      istioAmbient: { p90Ms: amount(i.ztunnelAddedP90Ms), p99Ms: amount(i.ztunnelAddedP99Ms) },
    },
    ambit: { agents, waypoints: waypointRes, controller, total },
    sidecars,
    istioAmbient,
    monthlyUsd: {
      ambit: monthly(total),
      sidecars: monthly(sidecars),
      istioAmbient: monthly(istioAmbient),
      coreMonth: priceAmount(input.priceCore, figures.prices.coreMonthUsd),
      gibMonth: priceAmount(input.priceGiB, figures.prices.gibMonthUsd),
    },
    propagation: {
      changeP50Ms: amount(p.changeP50Ms),
      changeP99Ms: amount(p.changeP99Ms),
      allInSyncMs: amount(p.allAckedMs),
      measured: { agents: p.agents, workloads: p.workloads, services: p.services },
      beyondMeasured,
    },
    recommendations: [],
    sources: figures.sources,
  };
  result.recommendations = recommend(result, figures, { baseMiB, podsMiB, connMiB });
  return result;
}

/** Advice where a figure is high, each naming the figure that prompted it. */
function recommend(e: Estimate, figures: Figures, parts: { baseMiB: number; podsMiB: number; connMiB: number }): string[] {
  const out: string[] = [];
  const { nodes, pods, services, rps, waypoints, l7Share } = e.input;
  const a = figures.ambit;
  const i = figures.istio;
  const fmt = (n: number, d = 1) => n.toLocaleString('en-US', { maximumFractionDigits: d });

  const p99 = e.latency.ambit.p99Ms.value ?? 0;
  if (p99 > 2) {
    out.push(
      `Latency: ambit added ${fmt(p99, 2)} ms at p99 per hop in its benchmark (${fmt(a.latencyRate, 0)} req/s, 2 shared cores), against ${i.sidecarAddedP99MsEarlier.value} ms for two Istio 1.20 sidecars. ` +
        `Keep latency-sensitive paths out of the mesh for now (label their pods ambit.dev/dataplane-mode=none), or measure on your nodes with npm run bench:mesh.`,
    );
  }
  const perAgent = (2 * rps) / nodes;
  const ceiling = a.keepAliveRps.value ?? Infinity;
  if (perAgent > ceiling / 2) {
    out.push(
      `Agent load: each agent would see about ${fmt(perAgent, 0)} request ends/s, over half the ${fmt(ceiling, 0)} req/s one agent pair carried at full load in the benchmark. ` +
        `The agent proxies on one JavaScript thread: spread the load over more nodes or expect queueing.`,
    );
  }
  const agentMiB = parts.baseMiB + parts.podsMiB + parts.connMiB;
  if (parts.podsMiB > agentMiB / 2) {
    out.push(
      `Agent memory is mostly per-pod state: ${fmt((100 * parts.podsMiB) / agentMiB, 0)}% (${fmt(pods)} pods x ${fmt(a.perPodMiB.value ?? 0, 2)} MiB, an upper bound). Enroll only the namespaces that need the mesh.`,
    );
  } else if (parts.connMiB > agentMiB / 2) {
    out.push(`Agent memory is mostly open connections: ${fmt((100 * parts.connMiB) / agentMiB, 0)}% (${fmt(e.input.connections)} x ${fmt(a.perConnectionKiB.value ?? 0, 1)} KiB). Long idle connection pools cost agent memory; trim idle ones.`);
  }
  if (e.ambit.agents.memoryGiB > e.sidecars.memoryGiB) {
    const base = a.agentBaseMiB.value ?? 0;
    const perPodSaving = ((i.sidecarMemoryMB.value ?? 0) * 1e6) / 2 ** 20 - (a.perPodMiB.value ?? 0);
    out.push(
      `At ${fmt(pods / nodes)} pods per node, the agents' fixed ${fmt(base, 0)} MiB each (the Node.js runtime and its heap) outweigh sidecars; ambit's agents use less memory than sidecars from about ${fmt(Math.ceil(base / perPodSaving), 0)} pods per node.`,
    );
  }
  const wp = e.ambit.waypoints.cores ?? 0;
  if (waypoints > 0 && (wp > (e.ambit.total.cores ?? 0) / 4 || l7Share >= 0.5)) {
    out.push(
      `Waypoints: ${fmt(wp, 2)} of ambit's ${fmt(e.ambit.total.cores ?? 0, 2)} cores go to L7 for ${fmt(l7Share * 100, 0)}% of requests (Istio's waypoint figure). ` +
        `Put waypoints only where L7 is needed (ambit.dev/use-waypoint on those services, not whole namespaces); L4 policy and mTLS need none.`,
    );
  }
  if (e.propagation.beyondMeasured) {
    out.push(`Propagation was measured with ${e.propagation.measured.agents} agents; ${fmt(nodes)} nodes is beyond that and not extrapolated. Measure it: npm run bench:push -- --agents ${nodes}.`);
  }
  if (services > 1000) {
    out.push(`Istio's sidecar memory figure comes from a mesh of 1,000 services; a sidecar not scoped by a Sidecar resource holds all ${fmt(services)} services' configuration and uses more, so the sidecar column is low.`);
  }
  return out;
}
