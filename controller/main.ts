// The controller process, one replica of the mesh's control plane: it reads the cluster through the
// Kubernetes API (a kubeconfig, or in-cluster configuration), elects a leader, runs the CA, the
// push channel to the node agents, the admission webhook, the dashboard and the API the CLI talks
// to. The same code runs on a real cluster and on the local one, which runs in its own process
// (cluster/); the controller imports nothing of it.

import { rmSync } from 'node:fs';
import { once } from 'node:events';
import { createLogger } from '../shared/log.js';
import { writeFileAtomic } from './store/store.js';
import { createApiServer } from './api/server.js';
import { caSecretName, loadCa, mirrorSecret, saveCa } from './ca/secret.js';
import { Informer } from '../shared/kube/informer.js';
import { ShareBuilder } from './push/share.js';
import { PushServer } from './push/server.js';
import { ControllerMetrics } from './metrics.js';
import { caHandler } from './ca/service.js';
import { TrustBundle } from '../shared/identity/svid.js';
import { caDir, type ControllerConfig, dashboardTokenPath, tokenPath, trustBundlePath } from './config.js';
import { startDashboard } from './dashboard/dashboard.js';
import { releaseInheritedNetns } from '../shared/net/listen.js';
import { type AgentDialer, noDialer } from './dashboard/agent-link.js';
import { loadOrCreateSecret } from './secrets.js';
import { WaypointDeployer } from './waypoints/deployer.js';
import { ClusterCache, controllerKinds } from './kube/cache.js';
import { ControllerWriter } from './kube/view.js';
import { LeaderElector } from './kube/leader.js';
import { webhookConfiguration, webhookPath, webhookServer } from './admission/webhook.js';
import { resourceKind } from '../shared/kube/paths.js';
import { KubeApiError, KubeClient } from '../shared/kube/client.js';
import { AmbitError, errorMessage } from '../shared/errors.js';
import { RouteStatusWriter } from './waypoints/route-status.js';
import { PolicyStatusWriter } from './waypoints/policy-status.js';
import { tokenReviewCheck } from './push/token-review.js';
import { CaptureAnnotator } from './capture/annotator.js';
import { agentServiceAccount, caRootConfigMap } from '../shared/protocol/config.js';
import type { Resource } from '../shared/resources/types.js';
import { isIP } from 'node:net';

/**
 * Runs a replica until SIGTERM. `dialer` is how the dashboard reaches each node's agent query API
 * (the local cluster's nodes are network namespaces; on a real cluster there is none).
 */
