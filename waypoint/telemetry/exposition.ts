// Counters and histograms kept as plain numbers on the data path and handed to prom-client only at
// scrape time. prom-client's own Counter and Histogram hash every label on every inc and observe
// (25 labels for Istio's HTTP metrics, four metrics a request); these cost an add per request.
// Formatting, the content type and the HTTP endpoint stay prom-client's.

import type { Metric, Registry } from 'prom-client';

/** A label set, formatted by prom-client once per scrape and cached by it per object. */
export type LabelSet = Readonly<Record<string, string>>;

/** One histogram series: per-bucket counts (not cumulative; the last is above every bound), sum and count. */
export class Distribution {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    // A linear scan: 19 bounds, and most requests land in the first few.
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

interface Value {
  value: number;
  labels: Record<string, string | number>;
  sharedLabels?: LabelSet;
  metricName?: string;
}

/** What prom-client's Registry reads from a metric: its name, help, type, and values through get(). */
interface Scraped {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  readonly aggregator: 'sum';
  get(): Promise<{ name: string; help: string; type: string; aggregator: 'sum'; values: Value[] }>;
  getForPromString(): Promise<{ name: string; help: string; type: string; aggregator: 'sum'; values: Value[] }>;
  reset(): void;
}

/**
 * A counter whose series are read at scrape time. `series()` yields each series' labels and value;
 * nothing is copied before a scrape asks.
 */
export function registerCounter(registry: Registry, o: { name: string; help: string; series: () => Iterable<[LabelSet, number]> }): void {
  const values = (merge: boolean): Value[] => {
    const out: Value[] = [];
    for (const [labels, value] of o.series()) out.push(merge ? { value, labels: { ...labels } } : { value, labels: {}, sharedLabels: labels });
    return out;
  };
  register(registry, {
    name: o.name,
    help: o.help,
    type: 'counter',
    aggregator: 'sum',
    get: async () => ({ name: o.name, help: o.help, type: 'counter', aggregator: 'sum', values: values(true) }),
    getForPromString: async () => ({ name: o.name, help: o.help, type: 'counter', aggregator: 'sum', values: values(false) }),
    reset: () => undefined,
  });
}

/** A histogram whose series are read at scrape time, in Prometheus' form: cumulative `_bucket`s, `_sum`, `_count`. */
export function registerHistogram(registry: Registry, o: { name: string; help: string; bounds: readonly number[]; series: () => Iterable<[LabelSet, Distribution]> }): void {
  const bucket = `${o.name}_bucket`;
  const sum = `${o.name}_sum`;
  const count = `${o.name}_count`;
  const values = (merge: boolean): Value[] => {
    const out: Value[] = [];
    const value = (metricName: string, labels: LabelSet, extra: Record<string, string | number>, v: number): Value =>
      merge ? { metricName, value: v, labels: { ...labels, ...extra } } : { metricName, value: v, labels: extra, sharedLabels: labels };
    for (const [labels, d] of o.series()) {
      let cumulative = 0;
      for (let i = 0; i < o.bounds.length; i++) {
        cumulative += d.counts[i]!;
        out.push(value(bucket, labels, { le: o.bounds[i]! }, cumulative));
      }
      out.push(value(bucket, labels, { le: '+Inf' }, d.count), value(sum, labels, {}, d.sum), value(count, labels, {}, d.count));
    }
    return out;
  };
  register(registry, {
    name: o.name,
    help: o.help,
    type: 'histogram',
    aggregator: 'sum',
    get: async () => ({ name: o.name, help: o.help, type: 'histogram', aggregator: 'sum', values: values(true) }),
    getForPromString: async () => ({ name: o.name, help: o.help, type: 'histogram', aggregator: 'sum', values: values(false) }),
    reset: () => undefined,
  });
}

function register(registry: Registry, metric: Scraped): void {
  // The Registry reads a metric only through the members above (registry.js getMetricsAsString,
  // getMetricsAsJSON); its type names prom-client's own classes, hence the cast.
  registry.registerMetric(metric as unknown as Metric);
}
