// The agent's query API on 15000: a WebSocket that answers requests ({id, method, params} to
// {id, result} or {id, error}) and streams subscriptions ({topic, time, data}), and a plain
// `GET /config_dump` with the same state for curl users, and profiles on demand (`GET
// /debug/cpuprofile?seconds=N`, `GET /debug/heapsnapshot?thread=N`, for loopback clients only).
// Loopback clients are trusted; any other address must send the admin token, or is refused with 401. The API reads state, never changes
// the data path, and runs apart from it.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { Readable } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../../shared/log.js';
import type { AgentState } from '../state/state.js';
import type { CpuProfile } from '../../shared/telemetry/profile.js';
import { type EventLog, type Topic, topics } from './events.js';

export interface AdminOptions {
  state: AgentState;
  events: EventLog;
  token: string;
  log: Logger;
  /** The controller connection's health, for config_dump and `version`. */
  controller: () => { connected: boolean; auth?: string; lastError?: string | undefined };
  /** Certificates and live connections, when the identity and proxy parts provide them. */
  certificates?: () => unknown[];
  /** Per pod and direction; summed over the agent's workers, which are asked (agent/workers/). */
  connections?: () => unknown[] | Promise<unknown[]>;
  /** Each event loop carrying traffic (agent/workers/): connections open and carried, heap. */
  workers?: () => Promise<unknown[]>;
  /** Which pods are captured, which failed and why, and how long each took. */
  capture?: () => unknown;
  /** Profiles of the event loops carrying traffic: thread 0 is the main thread, then the workers. */
  debug?: { cpuProfiles(ms: number): Promise<CpuProfile[]>; heapSnapshot(thread: number): Promise<Readable> };
  explain?: { outbound(params: Record<string, unknown>): unknown; inbound(params: Record<string, unknown>): unknown; waypoint?(params: Record<string, unknown>): Promise<unknown> };
}

interface Request {
  id?: unknown;
  method?: unknown;
  params?: { topics?: unknown };
}

