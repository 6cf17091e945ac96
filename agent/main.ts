// The agent process, one per node: its connection to the controller, its view of the cluster, and
// the query API. Capture and the proxy plug into the same state.

import { readFileSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:net';
import { getHeapSnapshot } from 'node:v8';
import { createLogger, type Logger } from '../shared/log.js';
import { AmbitError, errorMessage } from '../shared/errors.js';
import type { AgentConfig } from './config.js';
import { AgentState } from './state/state.js';
import { ControllerConnection } from './control/client.js';
import { ControllerAddresses } from './control/addresses.js';
import { EventLog } from './api/events.js';
import { createAdminServer } from './api/server.js';
import { CaClient } from './identity/caclient.js';
import { WaypointHost } from './waypoint/host.js';
import { CertificateManager } from './identity/manager.js';
import { NodeCredentials } from './identity/node.js';
import { allowRequestMigration, CaptureManager } from './capture/manager.js';
import { NodeProxy } from './proxy/proxy.js';
import { identityOf } from './proxy/outbound.js';
import { spiffeId } from '../shared/identity/spiffe.js';
import { AgentMetrics, metricsEvents } from './telemetry/metrics.js';
import { NetfilterRedirect } from './capture/netfilter.js';
import { EbpfRedirect } from './capture/ebpf.js';
import { PodDiscovery } from './discovery/pods.js';
import { CniServer } from './cni/server.js';
import { CniInstaller } from './cni/installer.js';
import { pluginEntry } from './cni/protocol.js';
import { ProxyWorkers } from './workers/host.js';
import { cpuProfile } from '../shared/telemetry/profile.js';

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
  // The other event loops that carry traffic (agent/workers/): none with --workers 1.
  let workers: ProxyWorkers | undefined;
  const events = new EventLog(undefined, config.workers > 1 ? (topic, emit) => workers!.subscribe(topic, emit) : undefined);
  state.on('config', (e) => events.publish('config', e));
  state.on('enrollment', (e) => {
    events.publish('enrollment', e);
    log.info(e, e.enrolled ? 'workload enrolled' : 'workload left the mesh');
  });

  // A ServiceAccount token bound to this node, rotated in its file as the kubelet rotates projected tokens.
  read(config.tokenFile, 'node token');
  let lastToken = '';
  const token = () => {
    try {
      lastToken = read(config.tokenFile, 'node token');
    } catch (err) {
      // Mid-rotation or briefly gone: the last one read may still be good; the controller decides.
      log.warn({ err: errorMessage(err) }, 'cannot read the node token; using the last one read');
    }
    return lastToken;
  };
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
  const controllers = new ControllerAddresses(config.controllerUrls);
  const bootstrapCa = new CaClient({ url: controllers.current, failed: controllers.failed, node: config.node, token, ca: controllerCa, credential: () => nodeCredentials.current(), onCertificateRejected });
  const nodeCredentials: NodeCredentials = new NodeCredentials({ ca: bootstrapCa, node: config.node, trustDomain: config.trustDomain, ttlSeconds: config.certTtlSeconds, log: log.child({ component: 'identity' }) });
  const credential = () => nodeCredentials.current();
  const control = new ControllerConnection({ url: controllers.current, failed: controllers.failed, node: config.node, token, ca: controllerCa, credential, onCertificateRejected, state, log: log.child({ component: 'control' }) });
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
  // Each event loop bounds its own HBONE sessions: the agent's bound, shared out.
  const hboneLimits = { ...config.hboneLimits, maxSessions: Math.ceil(config.hboneLimits.maxSessions / config.workers) };
  if (config.workers > 1) {
    workers = new ProxyWorkers({
      setup: { node: config.node, logLevel: config.logLevel, trustDomain: config.trustDomain, rootNamespace: config.rootNamespace, clusterName: config.clusterName, hboneLimits, count: config.workers },
      state,
      certificates,
      log: log.child({ component: 'workers' }),
    });
    await workers.start();
  }
  // The access log is its own stream (stdout), one JSON line per connection, apart from the agent's log.
  const access = createLogger('agent', 'info', undefined, 1).child({ node: config.node, log: 'access' });
  const proxy: NodeProxy = new NodeProxy({
    state,
    certificates,
    trustDomain: config.trustDomain,
    rootNamespace: config.rootNamespace,
    podAt: (ip) => capture.podAt(ip),
    log: log.child({ component: 'proxy' }),
    access,
    limits: hboneLimits,
    events: metricsEvents(() => metrics),
    worker: { index: 0, count: config.workers },
  });
  // Pods as this node has them: from the CNI plugin's events, and those already running from /proc.
  const discovery = new PodDiscovery({ ...(config.podCgroupRoot ? { podCgroupRoot: config.podCgroupRoot } : {}), ...(config.procRoot ? { procRoot: config.procRoot } : {}), log: log.child({ component: 'discovery' }) });
  try {
    discovery.scan();
  } catch (err) {
    log.error({ err: errorMessage(err) }, 'cannot scan /proc for running pods; only CNI events will find them');
  }
  const capture: CaptureManager = new CaptureManager({
    state,
    handlers: proxy.handlers,
    inUse: async (workload) => proxy.holds(workload) || ((await workers?.holds(workload)) ?? false),
    ...(workers ? { workers } : {}),
    locate: (w) => discovery.locate(w),
    redirect: config.redirect === 'ebpf' ? new EbpfRedirect({ node: config.node, ...(config.bpfObject ? { objectPath: config.bpfObject } : {}) }) : new NetfilterRedirect(),
    log: log.child({ component: 'capture' }),
    onChange: (workload, captured, error) => {
      if (error) metrics.captureFailures.inc({ workload });
      cni.captureChanged(workload, captured, error);
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
    connections: () => (workers ? workers.addCounters(proxy.counters(capture.captured())) : proxy.counters(capture.captured())),
    capture: () => capture.status(),
    workers: async () => [proxy.load(0), ...((await workers?.load()) ?? [])],
    debug: {
      cpuProfiles: async (ms) => (await Promise.all([cpuProfile(ms).then((p) => [p]), workers?.profile(ms) ?? []])).flat(),
      heapSnapshot: async (thread) => (thread === 0 ? getHeapSnapshot() : workers ? workers.heapSnapshot(thread) : Promise.reject(new Error('the agent runs one event loop (--workers 1): thread 0 only'))),
    },
    explain: {
      outbound: (p) => proxy.explainOutbound({ sourceIp: String(p.sourceIp), ip: String(p.ip), port: Number(p.port) }),
      inbound: (p) =>
        proxy.explainInbound({ sourceIp: String(p.sourceIp), ...(typeof p.sourcePrincipal === 'string' ? { sourcePrincipal: p.sourcePrincipal } : {}), ip: String(p.ip), port: Number(p.port), mtls: p.mtls === true }),
      waypoint: (p) =>
        waypoints.explain(String(p.pod), {
          service: String(p.service ?? ''),
          ...(typeof p.ip === 'string' ? { ip: p.ip } : {}),
          port: Number(p.port),
          sourceIp: String(p.sourceIp ?? ''),
          sourcePrincipal: String(p.sourcePrincipal ?? ''),
          method: String(p.method ?? 'GET'),
          path: String(p.path ?? '/'),
          headers: typeof p.headers === 'object' && p.headers !== null ? (p.headers as Record<string, string>) : {},
        }),
    },
  });
  const metrics: AgentMetrics = new AgentMetrics({
    cluster: config.clusterName,
    trustDomain: config.trustDomain,
    connections: proxy.connections,
    sockets: () => proxy.openSockets,
    health: () => ({ capturedPods: capture.status().captured.length, configVersion: state.version, controllerConnected: control.connected, certificates: certificates.list().length }),
    counters: () => proxy.eventCounts(),
  });
  // The data path's listeners (HBONE here, each pod's in the capture) are shared with a successor
  // through SO_REUSEPORT; the query API and metrics are taken over once the predecessor lets go.
  allowRequestMigration(undefined, log);
  const metricsServer = metrics.createServer(workers ? () => workers!.metrics() : undefined);
  const listening = [listenWhenFree(admin, config.adminPort, config.adminHost, log), listenWhenFree(metricsServer, config.metricsPort, config.metricsHost, log)];
  // The plugin's socket opens before the controller is asked: an ADD arriving meanwhile waits for
  // the first push instead of finding no agent.
  const cni = new CniServer({ socket: config.cni.socket, state, discovery, capture, log: log.child({ component: 'cni' }) });
  await cni.listen();
  nodeCredentials.start();
  control.start();
  certificates.start();
  capture.start();
  const waypoints = new WaypointHost({ state, ca: bootstrapCa, trustDomain: config.trustDomain, maxTtlSeconds: config.certTtlSeconds, locate: (w) => discovery.locate(w), log: log.child({ component: 'waypoints' }) });
  waypoints.start();
  discovery.on('change', () => {
    capture.refresh();
    waypoints.refresh();
  });
  // 15008 opens once the agent can answer every handshake for its pods: beside a predecessor
  // (SO_REUSEPORT), a session landing here before the pods' certificates would fail.
  await capture.settled;
  const identities = new Set([...capture.captured()].map((p) => spiffeId(identityOf(p.workload, config.trustDomain))));
  const missing = (await Promise.all([...identities].map(async (id) => ((await certificates.waitFor(id, 10_000)) ? undefined : id)))).filter(Boolean);
  if (missing.length) log.warn({ identities: missing }, 'no certificate yet for these identities; serving HBONE anyway');
  await proxy.listen(config.hboneHost);
  await workers?.listen(config.hboneHost);
  // The plugin goes into the runtime's configuration once the agent can answer it: its socket is
  // open and the enrolled namespaces are listed beside it.
  const installer = config.cni.confDir ? new CniInstaller({ confDir: config.cni.confDir, binDir: config.cni.binDir, entry: pluginEntry(config.cni.socket), log: log.child({ component: 'cni-install' }) }) : undefined;
  installer?.start();
  // Pods whose sandbox was made before the plugin was in the chain, and after the first scan.
  if (installer) discovery.scan();
  log.info({ admin: `${config.adminHost}:${config.adminPort}`, controllers: config.controllerUrls, pods: capture.status().captured.length }, 'agent ready');
  if (config.readyFile) writeFileSync(config.readyFile, String(process.pid));

  /**
   * Stopping is a drain, so that restarting or upgrading an agent drops no connection: new ones go
   * to a successor that listens beside this agent (or wait in the kernel until one starts: the
   * redirect stays, so nothing leaves a pod uncaptured), open ones run to their end, up to the
   * grace period. A second signal ends the process at once.
   */
  const shutdown = async (signal: string) => {
    const graceMs = config.drainSeconds * 1000;
    const open = async () => proxy.connections.size + ((await workers?.size()) ?? 0);
    log.info({ signal, open: await open(), graceSeconds: config.drainSeconds }, 'agent draining');
    for (const l of listening) l.cancel();
    // The plugin's entry stays: while no agent answers, the plugin holds the pods that must be captured.
    installer?.stop();
    discovery.close();
    void cni.close();
    control.stop();
    nodeCredentials.stop();
    capture.stopAccepting();
    workers?.stopAccepting(graceMs);
    waypoints.close();
    metricsServer.close();
    admin.close();
    admin.closeAllConnections();
    // Connections accepted a moment ago may still be opening their tunnels: the pool stays open.
    const closing = proxy.stopAccepting(graceMs);
    const deadline = Date.now() + graceMs;
    while ((await open()) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const left = await open();
    for (const c of [...proxy.connections.values()]) c.terminate('the agent stopped after its drain grace period');
    await workers?.stop();
    certificates.stop();
    await Promise.race([closing, new Promise((r) => setTimeout(r, 1000))]);
    await proxy.close(0);
    await capture.stop();
    log.info({ cutAtGrace: left }, 'agent stopped');
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

/**
 * Listens as soon as the port is free: during a handover the agent before this one holds it until
 * it starts draining. Retries every 250 ms and says so once; `cancel` stops trying.
 */
function listenWhenFree(server: Server, port: number, host: string, log: Logger): { cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  let said = false;
  const attempt = () => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      if (err.code !== 'EADDRINUSE') return log.error({ port, err: err.message }, 'cannot listen');
      if (!said) log.info({ port }, 'port in use (an agent draining?); listening once it is free');
      said = true;
      timer = setTimeout(attempt, 250);
    };
    const onListening = () => {
      server.off('error', onError);
      if (said) log.info({ port }, 'listening');
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  };
  attempt();
  return { cancel: () => clearTimeout(timer) };
}
