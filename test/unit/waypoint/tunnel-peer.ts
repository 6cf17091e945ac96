// The far end of the waypoint's tunnels for upstream-tunnel.test.ts, run in a worker thread so that
// it answers while the waypoint's loop is busy, as a peer node does: an HBONE server in front of a
// backend that answers a request as soon as its head arrives and then discards the body, as
// nginx's `return 200` does (the bench's backend). The test's loop alone could not answer that soon.

import { createServer, type AddressInfo, type Server } from 'node:net';
import { once } from 'node:events';
import { parentPort, workerData } from 'node:worker_threads';
import { createHboneServer } from '../../../shared/hbone/server.js';
import { TrustBundle } from '../../../shared/identity/svid.js';
import { dialTunnel } from '../proxy/helpers.js';

export interface TunnelPeerData {
  keyPem: string;
  certPem: string;
  rootPem: string;
}

export interface TunnelPeerPorts {
  hbone: number;
  backend: number;
}

const answer = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';

/** HTTP/1.1 keep-alive: each request answered on its head, its content-length bytes of body skipped. */
function eagerBackend(): Server {
  return createServer((socket) => {
    socket.on('error', () => undefined);
    let pending = '';
    let skip = 0;
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1');
      for (;;) {
        if (skip > 0) {
          const n = Math.min(skip, pending.length);
          skip -= n;
          pending = pending.slice(n);
          if (skip > 0) return;
        }
        const end = pending.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = pending.slice(0, end);
        pending = pending.slice(end + 4);
        skip = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
        socket.write(answer);
      }
    });
  });
}

if (parentPort) {
  const port = parentPort;
  const d = workerData as TunnelPeerData;
  const backend = eagerBackend();
  backend.listen(0, '127.0.0.1');
  await once(backend, 'listening');
  const bundle = new TrustBundle({ 'cluster.local': [d.rootPem] });
  const server = createHboneServer({ key: d.keyPem, cert: d.certPem, trustBundle: () => bundle, onTunnel: dialTunnel });
  const { port: hbone } = await server.listen(0, '127.0.0.1');
  port.on('message', (m) => {
    if (m === 'counters') port.postMessage(server.counters);
  });
  port.postMessage({ hbone, backend: (backend.address() as AddressInfo).port } satisfies TunnelPeerPorts);
}
