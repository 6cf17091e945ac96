// The echo backend of the L7 tests, in the shape of the Gateway API conformance suite's echo-basic:
// every answer is JSON saying what arrived (path, host, method, protocol, headers) and who answered
// (namespace, pod, version). A request may ask for a delay (`?delay=1s`) or a status (`?status=503`),
// and the server can be made flaky (`--fail-rate 0.5`: that share of requests answered 503), which is
// what timeouts, retries and outlier detection are tested against. The conformance suite's retry
// simulation too: `?uuid=U&succeedAfter=N[&responseCode=C][&delayRetry=D]` fails the first N tries
// of request U (status C, else a reset connection; after D), then answers. gRPC-free; HTTP/1.1, h2c.

import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import { parseDuration } from '../../shared/duration.js';
import { createTracer } from '../../shared/telemetry/tracing.js';

export interface EchoOptions {
  port: number;
  version: string;
  /** Share of requests (0..1) answered 503 without looking at them. */
  failRate: number;
  /** Also accept HTTP/2 without TLS (prior knowledge), beside HTTP/1.1. */
  h2c: boolean;
  /** OTLP/HTTP traces URL: a server span per request, continuing the caller's trace. */
  otlp?: string;
}

export async function runEcho(o: EchoOptions): Promise<void> {
  const pod = process.env.POD_NAME ?? 'unknown';
  const namespace = process.env.POD_NAMESPACE ?? 'unknown';
  let served = 0;
  // Tries seen per simulated request id; bounded, as a test backend may run for long.
  const tries = new Map<string, number>();
  const tracer = await createTracer({ ...(o.otlp ? { endpoint: o.otlp } : {}), serviceName: `echo-${o.version}`, namespace, exportIntervalMs: 200 });
  const handle = (req: IncomingMessage | http2.Http2ServerRequest, res: ServerResponse | http2.Http2ServerResponse) => {
    if (tracer.enabled) {
      const span = tracer.startServer(req.headers, { method: req.method ?? 'GET', path: req.url ?? '/', authority: req.headers.host ?? '' });
      res.once('finish', () => span.end({ responseCode: res.statusCode }));
    }
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/healthz') return void res.end('ok\n');
    served++;
    const body: Buffer[] = [];
    req.on('data', (c: Buffer) => body.push(c));
    req.on('end', () => {
      if (failSimulatedTry(url, req, res, tries)) return;
      const answer = () => {
        if (o.failRate > 0 && Math.random() < o.failRate) {
          res.writeHead(503, { 'content-type': 'text/plain' });
          return void res.end(`flaky ${pod} failed this one\n`);
        }
        const status = Number(url.searchParams.get('status') ?? 200);
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        for (const h of [req.headers['x-echo-set-header']].flat()) {
          if (typeof h !== 'string') continue;
          for (const pair of h.split(',')) {
            const i = pair.indexOf(':');
            if (i > 0) headers[pair.slice(0, i).trim().toLowerCase()] = pair.slice(i + 1).trim();
          }
        }
        const echoed: Record<string, string[]> = {};
        for (const [k, v] of Object.entries(req.headers)) if (!k.startsWith(':') && v !== undefined) echoed[k] = [v].flat();
        res.writeHead(Number.isInteger(status) && status >= 200 && status < 600 ? status : 200, headers);
        res.end(
          JSON.stringify({
            path: req.url,
            host: (req.headers[':authority'] as string | undefined) ?? req.headers.host ?? '',
            method: req.method,
            proto: req.httpVersionMajor === 2 ? 'HTTP/2.0' : `HTTP/${req.httpVersion}`,
            headers: echoed,
            namespace,
            pod,
            // Who connected: the waypoint, for traffic that went through one.
            client: (req.socket?.remoteAddress ?? '').replace(/^::ffff:/, ''),
            version: o.version,
            bodyBytes: body.reduce((n, c) => n + c.length, 0),
            served,
          }) + '\n',
        );
      };
      const delay = url.searchParams.get('delay');
      if (delay) setTimeout(answer, /^\d+$/.test(delay) ? Number(delay) : parseDuration(delay, 'delay') * 1000);
      else answer();
    });
  };
  const server = o.h2c ? http2.createServer({}, handle) : http.createServer(handle);
  if (!o.h2c) (server as http.Server).keepAliveTimeout = 65_000;
  server.listen(o.port, () => process.stdout.write(`echo ${o.version} listening on :${o.port}${o.h2c ? ' (h2c)' : ''}\n`));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

/** The suite's retry simulation: true when this try of the request is to fail, and it does. */
function failSimulatedTry(url: URL, req: IncomingMessage | http2.Http2ServerRequest, res: ServerResponse | http2.Http2ServerResponse, tries: Map<string, number>): boolean {
  const id = url.searchParams.get('uuid');
  const succeedAfter = Number(url.searchParams.get('succeedAfter') ?? 0);
  if (!id || !(succeedAfter > 0)) return false;
  const seen = (tries.get(id) ?? 0) + 1;
  if (tries.size > 10_000) tries.clear();
  tries.set(id, seen);
  if (seen > succeedAfter) return false;
  const code = Number(url.searchParams.get('responseCode') ?? 0);
  const fail = () => {
    if (code >= 200 && code < 600) {
      res.writeHead(code, { 'content-type': 'text/plain' });
      return void res.end(`try ${seen} of ${id} fails with ${code}\n`);
    }
    // No status asked for: the connection error of the suite's HTTPRouteRetryConnectionError.
    if ('stream' in res) res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    else req.socket.destroy();
  };
  const delay = url.searchParams.get('delayRetry');
  if (delay) setTimeout(fail, /^\d+$/.test(delay) ? Number(delay) : parseDuration(delay, 'delayRetry') * 1000);
  else fail();
  return true;
}
