// The dashboard's browser entry: a header with the pages, chosen by the URL's hash (#/topology,
// #/agents, ...) so a page can be linked and reloaded, and the page itself. Each page fetches its own
// data from the controller's /api/.

import './style.css';
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { AgentsPage } from './pages/agents.js';
import { CertificatesPage } from './pages/certificates.js';
import { EstimatePage } from './pages/estimate.js';
import { EventsPage } from './pages/events.js';
import { ExplainPage } from './pages/explain.js';
import { PoliciesPage } from './pages/policies.js';
import { TopologyPage } from './pages/topology.js';

const pages = [
  { path: 'topology', title: 'Topology', page: TopologyPage },
  { path: 'agents', title: 'Agents', page: AgentsPage },
  { path: 'policies', title: 'Policies', page: PoliciesPage },
  { path: 'certificates', title: 'Certificates', page: CertificatesPage },
  { path: 'explain', title: 'Explain', page: ExplainPage },
  { path: 'events', title: 'Live events', page: EventsPage },
  { path: 'estimate', title: 'Estimate', page: EstimatePage },
];

const current = () => location.hash.replace(/^#\/?/, '') || 'topology';

function App() {
  const [path, setPath] = useState(current());
  useEffect(() => {
    const onHash = () => setPath(current());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  const page = pages.find((p) => p.path === path) ?? pages[0]!;
  const Page = page.page;
  return (
    <>
      <header class="top">
        <h1>ambit</h1>
        <nav aria-label="pages">
          {pages.map((p) => (
            <a href={`#/${p.path}`} aria-current={p.path === page.path ? 'page' : undefined} data-page={p.path}>
              {p.title}
            </a>
          ))}
          <a href="/prometheus/graph" target="_blank" rel="noopener">
            Prometheus ↗
          </a>
        </nav>
      </header>
      <main data-page={page.path}>
        <Page />
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
