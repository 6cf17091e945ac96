// The agent process, one per node: its connection to the controller, its view of the cluster, and
// the query API. Capture and the proxy plug into the same state.

import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { createLogger } from '../shared/log.js';
import { AmbitError } from '../shared/errors.js';
import type { AgentConfig } from './config.js';
import { AgentState } from './state/state.js';
import { ControllerConnection } from './control/client.js';
import { EventLog } from './api/events.js';
import { createAdminServer } from './api/server.js';
import { CaClient } from './identity/caclient.js';
import { CertificateManager } from './identity/manager.js';
import { NodeCredentials } from './identity/node.js';
import { CaptureManager } from './capture/manager.js';
import { NodeProxy } from './proxy/proxy.js';
import { AgentMetrics } from './telemetry/metrics.js';
import { NetfilterRedirect } from './capture/netfilter.js';
import { EbpfRedirect } from './capture/ebpf.js';

export async function runAgent(config: AgentConfig): Promise<void> {
  const log = createLogger('agent', config.logLevel).child({ node: config.node });
  const read = (path: string, what: string) => {
    try {
      return readFileSync(path, 'utf8').trim();
    } catch (err) {
      throw new AmbitError('AgentConfig', `cannot read the ${what} at ${path}: ${(err as Error).message}`);
    }
  };
  const state = new AgentState(config.node);
  const events = new EventLog();
  state.on('config', (e) => events.publish('config', e));
  state.on('enrollment', (e) => {
    events.publish('enrollment', e);
    log.info(e, e.enrolled ? 'workload enrolled' : 'workload left the mesh');
  });

  const token = read(config.tokenFile, 'node token');
  read(config.controllerCaFile, 'controller CA');
  // Trust for the controller: the bundle file (re-read, it changes with rotations) and the pushed bundle.
  const controllerCa = () => {
    const roots = new Set<string>();
    try {
      roots.add(readFileSync(config.controllerCaFile, 'utf8'));
    } catch {
      // Keep what was pushed.
    }
    for (const b of state.trustBundles.values()) for (const r of b.roots) roots.add(r);
    return [...roots];
  };
  // The token bootstraps a node certificate, which then authenticates the node instead.
  const onCertificateRejected = () => nodeCredentials.rejectedByController();
  const bootstrapCa = new CaClient({ url: config.controllerUrl, node: config.node, token, ca: controllerCa, credential: () => nodeCredentials.current(), onCertificateRejected });
  const nodeCredentials: NodeCredentials = new NodeCredentials({ ca: bootstrapCa, node: config.node, trustDomain: config.trustDomain, ttlSeconds: config.certTtlSeconds, log: log.child({ component: 'identity' }) });
  const credential = () => nodeCredentials.current();
  const control = new ControllerConnection({ url: config.controllerUrl, node: config.node, token, ca: controllerCa, credential, onCertificateRejected, state, log: log.child({ component: 'control' }) });
  // After a root rotation the node certificate moves to the new root too, before the old one goes.
  let root: string | undefined;
  state.on('config', () => {
    const now = state.trustBundles.get(`trustbundle/${config.trustDomain}`)?.roots[0];
    if (root && now && now !== root) nodeCredentials.renewSoon();
    root = now ?? root;
  });
  nodeCredentials.on('renewed', () => {
    if (control.authenticatedWith === 'token') control.reconnect();
  });
  const certificates = new CertificateManager({
    state,
    ca: bootstrapCa,
    trustDomain: config.trustDomain,
    ttlSeconds: config.certTtlSeconds,
    keyType: config.keyType,
    log: log.child({ component: 'identity' }),
  });
  certificates.on('issued', (c) => events.publish('certificates', { identity: c.id, serial: c.serial, notAfter: c.notAfter.toISOString(), event: 'issued' }));
  certificates.on('dropped', (id) => events.publish('certificates', { identity: id, event: 'dropped' }));
  certificates.on('failed', (id, reason) => events.publish('certificates', { identity: id, event: 'failed', reason }));
  // The access log is its own stream (stdout), one JSON line per connection, apart from the agent's log.
  const access = createLogger('agent', 'info', undefined, 1).child({ node: config.node, log: 'access' });
  const proxy = new NodeProxy({
    state,
    certificates,
    trustDomain: config.trustDomain,
    rootNamespace: config.rootNamespace,
    podAt: (ip) => capture.podAt(ip),
    log: log.child({ component: 'proxy' }),
    access,
    limits: config.hboneLimits,
    events: {
      opened: (c) => metrics.connectionOpened(c),
      closed: (c) => metrics.connectionClosed(c),
      denied: (reason) => metrics.connectionsDenied.inc({ reason }),
      failed: (direction, reason) => metrics.connectionFailures.inc({ direction, reason }),
    },
  });
  const capture: CaptureManager = new CaptureManager({
    state,
    handlers: proxy.handlers,
    inUse: (workload) => proxy.holds(workload),
    redirect: config.redirect === 'ebpf' ? new EbpfRedirect({ node: config.node, ...(config.bpfObject ? { objectPath: config.bpfObject } : {}) }) : new NetfilterRedirect(),
    log: log.child({ component: 'capture' }),
    onChange: (workload, captured, error) => {
      if (error) metrics.captureFailures.inc({ workload });
      events.publish('enrollment', { workload, captured, ...(error ? { error } : {}) });
      const st = capture.status();
      control.reportCapture(st.captured, st.failed);
    },
  });
  const admin = createAdminServer({
    state,
    events,
    token: read(config.adminTokenFile, 'admin token'),
    log: log.child({ component: 'api' }),
    controller: () => ({ connected: control.connected, auth: control.authenticatedWith, ...(control.lastError ? { lastError: control.lastError } : {}) }),
    certificates: () => certificates.list(),
    connections: () => proxy.counters(capture.captured()),
    capture: () => capture.status(),
    explain: {
      outbound: (p) => proxy.explainOutbound({ sourceIp: String(p.sourceIp), ip: String(p.ip), port: Number(p.port) }),
      inbound: (p) =>
        proxy.explainInbound({ sourceIp: String(p.sourceIp), ...(typeof p.sourcePrincipal === 'string' ? { sourcePrincipal: p.sourcePrincipal } : {}), ip: String(p.ip), port: Number(p.port), mtls: p.mtls === true }),
    },
  });
  const metrics = new AgentMetrics({
    cluster: config.clusterName,
    connections: proxy.connections,
    health: () => ({ capturedPods: capture.status().captured.length, configVersion: state.version, controllerConnected: control.connected, certificates: certificates.list().length }),
    counters: () => ({ ...prefixed('hbone_client_', proxy.pool.counters), ...prefixed('hbone_server_', flatten(proxy.server.counters)) }),
  });
  admin.listen(config.adminPort, config.adminHost);
  await once(admin, 'listening');
  await proxy.listen(config.hboneHost);
  const metricsServer = metrics.serve(config.metricsHost, config.metricsPort);
  await once(metricsServer, 'listening');
  nodeCredentials.start();
  control.start();
  certificates.start();
  capture.start();
  log.info({ admin: `${config.adminHost}:${config.adminPort}`, controller: config.controllerUrl }, 'agent ready');

  const shutdown = (signal: string) => {
    log.info({ signal }, 'agent stopping');
    control.stop();
    certificates.stop();
    nodeCredentials.stop();
    void capture.stop();
    void proxy.close();
    metricsServer.close();
    admin.close();
    admin.closeAllConnections();
    setTimeout(() => process.exit(0), 100).unref();
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

function prefixed(prefix: string, counters: object): Record<string, number> {
  return Object.fromEntries(Object.entries(counters).map(([k, v]) => [`${prefix}${k}`, Number(v)]));
}

/** `{ refused: { expired: 1 } }` as `{ refused_expired: 1 }`: one level of nesting, as the server's counters have. */
function flatten(counters: object): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(counters)) {
    if (typeof v === 'object' && v) for (const [k2, v2] of Object.entries(v)) out[`${k}_${k2}`] = Number(v2);
    else out[k] = Number(v);
  }
  return out;
}
