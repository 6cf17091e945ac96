// The controller process: the resource store, the API the CLI talks to, the CA, the push channel
// to the node agents and, for the local cluster, the embedded runtime that runs pods and agents.

import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { createLogger } from '../shared/log.js';
import { AmbitError, errorMessage } from '../shared/errors.js';
import { parseCidr } from '../shared/net/ipv4.js';
import { Store, writeFileAtomic } from './store/store.js';
import { ClusterIPAllocator } from './resources/allocator.js';
import { createApiServer } from './api/server.js';
import { CertificateAuthority } from './ca/authority.js';
import { ShareBuilder } from './push/share.js';
import { PushServer } from './push/server.js';
import { ControllerMetrics } from './metrics.js';
import { caHandler } from './ca/service.js';
import { TrustBundle } from '../shared/identity/svid.js';
import { caDir, type ControllerConfig, dashboardTokenPath, defaultDashboardPort, kubeAdminTokenPath, kubeconfigPath, nodeTokenPath, storeDir, tokenPath, trustBundlePath } from './config.js';
import { kubeApiDnsNames, type KubeApiServed, serveKubeApi } from '../cluster/apiserver/serve.js';
import type { Topology } from '../cluster/topology.js';
import { startDashboard } from './dashboard/dashboard.js';
import { releaseInheritedNetns } from '../shared/net/listen.js';
import { agentQueryPort, netnsDialer, noDialer } from './dashboard/agent-link.js';
import { LocalClusterRuntime } from '../cluster/runtime.js';
import { readState, topologyOf } from '../cluster/state.js';
import { clusterStatus } from '../cluster/status.js';
import { prometheusPathPrefix, prometheusUrl } from '../cluster/prometheus.js';

