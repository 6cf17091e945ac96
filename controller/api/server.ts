// The controller's HTTP API for the CLI, for what only the controller knows: its agents and the
// revisions they run (`ambit agents`, `apply --wait`), the CA's rotation, whether this replica leads.
// Resources are read and written through the Kubernetes API instead (cli/kube.ts); the local
// cluster's nodes and pods are its own process's (cluster/api.ts). Served on a Unix socket with
// the state directory's bearer token (shared/http/socket-api.ts).

import type { IncomingMessage, Server } from 'node:http';
import { readJson } from '../../shared/http/body.js';
import { socketApiServer } from '../../shared/http/socket-api.js';
import { AmbitError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import type { PushServer } from '../push/server.js';
import type { ClusterCache } from '../kube/cache.js';

export interface ApiOptions {
  token: string;
  tokenFile: string;
  /** The Kubernetes API's newest resourceVersion. */
  apiVersion: () => Promise<number>;
  log: Logger;
  /** The agents' channel, for their versions and for `apply --wait`. */
  push?: PushServer;
  /** The controller's view through the Kubernetes API: which revision agents should run. */
  cache?: ClusterCache;
  /** Rotates the CA root; returns the revision that carries the new trust bundle. */
  rotateRoot?: (overlapSeconds: number) => Promise<number>;
  /** Who this replica is and whether it leads (`ambit agents` shows it). */
  replica?: () => { identity: string; leader: boolean };
}

const maxBody = 32 * 1024 * 1024;

export function createApiServer(o: ApiOptions): Server {
  return socketApiServer({ token: o.token, tokenFile: o.tokenFile, log: o.log, handle: (req, url) => handle(o, req, url) });
}

async function handle(o: ApiOptions, req: IncomingMessage, url: URL): Promise<unknown> {
  const route = `${req.method} ${url.pathname}`;
  switch (route) {
    case 'GET /healthz':
      return { ok: true, revision: o.cache?.revision ?? 0, ...o.replica?.() };
    case 'POST /v1/wait': {
      // `ambit apply --wait`: once the controller has seen the API's resourceVersion (for the kinds
      // applied) and every connected agent runs what it made of it, with how long that took.
      const body = (await readJson(req, maxBody)) as { resourceVersion?: unknown; kinds?: unknown; waitSeconds?: unknown };
      if (typeof body.resourceVersion !== 'number' || !Array.isArray(body.kinds) || typeof body.waitSeconds !== 'number') throw new AmbitError('BadRequest', 'the body must be {"resourceVersion": N, "kinds": [...], "waitSeconds": N}');
      if (!o.push || !o.cache) throw new AmbitError('NotFound', 'this controller serves no agents');
      const started = performance.now();
      const deadline = Date.now() + body.waitSeconds * 1000;
      const seen = await o.cache.waitForProgress(body.resourceVersion, body.waitSeconds * 1000, body.kinds as string[]);
      const target = seen ? o.cache.revision : Infinity;
      const lagging = await o.push.waitForAcks(target, Math.max(0, deadline - Date.now()));
      return { revision: o.cache.revision, ms: Math.round(performance.now() - started), agents: o.push.agents(), lagging: lagging.map((a) => a.node) };
    }
    case 'POST /v1/ca/rotate': {
      if (!o.rotateRoot) throw new AmbitError('NotFound', 'this controller has no CA');
      const body = (await readJson(req, maxBody)) as { overlapSeconds?: number };
      const overlap = typeof body.overlapSeconds === 'number' && body.overlapSeconds > 0 ? body.overlapSeconds : 48 * 3600;
      const revision = await o.rotateRoot(overlap);
      o.log.info({ revision, overlapSeconds: overlap }, 'CA root rotated');
      return { revision, overlapSeconds: overlap };
    }
    case 'POST /v1/agents/resync': {
      const body = (await readJson(req, maxBody)) as { node?: string };
      if (!o.push || typeof body.node !== 'string' || !o.push.resync(body.node)) {
        throw new AmbitError('NotFound', `no connected agent for node ${JSON.stringify(body.node)}; see \`ambit agents\``);
      }
      return { node: body.node, revision: o.cache?.revision ?? 0 };
    }
    case 'GET /v1/agents':
      // The revision agents should run: of what the controller has seen up to the API's current state.
      // Briefly: while an informer is backing off, the answer should not hang on it.
      if (o.cache) await o.cache.waitForProgress(await o.apiVersion(), 1000);
      return { revision: o.cache?.revision ?? 0, agents: o.push?.agents() ?? [] };
    default:
      throw new AmbitError('NotFound', `no API route ${route}`);
  }
}

