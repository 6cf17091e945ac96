// The Estimate page: `ambit estimate` as a form and a chart. The cluster's size and load go in; what
// ambit would add (CPU, memory, monthly cost, latency per hop, config propagation) comes back
// beside Istio's sidecar and ambient modes, from the same arithmetic and recorded figures as the
// command, each figure with its source.

import { useMemo, useState } from 'preact/hooks';
import { type ApiError, api } from '../api.js';
import { Chart, type ChartOption } from '../chart.js';
import type { Amount, Estimate, Resources } from '../types.js';
import { ErrorBanner } from './common.js';

const fields = [
  { name: 'nodes', label: 'nodes', value: '20' },
  { name: 'pods', label: 'pods', value: '1000' },
  { name: 'services', label: 'services', value: '200' },
  { name: 'rps', label: 'requests/s (cluster-wide)', value: '5000' },
  { name: 'waypoints', label: 'waypoints', value: '0' },
  { name: 'l7Share', label: 'L7 share (0-1, via waypoints)', value: '' },
] as const;

type Form = Record<(typeof fields)[number]['name'], string>;

const colors = { ambit: '#1565c0', sidecars: '#ef6c00', ambient: '#78909c' };

export function EstimatePage() {
  const [form, setForm] = useState<Form>(Object.fromEntries(fields.map((f) => [f.name, f.value])) as Form);
  const [result, setResult] = useState<Estimate | undefined>();
  const [error, setError] = useState<ApiError | undefined>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    try {
      const query = new URLSearchParams(Object.entries(form).filter(([, v]) => v !== ''));
      setResult(await api<Estimate>(`/api/estimate?${query}`));
      setError(undefined);
    } catch (err) {
      setError(err as ApiError);
    } finally {
      setBusy(false);
    }
  };
  const option = useMemo(() => (result ? chartOption(result) : undefined), [result]);
  return (
    <section aria-labelledby="estimate-title">
      <header class="page-head">
        <h2 id="estimate-title">Estimate</h2>
        <span class="muted">what the mesh adds to a cluster, beside Istio; as `ambit estimate`</span>
      </header>
      <form class="estimate" onSubmit={(e) => void submit(e)} data-testid="estimate-form">
        {fields.map((f) => (
          <label>
            {f.label}
            <input name={f.name} inputMode="decimal" value={form[f.name]} onInput={(e) => setForm({ ...form, [f.name]: (e.target as HTMLInputElement).value })} />
          </label>
        ))}
        <button type="submit" disabled={busy}>
          Estimate
        </button>
      </form>
      <ErrorBanner error={error} what="the estimate" />
      {result && option && (
        <div data-testid="estimate-answer" data-ambit-usd={result.monthlyUsd.ambit.toFixed(2)} data-sidecars-usd={result.monthlyUsd.sidecars.toFixed(2)}>
          <Chart option={option} height={300} label={`Bar chart: ambit ${usd(result.monthlyUsd.ambit)} a month against ${usd(result.monthlyUsd.sidecars)} for Istio sidecars`} testId="estimate-chart" />
          <table class="grid" data-testid="estimate-table">
            <thead>
              <tr>
                <th />
                <th>ambit</th>
                <th>Istio sidecars</th>
                <th>Istio ambient</th>
              </tr>
            </thead>
            <tbody>
              <tr>
                <th>CPU (cores)</th>
                <td class="num">{cores(result.ambit.total)}</td>
                <td class="num">{cores(result.sidecars)}</td>
                <td class="num">{cores(result.istioAmbient)}</td>
              </tr>
              <tr>
                <th>memory (GiB)</th>
                <td class="num">{result.ambit.total.memoryGiB.toFixed(2)}</td>
                <td class="num">{result.sidecars.memoryGiB.toFixed(2)}</td>
                <td class="num">{result.istioAmbient.memoryGiB.toFixed(2)}</td>
              </tr>
              <tr>
                <th>cost a month</th>
                <td class="num">{usd(result.monthlyUsd.ambit)}</td>
                <td class="num">{usd(result.monthlyUsd.sidecars)}</td>
                <td class="num">{usd(result.monthlyUsd.istioAmbient)}</td>
              </tr>
              <tr>
                <th>latency added per hop</th>
                <td class="num">
                  p50 {ms(result.latency.ambit.p50Ms)}, p99 {ms(result.latency.ambit.p99Ms)}
                </td>
                <td class="num">
                  p90 {ms(result.latency.sidecars.p90Ms.value === null ? result.latency.sidecars.earlierP90Ms : result.latency.sidecars.p90Ms)}, p99{' '}
                  {ms(result.latency.sidecars.p99Ms.value === null ? result.latency.sidecars.earlierP99Ms : result.latency.sidecars.p99Ms)}
                </td>
                <td class="num">
                  p90 {ms(result.latency.istioAmbient.p90Ms)}, p99 {ms(result.latency.istioAmbient.p99Ms)}
                </td>
              </tr>
              <tr>
                <th>a policy change on every node</th>
                <td class="num">
                  p50 {ms(result.propagation.changeP50Ms)}, p99 {ms(result.propagation.changeP99Ms)}
                  {result.propagation.beyondMeasured ? ' (beyond the measured size)' : ''}
                </td>
                <td>-</td>
                <td>-</td>
              </tr>
            </tbody>
          </table>
          <p class="muted small">
            ambit: agents {cores(result.ambit.agents)} cores, {result.ambit.agents.memoryGiB.toFixed(2)} GiB ({result.ambit.agents.perNode.memoryMiB.toFixed(0)} MiB a node); waypoints {cores(result.ambit.waypoints)} cores; controller{' '}
            {result.ambit.controller.memoryGiB.toFixed(2)} GiB{result.ambit.total.note ? ` (${result.ambit.total.note})` : ''}. Prices: {usd(result.monthlyUsd.coreMonth.value ?? 0)} a core-month, {usd(result.monthlyUsd.gibMonth.value ?? 0)} a GiB-month.
          </p>
          {result.recommendations.length > 0 && (
            <>
              <h3>Recommendations</h3>
              <ul>{result.recommendations.map((r) => <li>{r}</li>)}</ul>
            </>
          )}
          <h3>Sources</h3>
          <ul class="small">
            {result.sources.map((s) => (
              <li>
                <strong>{s.id}</strong>: {s.title}
                {s.where ? ` (${s.where})` : ''}
                {s.when ? `, ${s.when}` : ''}
              </li>
            ))}
          </ul>
        </div>
      )}
    </section>
  );
}

