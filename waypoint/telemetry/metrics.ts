// The waypoint's Istio HTTP metrics (istio_requests_total, istio_request_duration_milliseconds,
// istio_request_bytes, istio_response_bytes) with Istio's names, buckets and labels for
// reporter="waypoint", so Istio's dashboards and Kiali read them. One record per request, written
// by the proxy once the response ends; serving /metrics is the waypoint process's (createServer there).
// The waypoint's own counters (upstream resets) are read from the data path's plain numbers at scrape.

import { Counter, Gauge, Registry } from 'prom-client';
import { registerDefaultMetrics } from '../../shared/metrics.js';
import { serviceHostname, type WorkloadEntry } from '../../shared/protocol/config.js';
import { principalLabel, trafficLabels, unknown, WorkloadLabelCache } from '../../shared/telemetry/labels.js';
import { Distribution, type LabelSet, registerCounter, registerHistogram } from './exposition.js';

/**
 * Envoy's default histogram buckets (source/common/stats/histogram_impl.cc, defaultBuckets), which
 * Istio keeps for all four HTTP histograms, milliseconds and bytes alike, unless a pod's
 * `sidecar.istio.io/statsHistogramBuckets` annotation changes them.
 */
export const istioBuckets: readonly number[] = Object.freeze([0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000]);

// Istio's order (istio/proxy istio_stats), so a scrape reads the same side by side with Envoy's.
export const httpLabels = [...trafficLabels, 'response_code', 'grpc_response_status', 'response_flags', 'connection_security_policy'] as const;
export type HttpLabel = (typeof httpLabels)[number];

/** One request as the waypoint saw it, written once its response has ended (or failed). */
export interface RequestRecord {
  /** The client's workload, when the waypoint knows it (by the HBONE peer's address or identity). */
  source?: WorkloadEntry;
  /** The identity the client proved over mutual TLS, with or without `spiffe://`. */
  sourcePrincipal?: string;
  /** The backend the request went to last; absent when none was chosen (no route, no healthy host). */
  destination?: WorkloadEntry;
  /** The backend's identity; derived from `destination` when absent. */
  destinationPrincipal?: string;
  /** The Service the request was addressed to. */
  service?: { name: string; namespace: string };
  protocol: 'http' | 'grpc';
  /** The HTTP status sent to the client; 0 when none was (Envoy's convention, e.g. a downstream reset). */
  responseCode: number;
  /** grpc-status of a gRPC response (trailer or header); absent for HTTP. */
  grpcStatus?: number;
  /** `-`, or Envoy's flags joined by commas as Envoy writes them: UO, UF, URX, UT, UH, NR, DI, FI, DC, UC, RL ... */
  responseFlags: string;
  /** From the request's first byte to the response's last, in milliseconds. */
  durationMs: number;
  /** Body bytes received from the client and sent to it. */
  requestBytes: number;
  responseBytes: number;
  /** How the client reached the waypoint; HBONE is mutual TLS, the default. */
  security?: 'mutual_tls' | 'none';
}

/** One label set's numbers. */
interface Series {
  readonly labels: LabelSet;
  requests: number;
  readonly duration: Distribution;
  readonly requestBytes: Distribution;
  readonly responseBytes: Distribution;
}

/** A cache level keyed by workload entry: dropped with the entry when the configuration replaces it. */
type ByEntry = WeakMap<object, Map<unknown, unknown>>;
const noWorkload = {};

/** Past this many label sets, a request with a new one takes the slow path (its key string) instead of growing the cache. */
const maxCachedSeries = 10_000;

const noLabels: LabelSet = {};

export class WaypointMetrics {
  readonly registry = new Registry();
  private readonly sides: WorkloadLabelCache;
  private readonly cluster: string;
  /** Every series, by its label values; what a scrape reads. */
  private readonly series = new Map<string, Series>();
  /**
   * The fast path: source entry, source principal, destination entry, destination principal,
   * service namespace and name, response flags, then a number for the code, gRPC status, protocol
   * and security. Map lookups of strings the request already holds, so a request allocates nothing.
   */
  private readonly cache: ByEntry = new WeakMap();

  /**
   * Requests the waypoint's security refused, by what refused them (`authn`: a JWT, `authz`: an
   * AuthorizationPolicy or an unnormalizable path, `ratelimit`) and the policy: istio_requests_total
   * has them by response code only.
   */
  readonly refusals: Counter<'kind' | 'policy' | 'response_code'>;

  /** Requests this event loop handled (ambit_waypoint_thread_requests_total: how workers share the load). */
  private handled = 0;

