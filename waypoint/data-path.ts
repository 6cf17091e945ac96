// One event loop's waypoint: HBONE on 15008 from node proxies (proxy/ingress.ts), each HTTP request
// checked against the security policies (security.ts), routed (router.ts) to an endpoint chosen with
// the backend's traffic policy (destinations.ts, upstream/), and sent over HBONE with the waypoint's
// own identity (proxy/upstream.ts); one access line and Istio's metrics per request. The main thread
// runs one (main.ts), and so does each worker thread (workers/worker.ts), each from the certificate
// and configuration snapshots its `source` gives.

import type { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { Logger } from '../shared/log.js';
import type { AccessLog, AccessRecord } from './telemetry/access-log.js';
import type { WaypointMetrics } from './telemetry/metrics.js';
import type { HttpTracer } from '../shared/telemetry/tracing.js';
import { createHboneServer } from '../shared/hbone/server.js';
import { HbonePool } from '../shared/hbone/pool.js';
import { splice } from '../shared/hbone/splice.js';
import type { WaypointExplainRequest, WaypointSnapshot } from '../shared/waypoint/config.js';
import type { WaypointCertificate } from './agent-link.js';
import type { WaypointConfig } from './config.js';
import { WaypointState } from './state.js';
import { Ingress, type TunnelContext } from './proxy/ingress.js';
import { Forwarder, noAffinity } from './proxy/forward.js';
import { Router } from './router.js';
import { Upstreams } from './proxy/upstream.js';
import { Destinations } from './destinations.js';
import { WaypointSecurity } from './security.js';
import { jwksFetcher } from './jwks.js';
import { addressedPod } from './pod-destination.js';
import type { SharedCounters } from './upstream/shared-counters.js';

/** Where a data path gets its identity and configuration: the agent link, or the main thread's copies. */
export interface WaypointSource extends EventEmitter<{ snapshot: [WaypointSnapshot]; certificate: [WaypointCertificate] }> {
  readonly certificate: WaypointCertificate | undefined;
}

export interface DataPathOptions {
  config: WaypointConfig;
  source: WaypointSource;
  log: Logger;
  access: AccessLog;
  metrics: WaypointMetrics;
  tracer: HttpTracer;
  /** The counters the waypoint's event loops share (circuit breakers, rate-limit buckets), when it has workers. */
  shared?: SharedCounters;
}

export interface DataPath {
  readonly state: WaypointState;
  readonly router: Router;
  /** `ambit explain --http` at this waypoint: what its security would decide (security.ts). */
  explain(q: WaypointExplainRequest): ReturnType<WaypointSecurity['explain']>;
  /** Opens 15008 (SO_REUSEPORT: every event loop of the waypoint listens on it). */
  listen(): Promise<void>;
  /** Stops taking tunnels, lets open ones run for up to `graceMs`, then ends everything. */
  close(graceMs: number): Promise<void>;
}

export function createDataPath(o: DataPathOptions): DataPath {
  const { config, source, log, metrics, access } = o;
  const state = new WaypointState();
  /** This waypoint's Gateway: the pods bound to it are the ones it takes pod-addressed traffic for. */
  const self = { namespace: config.namespace, name: config.gateway };
  source.on('snapshot', (s) => {
    state.apply(s);
    log.debug({ version: s.version }, 'configuration applied');
  });
  const pool = new HbonePool({ trustBundle: () => state.trustBundle });
  const upstreams = new Upstreams({ pool, state, certificate: () => source.certificate, trustDomain: config.trustDomain, ownIp: config.podIp });
  metrics.watchUpstreams(upstreams.counters);

  const destinations = new Destinations(state, { rootNamespace: config.rootNamespace, waypointNamespace: config.namespace, log: log.child({ component: 'upstream' }), ...(o.shared ? { shared: o.shared } : {}) });
  const router = new Router(state, log.child({ component: 'routing' }), (ns, name) => destinations.fault(ns, name));

  const security = new WaypointSecurity({
    waypoint: `${config.namespace}/${config.gateway}`,
    rootNamespace: config.rootNamespace,
    state,
    log: log.child({ component: 'security' }),
    fetchJwks: jwksFetcher(state, destinations, upstreams, () => (source.certificate ? Promise.resolve() : new Promise((resolve) => source.once('certificate', () => resolve())))),
    onRefusal: (kind, r) => metrics.refusals.inc({ kind, policy: r.policy ?? '', response_code: String(r.status) }),
    ...(o.shared ? { shared: o.shared } : {}),
  });

  const forwarder = new Forwarder({
    upstreams,
    admit: (req, ctx) => security.admit(req, ctx),
    limit: (service, route, ctx) => security.limit(service, route, ctx),
    plan: (req, ctx) => router.plan(req, ctx),
    destinations,
    workloadAt: (ip) => state.workloadAt(ip),
    tracer: o.tracer,
    record: (r) => {
      // Once per request: plain assignments, no spread objects (this showed in profiles).
      const ep = r.endpoint;
      const record: AccessRecord = {
        sourcePrincipal: r.sourcePrincipal,
        // A pod addressed directly has no destination_service, as in Istio.
        service: addressedPod(r.ctx.service) ? undefined : (ep?.service ?? r.ctx.service),
        protocol: r.protocol,
        responseCode: r.status,
        responseFlags: r.flags,
        durationMs: r.durationMs,
        requestBytes: r.requestBytes,
        responseBytes: r.responseBytes,
        security: 'mutual_tls',
        startTime: r.startTime,
        method: r.method,
        path: r.path,
        httpVersion: r.httpVersion,
        authority: r.authority,
      };
      if (r.source) record.source = r.source;
      if (ep?.workload) record.destination = ep.workload;
      if (r.grpcStatus !== undefined) record.grpcStatus = r.grpcStatus;
      if (r.requestId) record.requestId = r.requestId;
      if (r.route) record.routeName = r.route;
      if (ep) {
        record.upstreamHost = ep.address;
        record.servicePort = r.ctx.port;
      }
      if (r.ctx.sourceIp) record.downstreamRemoteAddress = r.ctx.sourceIp;
      if (r.span?.traceId) record.traceId = r.span.traceId;
      metrics.record(record);
      access.write(record);
    },
  });
  const tcp = (stream: Duplex, ctx: TunnelContext) => {
    const ep = destinations.choose(ctx.service, ctx.port, { ...noAffinity, ...(ctx.sourceIp ? { sourceIp: ctx.sourceIp } : {}) })?.endpoint;
    if (!ep) return void stream.destroy();
    upstreams.tunnel(ep).then(
      (up) =>
        splice(stream, up, () => {
          stream.destroy();
          up.destroy();
        }),
      () => stream.destroy(),
    );
  };
  const ingress = new Ingress({ request: (req, res, ctx) => forwarder.handle(req, res, ctx), upgrade: (req, socket, head, ctx) => forwarder.upgrade(req, socket, head, ctx), tcp }, (ip, port) => state.serviceAt(ip, port) ?? state.podAt(ip, port, self));
  const hbone = createHboneServer({
    secureContext: () => source.certificate?.secureContext,
    trustBundle: () => state.trustBundle,
    onTunnel: (t) => ingress.onTunnel(t),
    log: log.child({ component: 'hbone' }),
  });

  return {
    state,
    router,
    explain: (q) =>
      security.explain(
        q,
        (ns, name) => state.service(ns, name),
        (ip, port) => state.podAt(ip, port, self),
      ),
    async listen() {
      await hbone.listen(config.hbonePort, '0.0.0.0');
    },
    async close(graceMs) {
      await hbone.close(graceMs);
      ingress.close();
      upstreams.close();
      destinations.close();
      security.close();
      pool.close();
    },
  };
}
