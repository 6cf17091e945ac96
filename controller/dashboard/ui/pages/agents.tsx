// The agents page: one row per node agent, with what the controller's push channel knows (connected,
// how it authenticated, the revision it acknowledged) and what the agent answers over its query API.

import { usePoll } from '../api.js';
import type { AgentView } from '../types.js';
import { ErrorBanner, Pill, Updated } from './common.js';

export function AgentsPage() {
  const r = usePoll<{ revision: number; agents: AgentView[] }>('/api/agents', 5000);
  return (
    <section aria-labelledby="agents-title">
      <header class="page-head">
        <h2 id="agents-title">Agents</h2>
        {r.data && <span class="muted">controller revision {r.data.revision}</span>}
        <Updated at={r.at} />
      </header>
      <ErrorBanner error={r.error} what="the agents" />
      {r.data && (
        <table class="grid" data-testid="agents">
          <thead>
            <tr>
              <th>node</th>
              <th>health</th>
              <th>controller link</th>
              <th>config version (acked / sent)</th>
              <th>query API</th>
              <th>problems</th>
            </tr>
          </thead>
          <tbody>
            {r.data.agents.map((a) => (
              <tr key={a.node} data-node={a.node} data-health={a.health}>
                <td>{a.node}</td>
                <td>
                  <Pill kind={a.health === 'healthy' ? 'good' : a.health === 'degraded' ? 'warn' : 'bad'}>{a.health}</Pill>
                </td>
                <td>{a.connected ? `connected (${a.auth ?? '?'})${a.connectedAt ? ` since ${new Date(a.connectedAt).toLocaleTimeString([], { hour12: false })}` : ''}` : 'disconnected'}</td>
                <td class="num">
                  {a.ackedVersion} / {a.sentVersion} {a.inSync ? <Pill kind="good">in sync</Pill> : <Pill kind="warn">behind {a.revision}</Pill>}
                </td>
                <td>{a.queryApi.reachable ? `version ${a.queryApi.version}, sees the controller ${a.queryApi.controllerConnected ? 'connected' : 'disconnected'}` : 'unreachable'}</td>
                <td>{a.problems.length ? <ul class="plain">{a.problems.map((p) => <li>{p}</li>)}</ul> : '-'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
