// The waypoint's access log: one JSON line per request, with the fields of Istio's default JSON
// access log (Envoy's command operators, the same keys, null where Envoy writes null), plus what
// Istio's waypoints leave out: who the client and the backend really were, and the trace. Its own
// stream, which the process passes in, written in batches (line-buffer.ts); the metrics of the same
// request are metrics.ts's.

import { principal as principalOf } from '../../shared/identity/spiffe.js';
import { serviceHostname, type WorkloadEntry } from '../../shared/protocol/config.js';
import type { RequestRecord } from './metrics.js';
import { LineBuffer, type LineDestination } from './line-buffer.js';

/** A request as its access line tells it: the metrics' record and what only the log shows. */
export interface AccessRecord extends RequestRecord {
  /** When the request's first byte arrived, milliseconds since the epoch. */
  startTime: number;
  method: string;
  /** The path as the client sent it, before any URL rewrite (Envoy's X-ENVOY-ORIGINAL-PATH?:PATH). */
  path: string;
  /** Envoy's %PROTOCOL%: `HTTP/1.1`, `HTTP/2`. */
  httpVersion: string;
  /** :authority, or Host. */
  authority: string;
  requestId?: string;
  userAgent?: string;
  forwardedFor?: string;
  /** The route that matched: `httproute/<ns>/<name>/rule/<i>/match/<j>`, as Istio names Gateway API routes. */
  routeName?: string;
  /** The backend's `ip:port` the request went to last. */
  upstreamHost?: string;
  /** The Service port the request was addressed to, and the DestinationRule subset, for upstream_cluster. */
  servicePort?: number;
  subset?: string;
  /** Time the backend took to answer (Envoy's x-envoy-upstream-service-time). */
  upstreamServiceTimeMs?: number;
  /** Who set the response code and why: `via_upstream`, `route_not_found`, `rbac_access_denied_matched_policy[...]`. */
  responseCodeDetails?: string;
  upstreamTransportFailureReason?: string;
  /** The client's `ip:port` and the address it reached, as the HBONE CONNECT said. */
  downstreamRemoteAddress?: string;
  downstreamLocalAddress?: string;
  /** The trace the request belongs to (32 hex digits), when tracing is on or the client sent one. */
  traceId?: string;
}

/** Istio's cluster name for a Service port and subset: `outbound|9080|v1|reviews.shop.svc.cluster.local`. */
export function upstreamCluster(service: { name: string; namespace: string }, port: number, subset = ''): string {
  return `outbound|${port}|${subset}|${serviceHostname(service)}`;
}

export class AccessLog {
  private readonly lines: LineBuffer;
  private readonly trustDomain: string;
  /**
   * By workload entry, which lives as long as the configuration that made it: its `namespace/name`
   * as JSON, and the principal of a backend.
   */
  private readonly names = new WeakMap<WorkloadEntry, string>();
  private readonly principals = new WeakMap<WorkloadEntry, string>();
  /** The last start_time written and its text: requests of the same millisecond share it. */
  private lastStart = NaN;
  private lastStartText = '';

  /**
   * `destination` is the access log's own stream (stdout in a pod, a file, a Writable in tests);
   * the trust domain names a backend's identity when the record does not.
   */
  constructor(destination: LineDestination, o: { trustDomain?: string; maxWaitingChars?: number } = {}) {
    this.trustDomain = o.trustDomain ?? 'cluster.local';
    this.lines = new LineBuffer(destination, o.maxWaitingChars);
  }

  /** Lines dropped because the stream stayed busy while too many waited (ambit_waypoint_access_log_dropped_total). */
  get dropped(): number {
    return this.lines.dropped;
  }

  /** Lines another thread built (each ending with its newline), written in turn with this one's. */
  writeLines(text: string): void {
    this.lines.push(text);
  }

