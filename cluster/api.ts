// The local cluster process's API for the CLI, on a Unix socket in the state directory: what only
// the cluster knows, as a cloud provider's console knows it beside the Kubernetes API: its shape
// and pods at a glance (`ambit status`), and replacing a node's agent (`ambit agents --restart`).

import type { IncomingMessage, Server } from 'node:http';
import { join } from 'node:path';
import { readJson } from '../shared/http/body.js';
import { SocketApiClient, socketApiServer } from '../shared/http/socket-api.js';
import { AmbitError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';

export const clusterSocketPath = (stateDir: string) => join(stateDir, 'cluster', 'api.sock');
export const clusterTokenPath = (stateDir: string) => join(stateDir, 'cluster', 'token');

export interface ClusterApiOptions {
  token: string;
  stateDir: string;
  log: Logger;
  status: () => unknown;
  /** Replaces a node's agent without losing a connection (the DaemonSet's rolling update). */
  restartAgent: (node: string) => Promise<unknown>;
}

export function clusterApiServer(o: ClusterApiOptions): Server {
  return socketApiServer({ token: o.token, tokenFile: clusterTokenPath(o.stateDir), log: o.log, handle: (req, url) => handle(o, req, url) });
}

async function handle(o: ClusterApiOptions, req: IncomingMessage, url: URL): Promise<unknown> {
  const route = `${req.method} ${url.pathname}`;
  switch (route) {
    case 'GET /healthz':
      return { ok: true };
    case 'GET /v1/status':
      return o.status();
    case 'POST /v1/agents/restart': {
      const body = (await readJson(req, 4096)) as { node?: unknown };
      if (typeof body.node !== 'string') throw new AmbitError('BadRequest', 'body.node must be a node name');
      return o.restartAgent(body.node);
    }
    default:
      throw new AmbitError('NotFound', `no API route ${route}`);
  }
}

export class ClusterClient extends SocketApiClient {
  constructor(stateDir: string) {
    super(clusterSocketPath(stateDir), clusterTokenPath(stateDir), 'the local cluster', 'ClusterUnreachable');
  }
}
