// One HTTP request through the waypoint: the route's plan (a direct answer such as a redirect, or a
// backend Service and port with header edits, rewrites, timeouts, retries, mirrors and faults), then
// an endpoint of the backend, the request sent over a reused tunnel, and the answer streamed back.
// The request body is streamed; it is kept (up to 64 KiB) only while a retry may still need it.
// Each request is recorded once, when it ends, with Envoy's response flags for what went wrong.

import http, { type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import http2, { type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { Duplex } from 'node:stream';
import { principal } from '../../shared/identity/spiffe.js';
import { serviceHostname, type ServiceEntry, type WorkloadEntry } from '../../shared/protocol/config.js';
import { splice } from '../../shared/hbone/splice.js';
import { declaredProtocol, type TunnelContext } from './ingress.js';
import { addressedPod } from '../pod-destination.js';
import { editHeaders } from '../../shared/routing/plan.js';
import type { HeaderBag, HeaderModifier } from '../../shared/routing/types.js';
import type { HttpSpan, HttpTracer } from '../../shared/telemetry/tracing.js';
import type { Destinations } from '../destinations.js';
import { cookieValue, type PickRequest } from '../upstream/balancer.js';
import { backoffMs, decideRetry, type HTTPRouteRetry } from '../upstream/retry.js';
import type { UpstreamResult } from '../upstream/types.js';
import { type Endpoint, UpstreamUnavailable, type Upstreams } from './upstream.js';
import type { RateLimited, Refusal } from '../security.js';

export type DownstreamRequest = IncomingMessage | Http2ServerRequest;
export type DownstreamResponse = ServerResponse | Http2ServerResponse;

export interface Plan {
  /** The route that matched, `namespace/name` and rule, for the access log and explain. */
  route?: string;
  /** `namespace/name` of that route, which rate limits attach to. */
  routeRef?: string;
  /** Added to the backend's answer (the rate limit's headers). */
  extraResponseHeaders?: OutgoingHttpHeaders;
  /** Answered by the waypoint itself (a redirect, a fault's abort, a route with no valid backend). */
  respond?: { status: number; headers?: OutgoingHttpHeaders; flag?: string };
  backend?: { service: ServiceEntry; port: number };
  path?: string;
  host?: string;
  /** The Gateway API's header modifiers, in filter order. */
  requestHeaders?: readonly HeaderModifier[];
  responseHeaders?: readonly HeaderModifier[];
  /** Whole request, and each try. */
  timeoutMs?: number;
  backendTimeoutMs?: number;
  /** The route's retry (the Gateway API's HTTPRouteRetry); without one, Istio's default retry applies. */
  retry?: HTTPRouteRetry;
  mirrors?: { service: ServiceEntry; port: number; percent: number }[];
  delayMs?: number;
}

export interface RequestOutcome {
  ctx: TunnelContext;
  method: string;
  path: string;
  authority: string;
  protocol: 'http' | 'grpc';
  status: number;
  grpcStatus?: number;
  flags: string;
  durationMs: number;
  requestBytes: number;
  responseBytes: number;
  route?: string;
  endpoint?: Endpoint;
  attempts: number;
  source?: WorkloadEntry;
  sourcePrincipal: string;
  startTime: number;
  httpVersion: string;
  /** The request as it left: its id, and its path after a rewrite. */
  requestId?: string;
  /** The span of this request, when tracing is on. */
  span?: HttpSpan;
}

export interface ForwardOptions {
  upstreams: Upstreams;
  plan(req: DownstreamRequest, ctx: TunnelContext): Plan;
  /** Each backend's traffic policy: its load balancer, circuit breaker, outlier detection and retries. */
  destinations: Destinations;
  workloadAt(ip: string): WorkloadEntry | undefined;
  /** Every finished request, once. */
  record(o: RequestOutcome): void;
  /** Spans per request and per try, when tracing is on. */
  tracer?: HttpTracer;
  /**
   * L7 security before routing (path normalization, JWT, AuthorizationPolicy): a refusal to send, or
   * undefined to go on; a promise only when a JWT must be checked.
   */
  admit?(req: DownstreamRequest, ctx: TunnelContext): Refusal | undefined | Promise<Refusal | undefined>;
  /** The rate limits of the Service and route, after routing: undefined when none applies. */
  limit?(service: ServiceEntry, route: string | undefined, ctx: TunnelContext): RateLimited | undefined;
}

const hopByHop = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'http2-settings', 'host']);
const maxReplayBody = 64 * 1024;

