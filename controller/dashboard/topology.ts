// The mesh's live topology, read from Prometheus as Kiali reads it: Istio's TCP metrics
// (istio_tcp_connections_opened/closed_total, istio_tcp_sent/received_bytes_total) summed by the
// source and destination workload, the Service and the security policy, over a rate window. Nodes
// are workloads; an edge is one (source, destination) pair with its connections, bytes, mTLS
// or plaintext, denials (response_flags="DENY") and failures (any other flag: CONNECT,
// TLS_FAILURE, H2_HANDSHAKE_FAILURE, IDENTITY_ERROR). This module
// writes the queries and turns their answers into a graph; it fetches nothing itself. An edge is a
// pair of workloads, as in Kiali's workload graph: the two reporters need not agree on the Service
// (the destination's agent may not know which name the client dialled), and the edge carries every
// Service either names.

import type { PromSample } from './prometheus.js';

/** The labels that make an edge, Istio's. */
const edgeLabels = ['source_workload', 'source_workload_namespace', 'destination_workload', 'destination_workload_namespace', 'destination_service_name', 'destination_service_namespace'];

export type QueryName = 'opened' | 'closed' | 'sent' | 'received' | 'deniedByAgents';

/**
 * The queries, for a rate window such as `1m`. Both reporters are kept apart (`by reporter`): the
 * source's agent and the destination's agent each count a connection they both saw, so the graph
 * takes the larger of the two rather than their sum; a connection only one side saw (a client
 * outside the mesh, a denial at the source) still shows.
 */
export function topologyQueries(window: string): Record<QueryName, string> {
  const by = (extra: string[]) => `sum by (${['reporter', ...edgeLabels, ...extra].join(', ')})`;
  return {
    opened: `${by(['connection_security_policy', 'response_flags'])} (rate(istio_tcp_connections_opened_total[${window}]))`,
    closed: `${by(['connection_security_policy', 'response_flags'])} (rate(istio_tcp_connections_closed_total[${window}]))`,
    sent: `${by(['connection_security_policy'])} (rate(istio_tcp_sent_bytes_total[${window}]))`,
    received: `${by(['connection_security_policy'])} (rate(istio_tcp_received_bytes_total[${window}]))`,
    // Refusals the agents count by reason only: the total, for when edges carry no denial labels.
    deniedByAgents: `sum(rate(ambit_connections_denied_total[${window}]))`,
  };
}

/** Rate windows the API accepts: a Prometheus duration from 10 s to 1 h. */
export function validWindow(text: string): boolean {
  const m = /^(\d{1,4})(s|m|h)$/.exec(text);
  if (!m) return false;
  const seconds = Number(m[1]) * { s: 1, m: 60, h: 3600 }[m[2] as 's' | 'm' | 'h'];
  return seconds >= 10 && seconds <= 3600;
}

export interface TopologyNode {
  /** `namespace/workload`, or `unknown` for a peer outside the cluster's workloads. */
  id: string;
  namespace: string;
  name: string;
  kind: 'workload' | 'unknown';
  /** Its namespace (or the pod) is enrolled in the mesh; unknown for peers that are not workloads. */
  inMesh?: boolean;
}

export type EdgeSecurity = 'mtls' | 'plaintext' | 'mixed';

export interface TopologyEdge {
  /** `source -> target`: stable across refreshes, for the UI to keep its place. */
  id: string;
  source: string;
  target: string;
  /** `name.namespace` of the Services the clients asked for; empty when they dialled pods. */
  services: string[];
  /** Connections opened per second that were not denied. */
  connectionsPerSecond: number;
  deniedPerSecond: number;
  /** Connections that failed for another reason than policy (response_flags CONNECT, TLS_FAILURE, IDENTITY_ERROR...). */
  failedPerSecond: number;
  /** Bytes from the client to the server, and back. */
  sentBytesPerSecond: number;
  receivedBytesPerSecond: number;
  security: EdgeSecurity;
  /** `denied` while any connection on the edge was denied in the window; `failing` for upstream failures. */
  state: 'ok' | 'denied' | 'failing';
}

export interface Topology {
  window: string;
  time: string;
  nodes: TopologyNode[];
  edges: TopologyEdge[];
  /** Every refusal the agents counted (all edges, and those the edge labels do not carry). */
  deniedPerSecond: number;
}

/** A workload the cluster runs, shown even while idle. */
export interface KnownWorkload {
  namespace: string;
  name: string;
  inMesh: boolean;
}

/** One reporter's rates on one edge. A denial or failure may be counted as opened and closed, or only closed. */
interface Counts {
  opened: number;
  deniedOpened: number;
  deniedClosed: number;
  failedOpened: number;
  failedClosed: number;
  sent: number;
  received: number;
}

interface EdgeAccumulator {
  source: TopologyNode;
  target: TopologyNode;
  services: Set<string>;
  /** Per reporter, then the larger is taken. */
  byReporter: Map<string, Counts>;
  /** Security policies seen with traffic, and seen at all. */
  securityActive: Set<string>;
  securitySeen: Set<string>;
}

const num = (s: PromSample) => {
  const v = Number(s.value[1]);
  return Number.isFinite(v) ? v : 0;
};

const unset = (v: string | undefined) => !v || v === 'unknown';

function nodeOf(workload: string | undefined, namespace: string | undefined): TopologyNode {
  if (unset(workload)) return { id: 'unknown', namespace: '', name: 'unknown', kind: 'unknown' };
  return { id: `${namespace ?? ''}/${workload}`, namespace: namespace ?? '', name: workload!, kind: 'workload' };
}

