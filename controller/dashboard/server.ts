// The dashboard's HTTP server: the bundled UI (built at set-up into dist/, never fetched at run
// time), its JSON API (topology, agents, policies, certificates, workloads, explain, estimate), the live
// event stream, and Prometheus under /prometheus/. Who may ask: loopback clients as they are (like
// the agents' query API), anyone else with the dashboard token; errors are JSON with a stable code
// and a message that says what to do. What each answer holds is decided in the modules it calls.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { extname, join } from 'node:path';
import { AmbitError, errorMessage } from '../../shared/errors.js';
import { readJson } from '../../shared/http/body.js';
import { explainConnection, explainLines, parseExplainArgs, type Directory } from '../../shared/explain/explain.js';
import type { Logger } from '../../shared/log.js';
import { findPodIn } from '../../shared/resources/pods.js';
import type { Pod, Service } from '../../shared/resources/types.js';
import type { EstimateService } from './estimate.js';
import type { EventRelay } from './events.js';
import type { PrometheusClient } from './prometheus.js';
import { type QueryName, topologyFrom, topologyQueries, validWindow } from './topology.js';
import { agentsView, certificatesView, knownWorkloads, policiesView, type ViewSources } from './views.js';

export interface DashboardOptions extends ViewSources {
  prometheus: PrometheusClient;
  relay: EventRelay;
  log: Logger;
  /** Clients other than loopback must send it (cookie after `/?token=`, or a bearer header). */
  token: string;
  /** Where the set-up put the bundled UI (index.html, app.js, app.css). */
  uiDir: string;
  estimates: EstimateService;
}

/** Each error code once, with its HTTP status. */
const statusOf: Record<string, number> = {
  BadRequest: 400,
  BadArgs: 400,
  EstimateInputInvalid: 400,
  Unauthorized: 401,
  Forbidden: 403,
  NotFound: 404,
  MethodNotAllowed: 405,
  UnsupportedMediaType: 415,
  PrometheusQueryFailed: 502,
  AgentUnreachable: 502,
  AgentRefused: 502,
  UiNotBuilt: 503,
  FiguresUnreadable: 503,
  PrometheusNotConfigured: 503,
  PrometheusUnavailable: 503,
  AgentTimeout: 504,
};

const cookieName = 'ambit_dashboard';
const maxBody = 64 * 1024;
const contentTypes: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.map': 'application/json', '.svg': 'image/svg+xml' };

export function createDashboardServer(o: DashboardOptions): Server {
  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://dashboard');
    handle(o, req, res, url).catch((err: unknown) => {
      if (res.headersSent) return void res.destroy();
      if (err instanceof AmbitError) return sendError(res, statusOf[err.code] ?? 500, err.code, err.message);
      o.log.error({ err: errorMessage(err), url: url.pathname }, 'dashboard request failed');
      sendError(res, 500, 'Internal', errorMessage(err));
    });
  });
}

async function handle(o: DashboardOptions, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  checkHost(req);
  // `/?token=...` once, as Jupyter does: the browser keeps it as a cookie for the API calls.
  const given = url.searchParams.get('token');
  if (given !== null && url.pathname === '/') {
    if (!same(given, o.token)) throw new AmbitError('Unauthorized', 'wrong dashboard token (see <state-dir>/controller/dashboard-token)');
    res.writeHead(303, { location: '/', 'set-cookie': `${cookieName}=${o.token}; HttpOnly; SameSite=Strict; Path=/` }).end();
    return;
  }
  if (!authorized(req, o.token)) {
    throw new AmbitError('Unauthorized', 'clients other than loopback need the dashboard token: open /?token=<contents of <state-dir>/controller/dashboard-token>, or send it as a bearer token');
  }
  const path = url.pathname;
  if (path === '/prometheus' || path.startsWith('/prometheus/')) return o.prometheus.proxy(req, res, path.slice('/prometheus'.length) + url.search);
  if (req.method === 'POST' && path === '/api/explain') return send(res, 200, await explain(o, await readJsonBody(req)));
  if (req.method !== 'GET' && req.method !== 'HEAD') throw new AmbitError('MethodNotAllowed', `${req.method} ${path}: the dashboard's API is read-only, except POST /api/explain`);
  switch (path) {
    case '/':
    case '/index.html':
      return serveFile(o, res, 'index.html');
    case '/healthz':
      return send(res, 200, { ok: true, revision: o.cluster.revision });
    case '/api/topology':
      return send(res, 200, await topology(o, url.searchParams.get('window') ?? '1m'));
    case '/api/agents':
      return send(res, 200, await agentsView(o));
    case '/api/policies':
      return send(res, 200, policiesView(o));
    case '/api/certificates':
      return send(res, 200, await certificatesView(o));
    case '/api/workloads':
      return send(res, 200, workloads(o));
    case '/api/events':
      return o.relay.attach(req, res);
    case '/api/estimate':
      return send(res, 200, o.estimates.answer(url.searchParams));
  }
  if (path.startsWith('/assets/')) return serveFile(o, res, path.slice('/assets/'.length));
  throw new AmbitError('NotFound', `no dashboard route ${req.method} ${path}; the UI is at /, its API under /api/`);
}

