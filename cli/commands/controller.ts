// `ambit controller`: runs a controller replica in the foreground (`ambit up` starts the local
// cluster's in the background, with --local-cluster).

import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { AmbitError } from '../../shared/errors.js';
import { parseDuration } from '../../shared/duration.js';
import { apiSocketPath, type ControllerConfig, defaultAgentPort, defaultDashboardPort, defaultMonitoringPort, defaultWebhookPort } from '../../controller/config.js';
import { runController } from '../../controller/main.js';
import type { CliContext } from '../context.js';
import type { LocalReplicaSettings } from '../../cluster/mesh-controller.js';
import { inClusterConfig, loadKubeconfig } from '../../shared/kube/config.js';
import { listenFlag } from '../flags.js';

export async function controller(ctx: CliContext, args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      'local-cluster': { type: 'boolean' },
      replica: { type: 'string' },
      'agent-listen': { type: 'string' },
      'agent-address': { type: 'string', multiple: true },
      nodes: { type: 'string' },
      'service-cidr': { type: 'string' },
      'root-namespace': { type: 'string' },
      'trust-domain': { type: 'string' },
      'cert-ttl': { type: 'string' },
      'max-cert-ttl': { type: 'string' },
      'monitoring-listen': { type: 'string' },
      'log-level': { type: 'string' },
      'dashboard-listen': { type: 'string' },
      'dashboard-netns': { type: 'string' },
      'prometheus-url': { type: 'string' },
      identity: { type: 'string' },
      kubeconfig: { type: 'string' },
      'webhook-port': { type: 'string' },
      'webhook-service': { type: 'string' },
    },
  });
  // A replica of the local cluster's controller takes its nodes, ports and kubeconfig from the
  // cluster's record, and its dashboard a way into the nodes; flags given still win.
  const local = values['local-cluster'] ? await localReplica(ctx.stateDir, values.replica ?? '0') : undefined;
  const [host, port] = (values['agent-listen'] ?? (local ? `${local.agentListen.host}:${local.agentListen.port}` : `0.0.0.0:${defaultAgentPort}`)).split(':');
  if (!host || !port || !/^\d+$/.test(port)) throw new AmbitError('BadFlag', `--agent-listen ${values['agent-listen']}: must be HOST:PORT`);
  const [monHost, monPort] = (values['monitoring-listen'] ?? `0.0.0.0:${local?.monitoringPort ?? defaultMonitoringPort}`).split(':');
  if (!monHost || !monPort || !/^\d+$/.test(monPort)) throw new AmbitError('BadFlag', `--monitoring-listen ${values['monitoring-listen']}: must be HOST:PORT`);
  const dashboard = local && !local.dashboard && values['dashboard-listen'] === undefined ? undefined : listenFlag('--dashboard-listen', values['dashboard-listen'], `127.0.0.1:${defaultDashboardPort}`, '--dashboard-netns', values['dashboard-netns']);
  // A namespace inherited as a descriptor: closed by the controller once its listener is open.
  const inheritedNetns = [values['dashboard-netns']].filter((p): p is string => p !== undefined && p.startsWith('/proc/self/fd/'));
  const prometheusUrl = values['prometheus-url'] ?? local?.prometheusUrl;
  if (prometheusUrl !== undefined && !/^https?:\/\/[^/]+/.test(prometheusUrl)) throw new AmbitError('BadFlag', `--prometheus-url ${prometheusUrl}: must be http://HOST:PORT[/prefix]`);
  const webhookPort = values['webhook-port'] ?? String(local?.webhookPort ?? defaultWebhookPort);
  if (!/^\d+$/.test(webhookPort)) throw new AmbitError('BadFlag', `--webhook-port ${webhookPort}: must be a port number`);
  const [serviceNamespace, serviceName, ...extra] = (values['webhook-service'] ?? '').split('/');
  if (values['webhook-service'] !== undefined && (!serviceNamespace || !serviceName || extra.length)) throw new AmbitError('BadFlag', `--webhook-service ${values['webhook-service']}: must be NAMESPACE/NAME of the controller's Service`);
  // The kubeconfig given, else the pod's ServiceAccount (in-cluster), as istiod.
  const kubeconfig = values.kubeconfig ?? local?.kubeconfig;
  const kube = kubeconfig ? loadKubeconfig(kubeconfig) : inClusterConfig(process.env);
  const maxTtl = parseDuration(values['max-cert-ttl'] ?? '24h', '--max-cert-ttl');
  const stateDir = local?.stateDir ?? ctx.stateDir;
  const config: ControllerConfig = {
    stateDir,
    apiSocket: apiSocketPath(stateDir),
    agentHost: host,
    agentPort: Number(port),
    webhookPort: Number(webhookPort),
    agentAddresses: values['agent-address'] ?? local?.agentAddresses ?? ['127.0.0.1'],
    nodes: values.nodes ? values.nodes.split(',') : (local?.nodes ?? []),
    serviceCIDR: values['service-cidr'] ?? '10.96.0.0/16',
    rootNamespace: values['root-namespace'] ?? 'istio-system',
    trustDomain: values['trust-domain'] ?? 'cluster.local',
    certDefaultTtlSeconds: Math.min(maxTtl, parseDuration(values['cert-ttl'] ?? '24h', '--cert-ttl')),
    certMaxTtlSeconds: maxTtl,
    monitoringHost: monHost,
    monitoringPort: Number(monPort),
    logLevel: values['log-level'] ?? 'info',
    // POD_NAME comes from the downward API in the controller's Deployment, as for istiod.
    identity: values.identity ?? local?.identity ?? (process.env.POD_NAME || hostname()),
    ...(dashboard ? { dashboard } : {}),
    kube,
    inheritedNetns,
    ...(serviceName ? { webhookService: { namespace: serviceNamespace!, name: serviceName } } : {}),
    ...(prometheusUrl ? { prometheusUrl } : {}),
  };
  await runController(config, local?.dialer);
}

async function localReplica(stateDir: string, replica: string): Promise<LocalReplicaSettings> {
  if (!/^\d+$/.test(replica)) throw new AmbitError('BadFlag', `--replica ${replica}: must be a replica number (0, 1, ...)`);
  const { readState, topologyOf } = await import('../../cluster/state.js');
  const { localReplicaSettings } = await import('../../cluster/mesh-controller.js');
  const state = readState(stateDir);
  if (!state) throw new AmbitError('NoCluster', `--local-cluster: no local cluster recorded in ${stateDir}; run \`ambit up\``);
  return localReplicaSettings(topologyOf(state), stateDir, Number(replica));
}
