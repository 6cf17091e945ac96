// The policies page: every AuthorizationPolicy, PeerAuthentication and RequestAuthentication with
// what its status says (who enforces it, the parts the node proxies cannot enforce) and how many
// agents run its revision yet, so "applied" and "in force" are told apart.

import { usePoll } from '../api.js';
import type { PolicyView } from '../types.js';
import { ErrorBanner, Pill, Updated } from './common.js';

export function PoliciesPage() {
  const r = usePoll<{ revision: number; policies: PolicyView[] }>('/api/policies', 5000);
  return (
    <section aria-labelledby="policies-title">
      <header class="page-head">
        <h2 id="policies-title">Policies</h2>
        <Updated at={r.at} />
      </header>
      <ErrorBanner error={r.error} what="the policies" />
      {r.data && !r.data.policies.length && <p class="empty">No policies: every connection the mTLS mode lets through is allowed.</p>}
      {r.data && r.data.policies.length > 0 && (
        <table class="grid" data-testid="policies">
          <thead>
            <tr>
              <th>kind</th>
              <th>namespace/name</th>
              <th>action / mode</th>
              <th>revision</th>
              <th>in force</th>
              <th>enforced by</th>
              <th>warnings</th>
            </tr>
          </thead>
          <tbody>
            {r.data.policies.map((p) => (
              <tr key={`${p.kind}/${p.namespace}/${p.name}`} data-policy={`${p.namespace}/${p.name}`} data-warnings={p.warnings.length}>
                <td>{p.kind}</td>
                <td>
                  {p.namespace}/{p.name}
                </td>
                <td>
                  <Pill kind={p.action === 'DENY' ? 'bad' : 'info'}>{p.action}</Pill>
                </td>
                <td class="num">{p.revision}</td>
                <td>
                  {p.inForce.agents === p.inForce.of ? (
                    <Pill kind="good">
                      {p.inForce.agents}/{p.inForce.of} agents
                    </Pill>
                  ) : (
                    <Pill kind="warn">
                      {p.inForce.agents}/{p.inForce.of}, waiting: {p.inForce.waiting.join(', ')}
                    </Pill>
                  )}
                </td>
                <td>{p.enforcedBy ?? '-'}</td>
                <td>{p.warnings.length ? <ul class="plain warn-text">{p.warnings.map((w) => <li>⚠ {w}</li>)}</ul> : '-'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
