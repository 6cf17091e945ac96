// The sample TCP echo service: writes back every byte it reads, with backpressure.

import { createServer } from 'node:net';

export function runTcpEcho(port: number): void {
  const server = createServer((socket) => {
    socket.on('error', () => socket.destroy());
    socket.pipe(socket);
  });
  server.listen(port, () => process.stdout.write(`tcp-echo listening on :${port}\n`));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}
