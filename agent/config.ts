// The agent's configuration, read once at start from its command line and handed down.

import type { RedirectMode } from './capture/redirect.js';

export interface AgentConfig {
  node: string;
  /** wss:// addresses of the controller replicas' agent channel, tried in turn when one fails. */
  controllerUrls: string[];
  /** PEM file of the CA that signed the controller's certificate. */
  controllerCaFile: string;
  /** File holding this node's bootstrap token for the controller: a ServiceAccount token bound to the node, re-read at each use. */
  tokenFile: string;
  /** Where the query API listens; loopback by default. */
  adminHost: string;
  adminPort: number;
  /** Token that clients from other addresses than loopback must present to the query API. */
  adminTokenFile: string;
  logLevel: string;
  trustDomain: string;
  /** Lifetime the agent asks for its workload certificates (the CA may cap it). */
  certTtlSeconds: number;
  keyType: 'ecdsa' | 'rsa';
  /** How pods' traffic is redirected to the agent: nftables rules or eBPF programs. */
  redirect: RedirectMode;
  /** The compiled eBPF object (the eBPF mode); the set-up's build by default. */
  bpfObject?: string;
  /** Istio's root namespace: its policies apply mesh-wide. */
  rootNamespace: string;
  /** Where HBONE (15008) and Prometheus metrics (15020) listen. */
  hboneHost: string;
  metricsHost: string;
  metricsPort: number;
  /** The cluster's name in telemetry (source_cluster, destination_cluster). */
  clusterName: string;
  /** How long a stopping agent lets open connections run before it exits (a rolling upgrade's drain). */
  drainSeconds: number;
  /** Written (with the pid) once the agent serves every pod of its first configuration: a handover may begin. */
  readyFile?: string;
  /** Bounds on the HBONE listener: TLS connections at once, and streams (tunnels) on one. */
  hboneLimits: { maxSessions: number; maxConcurrentStreams: number };
  /** How pods are found: ambit's chained CNI plugin and a /proc scan (agent/cni, agent/discovery). */
  cni: {
    /** The runtime's CNI configuration directory, where the installer adds ambit's plugin; undefined: no installer. */
    confDir?: string;
    /** Where the runtime looks for plugin executables; the installer copies ambit-cni there. */
    binDir: string;
    /** The Unix socket the plugin asks; the list of enrolled namespaces is kept beside it. */
    socket: string;
  };
  /** The kubelet's pod cgroup root below the cgroup2 mount (`/kubepods.slice`); found if not given. */
  podCgroupRoot?: string;
  /** The host's /proc as the agent sees it (`/host/proc` in its container); /proc if not given. */
  procRoot?: string;
  /**
   * Event loops that carry traffic (agent/workers/): the main thread and `workers - 1` worker
   * threads, sharing every pod's listeners and 15008 through SO_REUSEPORT. 1: the main thread alone.
   */
  workers: number;
}

/** ztunnel's default of two workers, or the cores if fewer. */
export function defaultWorkers(cores: number): number {
  return Math.max(1, Math.min(2, cores));
}

export const defaultAdminPort = 15000;
export const defaultMetricsPort = 15020;
