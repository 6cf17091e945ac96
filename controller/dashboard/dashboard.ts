// Puts the dashboard together and opens its port, possibly in another network namespace than the
// controller's (shared/net/listen.ts: the local cluster's dashboard belongs on the host's 127.0.0.1).

import type { Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../../shared/log.js';
import { listenAt, type ListenAddress } from '../../shared/net/listen.js';
import type { AgentStatus } from '../push/server.js';
import type { RevisionedReader } from '../kube/view.js';
import { AgentQuery, type AgentDialer } from './agent-link.js';
import { EventRelay } from './events.js';
import { PrometheusClient } from './prometheus.js';
import { createDashboardServer } from './server.js';
import { EstimateService } from './estimate.js';

export type DashboardListen = ListenAddress;

export interface DashboardParts {
  /** The cluster as the controller's informers see it, and the revision agents should run. */
  cluster: RevisionedReader;
  agents: () => AgentStatus[];
  trustBundle: () => string[];
  dialer: AgentDialer;
  prometheusUrl: string | undefined;
  token: string;
  log: Logger;
}

/** The bundled UI, beside this module in dist/ (scripts/setup.sh and `npm run build:dashboard` put it there). */
export const uiDir = fileURLToPath(new URL('./ui/', import.meta.url));

export async function startDashboard(listen: DashboardListen, p: DashboardParts): Promise<{ server: Server; close: () => void }> {
  const query = new AgentQuery(p.dialer);
  const relay = new EventRelay({ nodes: () => p.agents().map((a) => a.node), query, log: p.log });
  const server = createDashboardServer({
    cluster: p.cluster,
    agents: p.agents,
    trustBundle: p.trustBundle,
    query,
    prometheus: new PrometheusClient(p.prometheusUrl),
    relay,
    log: p.log,
    token: p.token,
    uiDir,
    estimates: new EstimateService(),
  });
  // Browsers keep event streams open; they must not hold the controller's shutdown.
  server.keepAliveTimeout = 5000;
  await listenAt(server, listen, 'the dashboard', '--dashboard-listen');
  p.log.info({ dashboard: `http://${listen.host}:${listen.port}/`, netns: listen.netns, prometheus: p.prometheusUrl }, 'dashboard ready');
  return {
    server,
    close: () => {
      relay.close();
      server.close();
      server.closeAllConnections();
    },
  };
}