function copyHeaders(from: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const k in from) {
    if (k[0] === ':' || hopByHop.has(k)) continue;
    out[k] = from[k];
  }
  return out;
}

function applyEdits(headers: OutgoingHttpHeaders, modifiers: readonly HeaderModifier[] | undefined): void {
  if (modifiers?.length) editHeaders(headers as HeaderBag, modifiers);
}

/** Envoy's mapping of a local reply's HTTP status to a gRPC status (Grpc::Utility::httpToGrpcStatus). */
function grpcStatusOf(status: number): number {
  switch (status) {
    case 400:
      return 13; // INTERNAL
    case 401:
      return 16; // UNAUTHENTICATED
    case 403:
      return 7; // PERMISSION_DENIED
    case 404:
      return 12; // UNIMPLEMENTED
    case 429:
    case 502:
    case 503:
    case 504:
      return 14; // UNAVAILABLE
    default:
      return 2; // UNKNOWN
  }
}

/**
 * grpc-message as the gRPC spec's PROTOCOL-HTTP2 says: UTF-8, then every byte outside printable
 * ASCII, and `%` itself, percent-encoded.
 */
export function grpcMessage(text: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(text)) return text;
  let out = '';
  for (const b of Buffer.from(text, 'utf8')) out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}

/**
 * The waypoint's own answer to a gRPC request, as Envoy's local replies for gRPC are
 * (Http::Utility::sendLocalReply when the request is gRPC): a trailers-only response, one HEADERS
 * frame ending the stream with `:status 200`, `content-type: application/grpc`, `grpc-status`
 * mapped from the HTTP status and `grpc-message`, no body. gRPC clients read the status from there;
 * an HTTP 403 or 503 would reach them as a transport failure (UNKNOWN, or UNAVAILABLE). The access
 * log and istio_requests_total say response_code 200 with the gRPC status beside it, as Envoy's do
 * (istio/istio#38984 shows an RBAC-denied call logged `200` with its rbac_access_denied details);
 * the response flags (RL, UO, UT, UH...) still say why.
 */
function answerGrpc(res: DownstreamResponse, outcome: RequestOutcome, grpcStatus: number, message: string, headers?: OutgoingHttpHeaders): void {
  outcome.status = 200;
  outcome.grpcStatus = grpcStatus;
  const h: OutgoingHttpHeaders = { ...headers, 'content-type': 'application/grpc', 'grpc-status': String(grpcStatus), 'grpc-message': grpcMessage(message) };
  delete h['content-length'];
  const stream = (res as Http2ServerResponse).stream;
  if (stream) {
    // The compatibility API would send the headers, then an empty DATA frame to end the stream.
    stream.respond({ ...h, ':status': 200 }, { endStream: true });
    return;
  }
  // gRPC over HTTP/1.1 is no gRPC client's, but a proxy in between may send one: the same headers.
  res.writeHead(200, h);
  res.end();
}

const first = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);
/** For what has no request to hash on (mirrors, upgrades): any endpoint the balancer gives. */
export const noAffinity: PickRequest = { header: () => undefined, cookie: () => undefined, queryParameter: () => undefined };

/** What the balancer may hash a request on; one object per request, its readers shared. */
class RequestToPick implements PickRequest {
  constructor(
    private readonly req: DownstreamRequest,
    readonly sourceIp: string | undefined,
    readonly clientNode: string | undefined,
  ) {}

  header(name: string): string | undefined {
    return first(this.req.headers[name]);
  }

  cookie(name: string): string | undefined {
    return cookieValue(first(this.req.headers.cookie), name);
  }

  queryParameter(name: string): string | undefined {
    return new URL(this.req.url ?? '/', 'http://x').searchParams.get(name) ?? undefined;
  }
}

export class Forwarder {
  constructor(private readonly o: ForwardOptions) {}

