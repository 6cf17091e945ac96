// The local cluster's side of the control plane, embedded in the controller process that `ambit up`
// starts: the cluster's shape (from its state record), its Kubernetes API on the host's loopback,
// and the runtime that runs pods, agents, Service rules and Prometheus. It implements the
// controller's LocalCluster interface (controller/local-cluster.ts); the controller imports nothing
// of cluster/, so the same controller runs on a real cluster without it.

import { AmbitError } from '../shared/errors.js';
import { Store } from '../controller/store/store.js';
import { ClusterIPAllocator } from '../controller/resources/allocator.js';
import type { ApplyContext } from '../controller/resources/apply.js';
import { CertificateAuthority } from '../controller/ca/authority.js';
import { caSecretName, pluggedSecretFrom, pluggedSecretName } from '../controller/ca/secret.js';
import { join } from 'node:path';
import type { ControllerConfig } from '../controller/config.js';
import { caDir, storeDir, defaultDashboardPort, defaultKubeApiPort, kubeAdminTokenPath, kubeconfigPath, trustBundlePath } from '../controller/config.js';
import type { LocalCluster, LocalClusterServices } from '../controller/local-cluster.js';
import { agentQueryPort, netnsDialer } from '../controller/dashboard/agent-link.js';
import { loadOrCreateSecret } from '../controller/secrets.js';
import { kubeApiCaDir, kubeApiDnsNames, type KubeApiServed, serveKubeApi, serviceAccountKeyPath } from './apiserver/serve.js';
import { prometheusPathPrefix, prometheusUrl } from './prometheus.js';
import { LocalClusterRuntime } from './runtime.js';
import { readState, topologyOf } from './state.js';
import { clusterStatus } from './status.js';
import { KubeClient } from '../shared/kube/client.js';
import { objectPath, resourceKind } from '../shared/kube/paths.js';
import { agentServiceAccount, agentTokenAudience } from '../shared/protocol/config.js';
import type { KubeConfig } from '../shared/kube/config.js';
import type { Resource } from '../shared/resources/types.js';

/** What `ambit install` puts on a real cluster before the mesh runs, made here at every start. */
const meshSystemObjects: Resource[] = [
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: agentServiceAccount.namespace } },
  { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: agentServiceAccount.name, namespace: agentServiceAccount.namespace } },
  { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'ambit-controller', namespace: agentServiceAccount.namespace } },
];
/** A projected token's life, as the kubelet asks for it by default; it is renewed at 80%. */
const agentTokenSeconds = 3600;

