// What both deployables' Prometheus endpoints share: prom-client's process and Node.js metrics,
// minus the three gauges it names with a `_total` suffix, which Prometheus' own linter
// (`promtool check metrics`) rejects because only counters may end in `_total`.

import { collectDefaultMetrics, type Registry } from 'prom-client';

const misnamedGauges = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export function registerDefaultMetrics(registry: Registry, prefix: string): void {
  collectDefaultMetrics({ register: registry, prefix });
  for (const name of misnamedGauges) registry.removeSingleMetric(`${prefix}${name}`);
}
