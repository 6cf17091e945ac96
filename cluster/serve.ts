// The local cluster's own process, what kube-apiserver, the controller-manager, the scheduler, the
// kubelets and kube-proxy are on a one-host cluster: the Kubernetes API (backed by the journaled
// store, on the host's loopback and on the control-plane address) and the runtime (pods, the agents'
// DaemonSet, Service rules, Prometheus). `ambit up` starts it first and the mesh controller's
// replicas after it (cluster/mesh-controller.ts); they reach it only through the Kubernetes API, so
// killing a replica leaves the API, the pods and the agents running, as on a real cluster.

import { once } from 'node:events';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { AmbitError, errorMessage } from '../shared/errors.js';
import { createLogger } from '../shared/log.js';
import { Store, writeFileAtomic } from '../controller/store/store.js';
import { ClusterIPAllocator } from '../controller/resources/allocator.js';
import type { ApplyContext } from '../controller/resources/apply.js';
import { CertificateAuthority } from '../controller/ca/authority.js';
import { caSecretName, pluggedSecretFrom, pluggedSecretName } from '../controller/ca/secret.js';
import { caDir, storeDir, kubeAdminTokenPath, kubeconfigPath } from '../controller/config.js';
import { loadOrCreateSecret } from '../controller/secrets.js';
import { releaseInheritedNetns, type ListenAddress } from '../shared/net/listen.js';
import { KubeClient } from '../shared/kube/client.js';
import { objectPath, resourceKind } from '../shared/kube/paths.js';
import { agentServiceAccount, agentTokenAudience } from '../shared/protocol/config.js';
import type { KubeConfig } from '../shared/kube/config.js';
import { kubeApiCaDir, kubeApiDnsNames, kubeconfig, serveKubeApi, serviceAccountKeyPath } from './apiserver/serve.js';
import { clusterApiServer, clusterSocketPath, clusterTokenPath } from './api.js';
import { adminTokenPath } from './daemonset/agents.js';
import { render } from '../deploy/manifests.js';
import { defaultValues, type InstallValues } from '../deploy/values.js';
import { defaultAdminPort } from '../agent/config.js';
import { prefix, type Topology } from './topology.js';
import { controllerKubeconfigPath } from './mesh-controller.js';
import { prometheusPathPrefix } from './prometheus.js';
import { LocalClusterRuntime } from './runtime.js';
import { readState, topologyOf } from './state.js';
import { clusterStatus } from './status.js';
import { defaultKubeApiPort } from '../controller/config.js';

export interface LocalClusterOptions {
  stateDir: string;
  /** The CLI's compiled entry, started as `ambit agent` for each node. */
  cliEntry: string;
  /** Directory with the `ambit` wrapper, put on the PATH of local pods. */
  binDir: string;
  /** Where people reach the Kubernetes API (the host's loopback); the control plane's address is added. */
  kubeApi: ListenAddress;
  /** Namespaces inherited as descriptors (`/proc/self/fd/N`), closed once the listeners are open. */
  inheritedNetns: string[];
  /** The mesh's root namespace (Istio's istio-system), which admission treats as mesh-wide. */
  rootNamespace: string;
  /** The dashboard's port on the host: Prometheus builds its links on it. */
  dashboardPort: number;
  logLevel: string;
}

/**
 * The values the local cluster installs ambit with: its replicas' agent channels, its capture mode
 * and query API address, and each node's own pod cgroup root (the kubelet of node N keeps its pods
 * below /ambit/N/kubepods.slice; `$(NODE_NAME)` is expanded per pod, as Kubernetes does).
 */
export function localInstallValues(topology: Topology): InstallValues {
  const v = defaultValues();
  v.image = 'ambit:local';
  v.imagePullPolicy = 'Never';
  v.agent.redirect = topology.redirect;
  v.agent.controllerUrl = topology.controllers.map((c) => `wss://${topology.control.ip}:${c.agentPort}`).join(',');
  v.agent.podCgroupRoot = `/${prefix}/$(NODE_NAME)/kubepods.slice`;
  v.agent.adminListen = `${topology.agentAdminAddress}:${defaultAdminPort}`;
  // The agents' event loops, e.g. 1 to compare in a benchmark (scripts/bench/mesh.ts --workers).
  if (process.env.AMBIT_AGENT_WORKERS) v.agent.workers = Number(process.env.AMBIT_AGENT_WORKERS);
  return v;
}

/**
 * What `ambit install` puts on a cluster before the mesh runs, made here at every start: the
 * rendered namespace, ServiceAccounts, RBAC, the agents' query token Secret and their DaemonSet,
 * which the local kubelet runs. The CRDs are the API server's own here, and the controller runs
 * as the local cluster's replicas (cluster/mesh-controller.ts) rather than from its Deployment.
 */