export function localCluster(config: ControllerConfig): LocalCluster {
  const state = readState(config.stateDir);
  if (!state) throw new AmbitError('NoCluster', `no local cluster recorded in ${config.stateDir}; run \`ambit up\``);
  const topology = topologyOf(state);
  // The API server's backing store (etcd's part), and what its admission needs to write to it.
  const store = new Store(storeDir(config.stateDir));
  // The namespace every cluster starts with.
  if (!store.get('Namespace', '', 'default')) {
    store.commit([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } },
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace: 'default' } },
    ]);
  }
  const apply: ApplyContext = { store, allocator: new ClusterIPAllocator(topology.serviceCIDR), rootNamespace: config.rootNamespace, nodeNames: topology.nodes.map((n) => n.name) };
  let kubeApi: KubeApiServed | undefined;
  let admin: string | undefined;
  const adminToken = () => (admin ??= loadOrCreateSecret(kubeAdminTokenPath(config.stateDir)));
  // The cluster's own CA, as kubeadm's /etc/kubernetes/pki/ca: it signs the API server's certificate
  // and is what kubeconfigs trust. The mesh's CA is the controller's, kept in a Secret of the API.
  const clusterCa = CertificateAuthority.open(kubeApiCaDir(config.stateDir), 'kubernetes');
  const kubeApiServing = () => {
    const s = clusterCa.issueServing(['127.0.0.1', topology.control.ip], kubeApiDnsNames);
    return { key: s.keyPem, cert: s.certPem };
  };
  const kubeConfig = (): KubeConfig => ({
    server: `https://${topology.control.ip}:${defaultKubeApiPort}`,
    ca: clusterCa.trustBundle().join(''),
    token: adminToken,
    namespace: 'default',
    source: 'the local cluster',
  });
  // The kubelet's and the installer's client: they too reach the cluster through its API.
  let kube: KubeClient | undefined;
  return {
    nodes: topology.nodes.map((n) => n.name),
    agentAddresses: [topology.control.ip],
    dialer: netnsDialer(topology.nodes, agentQueryPort),
    ...(topology.prometheus ? { prometheusUrl: prometheusUrl(topology) } : {}),

    async openHostListeners(parts) {
      if (!config.kubeApi) throw new AmbitError('NoKubeApi', 'the local cluster needs its Kubernetes API: the controller reads the cluster through it');
      kubeApi = await serveKubeApi({
        store,
        apply,
        topology,
        token: adminToken(),
        serviceAccountKeyFile: serviceAccountKeyPath(config.stateDir),
        tls: kubeApiServing(),
        ca: clusterCa.trustBundle().join(''),
        listen: config.kubeApi,
        kubeconfig: kubeconfigPath(config.stateDir),
        createdAt: new Date(state.createdAt),
        log: parts.log.child({ component: 'kube-api' }),
      });
      kube = new KubeClient(kubeConfig(), { userAgent: 'ambit-local-cluster' });
      for (const r of meshSystemObjects) await kube.apply(resourceKind(r.kind), r, 'ambit-install', true);
      // An operator's CA files left in the state directory become Istio's `cacerts` Secret, as an
      // installer makes it, while the cluster has no CA yet (never over one the controller made).
      const Secret = resourceKind('Secret');
      const namespace = agentServiceAccount.namespace;
      const plugged = pluggedSecretFrom(join(caDir(config.stateDir), 'cacerts'), namespace);
      if (plugged && !(await kube.get(Secret, namespace, pluggedSecretName)) && !(await kube.get(Secret, namespace, caSecretName))) await kube.create(Secret, plugged);
    },

    // The controller runs in the control plane's namespace, where the API's second listener is.
    kubeConfig,

    start(parts): LocalClusterServices {
      const runtime = new LocalClusterRuntime({
        store,
        topology,
        stateDir: config.stateDir,
        binDir: config.binDir,
        log: parts.log.child({ component: 'runtime' }),
        waitForCapture: true,
        agents: {
          cliEntry: process.argv[1]!,
          controllerUrl: `wss://${topology.control.ip}:${config.agentPort}`,
          caFile: trustBundlePath(config.stateDir),
          adminAddress: topology.agentAdminAddress,
          redirect: topology.redirect,
          requestToken: async (node) => {
            const { kind, apiVersion } = { kind: 'TokenRequest', apiVersion: 'authentication.k8s.io/v1' };
            const spec = { audiences: [agentTokenAudience], expirationSeconds: agentTokenSeconds, boundObjectRef: { kind: 'Node', apiVersion: 'v1', name: node } };
            const answer = await kube!.request<{ status: { token: string; expirationTimestamp: string } }>('POST', objectPath(resourceKind('ServiceAccount'), agentServiceAccount.namespace, agentServiceAccount.name, 'token'), { body: { kind, apiVersion, spec } });
            return { token: answer.status.token, expires: new Date(answer.status.expirationTimestamp) };
          },
        },
        // Prometheus builds its links on the address people open it at: the dashboard's proxy.
        prometheus: { controllerMonitoringPort: config.monitoringPort, external: `http://${config.dashboard?.host ?? '127.0.0.1'}:${config.dashboard?.port ?? defaultDashboardPort}${prometheusPathPrefix}/` },
      });
      runtime.start();
      return {
        restartAgent: (node) => runtime.restartAgent(node),
        status: () => ({ ...clusterStatus(topology, store), agents: parts.agents() }),
        stop: async () => {
          kube?.close();
          kubeApi?.close();
          await runtime.stop();
        },
      };
    },
  };
}
