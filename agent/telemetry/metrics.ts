// The agent's Prometheus endpoint (15020, as ztunnel's): Istio's TCP metrics with Istio's labels,
// so existing dashboards read them, and the agent's own health. Byte counters are brought up to
// date at scrape time from the live connections' socket totals, so the data path never touches
// prom-client per chunk and a long-lived connection's bytes show before it closes.

import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import { registerDefaultMetrics } from '../../shared/metrics.js';
import type { ConnectionTable, TrackedConnection, Peer } from '../proxy/connections.js';

const tcpLabels = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_cluster',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'destination_cluster',
  'request_protocol',
  'response_flags',
  'connection_security_policy',
] as const;
type TcpLabel = (typeof tcpLabels)[number];

interface Series {
  opened: { inc(n?: number): void };
  closed: { inc(n?: number): void };
  sent: { inc(n?: number): void };
  received: { inc(n?: number): void };
}

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly opened = new Counter({ name: 'istio_tcp_connections_opened_total', help: 'TCP connections opened', labelNames: tcpLabels, registers: [this.registry] });
  private readonly closed = new Counter({ name: 'istio_tcp_connections_closed_total', help: 'TCP connections closed', labelNames: tcpLabels, registers: [this.registry] });
  private readonly sent = new Counter({ name: 'istio_tcp_sent_bytes_total', help: 'Bytes sent by the client of a TCP connection', labelNames: tcpLabels, registers: [this.registry] });
  private readonly received = new Counter({ name: 'istio_tcp_received_bytes_total', help: 'Bytes received by the client of a TCP connection', labelNames: tcpLabels, registers: [this.registry] });
  readonly connectionsDenied = new Counter({ name: 'ambit_connections_denied_total', help: 'Connections refused by policy or mTLS mode, by reason', labelNames: ['reason'], registers: [this.registry] });
  readonly connectionFailures = new Counter({ name: 'ambit_connection_failures_total', help: 'Connections that could not be forwarded, by reason', labelNames: ['direction', 'reason'], registers: [this.registry] });
  readonly captureFailures = new Counter({ name: 'ambit_capture_failures_total', help: 'Attempts to capture a pod that failed', labelNames: ['workload'], registers: [this.registry] });
  /** Each connection's label set, resolved once per distinct set (prom-client hashes labels on every inc). */
  private readonly series = new WeakMap<TrackedConnection, Series>();
  private readonly seriesByKey = new Map<string, Series>();

  constructor(
    private readonly o: {
      cluster: string;
      connections: ConnectionTable;
      /** Gauges read at scrape time. */
      health: () => { capturedPods: number; configVersion: number; controllerConnected: boolean; certificates: number };
      /** Counters kept as plain numbers elsewhere (HBONE pool and server), read at scrape time. */
      counters: () => Record<string, number>;
    },
  ) {
    registerDefaultMetrics(this.registry, 'ambit_agent_');
    const { connections, health, counters } = o;
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
    const gauge = (name: string, help: string, read: () => number) => new Gauge({ name, help, registers: [this.registry], collect() { this.set(read()); } });
    gauge('ambit_agent_captured_pods', 'Pods of this node whose traffic the agent captures', () => health().capturedPods);
    gauge('ambit_agent_config_version', 'The configuration version the agent holds', () => health().configVersion);
    gauge('ambit_agent_controller_connected', '1 while the agent is connected to the controller', () => (health().controllerConnected ? 1 : 0));
    gauge('ambit_agent_workload_certificates', 'Workload certificates the agent holds', () => health().certificates);
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
    const series = this.seriesOf(c);
    this.series.set(c, series);
    series.opened.inc();
  }

  connectionClosed(c: TrackedConnection): void {
    this.flushBytes(c);
    (this.series.get(c) ?? this.seriesOf(c)).closed.inc();
  }

  private flushBytes(c: TrackedConnection): void {
    const series = this.series.get(c);
    if (!series) return;
    const sent = c.bytes.sent();
    const received = c.bytes.received();
    if (sent > c.reportedSent) series.sent.inc(sent - c.reportedSent);
    if (received > c.reportedReceived) series.received.inc(received - c.reportedReceived);
    c.reportedSent = sent;
    c.reportedReceived = received;
  }

  private seriesOf(c: TrackedConnection): Series {
    const w = (p: Peer) => (p.workload ? `${p.workload.namespace}/${p.workload.owner}` : p.ip);
    const key = `${c.reporter} ${w(c.source)} ${c.source.principal ?? ''} ${w(c.destination)} ${c.destination.principal ?? ''} ${c.service ? `${c.service.namespace}/${c.service.name}` : c.destination.ip} ${c.security}`;
    let series = this.seriesByKey.get(key);
    if (!series) {
      const labels = this.labelsOf(c);
      series = { opened: this.opened.labels(labels), closed: this.closed.labels(labels), sent: this.sent.labels(labels), received: this.received.labels(labels) };
      // Bounded: a cluster has far fewer workload pairs; past this, series are made per connection.
      if (this.seriesByKey.size < 10_000) this.seriesByKey.set(key, series);
    }
    return series;
  }

  private labelsOf(c: TrackedConnection): Record<TcpLabel, string> {
    const side = (p: Peer) => {
      const w = p.workload;
      return {
        workload: w ? workloadName(w.owner, w.name) : 'unknown',
        namespace: w?.namespace ?? 'unknown',
        principal: p.principal ? `spiffe://${p.principal}` : 'unknown',
        app: w?.labels?.app ?? 'unknown',
        version: w?.labels?.version ?? 'unknown',
      };
    };
    const s = side(c.source);
    const d = side(c.destination);
    const svc = c.service;
    return {
      reporter: c.reporter,
      source_workload: s.workload,
      source_workload_namespace: s.namespace,
      source_principal: s.principal,
      source_app: s.app,
      source_version: s.version,
      source_cluster: this.o.cluster,
      destination_workload: d.workload,
      destination_workload_namespace: d.namespace,
      destination_principal: d.principal,
      destination_app: d.app,
      destination_version: d.version,
      destination_service: svc ? `${svc.name}.${svc.namespace}.svc.cluster.local` : c.destination.ip,
      destination_service_name: svc?.name ?? 'unknown',
      destination_service_namespace: svc?.namespace ?? 'unknown',
      destination_cluster: this.o.cluster,
      request_protocol: 'tcp',
      response_flags: '-',
      connection_security_policy: c.security,
    };
  }

  /** The HTTP server for Prometheus (not listening yet). */
  createServer(): Server {
    return createServer((req, res) => {
      if (req.url !== '/metrics' && req.url !== '/stats/prometheus') return void res.writeHead(404).end();
      this.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500).end(err.message),
      );
    });
  }
}

/** Istio's workload name: the Deployment's, from the pod's owner (`Deployment/web-v1` gives web-v1). */
export function workloadName(owner: string | undefined, pod: string): string {
  return owner?.split('/')[1] ?? pod;
}
