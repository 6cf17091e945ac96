// The waypoint process (`ambit waypoint run --gateway NAME`, in its pod): its identity and
// configuration come from its node agent (agent-link.ts); it takes HBONE on 15008 from node proxies
// (proxy/ingress.ts), checks each HTTP request against its security policies (security.ts), routes it
// (routing/) to an endpoint chosen with the backend's traffic policy (upstream/), and sends it over
// HBONE with its own identity (proxy/upstream.ts).
// Istio's L7 metrics are on 15020, one access line per request on stdout.

import { createServer } from 'node:http';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import pino from 'pino';
import { createLogger } from '../shared/log.js';
import { metricsServer } from '../shared/metrics.js';
import { AccessLog, type AccessRecord } from './telemetry/access-log.js';
import { WaypointMetrics } from './telemetry/metrics.js';
import { createTracer } from '../shared/telemetry/tracing.js';
import { errorMessage } from '../shared/errors.js';
import { createHboneServer } from '../shared/hbone/server.js';
import { HbonePool } from '../shared/hbone/pool.js';
import { splice } from '../shared/hbone/splice.js';
import { AgentLink } from './agent-link.js';
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

export async function runWaypoint(config: WaypointConfig): Promise<void> {
  const log = createLogger('waypoint', config.logLevel).child({ waypoint: `${config.namespace}/${config.gateway}`, pod: config.podName });
  // The access log is its own stream (stdout), one JSON line per request, apart from the waypoint's log.
  const access = new AccessLog(pino.destination({ dest: 1, sync: false }), { trustDomain: config.trustDomain });
  const metrics = new WaypointMetrics({ cluster: config.clusterName, trustDomain: config.trustDomain });
  const tracer = await createTracer({ ...(config.otlpTracesEndpoint ? { endpoint: config.otlpTracesEndpoint } : {}), serviceName: `${config.gateway}.${config.namespace}`, namespace: config.namespace });
  const state = new WaypointState();
  /** This waypoint's Gateway: the pods bound to it are the ones it takes pod-addressed traffic for. */
  const self = { namespace: config.namespace, name: config.gateway };
  const link = new AgentLink({
    identity: { trustDomain: config.trustDomain, namespace: config.namespace, serviceAccount: config.serviceAccount },
    log: log.child({ component: 'agent-link' }),
    explain: (q): ReturnType<WaypointSecurity['explain']> =>
      security.explain(
        q,
        (ns, name) => state.service(ns, name),
        (ip, port) => state.podAt(ip, port, self),
      ),
  });
  link.on('snapshot', (s) => {
    state.apply(s);
    log.debug({ version: s.version }, 'configuration applied');
  });
  const pool = new HbonePool({ trustBundle: () => state.trustBundle });
  const upstreams = new Upstreams({ pool, state, certificate: () => link.certificate, trustDomain: config.trustDomain, ownIp: config.podIp });
  metrics.watchUpstreams(upstreams.counters);

  const destinations = new Destinations(state, { rootNamespace: config.rootNamespace, waypointNamespace: config.namespace, log: log.child({ component: 'upstream' }) });
  const router = new Router(state, log.child({ component: 'routing' }), (ns, name) => destinations.fault(ns, name));

  const security = new WaypointSecurity({
    waypoint: `${config.namespace}/${config.gateway}`,
    rootNamespace: config.rootNamespace,
    state,
    log: log.child({ component: 'security' }),
    fetchJwks: jwksFetcher(state, destinations, upstreams, () => (link.certificate ? Promise.resolve() : new Promise((resolve) => link.once('certificate', () => resolve())))),
    onRefusal: (kind, r) => metrics.refusals.inc({ kind, policy: r.policy ?? '', response_code: String(r.status) }),
  });

  const forwarder = new Forwarder({
    upstreams,
    admit: (req, ctx) => security.admit(req, ctx),
    limit: (service, route, ctx) => security.limit(service, route, ctx),
    plan: (req, ctx) => router.plan(req, ctx),
    destinations,
    workloadAt: (ip) => state.workloadAt(ip),
    tracer,
    record: (o) => {
      // Once per request: plain assignments, no spread objects (this showed in profiles).
      const ep = o.endpoint;
      const record: AccessRecord = {
        sourcePrincipal: o.sourcePrincipal,
        // A pod addressed directly has no destination_service, as in Istio.
        service: addressedPod(o.ctx.service) ? undefined : (ep?.service ?? o.ctx.service),
        protocol: o.protocol,
        responseCode: o.status,
        responseFlags: o.flags,
        durationMs: o.durationMs,
        requestBytes: o.requestBytes,
        responseBytes: o.responseBytes,
        security: 'mutual_tls',
        startTime: o.startTime,
        method: o.method,
        path: o.path,
        httpVersion: o.httpVersion,
        authority: o.authority,
      };
      if (o.source) record.source = o.source;
      if (ep?.workload) record.destination = ep.workload;
      if (o.grpcStatus !== undefined) record.grpcStatus = o.grpcStatus;
      if (o.requestId) record.requestId = o.requestId;
      if (o.route) record.routeName = o.route;
      if (ep) {
        record.upstreamHost = ep.address;
        record.servicePort = o.ctx.port;
      }
      if (o.ctx.sourceIp) record.downstreamRemoteAddress = o.ctx.sourceIp;
      if (o.span?.traceId) record.traceId = o.span.traceId;
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
    secureContext: () => link.certificate?.secureContext,
    trustBundle: () => state.trustBundle,
    onTunnel: (t) => ingress.onTunnel(t),
    log: log.child({ component: 'hbone' }),
  });

  // 15021, as Istio's: readiness, and the configuration version in force (what `ambit demo` and the
  // tests wait for after an apply, since the agents' acknowledgement does not cover their waypoints).
  const ready = createServer((req, res) => {
    const ok = link.certificate !== undefined && state.version >= 0;
    if (req.url === '/config') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ version: state.version, problems: router.problems() }));
    }
    res.writeHead(ok ? 200 : 503).end(ok ? 'ready\n' : 'not ready: waiting for the certificate and configuration from the node agent\n');
  });
  ready.listen(15021);
  const metricsHttp = metricsServer(metrics.registry);
  metricsHttp.listen(config.metricsPort);

  link.start();
  // Serve only with an identity and a configuration: a tunnel before them could not be routed.
  await Promise.all([link.certificate ? undefined : once(link, 'certificate'), state.version >= 0 ? undefined : once(state, 'changed')]);
  await hbone.listen(config.hbonePort, '0.0.0.0');
  log.info({ hbone: config.hbonePort }, 'waypoint ready');

  const shutdown = async (signal: string) => {
    log.info({ signal }, 'waypoint stopping');
    link.close();
    ready.close();
    metricsHttp.close();
    await hbone.close(5000);
    await tracer.shutdown();
    ingress.close();
    upstreams.close();
    destinations.close();
    security.close();
    pool.close();
    // The last requests' lines are still in the access log's buffer.
    await access.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM').catch((err) => log.error({ err: errorMessage(err) }, 'shutdown failed')));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}
