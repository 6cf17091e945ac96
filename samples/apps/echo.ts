// The echo backend of the L7 tests, in the shape of the Gateway API conformance suite's echo-basic:
// every answer is JSON saying what arrived (path, host, method, protocol, headers) and who answered
// (namespace, pod, version). A request may ask for a delay (`?delay=1s`) or a status (`?status=503`),
// and the server can be made flaky (`--fail-rate 0.5`: that share of requests answered 503), which is
// what timeouts, retries and outlier detection are tested against. gRPC-free; HTTP/1.1 and h2c.

import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import { parseDuration } from '../../shared/duration.js';

export interface EchoOptions {
  port: number;
  version: string;
  /** Share of requests (0..1) answered 503 without looking at them. */
  failRate: number;
  /** Also accept HTTP/2 without TLS (prior knowledge), beside HTTP/1.1. */
  h2c: boolean;
}

export function runEcho(o: EchoOptions): void {
  const pod = process.env.POD_NAME ?? 'unknown';
  const namespace = process.env.POD_NAMESPACE ?? 'unknown';
  let served = 0;
  const handle = (req: IncomingMessage | http2.Http2ServerRequest, res: ServerResponse | http2.Http2ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/healthz') return void res.end('ok\n');
    served++;
    const body: Buffer[] = [];
    req.on('data', (c: Buffer) => body.push(c));
    req.on('end', () => {
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