  /** The record of a request as it arrives, and its span when tracing is on. */
  private begin(req: DownstreamRequest, ctx: TunnelContext, grpc: boolean): RequestOutcome {
    const authority = (req.headers[':authority'] as string | undefined) ?? req.headers.host ?? '';
    const sourceIp = ctx.sourceIp;
    const source = sourceIp ? this.o.workloadAt(sourceIp) : undefined;
    const outcome: RequestOutcome = {
      ctx,
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      authority,
      protocol: grpc ? 'grpc' : 'http',
      status: 0,
      flags: '-',
      durationMs: 0,
      requestBytes: 0,
      responseBytes: 0,
      attempts: 0,
      ...(source ? { source } : {}),
      sourcePrincipal: principal(ctx.peer),
      startTime: Date.now(),
      httpVersion: req.httpVersionMajor === 2 ? 'HTTP/2' : `HTTP/${req.httpVersion}`,
    };
    if (this.o.tracer?.enabled) {
      outcome.span = this.o.tracer.startServer(req.headers, {
        method: outcome.method,
        path: outcome.path,
        authority,
        httpVersion: outcome.httpVersion,
        ...(sourceIp ? { peerAddress: sourceIp } : {}),
        ...(source ? { source } : {}),
        sourcePrincipal: outcome.sourcePrincipal,
      });
    }
    return outcome;
  }

  /** The end of a request: its duration, its span ended, and its one record. */
  private end(outcome: RequestOutcome, started: number): void {
    outcome.durationMs = performance.now() - started;
    outcome.span?.end({ responseCode: outcome.status, responseFlags: outcome.flags, ...(outcome.grpcStatus !== undefined ? { grpcStatus: outcome.grpcStatus } : {}), ...(outcome.endpoint?.workload ? { destination: outcome.endpoint.workload } : {}), ...(outcome.endpoint ? { upstreamHost: outcome.endpoint.address } : {}), requestBytes: outcome.requestBytes, responseBytes: outcome.responseBytes, ...(outcome.route ? { routeName: outcome.route } : {}) });
    this.o.record(outcome);
  }

  handle(req: DownstreamRequest, res: DownstreamResponse, ctx: TunnelContext): void {
    const started = performance.now();
    const grpc = (req.headers['content-type'] ?? '').startsWith('application/grpc');
    const outcome = this.begin(req, ctx, grpc);
    let recorded = false;
    const finish = () => {
      if (recorded) return;
      recorded = true;
      if (!outcome.status) outcome.status = res.headersSent ? res.statusCode : 0;
      this.end(outcome, started);
    };
    res.once('finish', finish);
    res.once('close', () => {
      // The client went before the answer was complete: Envoy's downstream connection termination.
      if (!res.writableFinished && outcome.flags === '-') outcome.flags = 'DC';
      finish();
    });
    req.on('data', (c: Buffer) => (outcome.requestBytes += c.length));
    // Counting made it flow: held until the body has its reader (after a JWT check or a fault's delay).
    req.pause();

    const admitted = this.o.admit?.(req, ctx);
    if (admitted === undefined) return this.route(req, res, ctx, outcome, grpc);
    if (!('then' in admitted)) return this.refuse(req, res, outcome, admitted, grpc);
    admitted.then(
      (refusal) => (refusal ? this.refuse(req, res, outcome, refusal, grpc) : this.route(req, res, ctx, outcome, grpc)),
      (err: Error) => this.answer(res, outcome, 500, '-', `authentication failed: ${err.message}`, grpc),
    );
  }

  private refuse(req: DownstreamRequest, res: DownstreamResponse, outcome: RequestOutcome, r: Refusal, grpc: boolean): void {
    req.resume();
    this.answer(res, outcome, r.status, r.flag, r.message, grpc, r.headers);
  }

  private route(req: DownstreamRequest, res: DownstreamResponse, ctx: TunnelContext, outcome: RequestOutcome, grpc: boolean): void {
    if (res.destroyed) return;
    // Normalized by admit(): what the policies saw is what is routed and sent.
    outcome.path = req.url ?? '/';
    let plan: Plan;
    try {
      plan = this.o.plan(req, ctx);
    } catch (err) {
      return this.answer(res, outcome, 500, 'NR', `routing failed: ${(err as Error).message}`, grpc);
    }
    if (plan.route) outcome.route = plan.route;
    if (this.o.limit && !plan.respond) {
      // Budgets belong to the Service dialled (and its route), as every policy at a waypoint does.
      const limited = this.o.limit(ctx.service, plan.routeRef, ctx);
      if (limited?.refusal) return this.refuse(req, res, outcome, limited.refusal, grpc);
      if (limited) plan.extraResponseHeaders = limited.headers;
    }
    const go = () => this.run(req, res, ctx, plan, outcome, grpc);
    if (plan.delayMs) {
      outcome.flags = 'DI';
      const t = setTimeout(go, plan.delayMs);
      res.once('close', () => clearTimeout(t));
    } else go();
  }

