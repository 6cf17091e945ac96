// The waypoint's access log: one JSON line per request, with the fields of Istio's default JSON
// access log (Envoy's command operators, the same keys, null where Envoy writes null), plus what
// Istio's waypoints leave out: who the client and the backend really were, and the trace. Its own
// pino stream, which the process passes in; the metrics of the same request are metrics.ts's.

import { pino, type DestinationStream, type Logger } from 'pino';
import { principal as principalOf } from '../../shared/identity/spiffe.js';
import { serviceHostname, type WorkloadEntry } from '../../shared/protocol/config.js';
import type { RequestRecord } from './metrics.js';

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
  private readonly logger: Logger;
  private readonly trustDomain: string;

  /**
   * `destination` is the access log's own stream (stdout in a pod, a file, a Writable in tests);
   * the trust domain names a backend's identity when the record does not.
   */
  constructor(destination: DestinationStream, o: { trustDomain?: string } = {}) {
    this.trustDomain = o.trustDomain ?? 'cluster.local';
    this.logger = pino(
      {
        base: null,
        // start_time carries the time; Envoy's lines have neither level nor msg. Pino writes its level
        // key first and emits invalid JSON when that formatter returns nothing, so it names the stream.
        timestamp: false,
        formatters: { level: () => ({ log: 'access' }) },
      },
      destination,
    );
  }

  write(r: AccessRecord): void {
    const svc = r.service;
    this.logger.info({
      start_time: new Date(r.startTime).toISOString(),
      method: r.method,
      path: r.path,
      protocol: r.httpVersion,
      response_code: r.responseCode,
      response_flags: r.responseFlags,
      response_code_details: r.responseCodeDetails ?? null,
      bytes_received: r.requestBytes,
      bytes_sent: r.responseBytes,
      duration: Math.round(r.durationMs),
      upstream_service_time: r.upstreamServiceTimeMs === undefined ? null : String(Math.round(r.upstreamServiceTimeMs)),
      x_forwarded_for: r.forwardedFor ?? null,
      user_agent: r.userAgent ?? null,
      request_id: r.requestId ?? null,
      authority: r.authority,
      upstream_host: r.upstreamHost ?? null,
      upstream_cluster: svc && r.servicePort !== undefined ? upstreamCluster(svc, r.servicePort, r.subset) : null,
      upstream_transport_failure_reason: r.upstreamTransportFailureReason ?? null,
      downstream_local_address: r.downstreamLocalAddress ?? null,
      downstream_remote_address: r.downstreamRemoteAddress ?? null,
      route_name: r.routeName ?? null,
      // What Istio's waypoint logs do not say; keys and forms as the node agent's access log writes them.
      reporter: 'waypoint',
      source_workload: who(r.source),
      source_principal: principal(r.sourcePrincipal),
      destination_workload: who(r.destination),
      destination_principal: principal(r.destinationPrincipal) ?? (r.destination ? principalOf({ trustDomain: this.trustDomain, namespace: r.destination.namespace, serviceAccount: r.destination.serviceAccount }) : null),
      destination_service: svc ? `${svc.namespace}/${svc.name}` : null,
      request_protocol: r.protocol,
      grpc_status: r.grpcStatus ?? null,
      connection_security_policy: r.security ?? 'mutual_tls',
      trace_id: r.traceId ?? null,
    });
  }

  /** Writes what the stream holds (pino buffers asynchronous destinations). */
  flush(): Promise<void> {
    return new Promise((resolve, reject) => this.logger.flush((err) => (err ? reject(err) : resolve())));
  }
}

function who(w: WorkloadEntry | undefined): string | null {
  return w ? `${w.namespace}/${w.name}` : null;
}

/** Istio's principal form, as the agent's access log and AuthorizationPolicy write it: no scheme. */
function principal(p: string | undefined): string | null {
  if (!p) return null;
  return p.startsWith('spiffe://') ? p.slice(9) : p;
}
