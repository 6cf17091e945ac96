// Everything `ambit install` puts on a cluster, rendered from the typed values (values.ts): the
// namespace, the mesh's CRDs, ServiceAccounts and RBAC (rbac.ts), the controller (Deployment, its
// PodDisruptionBudget and Service, the admission webhook's configuration) and the agent DaemonSet.
// Rendering reads no cluster: what to leave out on a given cluster (another's CRDs) is the installer's.

import { meshCrds, partOfLabel } from '../shared/kube/crds.js';
import { agentServiceAccount, agentTokenAudience, caRootConfigMap } from '../shared/protocol/config.js';
import type { Resource } from '../shared/resources/types.js';
import { meshWebhookConfiguration } from '../shared/resources/webhook-configurations.js';
import { controllerClusterRules, controllerNamespaceRules } from './rbac.js';
import { controllerServiceName, installNamespace, type InstallValues } from './values.js';

/** Every object ambit installs carries it; `ambit uninstall` and `kubectl get -l` find them by it. */
export { partOfLabel };
export const controllerName = 'ambit-controller';
export const agentName = agentServiceAccount.name;
export const agentAdminSecret = 'ambit-agent-admin-token';

// Ports, as DESIGN.md and istiod/ztunnel number them.
const agentChannelPort = 15012;
const webhookPort = 15017;
const monitoringPort = 15014;

const meta = (name: string, namespaced: boolean, component?: string) => ({
  name,
  ...(namespaced ? { namespace: installNamespace } : {}),
  labels: { ...partOfLabel, ...(component ? { 'app.kubernetes.io/component': component } : {}) },
});

/** The mesh's CRDs, marked as ambit's (the installer leaves a cluster's own Istio or Gateway API CRDs alone). */
export function crds(): Resource[] {
  return meshCrds().map((c) => ({ ...c, metadata: { ...c.metadata, labels: { ...c.metadata.labels, ...partOfLabel } } }) as unknown as Resource);
}

function rbac(): Resource[] {
  const subject = (name: string) => ({ kind: 'ServiceAccount', name, namespace: installNamespace });
  return [
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: meta(controllerName, false, 'controller'), rules: controllerClusterRules() },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: meta(controllerName, false, 'controller'), roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: controllerName }, subjects: [subject(controllerName)] },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: meta(controllerName, true, 'controller'), rules: controllerNamespaceRules() },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: meta(controllerName, true, 'controller'), roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: controllerName }, subjects: [subject(controllerName)] },
  ] as unknown as Resource[];
}

const dropAll = { drop: ['ALL'] };

function controller(v: InstallValues): Resource[] {
  const selector = { 'app.kubernetes.io/name': controllerName };
  const labels = { ...selector, ...partOfLabel, 'app.kubernetes.io/component': 'controller' };
  const deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(controllerName, true, 'controller'),
    spec: {
      replicas: v.controller.replicas,
      selector: { matchLabels: selector },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: { labels },
        spec: {
          serviceAccountName: controllerName,
          // Replicas on different nodes when there are nodes enough: a node lost takes one replica.
          affinity: { podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: { labelSelector: { matchLabels: selector }, topologyKey: 'kubernetes.io/hostname' } }] } },
          securityContext: { runAsNonRoot: true, runAsUser: 1337, runAsGroup: 1337, fsGroup: 1337, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: 'controller',
              image: v.image,
              imagePullPolicy: v.imagePullPolicy,
              command: ['ambit'],
              args: [
                'controller',
                '--state-dir=/var/lib/ambit',
                `--agent-listen=0.0.0.0:${agentChannelPort}`,
                // The Service's name: a DNS SAN of the serving certificate agents and the API server check.
                `--agent-address=${controllerServiceName}.${installNamespace}.svc`,
                `--webhook-port=${webhookPort}`,
                `--webhook-service=${installNamespace}/${controllerServiceName}`,
                `--monitoring-listen=0.0.0.0:${monitoringPort}`,
                `--trust-domain=${v.trustDomain}`,
                `--root-namespace=${v.rootNamespace}`,
                `--log-level=${v.logLevel}`,
              ],
              // Leader election's identity, as istiod's.
              env: [{ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
              ports: [
                { name: 'agents', containerPort: agentChannelPort, protocol: 'TCP' },
                { name: 'webhook', containerPort: webhookPort, protocol: 'TCP' },
                { name: 'monitoring', containerPort: monitoringPort, protocol: 'TCP' },
              ],
              // Agents are served once every kind is listed: the agent channel's port opens then.
              readinessProbe: { tcpSocket: { port: agentChannelPort }, periodSeconds: 5, failureThreshold: 3 },
              livenessProbe: { httpGet: { path: '/metrics', port: monitoringPort }, initialDelaySeconds: 30, periodSeconds: 15, failureThreshold: 4 },
              resources: v.controller.resources,
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: dropAll },
              volumeMounts: [
                { name: 'state', mountPath: '/var/lib/ambit' },
                { name: 'tmp', mountPath: '/tmp' },
              ],
            },
          ],
          // The CA keys are in the Secret; the state directory holds only what a restart rebuilds.
          volumes: [
            { name: 'state', emptyDir: {} },
            { name: 'tmp', emptyDir: {} },
          ],
        },
      },
    },
  };
  const pdb = {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: meta(controllerName, true, 'controller'),
    // One replica at a time may go in a drain, whatever the replica count (minAvailable 1 would block
    // every drain of a single replica's node).
    spec: { maxUnavailable: 1, selector: { matchLabels: selector } },
  };
  const service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(controllerServiceName, true, 'controller'),
    spec: {
      selector,
      ports: [
        { name: 'tls-agents', port: agentChannelPort, targetPort: agentChannelPort, protocol: 'TCP' },
        // The API server calls webhooks on 443 unless told otherwise, as istiod's Service maps it.
        { name: 'https-webhook', port: 443, targetPort: webhookPort, protocol: 'TCP' },
        { name: 'http-monitoring', port: monitoringPort, targetPort: monitoringPort, protocol: 'TCP' },
      ],
    },
  };
  const webhook = meshWebhookConfiguration({ service: { namespace: installNamespace, name: controllerServiceName, path: '/validate' } }, 'ambit');
  webhook.metadata.labels = { ...webhook.metadata.labels, ...partOfLabel };
  return [deployment, pdb, service, webhook] as unknown as Resource[];
}