  /**
   * `thread`: this event loop's number (0 the main thread, workers from 1). `processMetrics: false`
   * in a worker thread: the process's CPU, memory and event loop are the main thread's to report.
   */
  constructor(o: { cluster?: string; trustDomain?: string; thread?: number; processMetrics?: boolean } = {}) {
    this.refusals = new Counter({ name: 'ambit_waypoint_policy_refusals_total', help: 'Requests refused by the waypoint\'s JWT checks, authorization policies and rate limits', labelNames: ['kind', 'policy', 'response_code'], registers: [this.registry] });
    // Istio's defaults: its cluster ID when none is configured, and its trust domain.
    this.cluster = o.cluster ?? 'Kubernetes';
    this.sides = new WorkloadLabelCache({ cluster: this.cluster, trustDomain: o.trustDomain ?? 'cluster.local' });
    if (o.processMetrics !== false) registerDefaultMetrics(this.registry, 'ambit_waypoint_', 'ambit-waypoint');
    const all = () => this.series.values();
    const thread: LabelSet = { thread: String(o.thread ?? 0) };
    registerCounter(this.registry, {
      name: 'ambit_waypoint_thread_requests_total',
      help: "Requests handled by each of the waypoint's event loops (thread 0 is the main thread, the others its workers)",
      series: () => [[thread, this.handled]],
    });
    registerCounter(this.registry, {
      name: 'istio_requests_total',
      help: 'Requests the waypoint handled, by outcome',
      series: () => map(all(), (s) => [s.labels, s.requests]),
    });
    registerHistogram(this.registry, {
      name: 'istio_request_duration_milliseconds',
      help: 'Time from the request to the end of its response, in milliseconds',
      bounds: istioBuckets,
      series: () => map(all(), (s) => [s.labels, s.duration]),
    });
    registerHistogram(this.registry, {
      name: 'istio_request_bytes',
      help: 'Request body sizes, in bytes',
      bounds: istioBuckets,
      series: () => map(all(), (s) => [s.labels, s.requestBytes]),
    });
    registerHistogram(this.registry, {
      name: 'istio_response_bytes',
      help: 'Response body sizes, in bytes',
      bounds: istioBuckets,
      series: () => map(all(), (s) => [s.labels, s.responseBytes]),
    });
  }

  /**
   * Exports the upstreams' counters, read at each scrape: resets of the tunnels to backends, the
   * number to watch when a node agent cuts the waypoint's HBONE session as a stream flood.
   */
  watchUpstreams(counters: { readonly resets: number }): void {
    this.counterOf('ambit_waypoint_upstream_resets_total', 'HBONE tunnels to backends that ended in an RST_STREAM with an error code, sent or received', () => counters.resets);
  }

  /**
   * Exports what fills the shared counters of a waypoint with workers: keys this event loop could not
   * place once the table was full (their limits then count per loop), and, from the main thread
   * alone (`table`), the slots claimed and the table's size.
   */
  watchShared(shared: { readonly pastFull: number; used(): number; readonly capacity: number }, table: boolean): void {
    this.counterOf('ambit_waypoint_shared_keys_past_full_total', "Keys (destinations, rate-limit buckets, endpoints) this waypoint's shared counters had no room for, counted per event loop since", () => shared.pastFull);
    if (!table) return;
    new Gauge({ name: 'ambit_waypoint_shared_slots', help: "Slots of the waypoint's shared counters: claimed (never freed) and in all", labelNames: ['state'], registers: [this.registry], collect() {
      this.set({ state: 'claimed' }, shared.used());
      this.set({ state: 'total' }, shared.capacity);
    } });
  }

  /** Exports the access log's dropped lines (its stream stayed busy while too many waited), read at each scrape. */
  watchAccessLog(log: { readonly dropped: number }): void {
    this.counterOf('ambit_waypoint_access_log_dropped_total', 'Access log lines dropped because stdout stayed busy while 16 MiB of lines waited for it', () => log.dropped);
  }

  /** A counter without labels whose value `read` gives at each scrape. */
  private counterOf(name: string, help: string, read: () => number): void {
    registerCounter(this.registry, { name, help, series: () => [[noLabels, read()]] });
  }

  record(r: RequestRecord): void {
    this.handled++;
    const s = this.seriesOf(r);
    s.requests++;
    s.duration.observe(r.durationMs);
    s.requestBytes.observe(r.requestBytes);
    s.responseBytes.observe(r.responseBytes);
  }

  /** How many label sets the metrics hold (each a series of every metric). */
  get seriesCount(): number {
    return this.series.size;
  }

