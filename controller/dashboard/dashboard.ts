// Puts the dashboard together and opens its port. The listening socket can be made in another
// network namespace than the controller's (the local cluster's controller runs in the control
// plane's namespace, yet the dashboard belongs on the host's 127.0.0.1): the socket is created
// there through native/netns.ts and handed to Node as a file descriptor, so it is bound before
// Node sees it and nothing a tick later can land in the wrong namespace.

import { once } from 'node:events';
import type { Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { AmbitError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import { closeFd, listenerIn, NativeCallFailed, openNetns } from '../../native/netns.js';
import type { AgentStatus } from '../push/server.js';
import type { Store } from '../store/store.js';
import { AgentQuery, type AgentDialer } from './agent-link.js';
import { EventRelay } from './events.js';
import { PrometheusClient } from './prometheus.js';
import { createDashboardServer } from './server.js';
import { EstimateService } from './estimate.js';

export interface DashboardListen {
  host: string;
  port: number;
  /** A network namespace file to listen in (`/run/netns/X`, `/proc/self/fd/3`); the controller's own when absent. */
  netns?: string;
}

export interface DashboardParts {
  store: Store;
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
    store: p.store,
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
  try {
    if (listen.netns) {
      const ns = openNetns(listen.netns);
      let fd: number;
      try {
        fd = listenerIn(ns, listen.host, listen.port, { reuseAddress: true });
      } finally {
        closeFd(ns);
      }
      server.listen({ fd });
    } else {
      server.listen(listen.port, listen.host);
    }
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => Promise.reject(err as Error))]);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const where = `${listen.host}:${listen.port}${listen.netns ? ` (in ${listen.netns})` : ''}`;
    // 98: EADDRINUSE from bind() when the socket was made through native/.
    if (e.code === 'EADDRINUSE' || (err instanceof NativeCallFailed && err.errno === 98)) {
      throw new AmbitError('DashboardPortInUse', `the dashboard's port ${where} is taken (another cluster's dashboard?); pass --dashboard-listen HOST:PORT, or --dashboard-listen off`);
    }
    throw new AmbitError('DashboardListenFailed', `cannot open the dashboard on ${where}: ${e.message}`);
  } finally {
    releaseInheritedNetns(listen.netns);
  }
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

/**
 * A namespace handed down as an inherited descriptor (`/proc/self/fd/N`, see cluster/up.ts)
 * is closed once used, or when the dashboard is off: it has no close-on-exec flag, and the pods and
 * agents this process starts must not inherit a way into the host's namespace.
 */
export function releaseInheritedNetns(path: string | undefined): void {
  const m = /^\/proc\/self\/fd\/(\d+)$/.exec(path ?? '');
  if (!m) return;
  try {
    closeFd(Number(m[1]));
  } catch {
    // Already closed.
  }
}