async function topology(o: DashboardOptions, window: string) {
  if (!validWindow(window)) throw new AmbitError('BadRequest', `window=${window}: give a Prometheus duration from 10s to 1h, e.g. 1m`);
  const queries = topologyQueries(window);
  const names = Object.keys(queries) as QueryName[];
  const answers = await Promise.all(names.map((n) => o.prometheus.query(queries[n])));
  const results = Object.fromEntries(names.map((n, i) => [n, answers[i]!])) as Record<QueryName, Awaited<ReturnType<PrometheusClient['query']>>>;
  return topologyFrom(results, { window, time: new Date(), known: knownWorkloads(o.cluster) });
}

/** The pods and Services the explain form can name. */
function workloads(o: DashboardOptions) {
  const d = directory(o);
  return { workloads: knownWorkloads(o.cluster), pods: d.pods, services: d.services };
}

function directory(o: DashboardOptions): Directory {
  return {
    pods: (o.cluster.list('Pod') as Pod[]).filter((p) => p.status?.podIP).map((p) => ({ namespace: p.metadata.namespace ?? 'default', name: p.metadata.name, ip: p.status.podIP, node: p.spec.nodeName })),
    services: (o.cluster.list('Service') as Service[]).map((s) => ({ namespace: s.metadata.namespace ?? 'default', name: s.metadata.name, clusterIP: s.spec?.clusterIP ?? '' })),
  };
}

/** The same answer as `ambit explain [-n NAMESPACE] SOURCE DESTINATION:PORT`, and its printed lines. */
async function explain(o: DashboardOptions, body: unknown) {
  const b = (body ?? {}) as { namespace?: unknown; source?: unknown; destination?: unknown };
  if (typeof b.source !== 'string' || typeof b.destination !== 'string') throw new AmbitError('BadRequest', 'send {"namespace": "client", "source": "deploy/client", "destination": "web.shop:80"}');
  const req = parseExplainArgs(b.source, b.destination, typeof b.namespace === 'string' && b.namespace ? b.namespace : undefined);
  const source = findPodIn(o.cluster.list('Pod') as Pod[], req.sourceName, req.sourceNamespace);
  const routes = [...o.cluster.list('HTTPRoute'), ...o.cluster.list('GRPCRoute')].map((r) => ({ kind: r.kind as 'HTTPRoute' | 'GRPCRoute', namespace: r.metadata.namespace!, name: r.metadata.name, ...(r.metadata.creationTimestamp ? { creationTimestamp: r.metadata.creationTimestamp } : {}), spec: r.spec }));
  const result = await explainConnection(source, req, directory(o), (node, method, params) => o.query.call(node, method, params), { routes });
  return { ...result, lines: explainLines(result) };
}

async function serveFile(o: DashboardOptions, res: ServerResponse, name: string): Promise<void> {
  if (!/^[\w-]+(\.[\w-]+)*$/.test(name)) throw new AmbitError('NotFound', `no asset ${name}`);
  let body: Buffer;
  try {
    body = await readFile(join(o.uiDir, name));
  } catch {
    if (name === 'index.html') throw new AmbitError('UiNotBuilt', `the dashboard's UI is not built in ${o.uiDir}; run scripts/setup.sh (or npm run build:dashboard)`);
    throw new AmbitError('NotFound', `no asset ${name}`);
  }
  res.writeHead(200, { 'content-type': contentTypes[extname(name)] ?? 'application/octet-stream', 'content-length': body.length, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' });
  res.end(body);
}

/**
 * A page on another site could make a browser on this host ask 127.0.0.1 under its own name (DNS
 * rebinding): only names that are addresses, or localhost, reach the dashboard.
 */
function checkHost(req: IncomingMessage): void {
  const host = (req.headers.host ?? '').replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  if (host !== 'localhost' && !isIP(host)) throw new AmbitError('Forbidden', `Host ${JSON.stringify(req.headers.host)}: open the dashboard by its address (http://127.0.0.1:PORT/)`);
}

function authorized(req: IncomingMessage, token: string): boolean {
  const remote = req.socket.remoteAddress ?? '';
  if (remote === '127.0.0.1' || remote === '::1' || remote === '::ffff:127.0.0.1') return true;
  const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
  const cookie = (req.headers.cookie ?? '').split(/;\s*/).find((c) => c.startsWith(`${cookieName}=`))?.slice(cookieName.length + 1);
  return [bearer, cookie].some((t) => t !== undefined && same(t, token));
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function readJsonBody(req: IncomingMessage): Promise<unknown> {
  // A form on another site cannot send JSON without the browser asking first (CORS preflight),
  // which this server never allows: that keeps cross-site posts out.
  if (!/^application\/json\b/.test(req.headers['content-type'] ?? '')) return Promise.reject(new AmbitError('UnsupportedMediaType', 'send the body as application/json'));
  return readJson(req, maxBody);
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  send(res, status, { error: { code, message } });
}