  private seriesOf(r: RequestRecord): Series {
    // grpc-status is 0..16 and 31 stands for none; security and protocol take a bit each. A status
    // past 30 would share a number with another outcome, so it takes the slow path.
    const grpc = r.grpcStatus ?? 31;
    if (!(Number.isInteger(grpc) && grpc >= 0 && (grpc <= 30 || r.grpcStatus === undefined) && Number.isInteger(r.responseCode))) return this.seriesByLabels(this.labelsOf(r));
    const outcome = ((r.responseCode * 32 + grpc) * 2 + (r.protocol === 'grpc' ? 1 : 0)) * 2 + (r.security === 'none' ? 1 : 0);
    let level = this.cache.get(r.source ?? noWorkload);
    if (level) {
      const byDestination = level.get(r.sourcePrincipal) as ByEntry | undefined;
      const l3 = byDestination?.get(r.destination ?? noWorkload);
      const l4 = l3?.get(r.destinationPrincipal) as Map<unknown, unknown> | undefined;
      const l5 = l4?.get(r.service?.namespace) as Map<unknown, unknown> | undefined;
      const l6 = l5?.get(r.service?.name) as Map<unknown, unknown> | undefined;
      const byOutcome = l6?.get(r.responseFlags) as Map<number, Series> | undefined;
      const hit = byOutcome?.get(outcome);
      if (hit) return hit;
    }
    // A miss: find or make the series by its label values, then remember the path to it.
    const series = this.seriesByLabels(this.labelsOf(r));
    if (this.series.size <= maxCachedSeries) {
      if (!level) this.cache.set(r.source ?? noWorkload, (level = new Map()));
      const byDestination = child(level, r.sourcePrincipal, () => new WeakMap()) as ByEntry;
      let l3 = byDestination.get(r.destination ?? noWorkload);
      if (!l3) byDestination.set(r.destination ?? noWorkload, (l3 = new Map()));
      const l4 = child(l3, r.destinationPrincipal, () => new Map()) as Map<unknown, unknown>;
      const l5 = child(l4, r.service?.namespace, () => new Map()) as Map<unknown, unknown>;
      const l6 = child(l5, r.service?.name, () => new Map()) as Map<unknown, unknown>;
      (child(l6, r.responseFlags, () => new Map()) as Map<number, Series>).set(outcome, series);
    }
    return series;
  }

  /** The series of a label set, made on first use; the key is the values themselves, so none that varies is missed. */
  private seriesByLabels(labels: Record<HttpLabel, string>): Series {
    const key = httpLabels.map((l) => labels[l]).join('\u0000');
    let series = this.series.get(key);
    if (!series) {
      series = { labels, requests: 0, duration: new Distribution(istioBuckets), requestBytes: new Distribution(istioBuckets), responseBytes: new Distribution(istioBuckets) };
      this.series.set(key, series);
    }
    return series;
  }

  /** Istio's labels of a request at a waypoint; `unknown` for whatever the waypoint does not know. */
  private labelsOf(r: RequestRecord): Record<HttpLabel, string> {
    const s = this.sides.of(r.source);
    const d = this.sides.of(r.destination);
    const svc = r.service;
    const mtls = r.security !== 'none';
    return {
      reporter: 'waypoint',
      source_workload: s.workload,
      source_canonical_service: s.canonicalService,
      source_canonical_revision: s.canonicalRevision,
      source_workload_namespace: s.namespace,
      // Only an identity that mutual TLS proved, as the node agent does.
      source_principal: mtls ? principalLabel(r.sourcePrincipal) : unknown,
      // Istio fills app and version with the canonical service and revision.
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
      destination_principal: r.destinationPrincipal ? principalLabel(r.destinationPrincipal) : d.principal,
      destination_app: d.canonicalService,
      destination_version: d.canonicalRevision,
      destination_cluster: d.cluster,
      request_protocol: r.protocol,
      response_code: String(r.responseCode),
      // Istio writes the status of gRPC requests only, and an empty value for the rest.
      grpc_response_status: r.protocol === 'grpc' && r.grpcStatus !== undefined ? String(r.grpcStatus) : '',
      response_flags: r.responseFlags,
      connection_security_policy: mtls ? 'mutual_tls' : 'none',
    };
  }
}

function child(m: Map<unknown, unknown>, key: unknown, make: () => unknown): unknown {
  let next = m.get(key);
  if (next === undefined) m.set(key, (next = make()));
  return next;
}

function* map<T, U>(items: Iterable<T>, f: (t: T) => U): Iterable<U> {
  for (const t of items) yield f(t);
}