  private run(req: DownstreamRequest, res: DownstreamResponse, ctx: TunnelContext, plan: Plan, outcome: RequestOutcome, grpc: boolean): void {
    if (res.destroyed) return;
    if (plan.respond) {
      const { status, headers, flag } = plan.respond;
      req.resume();
      outcome.status = status;
      if (flag) outcome.flags = outcome.flags === '-' ? flag : `${outcome.flags},${flag}`;
      // A fault's abort (with its own gRPC status or an HTTP one) or a route without a valid backend,
      // to a gRPC client: trailers-only, as Envoy's fault filter and router answer one.
      const ownGrpc = headers?.['grpc-status'];
      if (grpc && (status >= 400 || ownGrpc !== undefined)) return answerGrpc(res, outcome, ownGrpc !== undefined ? Number(ownGrpc) : grpcStatusOf(status), String(headers?.['grpc-message'] ?? http.STATUS_CODES[status] ?? 'local reply'), headers);
      res.writeHead(status, { ...headers, 'content-length': '0' } as OutgoingHttpHeaders);
      res.end();
      return;
    }
    const backend = plan.backend ?? { service: ctx.service, port: ctx.port };
    const headers = copyHeaders(req.headers);
    headers.host = plan.host ?? (req.headers[':authority'] as string | undefined) ?? req.headers.host ?? (addressedPod(backend.service) ? `${backend.service.clusterIP}:${backend.port}` : serviceHostname(backend.service));
    headers['x-forwarded-proto'] ??= 'http';
    if (!headers['x-request-id']) headers['x-request-id'] = crypto.randomUUID();
    outcome.requestId = String(headers['x-request-id']);
    applyEdits(headers, plan.requestHeaders);
    const path = plan.path ?? req.url ?? '/';
    const method = req.method ?? 'GET';
    // HTTP/2 to the backend only where it speaks it: gRPC, or a port declared http2/grpc (as Envoy's
    // default); an h2c client of an HTTP/1.1 app is translated.
    const http2Upstream = grpc || declaredProtocol(backend.service, backend.port) === 'http2';

    // The body is kept while a retry may need it: until it passes 64 KiB, then retries stop.
    const chunks: Buffer[] = [];
    let kept = 0;
    let replayable = true;
    let bodyEnded = false;
    req.on('data', (c: Buffer) => {
      if (!replayable) return;
      kept += c.length;
      if (kept > maxReplayBody) {
        replayable = false;
        chunks.length = 0;
      } else chunks.push(c);
    });
    req.once('end', () => (bodyEnded = true));

    let deadline: NodeJS.Timeout | undefined;
    let done = false;
    const fail = (status: number, flag: string, message: string) => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      this.answer(res, outcome, status, flag, message, grpc);
    };
    if (plan.timeoutMs) {
      deadline = setTimeout(() => {
        current?.destroy();
        fail(504, 'UT', 'upstream request timeout');
      }, plan.timeoutMs);
      res.once('close', () => clearTimeout(deadline));
    }

    // The backend's circuit breaker: requests in flight, then, past its connections, those waiting for one.
    const policy = this.o.destinations.policy(backend.service, backend.port);
    const breaker = policy.breaker;
    const admitted = breaker.tryRequest();
    if (!admitted.ok) return fail(503, 'UO', `upstream overflow: ${admitted.limit} of ${backend.service.namespace}/${backend.service.name} reached`);
    // Requests in flight against maxConnections, over every event loop (beyond it, they wait: pending).
    let waiting = false;
    if (breaker.enter() > policy.traffic.limits.maxConnections) {
      const pending = breaker.tryPending();
      if (!pending.ok) {
        breaker.leave();
        breaker.releaseRequest();
        return fail(503, 'UO', `upstream overflow: ${pending.limit} of ${backend.service.namespace}/${backend.service.name} reached`);
      }
      waiting = true;
    }
    res.once('close', () => {
      breaker.releaseRequest();
      if (waiting) breaker.releasePending();
      breaker.leave();
    });
    const retryPolicy = policy.retryPolicy(plan.retry);
    const pickRequest = new RequestToPick(req, ctx.sourceIp, outcome.source?.node);