export async function runController(config: ControllerConfig): Promise<void> {
  const log = createLogger('controller', config.logLevel);
  const store = new Store(storeDir(config.stateDir));
  const token = loadOrCreateSecret(tokenPath(config.stateDir));
  // The namespace every cluster starts with.
  if (!store.get('Namespace', '', 'default')) {
    store.commit([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } },
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace: 'default' } },
    ]);
  }

  let serviceCIDR = parseCidr(config.serviceCIDR);
  let nodes = config.nodes;
  let agentAddresses = config.agentAddresses;
  const state = config.localCluster ? readState(config.stateDir) : undefined;
  if (config.localCluster && !state) throw new AmbitError('NoCluster', `no local cluster recorded in ${config.stateDir}; run \`ambit up\``);
  const topology = state ? topologyOf(state) : undefined;
  if (topology) {
    serviceCIDR = topology.serviceCIDR;
    nodes = topology.nodes.map((n) => n.name);
    agentAddresses = [topology.control.ip];
  }

  // Each node's agent authenticates with its own token until node certificates exist.
  const tokens = new Map(nodes.map((n) => [n, loadOrCreateSecret(nodeTokenPath(config.stateDir, n))]));
  const ca = CertificateAuthority.open(caDir(config.stateDir), config.trustDomain);
  let bundle = new TrustBundle({ [config.trustDomain]: ca.trustBundle() });
  const publishTrustBundle = () => {
    bundle = new TrustBundle({ [config.trustDomain]: ca.trustBundle() });
    // Agents read this file to trust the controller itself; it must hold every current root.
    writeFileAtomic(trustBundlePath(config.stateDir), ca.trustBundle().join(''));
    return store.commit([{ apiVersion: 'ambit.dev/v1alpha1', kind: 'TrustBundle', metadata: { name: config.trustDomain }, spec: { roots: ca.trustBundle() } }]);
  };
  publishTrustBundle();
  // Previous roots leave the bundle when their overlap ends.
  setInterval(() => ca.expireRoots() && publishTrustBundle(), 60_000).unref();
  const issueServing = () => ca.issueServing([...agentAddresses, '127.0.0.1'], ['ambit-controller']);
  const serving = issueServing();
  const metrics = new ControllerMetrics();
  let runtime: LocalClusterRuntime | undefined;
  const share = new ShareBuilder(config.rootNamespace);
  share.load(store.list(), store.currentRevision);
  const issuer = { ca, trustDomain: config.trustDomain, maxTtlSeconds: config.certMaxTtlSeconds, defaultTtlSeconds: config.certDefaultTtlSeconds };
  const push = new PushServer({
    share,
    tokens,
    tls: { key: serving.keyPem, cert: serving.certPem },
    bundle: () => bundle,
    log: log.child({ component: 'push' }),
    onCapture: () => runtime?.schedule(),
    onRequest: caHandler({ issuer, store, log: log.child({ component: 'ca' }), metrics, trustBundle: () => ca.trustBundle() }),
  });
  store.on('change', (event) => {
    share.apply(event);
    push.publish();
    metrics.revision.set(event.revision);
  });
  metrics.revision.set(store.currentRevision);
  setInterval(() => metrics.agentsConnected.set(push.agents().filter((a) => a.connected).length), 1000).unref();
  const monitoring = metrics.serve(config.monitoringHost, config.monitoringPort);
  push.server.listen(config.agentPort, config.agentHost);
  await once(push.server, 'listening');

  const ctx = { store, allocator: new ClusterIPAllocator(serviceCIDR), ...(topology ? { nodeNames: nodes } : {}) };

  // The local cluster's Kubernetes API, for kubectl: the same store and admission as the CLI's API.
  let kubeApi: KubeApiServed | undefined;
  const issueKubeApiServing = (t: Topology) => ca.issueServing(['127.0.0.1', t.control.ip], kubeApiDnsNames);
  if (topology && config.kubeApi) {
    try {
      const kubeServing = issueKubeApiServing(topology);
      kubeApi = await serveKubeApi({
        store,
        apply: ctx,
        topology,
        token: loadOrCreateSecret(kubeAdminTokenPath(config.stateDir)),
        tls: { key: kubeServing.keyPem, cert: kubeServing.certPem },
        trustBundle: () => ca.trustBundle(),
        listen: config.kubeApi,
        kubeconfig: kubeconfigPath(config.stateDir),
        createdAt: new Date(state?.createdAt ?? Date.now()),
        log: log.child({ component: 'kube-api' }),
      });
    } catch (err) {
      log.error({ err: errorMessage(err) }, 'the Kubernetes API did not start; the controller runs without it');
    }
  }

  // Before the runtime starts pods and agents: the dashboard may hold an inherited descriptor of
  // the host's namespace until its listener is made, and no child may inherit it.
  let dashboard: { close: () => void } | undefined;
  if (config.dashboard) {
    try {
      dashboard = await startDashboard(config.dashboard, {
        store,
        agents: () => push.agents(),
        trustBundle: () => ca.trustBundle(),
        dialer: topology ? netnsDialer(topology.nodes, agentQueryPort) : noDialer,
        // The local cluster's Prometheus runs beside the controller, under the dashboard's prefix.
        prometheusUrl: config.prometheusUrl ?? (topology?.prometheus ? prometheusUrl(topology) : undefined),
        token: loadOrCreateSecret(dashboardTokenPath(config.stateDir)),
        log: log.child({ component: 'dashboard' }),
      });
    } catch (err) {
      // The control plane matters more than its window: run on, and say why there is none.
      log.error({ err: errorMessage(err) }, 'the dashboard did not start; the controller runs without it');
    }
  }
  for (const path of config.inheritedNetns ?? []) releaseInheritedNetns(path);

  if (topology) {
    runtime = new LocalClusterRuntime({
      store,
      topology,
      stateDir: config.stateDir,
      binDir: config.binDir,
      log: log.child({ component: 'runtime' }),
      isCaptured: (node, pod) => push.isCaptured(node, pod),
      agents: { cliEntry: process.argv[1]!, controllerUrl: `wss://${topology.control.ip}:${config.agentPort}`, caFile: trustBundlePath(config.stateDir), adminAddress: topology.agentAdminAddress, redirect: topology.redirect },
      // Prometheus builds its links on the address people open it at: the dashboard's proxy.
      prometheus: { controllerMonitoringPort: config.monitoringPort, external: `http://${config.dashboard?.host ?? '127.0.0.1'}:${config.dashboard?.port ?? defaultDashboardPort}${prometheusPathPrefix}/` },
    });
    runtime.start();
  }

  const server = createApiServer({
    ctx,
    token,
    push,
    rotateRoot: (overlapSeconds: number) => {
      ca.rotateRoot(config.trustDomain, overlapSeconds * 1000);
      const revision = publishTrustBundle().revision;
      // The controller's own certificate moves to the new root too; agents trust both meanwhile.
      const renewed = issueServing();
      push.server.setSecureContext({ key: renewed.keyPem, cert: renewed.certPem, minVersion: 'TLSv1.3' });
      if (kubeApi && topology) {
        const kubeServing = issueKubeApiServing(topology);
        kubeApi.setTls({ key: kubeServing.keyPem, cert: kubeServing.certPem });
        // kubectl must trust the new root (and the old one during the overlap).
        kubeApi.writeKubeconfig();
      }
      return revision;
    },
    log: log.child({ component: 'api' }),
    ...(runtime ? { restartAgent: (node: string) => runtime!.restartAgent(node) } : {}),
    ...(topology ? { status: () => ({ ...clusterStatus(topology, store, (node, pod) => push.captureOf(node, pod)), agents: push.agents() }) } : {}),
  });
  rmSync(config.apiSocket, { force: true });
  server.listen(config.apiSocket);
  await once(server, 'listening');
  log.info({ api: config.apiSocket, agents: `${config.agentHost}:${config.agentPort}`, revision: store.currentRevision, nodes }, 'controller ready');

  const shutdown = async (signal: string) => {
    log.info({ signal }, 'controller stopping; pods and agents keep running');
    server.close();
    server.closeAllConnections();
    push.close();
    monitoring.close();
    dashboard?.close();
    kubeApi?.close();
    await runtime?.stop();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

function loadOrCreateSecret(path: string): string {
  if (existsSync(path)) return readFileSync(path, 'utf8').trim();
  const secret = randomBytes(32).toString('base64url');
  writeFileAtomic(path, secret, 0o600);
  return secret;
}