/** The graph from the answers to `topologyQueries` and the workloads the cluster runs. */
export function topologyFrom(results: Record<QueryName, PromSample[]>, o: { window: string; time: Date; known?: KnownWorkload[] }): Topology {
  const edges = new Map<string, EdgeAccumulator>();
  const edgeOf = (m: Record<string, string>): EdgeAccumulator => {
    const source = nodeOf(m.source_workload, m.source_workload_namespace);
    const target = nodeOf(m.destination_workload, m.destination_workload_namespace);
    const service = unset(m.destination_service_name) ? undefined : `${m.destination_service_name}.${m.destination_service_namespace}`;
    const key = `${source.id} -> ${target.id}`;
    let e = edges.get(key);
    if (!e) edges.set(key, (e = { source, target, services: new Set(), byReporter: new Map(), securityActive: new Set(), securitySeen: new Set() }));
    if (service) e.services.add(service);
    return e;
  };
  const counts = (e: EdgeAccumulator, reporter: string | undefined) => {
    const r = reporter ?? 'unknown';
    let c = e.byReporter.get(r);
    if (!c) e.byReporter.set(r, (c = { opened: 0, deniedOpened: 0, deniedClosed: 0, failedOpened: 0, failedClosed: 0, sent: 0, received: 0 }));
    return c;
  };

  for (const s of results.opened) {
    const e = edgeOf(s.metric);
    const c = counts(e, s.metric.reporter);
    const v = num(s);
    const flags = s.metric.response_flags ?? '-';
    if (flags === '-') c.opened += v;
    else if (flags === 'DENY') c.deniedOpened += v;
    else c.failedOpened += v;
    track(e, s.metric.connection_security_policy, v);
  }
  for (const s of results.closed) {
    const flags = s.metric.response_flags ?? '-';
    if (flags === '-') continue;
    const c = counts(edgeOf(s.metric), s.metric.reporter);
    if (flags === 'DENY') c.deniedClosed += num(s);
    else c.failedClosed += num(s);
  }
  for (const s of results.sent) {
    const e = edgeOf(s.metric);
    counts(e, s.metric.reporter).sent += num(s);
    track(e, s.metric.connection_security_policy, num(s));
  }
  for (const s of results.received) {
    const e = edgeOf(s.metric);
    counts(e, s.metric.reporter).received += num(s);
    track(e, s.metric.connection_security_policy, num(s));
  }

  const nodes = new Map<string, TopologyNode>();
  const known = new Map((o.known ?? []).map((w) => [`${w.namespace}/${w.name}`, w]));
  for (const w of known.values()) nodes.set(`${w.namespace}/${w.name}`, { id: `${w.namespace}/${w.name}`, namespace: w.namespace, name: w.name, kind: 'workload', inMesh: w.inMesh });
  const out: TopologyEdge[] = [];
  for (const [id, e] of edges) {
    const max = (f: (c: Counts) => number) => Math.max(0, ...[...e.byReporter.values()].map(f));
    const denied = max((c) => Math.max(c.deniedOpened, c.deniedClosed));
    // The source's agent sees a denial at the destination as a refused tunnel (CONNECT) while the
    // destination's agent reports the same connections as DENY: those are not failures as well.
    const failedBy = (reporter: string, c: Counts) => Math.max(c.failedOpened, c.failedClosed) - (reporter === 'source' ? denied : 0);
    const failed = Math.max(0, ...[...e.byReporter].map(([r, c]) => failedBy(r, c)));
    const edge: TopologyEdge = {
      id,
      source: e.source.id,
      target: e.target.id,
      services: [...e.services].sort(),
      connectionsPerSecond: max((c) => c.opened),
      deniedPerSecond: denied,
      // Rates of the two reporters come from different scrapes: a remainder under a tenth of the
      // denials is their skew, not a failure.
      failedPerSecond: failed < denied * 0.1 ? 0 : failed,
      sentBytesPerSecond: max((c) => c.sent),
      receivedBytesPerSecond: max((c) => c.received),
      security: securityOf(e.securityActive.size ? e.securityActive : e.securitySeen),
      state: 'ok',
    };
    // An edge whose every rate is zero saw nothing in the window: Kiali leaves it out too.
    if (!edge.connectionsPerSecond && !edge.deniedPerSecond && !edge.failedPerSecond && !edge.sentBytesPerSecond && !edge.receivedBytesPerSecond) continue;
    edge.state = edge.deniedPerSecond > 0 ? 'denied' : edge.failedPerSecond > 0 ? 'failing' : 'ok';
    out.push(edge);
    for (const n of [e.source, e.target]) if (!nodes.has(n.id)) nodes.set(n.id, n);
  }
  return {
    window: o.window,
    time: o.time.toISOString(),
    nodes: [...nodes.values()].sort((a, b) => a.id.localeCompare(b.id)),
    edges: out.sort((a, b) => a.id.localeCompare(b.id)),
    deniedPerSecond: results.deniedByAgents.reduce((t, s) => t + num(s), 0),
  };
}

function track(e: EdgeAccumulator, policy: string | undefined, value: number): void {
  const p = policy ?? 'unknown';
  e.securitySeen.add(p);
  if (value > 0) e.securityActive.add(p);
}

/** Istio writes `mutual_tls` for mTLS and `unknown` (or `none`) for plaintext. */
function securityOf(policies: Set<string>): EdgeSecurity {
  const mtls = policies.has('mutual_tls');
  const plain = [...policies].some((p) => p !== 'mutual_tls');
  return mtls && plain ? 'mixed' : mtls ? 'mtls' : 'plaintext';
}