const usd = (n: number) => `$${n.toLocaleString('en-US', { maximumFractionDigits: n < 100 ? 2 : 0 })}`;
const cores = (r: Resources) => (r.cores === null ? 'n/a' : r.cores.toFixed(2));
const ms = (a: Amount) => (a.value === null ? 'n/a' : `${a.value < 1 ? a.value.toFixed(2) : a.value.toFixed(1)} ms`);

/** Three small bar charts side by side, one per unit: a shared axis for cores, GiB and dollars would mislead. */
function chartOption(r: Estimate): ChartOption {
  const panels = [
    { title: 'CPU (cores)', values: [r.ambit.total.cores ?? 0, r.sidecars.cores ?? 0, r.istioAmbient.cores ?? 0], fmt: (v: number) => v.toFixed(2) },
    { title: 'memory (GiB)', values: [r.ambit.total.memoryGiB, r.sidecars.memoryGiB, r.istioAmbient.memoryGiB], fmt: (v: number) => v.toFixed(1) },
    { title: 'cost a month (USD)', values: [r.monthlyUsd.ambit, r.monthlyUsd.sidecars, r.monthlyUsd.istioAmbient], fmt: (v: number) => usd(v) },
  ];
  const names = ['ambit', 'Istio sidecars', 'Istio ambient'];
  const barColors = [colors.ambit, colors.sidecars, colors.ambient];
  return {
    tooltip: { trigger: 'item' },
    title: panels.map((p, i) => ({ text: p.title, left: `${4 + i * 33}%`, top: 4, textStyle: { fontSize: 13, fontWeight: 'bold' } })),
    grid: panels.map((_, i) => ({ left: `${4 + i * 33}%`, width: '26%', top: 40, bottom: 30 })),
    xAxis: panels.map((_, i) => ({ type: 'category', gridIndex: i, data: names, axisLabel: { fontSize: 11, interval: 0 } })),
    yAxis: panels.map((_, i) => ({ type: 'value', gridIndex: i })),
    series: panels.map((p, i) => ({
      type: 'bar',
      xAxisIndex: i,
      yAxisIndex: i,
      name: p.title,
      data: p.values.map((v, j) => ({ value: v, itemStyle: { color: barColors[j] } })),
      label: { show: true, position: 'top', formatter: (d: { value: number }) => p.fmt(d.value), fontSize: 11 },
      barWidth: '55%',
    })),
  };
}
