// The agent's Prometheus endpoint (15020, as ztunnel's): Istio's TCP metrics with Istio's labels,
// so existing dashboards and Kiali read them, and the agent's own health. Byte counters are brought
// up to date at scrape time from the live connections' socket totals, so the data path never
// touches prom-client per chunk and a long-lived connection's bytes show before it closes. What
// each label holds, and its default, follows ztunnel's src/proxy/metrics.rs (CommonTrafficLabels).

import type { Server } from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import { metricsServer, registerDefaultMetrics, type ThreadMetrics, workersMetricsServer } from '../../shared/metrics.js';
import { serviceHostname } from '../../shared/protocol/config.js';
import { principalLabel, trafficLabels, unknown, WorkloadLabelCache } from '../../shared/telemetry/labels.js';
import type { ConnectionInfo, ConnectionTable, Peer, ResponseFlags, TrackedConnection } from '../proxy/connections.js';
import type { ProxyEvents } from '../proxy/proxy.js';

// ztunnel's order, so a scrape reads the same side by side.
const tcpLabels = [...trafficLabels, 'response_flags', 'connection_security_policy'] as const;
type TcpLabel = (typeof tcpLabels)[number];

interface Series {
  opened: { inc(n?: number): void };
  closed: { inc(n?: number): void };
  failed: { inc(n?: number): void };
  sent: { inc(n?: number): void };
  received: { inc(n?: number): void };
}

/** What the proxy tells the metrics (its `events` option); `metrics()` is read at each event, as the proxy is made first. */
export function metricsEvents(metrics: () => AgentMetrics): ProxyEvents {
  return {
    opened: (c) => metrics().connectionOpened(c),
    closed: (c) => metrics().connectionClosed(c),
    refused: (c, flags) => metrics().connectionRefused(c, flags),
    denied: (reason) => metrics().connectionsDenied.inc({ reason }),
    failed: (direction, reason) => metrics().connectionFailures.inc({ direction, reason }),
  };
}

/** One registry's metrics as `getMetricsAsJSON` gives them: what a worker thread sends for a scrape. */
export type WorkerMetrics = ThreadMetrics;