export async function runController(config: ControllerConfig, dialer: AgentDialer = noDialer): Promise<void> {
  const log = createLogger('controller', config.logLevel);
  const token = loadOrCreateSecret(tokenPath(config.stateDir));
  const { nodes, agentAddresses } = config;
  const metrics = new ControllerMetrics();

  // Everything the controller knows of the cluster comes from the Kubernetes API, as on a real
  // cluster: what agents are sent, the CA's keys, who leads, who an agent is.
  const kubeConfig = config.kube;
  if (!kubeConfig) throw new AmbitError('NoKubeApi', 'the controller reads the cluster through the Kubernetes API: give it --kubeconfig, or run it in a pod (in-cluster configuration)');
  const kube = new KubeClient(kubeConfig, { userAgent: 'ambit-controller' });
  await ensureNamespace(kube, controllerNamespace);
  const elector = new LeaderElector(kube, { namespace: controllerNamespace, name: leaderLeaseName, identity: config.identity, ...leaderTimings, log: log.child({ component: 'leader-election' }) });
  const writer = new ControllerWriter(kube, () => elector.isLeader);
  elector.start();

  // The CA's keys are in a Secret every replica reads; the leader makes the root when there is none.
  const caSecret = { kube, namespace: controllerNamespace, dir: caDir(config.stateDir), trustDomain: config.trustDomain };
  let loaded = await loadCa({ ...caSecret, leads: () => elector.isLeader });
  const ca = loaded.ca;
  log.info({ secret: `${controllerNamespace}/${loaded.secret}`, roots: ca.trustBundle().length }, 'CA keys loaded from the Kubernetes API');
  let bundle = new TrustBundle({ [config.trustDomain]: ca.trustBundle() });
  // IP SANs for the addresses agents dial by IP, DNS SANs for the names (a Service's, on a real
  // cluster: agents and the API server's webhook calls check it).
  const agentIps = agentAddresses.filter((a) => isIP(a) !== 0);
  const agentNames = agentAddresses.filter((a) => isIP(a) === 0);
  const issueServing = () => ca.issueServing([...agentIps, '127.0.0.1'], ['ambit-controller', ...agentNames]);
  const serving = issueServing();
  // Agents read this file to trust the controller itself; it must hold every current root.
  const writeTrustFile = () => writeFileAtomic(trustBundlePath(config.stateDir), ca.trustBundle().join(''));
  writeTrustFile();

  // An agent proves its node with a ServiceAccount token bound to it, until it has a node certificate.
  const checkToken = tokenReviewCheck(kube, { serviceAccount: agentServiceAccount });
  const share = new ShareBuilder(config.rootNamespace);
  const cache = new ClusterCache(kube, controllerKinds, log.child({ component: 'informers' }));
  const captures = new CaptureAnnotator(kube, cache, log.child({ component: 'capture' }));
  const issuer = { ca, trustDomain: config.trustDomain, maxTtlSeconds: config.certMaxTtlSeconds, defaultTtlSeconds: config.certDefaultTtlSeconds };
  const pushServer = new PushServer({
    share,
    nodes,
    checkToken,
    tls: { key: serving.keyPem, cert: serving.certPem },
    bundle: () => bundle,
    log: log.child({ component: 'push' }),
    onCapture: (node, report) => captures.report(node, report),
    onRequest: caHandler({ issuer, cluster: cache, log: log.child({ component: 'ca' }), metrics, trustBundle: () => ca.trustBundle() }),
  });
  setInterval(() => metrics.agentsConnected.set(pushServer.agents().filter((a) => a.connected).length), 1000).unref();
  const monitoring = metrics.serve(config.monitoringHost, config.monitoringPort);

  // Agents are served only once every kind is listed, so a reconnecting agent never gets an empty configuration.
  await cache.start();
  share.load(cache.list(), cache.revision);
  cache.on('change', (event) => {
    share.apply(event);
    pushServer.publish();
    metrics.revision.set(event.revision);
  });
  metrics.revision.set(cache.revision);

  // The roots agents trust, as a TrustBundle object the leader keeps equal to the CA's.
  const publishTrustBundle = async (): Promise<number> => {
    const roots = ca.trustBundle();
    bundle = new TrustBundle({ [config.trustDomain]: roots });
    writeTrustFile();
    if (!elector.isLeader) return cache.revision;
    // The agents of a real cluster mount it as the roots they check the controller against.
    await writer.apply([{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: caRootConfigMap.name, namespace: caRootConfigMap.namespace, labels: { 'app.kubernetes.io/managed-by': 'ambit-controller' } }, data: { [caRootConfigMap.key]: roots.join('') } } as Resource]);
    const published = cache.get('TrustBundle', '', config.trustDomain) as { spec?: { roots?: string[] } } | undefined;
    if (JSON.stringify(published?.spec?.roots) === JSON.stringify(roots)) return cache.revision;
    await writer.apply([{ apiVersion: 'ambit.dev/v1alpha1', kind: 'TrustBundle', metadata: { name: config.trustDomain }, spec: { roots } }]);
    const written = Number((await kube.get(resourceKind('TrustBundle'), '', config.trustDomain))?.metadata.resourceVersion) || 0;
    await cache.waitForProgress(written, 5000, ['TrustBundle']);
    return cache.revision;
  };
  const republish = () => void publishTrustBundle().catch((err: unknown) => log.error({ err: errorMessage(err) }, 'could not publish the trust bundle'));
  // Previous roots leave the bundle when their overlap ends.
  setInterval(() => ca.expireRoots() && republish(), 60_000).unref();

  // The reconcilers read the same cache and write back through the API, as a client, and only
  // while this replica leads: every replica serves agents, one writes.
  const waypoints = new WaypointDeployer({ view: cache, writer, log: log.child({ component: 'waypoints' }) });
  const routeStatus = new RouteStatusWriter(cache, writer, log.child({ component: 'route-status' }));
  const policyStatus = new PolicyStatusWriter(cache, writer, log.child({ component: 'policy-status' }), config.rootNamespace);
  const reconcilers = [waypoints, routeStatus, policyStatus];
  // The mesh's review of its kinds, as the API server's validating webhook (istiod's port, 15017).
  const webhook = webhookServer({ key: serving.keyPem, cert: serving.certPem }, config.rootNamespace, log.child({ component: 'webhook' }));
  webhook.listen(config.webhookPort, config.agentHost);
  await once(webhook, 'listening');
  // A real cluster's API server calls it through its Service (443 to the webhook port, as istiod's).
  const webhookClient = config.webhookService
    ? { service: { ...config.webhookService, path: webhookPath } }
    : { url: `https://${agentIps[0] ?? '127.0.0.1'}:${config.webhookPort}${webhookPath}` };
  const registerWebhook = async () => {
    if (!elector.isLeader) return;
    await writer.apply([webhookConfiguration(webhookClient, ca.trustBundle().join(''))]).catch((err: unknown) => log.error({ err: errorMessage(err) }, 'could not register the admission webhook'));
  };
  // After a root rotation: the controller's own certificates move to the new root (agents trust both meanwhile).
  const rootChanged = () => {
    const renewed = issueServing();
    pushServer.server.setSecureContext({ key: renewed.keyPem, cert: renewed.certPem, minVersion: 'TLSv1.3' });
    webhook.setSecureContext({ key: renewed.keyPem, cert: renewed.certPem, minVersion: 'TLSv1.2' });
    void registerWebhook();
  };
  const lead = () => {
    // The webhook's CA bundle first: until it is there, the API server cannot call the webhook, and
    // the trust bundle's write (a kind it reviews, failing closed) would be refused.
    void registerWebhook().then(republish);
    reconcilers.forEach((r) => r.start());
  };
  elector.on('started', lead);
  elector.on('stopped', () => reconcilers.forEach((r) => r.stop()));
  // It may have won already, while the CA was loading.
  if (elector.isLeader) lead();
  // Another replica's rotation reaches this one through the Secret.
  const caWatch = new Informer(kube, { kind: resourceKind('Secret'), namespace: controllerNamespace, fieldSelector: `metadata.name=${loaded.secret}`, log: log.child({ component: 'ca-secret' }) });
  caWatch.on('change', (changes) => {
    const secret = changes.find((c) => c.type === 'upsert')?.resource;
    if (!secret || secret.metadata.resourceVersion === loaded.resourceVersion || loaded.secret !== caSecretName) return;
    try {
      mirrorSecret(caSecret.dir, secret);
      ca.reload(config.trustDomain);
      loaded = { ...loaded, resourceVersion: secret.metadata.resourceVersion ?? '' };
      log.info({ roots: ca.trustBundle().length }, 'CA keys changed in the Kubernetes API (a rotation); reloaded');
      bundle = new TrustBundle({ [config.trustDomain]: ca.trustBundle() });
      writeTrustFile();
      rootChanged();
    } catch (err) {
      log.error({ err: errorMessage(err) }, 'could not reload the CA keys from the Kubernetes API; signing with the previous ones');
    }
  });
  caWatch.start();
  pushServer.server.listen(config.agentPort, config.agentHost);
  await once(pushServer.server, 'listening');

  // The dashboard may hold an inherited descriptor of the host's namespace until its listener is made.
  let dashboard: { close: () => void } | undefined;
  if (config.dashboard) {
    try {
      dashboard = await startDashboard(config.dashboard, {
        cluster: cache,
        agents: () => pushServer.agents(),
        trustBundle: () => ca.trustBundle(),
        dialer,
        // The local cluster's Prometheus runs beside the controller, under the dashboard's prefix.
        prometheusUrl: config.prometheusUrl,
        token: loadOrCreateSecret(dashboardTokenPath(config.stateDir)),
        log: log.child({ component: 'dashboard' }),
      });
    } catch (err) {
      // The control plane matters more than its window: run on, and say why there is none.
      log.error({ err: errorMessage(err) }, 'the dashboard did not start; the controller runs without it');
    }
  }
  for (const path of config.inheritedNetns ?? []) releaseInheritedNetns(path);

  const server = createApiServer({
    token,
    tokenFile: tokenPath(config.stateDir),
    replica: () => ({ identity: config.identity, leader: elector.isLeader }),
    // The API's newest resourceVersion: what agents should have once the informers caught up.
    apiVersion: async () => Number((await kube.list(resourceKind('Namespace'))).resourceVersion) || 0,
    push: pushServer,
    cache,
    rotateRoot: async (overlapSeconds: number) => {
      if (!elector.isLeader) throw new AmbitError('NotLeader', `this controller replica (${config.identity}) does not lead; rotate through the leader (kubectl get lease -n ${controllerNamespace} ${leaderLeaseName})`);
      ca.rotateRoot(config.trustDomain, overlapSeconds * 1000);
      // The Secret first: a replica that restarts now must sign from the new root too.
      loaded = { ...loaded, resourceVersion: await saveCa(caSecret, loaded.resourceVersion) };
      rootChanged();
      return publishTrustBundle();
    },
    log: log.child({ component: 'api' }),
  });
  rmSync(config.apiSocket, { force: true });
  server.listen(config.apiSocket);
  await once(server, 'listening');
  log.info({ api: config.apiSocket, agents: `${config.agentHost}:${config.agentPort}`, revision: cache.revision, nodes }, 'controller ready');

  const shutdown = async (signal: string) => {
    log.info({ signal }, 'controller stopping; agents keep serving on what they have');
    server.close();
    server.closeAllConnections();
    reconcilers.forEach((r) => r.stop());
    // Handing the Lease over now spares the next replica a lease duration of waiting.
    await elector.stop();
    pushServer.close();
    webhook.close();
    caWatch.stop();
    cache.stop();
    kube.close();
    monitoring.close();
    dashboard?.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

/** The controller's own namespace, where its leader Lease lives (`kubectl get lease -n ambit-system`). */
const controllerNamespace = 'ambit-system';
const leaderLeaseName = 'ambit-controller';
/**
 * Shorter than client-go's 15/10/2 s: a candidate sees the holder's last renewal up to a retry
 * period late and checks once per retry period, so a killed leader is replaced within lease +
 * 2 retries (12 s) instead of up to 19 s, for one small Lease write a second.
 */
const leaderTimings = { leaseDurationMs: 10_000, renewDeadlineMs: 7_000, retryPeriodMs: 1_000 };

/** Makes the namespace if it is missing (on a real cluster the install made it). */
async function ensureNamespace(kube: KubeClient, name: string): Promise<void> {
  const Namespace = resourceKind('Namespace');
  if (await kube.get(Namespace, '', name)) return;
  try {
    await kube.create(Namespace, { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  } catch (err) {
    if (!(err instanceof KubeApiError && err.status === 409)) throw err;
  }
}
