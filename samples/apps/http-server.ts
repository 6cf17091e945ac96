// The sample HTTP service: answers every request with who served it (app, version, pod, node) and
// who asked (the peer address it saw), which is what the demo and the tests look at.

import { createServer } from 'node:http';

export interface HttpServerOptions {
  port: number;
  app: string;
  version: string;
}

export function runHttpServer(o: HttpServerOptions): void {
  const pod = process.env.POD_NAME ?? 'unknown';
  const ip = process.env.POD_IP ?? 'unknown';
  const node = process.env.NODE_NAME ?? 'unknown';
  const server = createServer((req, res) => {
    if (req.url === '/healthz') {
      res.end('ok\n');
      return;
    }
    // Drain a request body (POST) before answering, so the client sees a clean exchange.
    req.resume();
    req.on('end', () => {
      const client = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
      res.setHeader('content-type', 'text/plain');
      res.end(`${o.app} ${o.version} pod=${pod} ip=${ip} node=${node} client=${client} path=${req.url}\n`);
    });
  });
  server.keepAliveTimeout = 65_000;
  // No host: listen() binds :: synchronously, in the namespace the process runs in.
  server.listen(o.port, () => process.stdout.write(`${o.app} ${o.version} listening on :${o.port}\n`));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}