export function createAdminServer(o: AdminOptions): Server {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  const server = createServer((req, res) => {
    if (!authorized(req, o.token)) return refuse(res);
    const url = new URL(req.url ?? '/', 'http://agent');
    const path = url.pathname;
    if (req.method === 'GET' && path === '/config_dump') return void configDump(o).then((dump) => json(res, 200, dump), (err: Error) => json(res, 500, { error: { code: 'Internal', message: err.message } }));
    if (req.method === 'GET' && path === '/healthz') return json(res, 200, { ok: true, version: o.state.version });
    if (req.method === 'GET' && path.startsWith('/debug/') && o.debug) {
      // A heap snapshot holds the workloads' private keys: for the node's own loopback only, token or not.
      if (!loopback(req)) return json(res, 403, { error: { code: 'Forbidden', message: 'the debug routes answer loopback clients only (a heap snapshot holds the workload keys); run `ambit query NODE profile|heap` on the node' } });
      return debug(o.debug, path, url.searchParams, res);
    }
    json(res, 404, { error: { code: 'NotFound', message: `no route ${req.method} ${path}; try GET /config_dump, /debug/cpuprofile?seconds=N, /debug/heapsnapshot?thread=N or a WebSocket` } });
  });
  server.on('upgrade', (req, socket, head) => {
    if (!authorized(req, o.token)) {
      o.log.warn({ remote: req.socket.remoteAddress }, 'query API client refused: no token');
      socket.end('HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => serve(o, ws));
  });
  return server;
}

function serve(o: AdminOptions, ws: WebSocket): void {
  let unsubscribe: (() => void) | undefined;
  ws.on('close', () => unsubscribe?.());
  ws.on('error', () => undefined);
  ws.on('message', (data) => {
    let req: Request;
    try {
      req = JSON.parse(data.toString()) as Request;
      // `null` parses and has no fields: reading req.method on it threw out of this handler.
      if (typeof req !== 'object' || req === null || Array.isArray(req)) throw new Error('not an object');
    } catch {
      ws.send(JSON.stringify({ id: null, error: { code: 'BadRequest', message: 'requests must be JSON: {"id": 1, "method": "workloads"}' } }));
      return;
    }
    const reply = (result: unknown) => ws.send(JSON.stringify({ id: req.id ?? null, result }));
    const fail = (code: string, message: string) => ws.send(JSON.stringify({ id: req.id ?? null, error: { code, message } }));
    switch (req.method) {
      case 'workloads':
        return reply(workloads(o));
      case 'services':
        return reply([...o.state.services.values()]);
      case 'policies':
        return reply([...o.state.policies.values()]);
      case 'certs':
        return reply(o.certificates?.() ?? []);
      case 'connections':
        return void Promise.resolve(o.connections?.() ?? []).then(reply, (err: Error) => fail('Internal', err.message));
      case 'workers':
        return void (o.workers?.() ?? Promise.resolve([])).then(reply, (err: Error) => fail('Internal', err.message));
      case 'version':
        return reply({ node: o.state.node, version: o.state.version, controller: o.controller() });
      case 'config_dump':
        return void configDump(o).then(reply, (err: Error) => fail('Internal', err.message));
      case 'events':
        return reply(o.events.recent(parseTopics(req.params?.topics) ?? undefined));
      case 'explain-outbound':
      case 'explain-inbound': {
        const params = (req as { params?: unknown }).params;
        if (!o.explain || !params || typeof params !== 'object') return fail('BadRequest', `${String(req.method)} needs params {sourceIp, ip, port}`);
        return reply(req.method === 'explain-outbound' ? o.explain.outbound(params as Record<string, unknown>) : o.explain.inbound(params as Record<string, unknown>));
      }
      case 'explain-waypoint': {
        const params = (req as { params?: unknown }).params;
        if (!o.explain?.waypoint || !params || typeof params !== 'object') return fail('BadRequest', 'explain-waypoint needs params {pod, service (or ip), port, sourceIp, sourcePrincipal, method, path, headers}');
        return void o.explain.waypoint(params as Record<string, unknown>).then(reply, (err: Error) => fail('WaypointUnreachable', err.message));
      }
      case 'subscribe': {
        const wanted = parseTopics(req.params?.topics);
        if (wanted === null) return fail('BadRequest', `topics must be a list of ${topics.join(', ')}`);
        unsubscribe?.();
        unsubscribe = o.events.subscribe((e) => {
          // A reader that stops reading is dropped rather than buffered without bound.
          if (ws.bufferedAmount > 4 * 1024 * 1024) ws.terminate();
          else ws.send(JSON.stringify(e));
        }, wanted);
        return reply({ subscribed: wanted ? [...wanted] : topics });
      }
      default:
        return fail('UnknownMethod', `unknown method ${JSON.stringify(req.method)}; methods: workloads, services, policies, certs, connections, workers, version, config_dump, events, subscribe, explain-outbound, explain-inbound, explain-waypoint`);
    }
  });
}

/** undefined: every topic; null: a bad list. */
function parseTopics(value: unknown): Set<Topic> | undefined | null {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((t) => topics.includes(t as Topic))) return null;
  return new Set(value as Topic[]);
}

function workloads(o: AdminOptions) {
  return [...o.state.workloads.values()].map((w) => ({ ...w, local: w.node === o.state.node, enrolled: w.node === o.state.node ? o.state.isEnrolled(w) : undefined }));
}

async function configDump(o: AdminOptions) {
  const connections = await (o.connections?.() ?? []);
  return {
    node: o.state.node,
    version: o.state.version,
    controller: o.controller(),
    workloads: workloads(o),
    services: [...o.state.services.values()],
    namespaces: [...o.state.namespaces.values()],
    policies: [...o.state.policies.values()],
    trustBundles: [...o.state.trustBundles.values()],
    certificates: o.certificates?.() ?? [],
    connections,
    capture: o.capture?.() ?? {},
  };
}

/** Longest CPU profile the API takes: the samples of every thread are held until it ends. */
const maxProfileSeconds = 60;

function debug(d: NonNullable<AdminOptions['debug']>, path: string, query: URLSearchParams, res: ServerResponse): void {
  const fail = (status: number, code: string, err: unknown) => json(res, status, { error: { code, message: err instanceof Error ? err.message : String(err) } });
  if (path === '/debug/cpuprofile') {
    const seconds = Number(query.get('seconds') ?? '5');
    if (!Number.isInteger(seconds) || seconds < 1 || seconds > maxProfileSeconds) return fail(400, 'BadRequest', `seconds must be a whole number from 1 to ${maxProfileSeconds}, not ${JSON.stringify(query.get('seconds'))}`);
    return void d.cpuProfiles(seconds * 1000).then((threads) => json(res, 200, { seconds, threads }), (err) => fail(409, 'ProfileFailed', err));
  }
  if (path === '/debug/heapsnapshot') {
    const thread = Number(query.get('thread') ?? '0');
    if (!Number.isInteger(thread) || thread < 0) return fail(400, 'BadRequest', `thread must be 0 (the main thread) or a worker's number, not ${JSON.stringify(query.get('thread'))}`);
    return void d.heapSnapshot(thread).then(
      (snapshot) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        snapshot.pipe(res);
      },
      (err) => fail(404, 'NotFound', err),
    );
  }
  fail(404, 'NotFound', `no route GET ${path}; the debug routes are /debug/cpuprofile?seconds=N and /debug/heapsnapshot?thread=N`);
}

function loopback(req: IncomingMessage): boolean {
  const remote = req.socket.remoteAddress ?? '';
  return remote === '127.0.0.1' || remote === '::1' || remote === '::ffff:127.0.0.1';
}

function authorized(req: IncomingMessage, token: string): boolean {
  if (loopback(req)) return true;
  const given = Buffer.from(req.headers.authorization ?? '');
  const want = Buffer.from(`Bearer ${token}`);
  return given.length === want.length && timingSafeEqual(given, want);
}

function refuse(res: ServerResponse): void {
  json(res, 401, { error: { code: 'Unauthorized', message: 'clients from other addresses than loopback must send the admin token as a bearer token' } });
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
