// The local cluster's Kubernetes API, served: HTTPS with a certificate from the cluster's CA, on the
// host's 127.0.0.1:6443 (where kubectl runs) and on the control plane's address (where the cluster's
// own components reach it), and the kubeconfig that points kubectl at it. The API itself is
// server.ts; this file only opens it and says where it is.

import { createServer, type Server } from 'node:https';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { Logger } from '../../shared/log.js';
import { listenAt, type ListenAddress } from '../../shared/net/listen.js';
import { writeFileAtomic } from '../../controller/store/store.js';
import { defaultKubeApiPort } from '../../controller/config.js';
import type { Store } from '../../controller/store/store.js';
import type { ApplyContext } from '../../controller/resources/apply.js';
import type { Topology } from '../topology.js';
import { kubeApiHandler, nodeObjects } from './server.js';
import { installMeshCrds } from './mesh-crds.js';
import type { Crd } from './crd-validation.js';
import { skippedRules } from './crd-rules.js';

export interface KubeApiServing {
  store: Store;
  apply: ApplyContext;
  topology: Topology;
  token: string;
  /** The ServiceAccount token signing key's file (in the state directory), made when missing. */
  serviceAccountKeyFile: string;
  /** The serving certificate (its SANs cover 127.0.0.1, the control plane's address and kubernetes.default.svc). */
  tls: { key: string; cert: string };
  /** Every CA root a client should trust (the kubeconfig's certificate-authority-data). */
  /** The cluster CA's certificate, PEM: what the kubeconfig trusts. */
  ca: string;
  /** Where people reach it (the host's loopback); the control plane's address is added. */
  listen: ListenAddress;
  kubeconfig: string;
  /** When the cluster was made: its Nodes' creation time. */
  createdAt: Date;
  log: Logger;
}

/** Where the local cluster keeps the key its ServiceAccount tokens are signed with. */
export const serviceAccountKeyPath = (stateDir: string) => join(stateDir, 'kube-api', 'sa-signer.key');
/** The cluster's CA (kubeadm's pki/ca): it signs the API server's certificate; kubeconfigs trust it. */
export const kubeApiCaDir = (stateDir: string) => join(stateDir, 'kube-api', 'ca');

/** The names a client in a cluster uses for its API server, as in Kubernetes. */
export const kubeApiDnsNames = ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'];

export interface KubeApiServed {
  servers: Server[];
  close(): void;
}

export async function serveKubeApi(o: KubeApiServing): Promise<KubeApiServed> {
  // As an installer would (istioctl, the Gateway API's release YAML): the mesh's CRDs, unless there.
  const installed = installMeshCrds(o.store);
  if (installed.length) o.log.info({ crds: installed }, 'installed the mesh CustomResourceDefinitions');
  // Said once at start: which CEL rules of the served CRDs this API server cannot evaluate (README.md).
  const crds = o.store.list('CustomResourceDefinition') as Crd[];
  const skipped = skippedRules(crds);
  o.log.info({ crds: crds.length, skippedCelRules: skipped }, skipped.length ? `CEL rules: ${skipped.length} of the CRDs' x-kubernetes-validations are not evaluated (see skippedCelRules)` : "CEL rules: every x-kubernetes-validations rule of the CRDs is evaluated");
  const api = kubeApiHandler({ store: o.store, apply: o.apply, nodes: () => nodeObjects(o.topology, o.createdAt), token: o.token, serviceAccounts: { keyFile: o.serviceAccountKeyFile }, log: o.log });
  const make = () => createServer({ key: o.tls.key, cert: o.tls.cert, minVersion: 'TLSv1.2' }, (req, res) => api.handle(req, res));
  const servers = [make(), make()];
  await listenAt(servers[0]!, o.listen, 'the Kubernetes API', '--kube-api-listen');
  await listenAt(servers[1]!, { host: o.topology.control.ip, port: defaultKubeApiPort }, 'the Kubernetes API (control plane)', '--kube-api-listen');
  writeFileAtomic(o.kubeconfig, kubeconfig(`https://${o.listen.host}:${o.listen.port}`, o.ca, o.token, o.topology.name), 0o600);
  o.log.info({ kubeApi: `https://${o.listen.host}:${o.listen.port}`, kubeconfig: o.kubeconfig }, 'Kubernetes API ready');
  return {
    servers,
    close: () => {
      api.close();
      for (const s of servers) {
        s.close();
        s.closeAllConnections();
      }
    },
  };
}

/** A kubeconfig with one cluster, one user (a bearer token) and one context, all named after the cluster. */
export function kubeconfig(server: string, caPem: string, token: string, name: string): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name, cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
    users: [{ name: `${name}-admin`, user: { token } }],
    contexts: [{ name, context: { cluster: name, user: `${name}-admin` } }],
    'current-context': name,
    preferences: {},
  });
}
