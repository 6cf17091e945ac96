// The push benchmark's Kubernetes API server: a child process serving the local cluster's real API
// handler over HTTPS on loopback from a store of its own, so the controller under test reads the
// cluster through list and watch, and the API server's CPU is counted apart from the controller's.
// Messages: `seed` (commit a batch), `commit` (one change; answers its revision), `cpu`, `stop`.

import { createServer } from 'node:https';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { Store } from '../../controller/store/store.js';
import { CertificateAuthority } from '../../controller/ca/authority.js';
import { ClusterIPAllocator } from '../../controller/resources/allocator.js';
import { kubeApiHandler } from '../../cluster/apiserver/server.js';
import { parseCidr } from '../../shared/net/ipv4.js';
import type { Resource } from '../../shared/resources/types.js';

type Message = { type: 'start'; dir: string } | { type: 'seed' | 'commit'; resources: Resource[] } | { type: 'cpu' } | { type: 'stop' };

const token = 'bench-token';
let store: Store | undefined;

process.on('message', (msg: Message) => {
  void (async () => {
    switch (msg.type) {
      case 'start': {
        store = new Store(join(msg.dir, 'apiserver-store'));
        const api = kubeApiHandler({ store, apply: { store, allocator: new ClusterIPAllocator(parseCidr('10.96.0.0/12')) }, nodes: () => [], token, serviceAccounts: { keyFile: join(msg.dir, 'apiserver-sa.key') }, log: pino({ level: 'silent' }) });
        const ca = CertificateAuthority.open(join(msg.dir, 'apiserver-ca'), 'cluster.local');
        const serving = ca.issueServing(['127.0.0.1'], ['localhost']);
        const server = createServer({ key: serving.keyPem, cert: serving.certPem }, (req, res) => api.handle(req, res));
        server.listen(0, '127.0.0.1');
        await once(server, 'listening');
        process.send?.({ type: 'started', server: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, ca: ca.rootPem, token });
        return;
      }
      case 'seed':
      case 'commit':
        process.send?.({ type: 'committed', revision: store!.commit(msg.resources).revision });
        return;
      case 'cpu':
        process.send?.({ type: 'cpu', usage: process.cpuUsage() });
        return;
      case 'stop':
        process.exit(0);
    }
  })();
});
process.send?.({ type: 'ready' });
