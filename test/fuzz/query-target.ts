// The process under attack for the query API fuzzer: the agent's real admin server (agent/api) with
// a real AgentState holding a few workloads, a real event log, and `ambit explain` answered by a
// real NodeProxy (its HBONE listener never opened; no certificates, no captured pods).

import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { EventLog } from '../../agent/api/events.js';
import { createAdminServer } from '../../agent/api/server.js';
import { NodeProxy } from '../../agent/proxy/proxy.js';
import type { CertificateManager } from '../../agent/identity/manager.js';
import { serveTarget } from './common.js';
import { stateWith } from '../helpers/state.js';

const state = stateWith('fuzz-node', [
  { key: 'namespace/shop', value: { name: 'shop', labels: { 'ambit.dev/dataplane-mode': 'ambient' } } },
  { key: 'workload/shop/web-1', value: { ip: '10.0.0.7', node: 'fuzz-node', serviceAccount: 'web', owner: 'Deployment/web', labels: { app: 'web' } } },
  { key: 'workload/shop/db-1', value: { ip: '10.0.0.9', node: 'n2', serviceAccount: 'db', owner: 'Deployment/db', labels: { app: 'db' } } },
]);
const events = new EventLog();
const silent = pino({ level: 'silent' });
// The proxy asks the certificate manager for a workload's certificate only when explaining an HBONE hop.
const certificates = { get: () => undefined, list: () => [] } as unknown as CertificateManager;
const proxy = new NodeProxy({ state, certificates, trustDomain: 'cluster.local', rootNamespace: 'istio-system', podAt: () => undefined, log: silent, access: silent });

serveTarget({
  async start() {
    const server = createAdminServer({
      state,
      events,
      token: 'fuzz-token',
      log: silent,
      controller: () => ({ connected: true, auth: 'fuzz' }),
      certificates: () => [],
      connections: () => [],
      capture: () => ({}),
      explain: {
        outbound: (p) => proxy.explainOutbound({ sourceIp: String(p.sourceIp), ip: String(p.ip), port: Number(p.port) }),
        inbound: (p) => proxy.explainInbound({ sourceIp: String(p.sourceIp), ...(typeof p.sourcePrincipal === 'string' ? { sourcePrincipal: p.sourcePrincipal } : {}), ip: String(p.ip), port: Number(p.port), mtls: p.mtls === true }),
      },
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return { port: (server.address() as AddressInfo).port };
  },
  /** `count` events of `bytes` each on every topic, published as the data path would. */
  publish(p) {
    const { count, bytes } = p as { count: number; bytes: number };
    const data = { blob: 'x'.repeat(bytes) };
    for (let i = 0; i < count; i++) events.publish('connections', data);
    return { published: count };
  },
});