const installedKinds = new Set(['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'Secret', 'DaemonSet']);
/** A projected token's life, as the kubelet asks for it by default; it is renewed at 80%. */
const agentTokenSeconds = 3600;

/** Runs the local cluster until SIGTERM; pods and agents keep running when it stops, and a next start adopts them. */
export async function serveLocalCluster(o: LocalClusterOptions): Promise<void> {
  const log = createLogger('local-cluster', o.logLevel);
  const state = readState(o.stateDir);
  if (!state) throw new AmbitError('NoCluster', `no local cluster recorded in ${o.stateDir}; run \`ambit up\``);
  const topology = topologyOf(state);
  // The API server's backing store (etcd's part), and what its admission needs to write to it.
  const store = new Store(storeDir(o.stateDir));
  if (!store.get('Namespace', '', 'default')) {
    store.commit([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } },
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace: 'default' } },
    ]);
  }
  const apply: ApplyContext = { store, allocator: new ClusterIPAllocator(topology.serviceCIDR), rootNamespace: o.rootNamespace, nodeNames: topology.nodes.map((n) => n.name) };
  const adminToken = loadOrCreateSecret(kubeAdminTokenPath(o.stateDir));
  // The cluster's own CA, as kubeadm's /etc/kubernetes/pki/ca: it signs the API server's certificate
  // and is what kubeconfigs trust. The mesh's CA is the controller's, kept in a Secret of the API.
  const clusterCa = CertificateAuthority.open(kubeApiCaDir(o.stateDir), 'kubernetes');
  const serving = clusterCa.issueServing(['127.0.0.1', topology.control.ip], kubeApiDnsNames);
  const caPem = clusterCa.trustBundle().join('');
  const kubeApi = await serveKubeApi({
    store,
    apply,
    topology,
    token: adminToken,
    serviceAccountKeyFile: serviceAccountKeyPath(o.stateDir),
    tls: { key: serving.keyPem, cert: serving.certPem },
    ca: caPem,
    listen: o.kubeApi,
    kubeconfig: kubeconfigPath(o.stateDir),
    createdAt: new Date(state.createdAt),
    log: log.child({ component: 'kube-api' }),
  });
  // No child (pod, agent) may inherit a way into the host's namespace.
  for (const path of o.inheritedNetns) releaseInheritedNetns(path);

  // The kubelet's, the installer's and the controllers' way in: the API's control-plane address.
  const server = `https://${topology.control.ip}:${defaultKubeApiPort}`;
  const inCluster: KubeConfig = { server, ca: caPem, token: () => adminToken, namespace: 'default', source: 'the local cluster' };
  writeFileAtomic(controllerKubeconfigPath(o.stateDir), kubeconfig(server, caPem, adminToken, topology.name), 0o600);
  const kube = new KubeClient(inCluster, { userAgent: 'ambit-local-cluster' });
  await install(kube, o.stateDir, topology);

  const runtime = new LocalClusterRuntime({
    store,
    topology,
    stateDir: o.stateDir,
    binDir: o.binDir,
    log: log.child({ component: 'runtime' }),
    agents: {
      cliEntry: o.cliEntry,
      requestToken: async (node) => {
        const { kind, apiVersion } = { kind: 'TokenRequest', apiVersion: 'authentication.k8s.io/v1' };
        const spec = { audiences: [agentTokenAudience], expirationSeconds: agentTokenSeconds, boundObjectRef: { kind: 'Node', apiVersion: 'v1', name: node } };
        const answer = await kube.request<{ status: { token: string; expirationTimestamp: string } }>('POST', objectPath(resourceKind('ServiceAccount'), agentServiceAccount.namespace, agentServiceAccount.name, 'token'), { body: { kind, apiVersion, spec } });
        return { token: answer.status.token, expires: new Date(answer.status.expirationTimestamp) };
      },
    },
    // Prometheus builds its links on the address people open it at: the dashboard's proxy.
    prometheus: { external: `http://127.0.0.1:${o.dashboardPort}${prometheusPathPrefix}/` },
  });
  runtime.start();

  const api = clusterApiServer({
    token: loadOrCreateSecret(clusterTokenPath(o.stateDir)),
    stateDir: o.stateDir,
    log: log.child({ component: 'api' }),
    status: () => clusterStatus(topology, store),
    restartAgent: (node) => runtime.restartAgent(node),
  });
  rmSync(clusterSocketPath(o.stateDir), { force: true });
  api.listen(clusterSocketPath(o.stateDir));
  await once(api, 'listening');
  log.info({ api: clusterSocketPath(o.stateDir), nodes: topology.nodes.map((n) => n.name) }, 'local cluster ready');

  const shutdown = async (signal: string) => {
    log.info({ signal }, 'local cluster stopping; pods and agents keep running');
    api.close();
    api.closeAllConnections();
    kube.close();
    kubeApi.close();
    await runtime.stop();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

/**
 * What an installer makes before the mesh runs: ambit-system and the mesh's ServiceAccounts, and
 * an operator's CA files left in the state directory as Istio's `cacerts` Secret, while the cluster
 * has no CA yet (never over one a controller made).
 */
async function install(kube: KubeClient, stateDir: string, topology: Topology): Promise<void> {
  try {
    const rendered = render(localInstallValues(topology), { adminToken: loadOrCreateSecret(adminTokenPath(stateDir)) }).filter((r) => installedKinds.has(r.kind));
    for (const r of rendered) await kube.apply(resourceKind(r.kind), r, 'ambit-install', true);
    const Secret = resourceKind('Secret');
    const namespace = agentServiceAccount.namespace;
    const plugged = pluggedSecretFrom(join(caDir(stateDir), 'cacerts'), namespace);
    if (plugged && !(await kube.get(Secret, namespace, pluggedSecretName)) && !(await kube.get(Secret, namespace, caSecretName))) await kube.create(Secret, plugged);
  } catch (err) {
    throw new AmbitError('InstallFailed', `could not install the mesh's namespace, ServiceAccounts, RBAC, agent DaemonSet or CA Secret: ${errorMessage(err)}`);
  }
}