function agent(v: InstallValues): Resource {
  const selector = { 'app.kubernetes.io/name': agentName };
  const ebpf = v.agent.redirect === 'ebpf';
  const hostPath = (name: string, path: string, type: string) => ({ name, hostPath: { path, type } });
  const volumes = [
    // Pods' network namespaces and processes (the /proc scan finds pods at start; netns are entered).
    hostPath('netns', '/var/run/netns', 'DirectoryOrCreate'),
    hostPath('host-proc', '/proc', 'Directory'),
    hostPath('cgroup', '/sys/fs/cgroup', 'Directory'),
    // The chained CNI plugin the agent installs, and the socket the plugin hands pods to the agent through.
    hostPath('cni-conf', v.agent.cniConfDir, 'DirectoryOrCreate'),
    hostPath('cni-bin', v.agent.cniBinDir, 'DirectoryOrCreate'),
    hostPath('ambit-run', '/var/run/ambit', 'DirectoryOrCreate'),
    ...(ebpf ? [hostPath('bpffs', '/sys/fs/bpf', 'Directory')] : []),
    { name: 'controller-ca', configMap: { name: caRootConfigMap.name, items: [{ key: caRootConfigMap.key, path: caRootConfigMap.key }] } },
    // The node's proof to the controller: a token for the controller's audience, bound to this pod (and so its node).
    { name: 'controller-token', projected: { sources: [{ serviceAccountToken: { audience: agentTokenAudience, expirationSeconds: 3600, path: 'token' } }] } },
    { name: 'admin-token', secret: { secretName: agentAdminSecret } },
    { name: 'ready', emptyDir: {} },
    { name: 'tmp', emptyDir: {} },
  ];
  const volumeMounts = [
    // HostToContainer: namespaces made after the agent started appear in its view.
    { name: 'netns', mountPath: '/var/run/netns', mountPropagation: 'HostToContainer' },
    { name: 'host-proc', mountPath: '/host/proc', readOnly: true },
    { name: 'cgroup', mountPath: '/sys/fs/cgroup', readOnly: true },
    { name: 'cni-conf', mountPath: '/host/etc/cni/net.d' },
    { name: 'cni-bin', mountPath: '/host/opt/cni/bin' },
    { name: 'ambit-run', mountPath: '/var/run/ambit' },
    // Bidirectional: the programs and maps the agent pins outlive its container, as its handover needs.
    ...(ebpf ? [{ name: 'bpffs', mountPath: '/sys/fs/bpf', mountPropagation: 'Bidirectional' }] : []),
    { name: 'controller-ca', mountPath: '/etc/ambit/controller-ca', readOnly: true },
    { name: 'controller-token', mountPath: '/var/run/secrets/ambit', readOnly: true },
    { name: 'admin-token', mountPath: '/etc/ambit/admin', readOnly: true },
    { name: 'ready', mountPath: '/run/ambit-ready' },
    { name: 'tmp', mountPath: '/tmp' },
  ];
  const securityContext = ebpf
    ? // Loading BPF programs (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN) and a Bidirectional mount need a privileged container.
      { privileged: true, readOnlyRootFilesystem: true }
    : {
        privileged: false,
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        runAsUser: 0,
        runAsNonRoot: false,
        // NET_ADMIN: nftables rules and SO_MARK in pods' namespaces; NET_RAW: IP_TRANSPARENT sockets (the
        // pod's address kept as source); SYS_ADMIN: setns into pods' network namespaces; SYS_PTRACE:
        // opening other processes' /proc/PID/ns/net in the /proc scan.
        capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN', 'SYS_PTRACE'] },
      };
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: meta(agentName, true, 'agent'),
    spec: {
      selector: { matchLabels: selector },
      // The no-drop handover: the new agent starts beside the old on each node (hostNetwork, listeners
      // shared through SO_REUSEPORT), is ready once it serves every pod, then the old one drains.
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: { labels: { ...selector, ...partOfLabel, 'app.kubernetes.io/component': 'agent' } },
        spec: {
          serviceAccountName: agentName,
          // The agent needs no Kubernetes API access: its only token is the projected one for the controller.
          automountServiceAccountToken: false,
          hostNetwork: true,
          dnsPolicy: 'ClusterFirstWithHostNet',
          priorityClassName: 'system-node-critical',
          tolerations: [{ operator: 'Exists' }],
          terminationGracePeriodSeconds: v.agent.terminationGracePeriodSeconds,
          containers: [
            {
              name: 'agent',
              image: v.image,
              imagePullPolicy: v.imagePullPolicy,
              command: ['ambit'],
              args: [
                'agent',
                '--node=$(NODE_NAME)',
                `--controller=${v.agent.controllerUrl}`,
                `--controller-ca=/etc/ambit/controller-ca/${caRootConfigMap.key}`,
                '--token-file=/var/run/secrets/ambit/token',
                '--admin-token-file=/etc/ambit/admin/token',
                `--admin-listen=${v.agent.adminListen}`,
                `--redirect=${v.agent.redirect}`,
                `--trust-domain=${v.trustDomain}`,
                `--root-namespace=${v.rootNamespace}`,
                `--cluster-name=${v.agent.clusterName}`,
                `--log-level=${v.logLevel}`,
                `--drain-grace=${v.agent.drainGraceSeconds}s`,
                '--ready-file=/run/ambit-ready/ready',
                '--cni-conf-dir=/host/etc/cni/net.d',
                '--cni-bin-dir=/host/opt/cni/bin',
                '--cni-socket=/var/run/ambit/cni.sock',
                // The node's processes, as the host's /proc shows them (the container has its own PID namespace).
                '--proc-root=/host/proc',
                `--pod-cgroup-root=${v.agent.podCgroupRoot}`,
                `--workers=${v.agent.workers}`,
              ],
              env: [
                { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
                // V8's flags apply to every isolate of the process: the main thread and each worker.
                { name: 'NODE_OPTIONS', value: `--max-semi-space-size=${v.agent.heap.maxSemiSpaceMb} --max-old-space-size=${v.agent.heap.maxOldSpaceMb}` },
              ],
              // The agent writes its ready file once it serves every pod of its node; a port probe could
              // not tell it from its predecessor, which shares every port during the handover.
              readinessProbe: { exec: { command: ['test', '-s', '/run/ambit-ready/ready'] }, periodSeconds: 2, failureThreshold: 1 },
              resources: v.agent.resources,
              securityContext,
              volumeMounts,
            },
          ],
          volumes,
        },
      },
    },
  } as unknown as Resource;
}

export interface RenderOptions {
  /** The agents' query API token (`ambit install` keeps the one on the cluster); none: the Secret is left out. */
  adminToken?: string;
}

/** Every object, in the order they are applied (Helm's install order: what others refer to first). */
export function render(v: InstallValues, o: RenderOptions = {}): Resource[] {
  const namespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: installNamespace, labels: { ...partOfLabel } } } as Resource;
  const serviceAccounts = [controllerName, agentName].map((name) => ({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(name, true, name === agentName ? 'agent' : 'controller') }) as Resource);
  const adminSecret = o.adminToken
    ? [{ apiVersion: 'v1', kind: 'Secret', metadata: meta(agentAdminSecret, true, 'agent'), type: 'Opaque', data: { token: Buffer.from(o.adminToken).toString('base64') } } as Resource]
    : [];
  return [namespace, ...crds(), ...serviceAccounts, ...adminSecret, ...rbac(), ...controller(v), agent(v)];
}
