// Live events: every connection opened and closed and every denial, as the agents stream them,
// relayed by the controller as server-sent events. Newest first, the last 300 kept, with a filter
// and a pause for reading.

import { useEffect, useRef, useState } from 'preact/hooks';
import { bytes, clock } from '../format.js';
import type { RelayedEvent, RelayState } from '../types.js';
import { Lock, Pill } from './common.js';

type Filter = 'all' | 'connections' | 'denials';
const keep = 300;

interface EventData {
  event?: string;
  source?: string;
  source_workload?: string;
  destination?: string;
  destination_workload?: string;
  destination_service?: string;
  connection_security_policy?: string;
  bytes_sent?: number;
  bytes_received?: number;
  duration_ms?: number;
  reason?: string;
  policy?: string;
  rule?: number;
  error?: string;
}

export function EventsPage() {
  const [events, setEvents] = useState<RelayedEvent[]>([]);
  const [relay, setRelay] = useState<Record<string, RelayState>>({});
  const [filter, setFilter] = useState<Filter>('all');
  const [paused, setPaused] = useState(false);
  const [open, setOpen] = useState(false);
  const pausedRef = useRef(paused);
  pausedRef.current = paused;
  useEffect(() => {
    const source = new EventSource('/api/events');
    source.onopen = () => setOpen(true);
    source.onerror = () => setOpen(false);
    source.addEventListener('mesh', (m) => {
      if (pausedRef.current) return;
      const e = JSON.parse((m as MessageEvent<string>).data) as RelayedEvent;
      setEvents((list) => [e, ...list].slice(0, keep));
    });
    source.addEventListener('relay', (m) => {
      const s = JSON.parse((m as MessageEvent<string>).data) as RelayState;
      setRelay((r) => ({ ...r, [s.node]: s }));
    });
    return () => source.close();
  }, []);
  const shown = events.filter((e) => filter === 'all' || e.topic === filter);
  return (
    <section aria-labelledby="events-title">
      <header class="page-head">
        <h2 id="events-title">Live events</h2>
        <Pill kind={open ? 'good' : 'bad'}>{open ? 'stream open' : 'stream closed'}</Pill>
        {Object.values(relay).map((s) => (
          <span title={s.reason}>
            <Pill kind={s.streaming ? 'good' : 'warn'}>
              {s.node}: {s.streaming ? 'streaming' : (s.reason ?? 'down')}
            </Pill>
          </span>
        ))}
        <select value={filter} onChange={(e) => setFilter((e.target as HTMLSelectElement).value as Filter)} aria-label="which events">
          <option value="all">all</option>
          <option value="connections">connections</option>
          <option value="denials">denials</option>
        </select>
        <button type="button" onClick={() => setPaused(!paused)}>
          {paused ? 'resume' : 'pause'}
        </button>
        <button type="button" onClick={() => setEvents([])}>
          clear
        </button>
      </header>
      {!shown.length ? (
        <p class="empty">No events yet. They appear as connections open, close or are denied.</p>
      ) : (
        <table class="grid compact" data-testid="events">
          <thead>
            <tr>
              <th>time</th>
              <th>node</th>
              <th>event</th>
              <th>source</th>
              <th>destination</th>
              <th>security</th>
              <th>detail</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((e, i) => {
              const d = (e.data ?? {}) as EventData;
              return (
                <tr key={`${e.time}-${i}`} class={e.topic === 'denials' ? 'edge denied' : ''} data-topic={e.topic}>
                  <td class="mono">{clock(e.time)}</td>
                  <td>{e.node}</td>
                  <td>{e.topic === 'denials' ? <Pill kind="bad">denied</Pill> : d.event}</td>
                  <td>{d.source_workload ?? d.source}</td>
                  <td>
                    {d.destination_workload ?? d.destination}
                    {d.destination_service ? ` (${d.destination_service})` : ''}
                  </td>
                  <td>{d.connection_security_policy === 'mutual_tls' ? <><Lock /> mTLS</> : (d.connection_security_policy ?? '-')}</td>
                  <td>{detail(d)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}

function detail(d: EventData): string {
  // The reason names the policy when one decided; say it only when it does not.
  if (d.reason) return d.policy && !d.reason.includes(d.policy) ? `${d.reason} (policy ${d.policy}${d.rule !== undefined ? ` rule ${d.rule}` : ''})` : d.reason;
  if (d.event === 'closed') return `${bytes(d.bytes_sent ?? 0)} sent, ${bytes(d.bytes_received ?? 0)} received, ${d.duration_ms ?? 0} ms${d.error ? `, ${d.error}` : ''}`;
  return '';
}
