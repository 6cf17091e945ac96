// The topology page: workloads as nodes, traffic as edges, from Prometheus (server: topology.ts),
// refreshed every 5 s. The graph is for the eye; the edge table under it says the same in text,
// with each edge's state in data- attributes, for screen readers, tests and copy-paste.

import { useMemo, useState } from 'preact/hooks';
import { usePoll } from '../api.js';
import { Chart, type ChartOption } from '../chart.js';
import { bytes, rate } from '../format.js';
import type { Topology, TopologyEdge, TopologyNode } from '../types.js';
import { ErrorBanner, Lock, Updated } from './common.js';

const colors = { denied: '#d32f2f', failing: '#ef6c00', mtls: '#2e7d32', plaintext: '#546e7a', mesh: '#1565c0', outside: '#90a4ae', unknown: '#ffffff' };

export function TopologyPage() {
  const [window, setWindow] = useState('1m');
  const topo = usePoll<Topology>(`/api/topology?window=${window}`, 5000);
  const option = useMemo(() => (topo.data ? graphOption(topo.data) : undefined), [topo.data]);
  const t = topo.data;
  return (
    <section aria-labelledby="topology-title">
      <header class="page-head">
        <h2 id="topology-title">Topology</h2>
        <label>
          rate over{' '}
          <select value={window} onChange={(e) => setWindow((e.target as HTMLSelectElement).value)}>
            {['30s', '1m', '5m', '15m'].map((w) => (
              <option value={w}>{w}</option>
            ))}
          </select>
        </label>
        {t && <span class={t.deniedPerSecond > 0 ? 'pill bad' : 'pill'}>refusals, all agents: {rate(t.deniedPerSecond)}</span>}
        <Updated at={topo.at} />
      </header>
      <ErrorBanner error={topo.error} what="the topology" />
      {option && t && (
        <>
          <Chart option={option} height={Math.max(320, 120 * tallestColumn(t))} label={`Graph of ${t.nodes.length} workloads and ${t.edges.length} edges`} testId="topology-graph" />
          <Legend />
          <EdgeTable edges={t.edges} nodes={t.nodes} />
        </>
      )}
    </section>
  );
}

function Legend() {
  return (
    <p class="legend" aria-hidden="true">
      <span style={{ color: colors.mtls }}>━ mTLS</span>
      <span style={{ color: colors.plaintext }}>┅ plaintext</span>
      <span style={{ color: colors.denied }}>━ denials</span>
      <span style={{ color: colors.failing }}>━ upstream failures</span>
      <span style={{ color: colors.mesh }}>● in the mesh</span>
      <span style={{ color: colors.outside }}>● not enrolled</span>
    </p>
  );
}

