// The waypoint process (`ambit waypoint run --gateway NAME [--workers N]`, in its pod): its identity
// and configuration come from its node agent (agent-link.ts); its data path (data-path.ts) takes HBONE
// on 15008 from node proxies, checks, routes and forwards each request over HBONE with its own
// identity. With workers, each worker thread runs a data path too (workers/), on copies of the main
// thread's certificate and configuration, sharing circuit breakers, rate limits and outlier detection
// (upstream/shared-counters.ts). The main thread keeps readiness on 15021, Istio's L7 metrics on
// 15020 (the workers' summed in) and the access log on stdout (the workers' lines sent to it).

import { createServer } from 'node:http';
import { once } from 'node:events';
import pino from 'pino';
import { createLogger } from '../shared/log.js';
import { metricsServer, workersMetricsServer } from '../shared/metrics.js';
import { AccessLog } from './telemetry/access-log.js';
import { WaypointMetrics } from './telemetry/metrics.js';
import { createTracer } from '../shared/telemetry/tracing.js';
import { errorMessage } from '../shared/errors.js';
import { AgentLink } from './agent-link.js';
import type { WaypointConfig } from './config.js';
import { createDataPath } from './data-path.js';
import { WaypointWorkers } from './workers/host.js';
import { SharedCounters } from './upstream/shared-counters.js';

export async function runWaypoint(config: WaypointConfig): Promise<void> {
  const log = createLogger('waypoint', config.logLevel).child({ waypoint: `${config.namespace}/${config.gateway}`, pod: config.podName });
  // The access log is its own stream (stdout), one JSON line per request, apart from the waypoint's log.
  const access = new AccessLog(pino.destination({ dest: 1, sync: false }), { trustDomain: config.trustDomain });
  const metrics = new WaypointMetrics({ cluster: config.clusterName, trustDomain: config.trustDomain });
  metrics.watchAccessLog(access);
  const tracer = await createTracer({ ...(config.otlpTracesEndpoint ? { endpoint: config.otlpTracesEndpoint } : {}), serviceName: `${config.gateway}.${config.namespace}`, namespace: config.namespace });
  const link = new AgentLink({
    identity: { trustDomain: config.trustDomain, namespace: config.namespace, serviceAccount: config.serviceAccount },
    log: log.child({ component: 'agent-link' }),
    explain: (q) => path.explain(q),
  });
  // With workers, the counters every event loop shares (circuit breakers, rate limits, outlier
  // detection), made here and handed to each.
  const shared = config.workers > 1 ? new SharedCounters({ onFull: (key) => log.warn({ key }, 'the shared counters are full: new keys count per event loop') }) : undefined;
  const path = createDataPath({ config, source: link, log, access, metrics, tracer, ...(shared ? { shared } : {}) });
  // The table's fill, from here alone (the workers' gauges would be summed with it).
  if (shared) metrics.watchShared(shared, true);
  const { state, router } = path;
  // The other event loops (workers: 1 is the main thread alone), each with a data path of its own.
  const workers = shared ? new WaypointWorkers({ config, count: config.workers, link, access, shared, log: log.child({ component: 'workers' }) }) : undefined;
  workers?.start();

  // 15021, as Istio's: readiness, and the configuration version in force (what `ambit demo` and the
  // tests wait for after an apply, since the agents' acknowledgement does not cover their waypoints).
  // With workers, the version is the oldest any event loop routes by: a test or a rollout waiting for
  // a configuration waits until every loop has it.
  const version = () => (workers ? Math.min(state.version, workers.oldestVersion()) : state.version);
  const ready = createServer((req, res) => {
    const ok = link.certificate !== undefined && version() >= 0;
    if (req.url === '/config') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ version: version(), problems: router.problems() }));
    }
    res.writeHead(ok ? 200 : 503).end(ok ? 'ready\n' : 'not ready: waiting for the certificate and configuration from the node agent\n');
  });
  ready.listen(15021);
  const metricsHttp = workers ? workersMetricsServer(metrics.registry, () => workers.metrics()) : metricsServer(metrics.registry);
  metricsHttp.listen(config.metricsPort);

  link.start();
  // Serve only with an identity and a configuration: a tunnel before them could not be routed.
  await Promise.all([link.certificate ? undefined : once(link, 'certificate'), state.version >= 0 ? undefined : once(state, 'changed')]);
  await Promise.all([path.listen(), workers?.listen()]);
  log.info({ hbone: config.hbonePort, workers: config.workers }, 'waypoint ready');

  const shutdown = async (signal: string) => {
    log.info({ signal }, 'waypoint stopping');
    link.close();
    ready.close();
    metricsHttp.close();
    await Promise.all([path.close(5000), workers?.stop(5000)]);
    await tracer.shutdown();
    // The last requests' lines are still in the access log's buffer (the workers' came before they stopped).
    await access.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM').catch((err) => log.error({ err: errorMessage(err) }, 'shutdown failed')));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}
