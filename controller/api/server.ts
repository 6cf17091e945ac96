// The controller's HTTP API for the CLI, for what only the controller knows: its agents and the
// revisions they run (`ambit agents`, `apply --wait`), the CA's rotation, the local cluster's status.
// Resources are read and written through the Kubernetes API instead (cli/kube.ts).
// Every request carries the bearer token from the state directory (like a kubeconfig's token); the
// comparison is constant-time. Errors come back as { error: { code, message, problems? } }.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { readJson } from '../../shared/http/body.js';
import { AmbitError, errorMessage, ResourceInvalid } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import type { PushServer } from '../push/server.js';
import type { ClusterCache } from '../kube/cache.js';

export interface ApiOptions {
  token: string;
  /** The Kubernetes API's newest resourceVersion. */
  apiVersion: () => Promise<number>;
  log: Logger;
  /** The agents' channel, for their versions and for `apply --wait`. */
  push?: PushServer;
  /** The controller's view through the Kubernetes API: which revision agents should run. */
  cache?: ClusterCache;
  /** Rotates the CA root; returns the revision that carries the new trust bundle. */
  rotateRoot?: (overlapSeconds: number) => Promise<number>;
  /** The local cluster's view (nodes, pods, services), when this controller serves one. */
  status?: () => unknown;
  /** Replaces a node's agent without losing a connection (the local cluster's rolling update). */
  restartAgent?: (node: string) => Promise<unknown>;
}

const maxBody = 32 * 1024 * 1024;

export function createApiServer(o: ApiOptions): Server {
  const expected = Buffer.from(`Bearer ${o.token}`);
  return createServer((req, res) => {
    const auth = Buffer.from(req.headers.authorization ?? '');
    if (auth.length !== expected.length || !timingSafeEqual(auth, expected)) {
      return send(res, 401, { error: { code: 'Unauthorized', message: 'missing or wrong bearer token (see <state-dir>/controller/token)' } });
    }
    handle(o, req, res).catch((err: unknown) => {
      if (err instanceof ResourceInvalid) return send(res, 422, { error: { code: err.code, message: err.message, problems: err.problems } });
      if (err instanceof AmbitError) return send(res, err.code === 'NotFound' ? 404 : 400, { error: { code: err.code, message: err.message } });
      o.log.error({ err: errorMessage(err), url: req.url }, 'api request failed');
      send(res, 500, { error: { code: 'Internal', message: errorMessage(err) } });
    });
  });
}

async function handle(o: ApiOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://controller');
  const route = `${req.method} ${url.pathname}`;
  switch (route) {
    case 'GET /healthz':
      return send(res, 200, { ok: true, revision: o.cache?.revision ?? 0 });
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
      return send(res, 200, { revision: o.cache.revision, ms: Math.round(performance.now() - started), agents: o.push.agents(), lagging: lagging.map((a) => a.node) });
    }
    case 'POST /v1/ca/rotate': {
      if (!o.rotateRoot) throw new AmbitError('NotFound', 'this controller has no CA');
      const body = (await readJson(req, maxBody)) as { overlapSeconds?: number };
      const overlap = typeof body.overlapSeconds === 'number' && body.overlapSeconds > 0 ? body.overlapSeconds : 48 * 3600;
      const revision = await o.rotateRoot(overlap);
      o.log.info({ revision, overlapSeconds: overlap }, 'CA root rotated');
      return send(res, 200, { revision, overlapSeconds: overlap });
    }
    case 'POST /v1/agents/resync': {
      const body = (await readJson(req, maxBody)) as { node?: string };
      if (!o.push || typeof body.node !== 'string' || !o.push.resync(body.node)) {
        throw new AmbitError('NotFound', `no connected agent for node ${JSON.stringify(body.node)}; see \`ambit agents\``);
      }
      return send(res, 200, { node: body.node, revision: o.cache?.revision ?? 0 });
    }
    case 'POST /v1/agents/restart': {
      const body = (await readJson(req, maxBody)) as { node?: unknown };
      if (typeof body.node !== 'string') throw new AmbitError('BadRequest', 'body.node must be a node name');
      if (!o.restartAgent) throw new AmbitError('NotFound', 'this controller runs no agents (restart them with your cluster: kubectl rollout restart daemonset)');
      return send(res, 200, await o.restartAgent(body.node));
    }
    case 'GET /v1/agents':
      // The revision agents should run: of what the controller has seen up to the API's current state.
      // Briefly: while an informer is backing off, the answer should not hang on it.
      if (o.cache) await o.cache.waitForProgress(await o.apiVersion(), 1000);
      return send(res, 200, { revision: o.cache?.revision ?? 0, agents: o.push?.agents() ?? [] });
    case 'GET /v1/status':
      if (!o.status) throw new AmbitError('NotFound', 'this controller serves no local cluster');
      return send(res, 200, o.status());
    default:
      throw new AmbitError('NotFound', `no API route ${route}`);
  }
}


function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
