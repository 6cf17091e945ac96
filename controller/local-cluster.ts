// What the controller needs from a local cluster when it is embedded in one (`ambit up`), and what it
// offers it. The controller never imports the local cluster (cluster/): the cluster's side
// (cluster/control-plane.ts) implements this interface and the entry point hands it in, so the same
// controller runs on a real cluster with none.

import type { Logger } from '../shared/log.js';
import type { AgentStatus } from './push/server.js';
import type { AgentDialer } from './dashboard/agent-link.js';
import type { KubeConfig } from '../shared/kube/config.js';

/** The controller's parts a local cluster works with, once they exist. */
export interface ControllerParts {
  log: Logger;
  /** The agents connected to this replica (`ambit status` shows them). */
  agents(): AgentStatus[];
}

/** A running local cluster's services inside the controller process. */
export interface LocalClusterServices {
  restartAgent(node: string): Promise<unknown>;
  status(): unknown;
  stop(): Promise<void>;
}

export interface LocalCluster {
  nodes: string[];
  /** Addresses the agents reach the controller at: its serving certificate's IP SANs. */
  agentAddresses: string[];
  /** How the dashboard reaches each node's agent query API. */
  dialer: AgentDialer;
  prometheusUrl?: string;
  /**
   * Listeners that belong in the host's namespace (the Kubernetes API): opened before the
   * controller releases the namespaces it inherited.
   */
  openHostListeners(parts: ControllerParts): Promise<void>;
  /** How the controller reaches the cluster's Kubernetes API, once openHostListeners has opened it. */
  kubeConfig(parts: ControllerParts): KubeConfig;
  /** The runtime: pods, agents, Services, Prometheus. Started after every inherited namespace is released. */
  start(parts: ControllerParts): LocalClusterServices;
}
