// The controller's configuration, read once at start from its command line and handed down, and
// where it keeps things in its state directory.

import { join } from 'node:path';
import type { KubeConfig } from '../shared/kube/config.js';

export interface ControllerConfig {
  stateDir: string;
  /** Unix socket of the API that `ambit apply/get/delete` use (file mode 0600, plus a bearer token). */
  apiSocket: string;
  /** Where agents connect (WebSocket over TLS). */
  agentHost: string;
  agentPort: number;
  /** The validating admission webhook the API server calls (15017, as istiod's), on agentHost. */
  webhookPort: number;
  /**
   * Addresses agents use to reach the controller: the IP and DNS SANs of its serving certificate (on
   * a real cluster its Service's name, `ambit-controller.ambit-system.svc`).
   */
  agentAddresses: string[];
  /**
   * The Service the API server calls the admission webhook through (a real cluster: its port 443 goes
   * to webhookPort); undefined: by URL, at the first agent address (the local cluster).
   */
  webhookService?: { namespace: string; name: string };
  serviceCIDR: string;
  /** Nodes whose agents may connect; the local cluster's nodes when it serves one. */
  nodes: string[];
  /** Namespace whose policies apply mesh-wide, as Istio's root namespace. */
  rootNamespace: string;
  trustDomain: string;
  /** Workload certificate lifetimes: what an agent gets by default, and the most it can ask for. */
  certDefaultTtlSeconds: number;
  certMaxTtlSeconds: number;
  /** Prometheus metrics (15014, as istiod). */
  monitoringHost: string;
  monitoringPort: number;
  logLevel: string;
  /**
   * Who this replica is in leader election, stable across its restarts (a restarted replica takes
   * its own Lease back at once): the pod's name in a cluster, the host's name by default.
   */
  identity: string;
  /**
   * The dashboard (its own port, 15080 by default, loopback by default): where it listens, and
   * optionally in which network namespace (a path such as /run/netns/X); undefined: no dashboard.
   * Clients other than loopback must bring the token in dashboardTokenPath.
   */
  dashboard?: { host: string; port: number; netns?: string };
  /** How to reach the cluster's Kubernetes API: a kubeconfig's, or the pod's in-cluster configuration. */
  kube: KubeConfig;
  /** Namespaces inherited as descriptors (`/proc/self/fd/N`), closed once the listeners are open. */
  inheritedNetns?: string[];
  /** Prometheus' base URL, route prefix included (`http://10.250.0.254:9090/prometheus`); the dashboard reads the topology there. */
  prometheusUrl?: string;
}

export const defaultAgentPort = 15012;
export const defaultMonitoringPort = 15014;
/** The validating admission webhook's, as istiod's. */
export const defaultWebhookPort = 15017;
export const defaultDashboardPort = 15080;
export const defaultKubeApiPort = 6443;
/** The admin's bearer token for the local cluster's Kubernetes API, and the kubeconfig that carries it. */
export const kubeAdminTokenPath = (stateDir: string) => join(stateDir, 'controller', 'kube-admin-token');
export const kubeconfigPath = (stateDir: string) => join(stateDir, 'kubeconfig');

export const tokenPath = (stateDir: string) => join(stateDir, 'controller', 'token');
export const dashboardTokenPath = (stateDir: string) => join(stateDir, 'controller', 'dashboard-token');
export const apiSocketPath = (stateDir: string) => join(stateDir, 'controller', 'api.sock');
export const storeDir = (stateDir: string) => join(stateDir, 'controller', 'store');
export const caDir = (stateDir: string) => join(stateDir, 'controller', 'ca');
/** Every root agents should trust (current and, during a rotation's overlap, previous), PEM. */
export const trustBundlePath = (stateDir: string) => join(caDir(stateDir), 'trust-bundle.pem');
