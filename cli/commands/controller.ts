// `ambit controller`: runs the controller in the foreground (`ambit up` starts it in the background).

import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { AmbitError } from '../../shared/errors.js';
import { parseDuration } from '../../shared/duration.js';
import { apiSocketPath, type ControllerConfig, defaultAgentPort, defaultDashboardPort, defaultKubeApiPort } from '../../controller/config.js';
import { runController } from '../../controller/main.js';
import { defaultWebhookPort } from '../../controller/admission/webhook.js';
import { binDir, type CliContext } from '../context.js';
import { inClusterConfig, loadKubeconfig } from '../../shared/kube/config.js';

export async function controller(ctx: CliContext, args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      'local-cluster': { type: 'boolean' },
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
      'kube-api-listen': { type: 'string' },
      'kube-api-netns': { type: 'string' },
      'prometheus-url': { type: 'string' },
      identity: { type: 'string' },
      kubeconfig: { type: 'string' },
      'webhook-port': { type: 'string' },
      'webhook-service': { type: 'string' },
    },
  });
  const [host, port] = (values['agent-listen'] ?? `0.0.0.0:${defaultAgentPort}`).split(':');
  if (!host || !port || !/^\d+$/.test(port)) throw new AmbitError('BadFlag', `--agent-listen ${values['agent-listen']}: must be HOST:PORT`);
  const [monHost, monPort] = (values['monitoring-listen'] ?? '0.0.0.0:15014').split(':');
  if (!monHost || !monPort || !/^\d+$/.test(monPort)) throw new AmbitError('BadFlag', `--monitoring-listen ${values['monitoring-listen']}: must be HOST:PORT`);
  const dashboard = listenFlag('--dashboard-listen', values['dashboard-listen'], `127.0.0.1:${defaultDashboardPort}`, '--dashboard-netns', values['dashboard-netns']);
  // The local cluster's Kubernetes API; a controller of a real cluster has none of its own.
  const kubeApi = values['local-cluster'] ? listenFlag('--kube-api-listen', values['kube-api-listen'], `127.0.0.1:${defaultKubeApiPort}`, '--kube-api-netns', values['kube-api-netns']) : undefined;
  if (values['local-cluster'] && !kubeApi) throw new AmbitError('BadFlag', '--kube-api-listen off: the local cluster needs its Kubernetes API, which the controller reads the cluster through');
  // Namespaces inherited as descriptors: closed by the controller once its listeners are open.
  const inheritedNetns = [values['dashboard-netns'], values['kube-api-netns']].filter((p): p is string => p !== undefined && p.startsWith('/proc/self/fd/'));
  const prometheusUrl = values['prometheus-url'];
  if (prometheusUrl !== undefined && !/^https?:\/\/[^/]+/.test(prometheusUrl)) throw new AmbitError('BadFlag', `--prometheus-url ${prometheusUrl}: must be http://HOST:PORT[/prefix]`);
  const webhookPort = values['webhook-port'] ?? String(defaultWebhookPort);
  if (!/^\d+$/.test(webhookPort)) throw new AmbitError('BadFlag', `--webhook-port ${webhookPort}: must be a port number`);
  const [serviceNamespace, serviceName, ...extra] = (values['webhook-service'] ?? '').split('/');
  if (values['webhook-service'] !== undefined && (!serviceNamespace || !serviceName || extra.length)) throw new AmbitError('BadFlag', `--webhook-service ${values['webhook-service']}: must be NAMESPACE/NAME of the controller's Service`);
  // Outside the local cluster: the kubeconfig given, else the pod's ServiceAccount (in-cluster), as istiod.
  const kube = values['local-cluster'] ? undefined : values.kubeconfig ? loadKubeconfig(values.kubeconfig) : inClusterConfig(process.env);
  const maxTtl = parseDuration(values['max-cert-ttl'] ?? '24h', '--max-cert-ttl');
  const config: ControllerConfig = {
    stateDir: ctx.stateDir,
    apiSocket: apiSocketPath(ctx.stateDir),
    agentHost: host,
    agentPort: Number(port),
    webhookPort: Number(webhookPort),
    agentAddresses: values['agent-address'] ?? ['127.0.0.1'],
    nodes: values.nodes ? values.nodes.split(',') : [],
    serviceCIDR: values['service-cidr'] ?? '10.96.0.0/16',
    rootNamespace: values['root-namespace'] ?? 'istio-system',
    trustDomain: values['trust-domain'] ?? 'cluster.local',
    certDefaultTtlSeconds: Math.min(maxTtl, parseDuration(values['cert-ttl'] ?? '24h', '--cert-ttl')),
    certMaxTtlSeconds: maxTtl,
    monitoringHost: monHost,
    monitoringPort: Number(monPort),
    localCluster: values['local-cluster'] === true,
    binDir,
    logLevel: values['log-level'] ?? 'info',
    // POD_NAME comes from the downward API in the controller's Deployment, as for istiod.
    identity: values.identity ?? (process.env.POD_NAME || hostname()),
    ...(dashboard ? { dashboard } : {}),
    ...(kubeApi ? { kubeApi } : {}),
    ...(kube ? { kube } : {}),
    inheritedNetns,
    ...(serviceName ? { webhookService: { namespace: serviceNamespace!, name: serviceName } } : {}),
    ...(prometheusUrl ? { prometheusUrl } : {}),
  };
  // Embedded in a local cluster, the controller gets that cluster's services handed in.
  const local = config.localCluster ? (await import('../../cluster/control-plane.js')).localCluster(config) : undefined;
  await runController(config, local);
}

/** `FLAG HOST:PORT` (or the default) or `off`; `NETNS_FLAG PATH` to listen in another namespace. */
function listenFlag(flag: string, listen: string | undefined, fallback: string, netnsFlag: string, netns: string | undefined): { host: string; port: number; netns?: string } | undefined {
  if (listen === 'off') return undefined;
  const [host, port] = (listen ?? fallback).split(':');
  if (!host || !port || !/^\d+$/.test(port) || Number(port) > 65535) throw new AmbitError('BadFlag', `${flag} ${listen}: must be HOST:PORT or off`);
  // A listener made in another namespace is bound by native/, which takes IPv4 addresses.
  if (netns && !/^\d{1,3}(\.\d{1,3}){3}$/.test(host)) throw new AmbitError('BadFlag', `${flag} ${listen}: with ${netnsFlag} the host must be an IPv4 address`);
  return { host, port: Number(port), ...(netns ? { netns } : {}) };
}
