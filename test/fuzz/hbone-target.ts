// The process under attack for the HBONE fuzzers and floods: the real HBONE server (default limits)
// with the real inbound tunnel handler behind it. 127.0.0.1 stands for this node's one captured pod,
// its "namespace" is this process's own, and the pod's app is a TCP echo server. A CONNECT to any
// other port of 127.0.0.1 is answered 503 here, before the inbound handler, so a fuzzed authority
// never makes this process dial a stranger's loopback service.

import { openSync } from 'node:fs';
import { pino } from 'pino';
import { Resolver } from '../../agent/proxy/resolve.js';
import { ConnectionTable } from '../../agent/proxy/connections.js';
import { handleTunnel, type InboundContext } from '../../agent/proxy/inbound.js';
import { createHboneServer, type HboneServerLimits } from '../../shared/hbone/server.js';
import { Authorizer, PeerAuthenticator } from '../../shared/policy/index.js';
import { TrustBundle } from '../../shared/identity/svid.js';
import { echoServer } from '../unit/proxy/helpers.js';
import { serveTarget } from './common.js';
import { stateWith } from '../helpers/state.js';

export interface HboneTargetParams {
  keyPem: string;
  certPem: string;
  rootsPem: string[];
  limits?: Partial<HboneServerLimits>;
}

export interface HboneTargetInfo {
  port: number;
  echoPort: number;
}

// No workload here has the client's identity (shop/web), so a Forwarded header is either malformed
// (400) or names another identity's workload (403): the handler never binds a foreign source address.
const state = stateWith('fuzz-node', [
  { key: 'namespace/shop', value: { name: 'shop', labels: { 'ambit.dev/dataplane-mode': 'ambient' } } },
  { key: 'workload/shop/other-1', value: { ip: '10.0.0.8', node: 'n2', serviceAccount: 'other', owner: 'Deployment/other' } },
  { key: 'workload/shop/db-1', value: { ip: '127.0.0.1', node: 'fuzz-node', serviceAccount: 'db', owner: 'Deployment/db', labels: { app: 'db' } } },
]);

const nsFd = openSync('/proc/self/ns/net', 'r');
const silent = pino({ level: 'silent' });
const connections = new ConnectionTable({ opened: () => undefined, closed: () => undefined });
const ctx: InboundContext = {
  resolver: new Resolver(state),
  authorizer: new Authorizer(),
  peerAuthentication: new PeerAuthenticator(),
  connections,
  localPod: (ip) => (ip === '127.0.0.1' ? { workload: state.workloads.get('workload/shop/db-1')!, nsFd } : undefined),
  trustDomain: 'cluster.local',
  log: silent,
  access: silent,
  denied: () => undefined,
  failed: () => undefined,
};

let server: ReturnType<typeof createHboneServer> | undefined;

serveTarget({
  async start(p) {
    const o = p as HboneTargetParams;
    const echo = await echoServer();
    const bundle = new TrustBundle({ 'cluster.local': o.rootsPem });
    server = createHboneServer({
      key: o.keyPem,
      cert: o.certPem,
      trustBundle: () => bundle,
      limits: o.limits ?? {},
      onTunnel: (t) => (t.authority.ip === '127.0.0.1' && t.authority.port !== echo.port ? t.respond(503) : handleTunnel(ctx, t)),
    });
    const { port } = await server.listen(0, '127.0.0.1');
    return { port, echoPort: echo.port } satisfies HboneTargetInfo;
  },
  counters: () => ({ ...server?.counters, liveTunnels: connections.size }),
});
