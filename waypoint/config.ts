// The waypoint's configuration, read once at start from its command line and the pod's environment
// (as Kubernetes' downward API gives it), and handed down.

import { AmbitError } from '../shared/errors.js';
import { waypointWorkers } from '../shared/waypoint/names.js';

export interface WaypointConfig {
  /** The Gateway this waypoint serves; its pods' ServiceAccount has the same name. */
  gateway: string;
  namespace: string;
  podName: string;
  podIp: string;
  trustDomain: string;
  serviceAccount: string;
  hbonePort: number;
  metricsPort: number;
  /** OTLP/HTTP traces URL (`http://host:4318/v1/traces`); no tracing when absent. */
  otlpTracesEndpoint?: string;
  clusterName: string;
  /** Istio's root namespace: its DestinationRules apply mesh-wide. */
  rootNamespace: string;
  logLevel: string;
  /** Event loops carrying traffic: the main thread and workers - 1 worker threads. */
  workers: number;
}

export function readWaypointConfig(flags: { gateway?: string; otlp?: string; 'log-level'?: string; workers?: string }, env: NodeJS.ProcessEnv): WaypointConfig {
  const gateway = flags.gateway;
  if (!gateway) throw new AmbitError('BadArgs', 'ambit waypoint run needs --gateway NAME (the Gateway it serves)');
  const workers = waypointWorkers(flags.workers ?? '1');
  if (typeof workers === 'string') throw new AmbitError('BadArgs', `--workers ${workers}`);
  const missing = ['POD_NAMESPACE', 'POD_NAME', 'POD_IP'].filter((k) => !env[k]);
  if (missing.length) throw new AmbitError('WaypointConfig', `ambit waypoint run runs in a pod: ${missing.join(', ')} must be set (Kubernetes' downward API)`);
  return {
    gateway,
    namespace: env.POD_NAMESPACE!,
    podName: env.POD_NAME!,
    podIp: env.POD_IP!,
    trustDomain: env.TRUST_DOMAIN ?? 'cluster.local',
    serviceAccount: env.SERVICE_ACCOUNT ?? gateway,
    hbonePort: 15008,
    metricsPort: 15020,
    ...((flags.otlp ?? env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) ? { otlpTracesEndpoint: flags.otlp ?? env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT } : {}),
    clusterName: env.CLUSTER_NAME ?? 'Kubernetes',
    rootNamespace: env.ROOT_NAMESPACE ?? 'istio-system',
    logLevel: flags['log-level'] ?? env.LOG_LEVEL ?? 'info',
    workers,
  };
}
