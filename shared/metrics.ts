// What both deployables' Prometheus endpoints share: prom-client's process and Node.js metrics,
// minus the three gauges it names with a `_total` suffix, which Prometheus' own linter
// (`promtool check metrics`) rejects because only counters may end in `_total`; and Istio's
// `istio_build{component, tag}`, which Istio's mesh dashboard lists as the components' versions.

import { createServer, type Server } from 'node:http';
import { AggregatorRegistry, collectDefaultMetrics, Gauge, type MetricObjectWithValues, type MetricValue, type Registry } from 'prom-client';
import { ambitVersion } from './build.js';

const misnamedGauges = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** `component` names the deployable in istio_build (as ztunnel says `ztunnel` and istiod `pilot`). */
export function registerDefaultMetrics(registry: Registry, prefix: string, component: string): void {
  collectDefaultMetrics({ register: registry, prefix });
  for (const name of misnamedGauges) registry.removeSingleMetric(`${prefix}${name}`);
  new Gauge({ name: 'istio_build', help: 'Build information of the component', labelNames: ['component', 'tag'], registers: [registry] }).set({ component, tag: ambitVersion }, 1);
}

/** The HTTP server Prometheus scrapes (not listening yet): `/metrics`, and Envoy's `/stats/prometheus`. */
export function metricsServer(registry: Pick<Registry, 'metrics' | 'contentType'>): Server {
  return createServer((req, res) => {
    if (req.url !== '/metrics' && req.url !== '/stats/prometheus') return void res.writeHead(404).end();
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: Error) => res.writeHead(500).end(err.message),
    );
  });
}

/** One worker thread's metrics as it hands them over (prom-client's JSON form). */
export type ThreadMetrics = MetricObjectWithValues<MetricValue<string>>[];

/**
 * The scrape of a process with worker threads: `others` gives the workers' metrics, summed with this
 * registry's into one answer, as prom-client's AggregatorRegistry sums a cluster's. What the workers
 * count too is summed; the rest (the process's CPU, memory, event loop) is this thread's alone, since
 * prom-client would average or drop some of those as if each worker were a process.
 */
export function workersMetricsServer(registry: Registry, others: () => Promise<ThreadMetrics[]>): Server {
  return metricsServer({
    contentType: registry.contentType,
    async metrics() {
      const workers = await others();
      const counted = new Set(workers.flatMap((w) => w.map((m) => m.name)));
      const own = (await registry.getMetricsAsJSON()).map((m) => ({ ...m, aggregator: counted.has(m.name) ? 'sum' : 'first' }));
      return AggregatorRegistry.aggregate([own, ...workers]).metrics();
    },
  });
}