  /**
   * One line, built by hand in the order and forms pino wrote them (pino's serializer took a fifth
   * of the waypoint's busy CPU); a string is escaped only when it holds something JSON must escape.
   */
  write(r: AccessRecord): void {
    const svc = r.service;
    if (r.startTime !== this.lastStart) {
      this.lastStart = r.startTime;
      this.lastStartText = new Date(r.startTime).toISOString();
    }
    const dst = r.destination;
    const dstPrincipal = r.destinationPrincipal ? principal(r.destinationPrincipal) : dst ? this.principalOf(dst) : null;
    this.lines.push(
      '{"log":"access","start_time":"' + this.lastStartText +
        '","method":' + str(r.method) +
        ',"path":' + str(r.path) +
        ',"protocol":' + str(r.httpVersion) +
        ',"response_code":' + num(r.responseCode) +
        ',"response_flags":' + str(r.responseFlags) +
        ',"response_code_details":' + opt(r.responseCodeDetails) +
        ',"bytes_received":' + num(r.requestBytes) +
        ',"bytes_sent":' + num(r.responseBytes) +
        ',"duration":' + num(Math.round(r.durationMs)) +
        ',"upstream_service_time":' + (r.upstreamServiceTimeMs === undefined ? 'null' : str(String(Math.round(r.upstreamServiceTimeMs)))) +
        ',"x_forwarded_for":' + opt(r.forwardedFor) +
        ',"user_agent":' + opt(r.userAgent) +
        ',"request_id":' + opt(r.requestId) +
        ',"authority":' + str(r.authority) +
        ',"upstream_host":' + opt(r.upstreamHost) +
        ',"upstream_cluster":' + (svc && r.servicePort !== undefined ? str(upstreamCluster(svc, r.servicePort, r.subset)) : 'null') +
        ',"upstream_transport_failure_reason":' + opt(r.upstreamTransportFailureReason) +
        ',"downstream_local_address":' + opt(r.downstreamLocalAddress) +
        ',"downstream_remote_address":' + opt(r.downstreamRemoteAddress) +
        ',"route_name":' + opt(r.routeName) +
        // What Istio's waypoint logs do not say; keys and forms as the node agent's access log writes them.
        ',"reporter":"waypoint","source_workload":' + this.who(r.source) +
        ',"source_principal":' + (r.sourcePrincipal ? str(principal(r.sourcePrincipal)) : 'null') +
        ',"destination_workload":' + this.who(dst) +
        ',"destination_principal":' + (dstPrincipal === null ? 'null' : str(dstPrincipal)) +
        ',"destination_service":' + (svc ? str(`${svc.namespace}/${svc.name}`) : 'null') +
        ',"request_protocol":' + str(r.protocol) +
        ',"grpc_status":' + (r.grpcStatus === undefined ? 'null' : num(r.grpcStatus)) +
        ',"connection_security_policy":' + str(r.security ?? 'mutual_tls') +
        ',"trace_id":' + opt(r.traceId) +
        '}\n',
    );
  }

  /** Writes what waits now; resolves once the stream has taken it. */
  flush(): Promise<void> {
    return this.lines.flush();
  }

  /** Writes what waits and ends the stream, for the process's exit: no line is lost. */
  close(): Promise<void> {
    return this.lines.close();
  }

  private who(w: WorkloadEntry | undefined): string {
    if (!w) return 'null';
    let name = this.names.get(w);
    if (name === undefined) this.names.set(w, (name = str(`${w.namespace}/${w.name}`)));
    return name;
  }

  private principalOf(w: WorkloadEntry): string {
    let p = this.principals.get(w);
    if (p === undefined) this.principals.set(w, (p = principalOf({ trustDomain: this.trustDomain, namespace: w.namespace, serviceAccount: w.serviceAccount })));
    return p;
  }
}

/**
 * Whether JSON must escape something in `s`: a quote, a backslash, a control character, or a
 * surrogate (JSON.stringify writes a lone one as an escape). Most values have none of them.
 */
function needsEscape(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return true;
  }
  return false;
}

function str(s: string): string {
  return needsEscape(s) ? JSON.stringify(s) : '"' + s + '"';
}

function opt(s: string | undefined): string {
  return s === undefined ? 'null' : str(s);
}

/** A number as JSON.stringify writes it: what is not finite is null. */
function num(n: number): string {
  return Number.isFinite(n) ? String(n) : 'null';
}

/** Istio's principal form, as the agent's access log and AuthorizationPolicy write it: no scheme. */
function principal(p: string): string {
  return p.startsWith('spiffe://') ? p.slice(9) : p;
}