/** Open sockets the proxy accepted from clients, by reporter (ztunnel's istio_tcp_sockets_open). */
export interface OpenSockets {
  source: number;
  destination: number;
}

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly opened = new Counter({ name: 'istio_tcp_connections_opened_total', help: 'TCP connections opened, including those then denied or not forwarded (response_flags)', labelNames: tcpLabels, registers: [this.registry] });
  private readonly closed = new Counter({ name: 'istio_tcp_connections_closed_total', help: 'TCP connections closed; response_flags says how they ended', labelNames: tcpLabels, registers: [this.registry] });
  private readonly failed = new Counter({ name: 'istio_tcp_connections_failed_total', help: 'TCP connections that ended with a failure or denial flag (ztunnel: unstable)', labelNames: tcpLabels, registers: [this.registry] });
  private readonly sent = new Counter({ name: 'istio_tcp_sent_bytes_total', help: 'Bytes sent during the response of a TCP connection (server to client)', labelNames: tcpLabels, registers: [this.registry] });
  private readonly received = new Counter({ name: 'istio_tcp_received_bytes_total', help: 'Bytes received during the request of a TCP connection (client to server)', labelNames: tcpLabels, registers: [this.registry] });
  readonly connectionsDenied = new Counter({ name: 'ambit_connections_denied_total', help: 'Connections refused by policy or mTLS mode, by reason', labelNames: ['reason'], registers: [this.registry] });
  readonly connectionFailures = new Counter({ name: 'ambit_connection_failures_total', help: 'Connections that could not be forwarded, by reason', labelNames: ['direction', 'reason'], registers: [this.registry] });
  readonly captureFailures = new Counter({ name: 'ambit_capture_failures_total', help: 'Attempts to capture a pod that failed', labelNames: ['workload'], registers: [this.registry] });
  /** Each connection's label set, resolved once per distinct set (prom-client hashes labels on every inc). */
  private readonly series = new WeakMap<TrackedConnection, Series>();
  private readonly seriesByKey = new Map<string, Series>();
  private readonly sides: WorkloadLabelCache;

  constructor(
    o: {
      cluster: string;
      /** For destination_principal, which ztunnel gives any known destination workload. */
      trustDomain: string;
      connections: ConnectionTable;
      /** Gauges read at scrape time; the main thread's alone (a worker thread has none of these). */
      health?: () => { capturedPods: number; configVersion: number; controllerConnected: boolean; certificates: number };
      /** Counters kept as plain numbers elsewhere (HBONE pool and server), read at scrape time. */
      counters: () => Record<string, number>;
      /** The proxy's open client sockets, read at scrape time. */
      sockets?: () => OpenSockets;
    },
  ) {
    this.sides = new WorkloadLabelCache({ cluster: o.cluster, trustDomain: o.trustDomain });
    const { connections, health, counters, sockets } = o;
    // The process's own metrics once per process: a worker thread's registry (summed into the
    // main thread's at scrape time) carries only what its connections count.
    if (health) registerDefaultMetrics(this.registry, 'ambit_agent_', 'ambit-agent');
    // prom-client calls collect() with the metric as `this`; these closures carry the rest.
    const flush = (c: TrackedConnection) => this.flushBytes(c);
    new Gauge({
      name: 'ambit_agent_connections_active',
      help: 'Proxied connections open now',
      registers: [this.registry],
      collect() {
        this.set(connections.size);
        // Bring byte counters of live connections up to date.
        for (const c of connections.values()) flush(c);
      },
    });
    if (sockets) {
      // ztunnel's gauge (src/proxy/metrics.rs, "unstable"): sockets accepted on 15001 (source), and
      // on 15006 and 15008 (destination). An HBONE socket carries many connections, so this is not
      // opened minus closed; Istio's dashboards use that difference for open connections.
      new Gauge({
        name: 'istio_tcp_sockets_open',
        help: 'TCP sockets from clients the proxy holds open now: 15001 for source, 15006 and 15008 for destination (ztunnel: unstable)',
        labelNames: ['reporter'],
        registers: [this.registry],
        collect() {
          const s = sockets();
          this.set({ reporter: 'source' }, s.source);
          this.set({ reporter: 'destination' }, s.destination);
        },
      });
    }
    if (health) {
      const gauge = (name: string, help: string, read: () => number) => new Gauge({ name, help, registers: [this.registry], collect() { this.set(read()); } });
      gauge('ambit_agent_captured_pods', 'Pods of this node whose traffic the agent captures', () => health().capturedPods);
      gauge('ambit_agent_config_version', 'The configuration version the agent holds', () => health().configVersion);
      gauge('ambit_agent_controller_connected', '1 while the agent is connected to the controller', () => (health().controllerConnected ? 1 : 0));
      gauge('ambit_agent_workload_certificates', 'Workload certificates the agent holds', () => health().certificates);
    }
    new Gauge({
      name: 'ambit_agent_proxy_events',
      help: 'Counts kept by the HBONE pool and server (sessions, streams, refusals by reason)',
      labelNames: ['event'],
      registers: [this.registry],
      collect() {
        for (const [event, n] of Object.entries(counters())) this.set({ event }, n);
      },
    });
  }

  connectionOpened(c: TrackedConnection): void {
    const series = this.seriesOf(c, '-');
    this.series.set(c, series);
    series.opened.inc();
  }

  /** A connection's end: its bytes stay with the series it opened in, its close goes to the one of how it ended. */
  connectionClosed(c: TrackedConnection): void {
    this.flushBytes(c);
    const opened = this.series.get(c) ?? this.seriesOf(c, '-');
    if (c.responseFlags === '-') return void opened.closed.inc();
    const ended = this.seriesOf(c, c.responseFlags);
    ended.closed.inc();
    ended.failed.inc();
  }

  /** A connection refused or not forwarded, with the labels known when it was (ztunnel's ConnectionResult::record with a flag). */
  connectionRefused(c: ConnectionInfo, flags: Exclude<ResponseFlags, '-'>): void {
    const series = this.seriesOf(c, flags);
    series.opened.inc();
    series.closed.inc();
    series.failed.inc();
  }

  private flushBytes(c: TrackedConnection): void {
    const series = this.series.get(c);
    if (!series) return;
    const request = c.bytes.request();
    const response = c.bytes.response();
    // Istio's directions (agent/proxy/connections.ts): the request is received, the response sent.
    if (request > c.reportedRequest) series.received.inc(request - c.reportedRequest);
    if (response > c.reportedResponse) series.sent.inc(response - c.reportedResponse);
    c.reportedRequest = request;
    c.reportedResponse = response;
  }

  /**
   * The series of a label set. The key is the label values themselves, so that it cannot miss one
   * that varies; building them is a few string reads per connection, never per chunk.
   */
  private seriesOf(c: ConnectionInfo, flags: ResponseFlags): Series {
    const labels = this.labelsOf(c, flags);
    const key = tcpLabels.map((l) => labels[l]).join('\u0000');
    let series = this.seriesByKey.get(key);
    if (!series) {
      series = { opened: this.opened.labels(labels), closed: this.closed.labels(labels), failed: this.failed.labels(labels), sent: this.sent.labels(labels), received: this.received.labels(labels) };
      // Bounded: a cluster has far fewer workload pairs; past this, series are made per connection.
      if (this.seriesByKey.size < 10_000) this.seriesByKey.set(key, series);
    }
    return series;
  }

  /** ztunnel's CommonTrafficLabels for a connection; `unknown` for whatever the agent does not know. */
  private labelsOf(c: ConnectionInfo, flags: ResponseFlags): Record<TcpLabel, string> {
    const mtls = c.security === 'mutual_tls';
    const s = this.sides.of(c.source.workload);
    const d = this.sides.of(c.destination.workload);
    const svc = c.service;
    return {
      reporter: c.reporter,
      source_workload: s.workload,
      source_canonical_service: s.canonicalService,
      source_canonical_revision: s.canonicalRevision,
      source_workload_namespace: s.namespace,
      // Only the identity mutual TLS proved (ztunnel sets it from the handshake alone, not from the workload).
      source_principal: mtls ? principalLabel(c.source.principal) : unknown,
      // ztunnel fills app and version with the canonical service and revision.
      source_app: s.canonicalService,
      source_version: s.canonicalRevision,
      source_cluster: s.cluster,
      destination_service: svc ? serviceHostname(svc) : unknown,
      destination_service_namespace: svc?.namespace ?? unknown,
      destination_service_name: svc?.name ?? unknown,
      destination_workload: d.workload,
      destination_canonical_service: d.canonicalService,
      destination_canonical_revision: d.canonicalRevision,
      destination_workload_namespace: d.namespace,
      // ztunnel names a known destination workload's identity even in plain TCP.
      destination_principal: this.principalOf(c.destination),
      destination_app: d.canonicalService,
      destination_version: d.canonicalRevision,
      destination_cluster: d.cluster,
      request_protocol: 'tcp',
      response_flags: flags,
      connection_security_policy: c.security,
    };
  }

  private principalOf(p: Peer): string {
    if (p.workload) return this.sides.of(p.workload).principal;
    return principalLabel(p.principal);
  }

  /**
   * The HTTP server for Prometheus (not listening yet). `others`: the worker threads' metrics, summed
   * with this registry's into one scrape, as prom-client's AggregatorRegistry sums a cluster's.
   */
  createServer(others?: () => Promise<WorkerMetrics[]>): Server {
    return others ? workersMetricsServer(this.registry, others) : metricsServer(this.registry);
  }
}