function EdgeTable({ edges, nodes }: { edges: TopologyEdge[]; nodes: TopologyNode[] }) {
  if (!edges.length) return <p class="empty" data-testid="edges-empty">No traffic in the window. {nodes.length} workloads known.</p>;
  return (
    <table class="grid" data-testid="edges">
      <caption>Edges (rates over the window)</caption>
      <thead>
        <tr>
          <th>source</th>
          <th>destination</th>
          <th>services</th>
          <th>connections</th>
          <th>denied</th>
          <th>failed</th>
          <th>bytes sent</th>
          <th>bytes received</th>
          <th>security</th>
          <th>state</th>
        </tr>
      </thead>
      <tbody>
        {edges.map((e) => (
          <tr key={e.id} data-edge={e.id} data-source={e.source} data-target={e.target} data-state={e.state} data-security={e.security} class={`edge ${e.state}`}>
            <td>{e.source}</td>
            <td>{e.target}</td>
            <td>{e.services.join(', ') || '-'}</td>
            <td class="num">{rate(e.connectionsPerSecond)}</td>
            <td class="num">{rate(e.deniedPerSecond)}</td>
            <td class="num">{rate(e.failedPerSecond)}</td>
            <td class="num">{bytes(e.sentBytesPerSecond, '/s')}</td>
            <td class="num">{bytes(e.receivedBytesPerSecond, '/s')}</td>
            <td>{e.security === 'mtls' ? <><Lock /> mTLS</> : e.security === 'mixed' ? 'mixed' : 'plaintext'}</td>
            <td>
              <span class={`pill ${e.state === 'ok' ? 'good' : e.state === 'denied' ? 'bad' : 'warn'}`}>{e.state}</span>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** Callers left of what they call, as Kiali draws it: each node's column is its longest path from a root. */
function columns(t: Topology): Map<string, number> {
  const col = new Map(t.nodes.map((n) => [n.id, 0]));
  // At most as many passes as nodes: a cycle stops growing there.
  for (let i = 0; i < t.nodes.length; i++) {
    let moved = false;
    for (const e of t.edges) {
      if (e.source === e.target) continue;
      const want = Math.min(t.nodes.length, (col.get(e.source) ?? 0) + 1);
      if ((col.get(e.target) ?? 0) < want) {
        col.set(e.target, want);
        moved = true;
      }
    }
    if (!moved) break;
  }
  return col;
}

function tallestColumn(t: Topology): number {
  const counts = new Map<number, number>();
  for (const c of columns(t).values()) counts.set(c, (counts.get(c) ?? 0) + 1);
  return Math.max(1, ...counts.values());
}

function graphOption(t: Topology): ChartOption {
  const col = columns(t);
  const rows = new Map<number, number>();
  const nodes = t.nodes.map((n) => {
    const c = col.get(n.id) ?? 0;
    const r = rows.get(c) ?? 0;
    rows.set(c, r + 1);
    const fill = n.kind === 'unknown' ? colors.unknown : n.inMesh === false ? colors.outside : colors.mesh;
    return {
      id: n.id,
      name: n.id,
      value: [c, r],
      symbolSize: 34,
      itemStyle: { color: fill, borderColor: n.kind === 'unknown' ? colors.plaintext : '#0d47a1', borderWidth: 2 },
      label: { show: true, position: 'bottom', formatter: n.kind === 'unknown' ? 'unknown' : `{name|${n.name}}\n{ns|${n.namespace}}`, rich: { name: { fontSize: 12, lineHeight: 15, color: '#1f2933' }, ns: { color: '#78909c', fontSize: 11, lineHeight: 14 } } },
      tooltip: { formatter: `${n.id}<br/>${n.kind === 'unknown' ? 'a peer outside the workloads' : n.inMesh ? 'in the mesh' : 'not enrolled'}` },
    };
  });
  const edges = t.edges.map((e) => {
    const color = e.state === 'denied' ? colors.denied : e.state === 'failing' ? colors.failing : e.security === 'plaintext' ? colors.plaintext : colors.mtls;
    const lock = e.security === 'mtls' ? 'mTLS' : e.security === 'mixed' ? 'mixed' : 'plain';
    const served = e.connectionsPerSecond > 0 || e.deniedPerSecond === 0 ? `${lock} ${rate(e.connectionsPerSecond, ' c/s')}` : '';
    const denied = e.deniedPerSecond > 0 ? `denied ${rate(e.deniedPerSecond)}` : '';
    return {
      source: e.source,
      target: e.target,
      value: e.connectionsPerSecond,
      lineStyle: { color, opacity: 0.9, width: Math.min(6, 1.5 + Math.log2(1 + e.connectionsPerSecond + e.deniedPerSecond)), type: e.security === 'plaintext' ? 'dashed' : 'solid', curveness: 0.08 },
      label: { show: true, formatter: [served, denied].filter(Boolean).join('\n'), color, fontSize: 11 },
      tooltip: {
        formatter: [
          `${e.source} → ${e.target}${e.services.length ? ` (${e.services.join(', ')})` : ''}`,
          `${rate(e.connectionsPerSecond, ' conn/s')}, denied ${rate(e.deniedPerSecond)}, failed ${rate(e.failedPerSecond)}`,
          `${bytes(e.sentBytesPerSecond, '/s')} sent, ${bytes(e.receivedBytesPerSecond, '/s')} received`,
          lock === 'mTLS' ? 'mutual TLS' : 'plaintext',
        ].join('<br/>'),
      },
    };
  });
  const columnCount = Math.max(1, ...[...col.values()].map((c) => c + 1));
  const rowCount = Math.max(1, ...rows.values());
  return {
    animationDurationUpdate: 300,
    tooltip: { trigger: 'item', confine: true },
    // Nodes sit on hidden axes (column, row): ECharts' free layout stretches its box to the nodes'
    // extent, which squashes a graph of one row; axes keep symbols round and spacing even.
    grid: { left: 90, right: 90, top: 40, bottom: 50 },
    xAxis: { type: 'value', show: false, min: -0.5, max: columnCount - 0.5 },
    yAxis: { type: 'value', show: false, min: -0.5, max: rowCount - 0.5, inverse: true },
    series: [
      {
        type: 'graph',
        coordinateSystem: 'cartesian2d',
        edgeSymbol: ['none', 'arrow'],
        edgeSymbolSize: 10,
        edgeLabel: { show: true },
        data: nodes,
        links: edges,
      },
    ],
  };
}