    let current: { destroy(): void } | undefined;
    let previous: string | undefined;
    let retrying = false;
    const attempt = (n: number) => {
      if (retrying) {
        breaker.releaseRetry();
        retrying = false;
      }
      if (done || res.destroyed) return;
      outcome.attempts = n + 1;
      const chosen = this.o.destinations.choose(backend.service, backend.port, pickRequest, retryPolicy?.avoidPreviousEndpoint ? previous : undefined);
      if (!chosen) return fail(503, 'UH', `no healthy upstream for ${backend.service.namespace}/${backend.service.name}:${backend.port}`);
      const ep = chosen.endpoint;
      previous = chosen.pick.key;
      outcome.endpoint = ep;
      policy.started(chosen.pick);
      let reported = false;
      const report = (result: UpstreamResult) => {
        if (reported) return;
        reported = true;
        policy.finished(chosen.pick, result);
      };
      const attemptSpan = outcome.span?.child({ upstreamHost: ep.address, ...(ep.workload ? { destination: ep.workload } : {}), attempt: n + 1 });
      attemptSpan?.injectInto(headers);
      /**
       * Tries again when the retry policy says so, the body can be sent again and the breaker allows
       * another retry. A route with a retry stanza also retries every connection error, a reset after
       * the request went out and a try past its backendRequest timeout included (GEP-1731 says MUST).
       */
      const again = (result: UpstreamResult, grpcStatus?: number) => {
        if (!retryPolicy || !replayable) return false;
        const connectionError = plan.retry !== undefined && (result === 'reset' || result === 'timeout');
        const d = connectionError ? (n < retryPolicy.numRetries ? { retry: true as const, delayMs: backoffMs(retryPolicy, n + 1, Math.random) } : { retry: false as const }) : decideRetry(retryPolicy, result, n, Math.random, grpcStatus);
        if (!d.retry) return false;
        const room = breaker.tryRetry();
        if (!room.ok) return false;
        retrying = true;
        outcome.flags = 'URX';
        const t = setTimeout(() => attempt(n + 1), d.delayMs);
        res.once('close', () => clearTimeout(t));
        return true;
      };
      // Set once this try has timed out: its late error or answer is not another failure to retry.
      let abandoned = false;
      const onFailure = (kind: 'connect-failure' | 'reset-before-request' | 'reset', err: Error) => {
        report(kind);
        attemptSpan?.end({ responseCode: 0, error: err.message });
        if (done || abandoned) return;
        if (again(kind)) return;
        if (err instanceof UpstreamUnavailable) return fail(503, err.flag, err.message);
        fail(503, kind === 'connect-failure' ? 'UF' : 'UC', `upstream ${kind}: ${err.message}`);
      };
      // A try that outlives the route's backendRequest timeout is a failed try: GEP-1731 has a route
      // with a retry stanza retry it (as Envoy's per_try_timeout does), so 504 only when none is left.
      const onTryTimeout = () => {
        if (done || abandoned) return;
        abandoned = true;
        report('timeout');
        attemptSpan?.end({ responseCode: 0, error: 'per-try timeout' });
        if (again('timeout')) return;
        fail(504, 'UT', 'upstream per-try timeout');
      };
      const onResponse = (status: number, respHeaders: OutgoingHttpHeaders, body: NodeJS.ReadableStream & { resume(): void }, trailers?: (cb: (t: OutgoingHttpHeaders) => void) => void) => {
        report(status);
        attemptSpan?.end({ responseCode: status });
        if (done || abandoned) return void body.resume();
        const grpcHeader = respHeaders['grpc-status'];
        if (again(status, grpcHeader === undefined ? undefined : Number(grpcHeader))) return void body.resume();
        if (chosen.pick.setCookie) respHeaders['set-cookie'] = [chosen.pick.setCookie, ...[respHeaders['set-cookie'] ?? []].flat().map(String)];
        done = true;
        clearTimeout(deadline);
        outcome.status = status;
        const grpcStatus = respHeaders['grpc-status'];
        if (grpcStatus !== undefined) outcome.grpcStatus = Number(grpcStatus);
        applyEdits(respHeaders, plan.responseHeaders);
        if (plan.extraResponseHeaders) Object.assign(respHeaders, plan.extraResponseHeaders);
        res.writeHead(status, respHeaders);
        body.on('data', (c: Buffer) => (outcome.responseBytes += c.length));
        trailers?.((t) => {
          if (t['grpc-status'] !== undefined) outcome.grpcStatus = Number(t['grpc-status']);
          (res as Http2ServerResponse).addTrailers?.(t as Record<string, string>);
        });
        (body as unknown as NodeJS.ReadableStream).pipe(res as unknown as NodeJS.WritableStream);
      };

      const writeBody = (up: NodeJS.WritableStream & { end(): void }) => {
        if (n === 0) {
          (req as unknown as NodeJS.ReadableStream).pipe(up);
          return;
        }
        for (const c of chunks) up.write(c);
        if (bodyEnded) up.end();
        else (req as unknown as NodeJS.ReadableStream).pipe(up);
      };

      if (http2Upstream) {
        this.o.upstreams.session(ep).then(
          (session) => {
            if (done) return;
            const h2headers: OutgoingHttpHeaders = { ...headers, ':method': method, ':path': path, ':authority': headers.host as string };
            delete h2headers.host;
            const s = session.request(h2headers, { endStream: false });
            current = s;
            let answered = false;
            if (plan.backendTimeoutMs) {
              s.setTimeout(plan.backendTimeoutMs, () => {
                if (answered) return;
                s.close(http2.constants.NGHTTP2_CANCEL);
                onTryTimeout();
              });
            }
            s.on('response', (h) => {
              answered = true;
              const status = Number(h[':status']);
              const out: OutgoingHttpHeaders = {};
              for (const k in h) if (k[0] !== ':' && !hopByHop.has(k)) out[k] = h[k];
              onResponse(status, out, s as unknown as NodeJS.ReadableStream & { resume(): void }, (cb) => s.once('trailers', (t) => cb(t as OutgoingHttpHeaders)));
            });
            s.on('error', (err) => (answered ? res.destroy(err) : onFailure(s.writableFinished ? 'reset' : 'reset-before-request', err)));
            writeBody(s);
          },
          (err: Error) => onFailure('connect-failure', err),
        );
        return;
      }
      const up = http.request({ host: ep.ip, port: ep.port, method, path, headers, agent: this.o.upstreams.agent(ep), ...(plan.backendTimeoutMs ? { timeout: plan.backendTimeoutMs } : {}) });
      current = up;
      let answered = false;
      let connected = false;
      up.on('socket', () => (connected = true));
      up.on('timeout', () => {
        if (answered) return;
        up.destroy();
        onTryTimeout();
      });
      up.on('response', (r) => {
        answered = true;
        const out: OutgoingHttpHeaders = {};
        for (const k in r.headers) if (!hopByHop.has(k)) out[k] = r.headers[k];
        onResponse(r.statusCode ?? 502, out, r);
      });
      up.on('error', (err) => {
        if (answered) return void res.destroy(err);
        // A reset before the whole request went out never reached the app: safe to try again.
        onFailure(!connected ? 'connect-failure' : up.writableFinished ? 'reset' : 'reset-before-request', err);
      });
      writeBody(up);
    };
    attempt(0);
    for (const m of plan.mirrors ?? []) if (Math.random() * 100 < m.percent) this.mirror(m, method, path, headers, req);
  }

  /** A copy of the request to another backend, its answer dropped; the original never waits for it. */
  private mirror(m: { service: ServiceEntry; port: number }, method: string, path: string, headers: OutgoingHttpHeaders, req: DownstreamRequest): void {
    const ep = this.o.destinations.choose(m.service, m.port, noAffinity)?.endpoint;
    if (!ep) return;
    const host = `${String(headers.host ?? '')}-shadow`;
    const copy = http.request({ host: ep.ip, port: ep.port, method, path, headers: { ...headers, host }, agent: this.o.upstreams.agent(ep), timeout: 10_000 });
    copy.on('response', (r) => r.resume());
    copy.on('error', () => undefined);
    copy.on('timeout', () => copy.destroy());
    (req as unknown as NodeJS.ReadableStream).pipe(copy);
  }

  private answer(res: DownstreamResponse, outcome: RequestOutcome, status: number, flag: string, message: string, grpc = false, headers?: OutgoingHttpHeaders): void {
    outcome.status = status;
    if (flag !== '-') outcome.flags = outcome.flags === '-' || outcome.flags === 'URX' ? flag : `${outcome.flags},${flag}`;
    if (res.headersSent) return void res.destroy();
    if (grpc) return answerGrpc(res, outcome, grpcStatusOf(status), message, headers);
    const body = `${message}\n`;
    res.writeHead(status, { ...headers, 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(body)) });
    res.end(body);
  }

  /**
   * A WebSocket (or other) upgrade. The same security and rate limits as any request decide first
   * (a header must not walk around a DENY); then the request goes to an endpoint as it came and bytes
   * flow both ways. Recorded once, when the connection ends, as Envoy logs an upgraded stream: the
   * backend's status (101 when it switched protocols), and the bytes of the whole connection after
   * the request's and the response's heads.
   */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, ctx: TunnelContext): void {
    const started = performance.now();
    const outcome = this.begin(req, ctx, false);
    let recorded = false;
    const finish = () => {
      if (recorded) return;
      recorded = true;
      this.end(outcome, started);
    };
    socket.once('close', finish);
    socket.on('error', () => socket.destroy());
    // Held until the backend is reached; the counter sees every byte the client sends after its head.
    outcome.requestBytes = head.length;
    socket.on('data', (c: Buffer) => (outcome.requestBytes += c.length));
    socket.pause();
    const local = (status: number, flag: string, message = '', headers?: OutgoingHttpHeaders) => {
      outcome.status = status;
      if (flag !== '-') outcome.flags = flag;
      let text = `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\n`;
      for (const k in headers) for (const v of [headers[k]].flat()) if (v !== undefined) text += `${k}: ${String(v)}\r\n`;
      const body = message ? `${message}\n` : '';
      socket.end(`${text}content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    };
    const go = () => {
      if (socket.destroyed) return;
      outcome.path = req.url ?? '/';
      let plan: Plan;
      try {
        plan = this.o.plan(req, ctx);
      } catch (err) {
        return local(500, 'NR', `routing failed: ${(err as Error).message}`);
      }
      if (plan.route) outcome.route = plan.route;
      if (plan.respond) return local(plan.respond.status, plan.respond.flag ?? '-', '', plan.respond.headers);
      const limited = this.o.limit?.(ctx.service, plan.routeRef, ctx);
      if (limited?.refusal) return local(limited.refusal.status, limited.refusal.flag, limited.refusal.message, limited.refusal.headers);
      const backend = plan.backend ?? { service: ctx.service, port: ctx.port };
      const ep = this.o.destinations.choose(backend.service, backend.port, { ...noAffinity, ...(ctx.sourceIp ? { sourceIp: ctx.sourceIp } : {}) })?.endpoint;
      if (!ep) return local(503, 'UH', `no healthy upstream for ${backend.service.namespace}/${backend.service.name}:${backend.port}`);
      outcome.endpoint = ep;
      outcome.attempts = 1;
      void this.o.upstreams.tunnel(ep).then(
        (up) => {
          if (socket.destroyed) return void up.destroy();
          // The headers as admit() left them (a verified token stripped, claim headers set) and the
          // route's modifiers applied: never the raw ones the client sent.
          const headers = { ...req.headers };
          applyEdits(headers as OutgoingHttpHeaders, plan.requestHeaders);
          let text = `${req.method} ${plan.path ?? req.url} HTTP/1.1\r\n`;
          for (const k in headers) for (const v of [headers[k]].flat()) if (v !== undefined) text += `${k}: ${v}\r\n`;
          up.write(`${text}\r\n`);
          if (head.length) up.write(head);
          // The backend's status line is in its first bytes; what follows its head is the stream's.
          let inHead = true;
          up.on('data', (c: Buffer) => {
            if (!inHead) return void (outcome.responseBytes += c.length);
            if (!outcome.status && c.length >= 12 && c.toString('latin1', 0, 5) === 'HTTP/') outcome.status = Number(c.toString('latin1', 9, 12)) || 0;
            const end = c.indexOf('\r\n\r\n');
            if (end < 0) return;
            inHead = false;
            outcome.responseBytes += c.length - end - 4;
          });
          splice(socket, up, () => {
            socket.destroy();
            up.destroy();
          });
          socket.resume();
        },
        (err: Error) => local(503, err instanceof UpstreamUnavailable ? err.flag : 'UF', `upstream connect error: ${err.message}`),
      );
    };
    const admitted = this.o.admit?.(req, ctx);
    if (admitted === undefined) return go();
    if (!('then' in admitted)) return local(admitted.status, admitted.flag, admitted.message, admitted.headers);
    admitted.then(
      (r) => (r ? local(r.status, r.flag, r.message, r.headers) : go()),
      (err: Error) => local(500, '-', `authentication failed: ${err.message}`),
    );
  }
}
