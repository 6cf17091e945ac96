// A WebSocket echo backend (the `ws` package): every text message comes back as JSON saying what
// arrived and who answered (version, pod), so a test through a waypoint sees the upgrade held and
// which backend served it. Plain HTTP/1.1 on the same port answers `/healthz`.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';

export interface WsEchoOptions {
  port: number;
  version: string;
}

/** One echoed message. */
export interface WsEchoReply {
  message: string;
  version: string;
  pod: string;
  /** The upgrade request's path. */
  path: string;
  /** The upgrade request's headers, as the server received them. */
  headers: Record<string, string | string[] | undefined>;
}

/** Serves until SIGTERM; the server is returned for tests to close. */
export function runWsEcho(o: WsEchoOptions): http.Server {
  const pod = process.env.POD_NAME ?? 'unknown';
  const server = http.createServer((req, res) => {
    res.writeHead(req.url === '/healthz' ? 200 : 426, { 'content-type': 'text/plain' });
    res.end(req.url === '/healthz' ? 'ok\n' : 'a WebSocket upgrade is expected\n');
  });
  const wss = new WebSocketServer({ server, maxPayload: 1024 * 1024 });
  wss.on('connection', (socket, req) => {
    socket.on('message', (data, binary) => {
      if (binary) return void socket.send(data, { binary: true });
      const reply: WsEchoReply = { message: String(data), version: o.version, pod, path: req.url ?? '/', headers: req.headers };
      socket.send(JSON.stringify(reply));
    });
    socket.on('error', () => socket.terminate());
  });
  server.listen(o.port, () => process.stdout.write(`ws-echo ${o.version} listening on :${(server.address() as AddressInfo).port}\n`));
  process.once('SIGTERM', () => {
    for (const c of wss.clients) c.close(1001, 'going away');
    server.close(() => process.exit(0));
  });
  return server;
}
