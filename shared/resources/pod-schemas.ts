// The JSON Schema of a pod's spec and template, as Deployments, DaemonSets and Pods carry them: the
// fields of Kubernetes' core/v1 PodSpec and Container that the samples, the waypoints and ambit's own
// installed components (deploy/) use, closed as every ambit schema is. The local cluster's kubelet
// acts on the containers' commands, arguments, environment values and ports, and on the pod's
// ServiceAccount; the rest (volumes, probes, resources, security contexts, scheduling) is stored and
// served as a real cluster's API would, for kubectl and for `ambit install --dry-run=server`.

import { annotations, bool, closed, dns1123Label, dns1123Subdomain, intOrString, labelKey, labels, labelSelector, nonNegative, port, str, stringList, type Schema } from './schema-parts.js';

const quantity: Schema = { oneOf: [{ type: 'number', minimum: 0 }, { type: 'string', pattern: '^[0-9.]+([eE][-+]?[0-9]+|[numkMGTPE]i?)?$' }] };
const resourceList: Schema = { type: 'object', additionalProperties: quantity };
const keyToPath = { type: 'array', items: closed({ key: str, path: str, mode: nonNegative }, ['key', 'path']) };

const envVar = closed(
  {
    name: { type: 'string', minLength: 1 },
    value: str,
    valueFrom: closed({
      fieldRef: closed({ fieldPath: str, apiVersion: str }, ['fieldPath']),
      resourceFieldRef: closed({ resource: str, containerName: str, divisor: quantity }, ['resource']),
      configMapKeyRef: closed({ name: str, key: str, optional: bool }, ['key']),
      secretKeyRef: closed({ name: str, key: str, optional: bool }, ['key']),
    }),
  },
  ['name'],
);

const probe = closed({
  httpGet: closed({ path: str, port: intOrString, host: str, scheme: { enum: ['HTTP', 'HTTPS'] }, httpHeaders: { type: 'array', items: closed({ name: str, value: str }, ['name', 'value']) } }, ['port']),
  tcpSocket: closed({ port: intOrString, host: str }, ['port']),
  exec: closed({ command: stringList }),
  initialDelaySeconds: nonNegative,
  periodSeconds: { type: 'integer', minimum: 1 },
  timeoutSeconds: { type: 'integer', minimum: 1 },
  successThreshold: { type: 'integer', minimum: 1 },
  failureThreshold: { type: 'integer', minimum: 1 },
  terminationGracePeriodSeconds: { type: 'integer', minimum: 1 },
});

const seccompProfile = closed({ type: { enum: ['RuntimeDefault', 'Unconfined', 'Localhost'] }, localhostProfile: str }, ['type']);
const containerSecurityContext = closed({
  privileged: bool,
  allowPrivilegeEscalation: bool,
  readOnlyRootFilesystem: bool,
  runAsNonRoot: bool,
  runAsUser: nonNegative,
  runAsGroup: nonNegative,
  capabilities: closed({ add: stringList, drop: stringList }),
  seccompProfile,
});

const container = closed(
  {
    name: { type: 'string', pattern: dns1123Label, maxLength: 63 },
    image: { type: 'string' },
    imagePullPolicy: { enum: ['Always', 'IfNotPresent', 'Never'] },
    command: { type: 'array', items: { type: 'string' }, minItems: 1 },
    args: { type: 'array', items: { type: 'string' } },
    env: { type: 'array', items: envVar },
    workingDir: { type: 'string' },
    ports: {
      type: 'array',
      items: closed({ containerPort: port, hostPort: port, name: { type: 'string', pattern: dns1123Label, maxLength: 15 }, protocol: { enum: ['TCP'] } }, ['containerPort']),
    },
    resources: closed({ requests: resourceList, limits: resourceList }),
    readinessProbe: probe,
    livenessProbe: probe,
    startupProbe: probe,
    securityContext: containerSecurityContext,
    volumeMounts: {
      type: 'array',
      items: closed({ name: str, mountPath: { type: 'string', minLength: 1 }, readOnly: bool, subPath: str, mountPropagation: { enum: ['None', 'HostToContainer', 'Bidirectional'] } }, ['name', 'mountPath']),
    },
    terminationMessagePolicy: { enum: ['File', 'FallbackToLogsOnError'] },
  },
  // No image to take an entrypoint from: the local cluster runs the command (ambit's own components
  // name theirs too, so the manifests a real cluster gets are the ones the local one accepts).
  ['name', 'command'],
);

const volume = closed(
  {
    name: { type: 'string', pattern: dns1123Label, maxLength: 63 },
    hostPath: closed({ path: { type: 'string', minLength: 1 }, type: { enum: ['', 'DirectoryOrCreate', 'Directory', 'FileOrCreate', 'File', 'Socket', 'CharDevice', 'BlockDevice'] } }, ['path']),
    emptyDir: closed({ medium: { enum: ['', 'Memory'] }, sizeLimit: quantity }),
    configMap: closed({ name: str, items: keyToPath, optional: bool, defaultMode: nonNegative }),
    secret: closed({ secretName: str, items: keyToPath, optional: bool, defaultMode: nonNegative }),
    projected: closed({
      defaultMode: nonNegative,
      sources: {
        type: 'array',
        items: closed({
          serviceAccountToken: closed({ audience: str, expirationSeconds: { type: 'integer', minimum: 600 }, path: { type: 'string', minLength: 1 } }, ['path']),
          configMap: closed({ name: str, items: keyToPath, optional: bool }),
          secret: closed({ name: str, items: keyToPath, optional: bool }),
          downwardAPI: closed({ items: { type: 'array', items: closed({ path: str, fieldRef: closed({ fieldPath: str, apiVersion: str }, ['fieldPath']) }, ['path']) } }),
        }),
      },
    }),
  },
  ['name'],
);

const toleration = closed({
  key: str,
  operator: { enum: ['Exists', 'Equal'] },
  value: str,
  effect: { enum: ['NoSchedule', 'PreferNoSchedule', 'NoExecute'] },
  tolerationSeconds: { type: 'integer' },
});

const podAffinityTerm = closed({ labelSelector, namespaces: stringList, namespaceSelector: labelSelector, topologyKey: { type: 'string', minLength: 1 } }, ['topologyKey']);
const weightedPodAffinityTerm = closed({ weight: { type: 'integer', minimum: 1, maximum: 100 }, podAffinityTerm }, ['weight', 'podAffinityTerm']);
const podAffinity = closed({
  requiredDuringSchedulingIgnoredDuringExecution: { type: 'array', items: podAffinityTerm },
  preferredDuringSchedulingIgnoredDuringExecution: { type: 'array', items: weightedPodAffinityTerm },
});
const nodeSelectorTerm = closed({
  matchExpressions: { type: 'array', items: closed({ key: str, operator: { enum: ['In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt', 'Lt'] }, values: { type: 'array', items: str } }, ['key', 'operator']) },
});
const affinity = closed({
  nodeAffinity: closed({
    requiredDuringSchedulingIgnoredDuringExecution: closed({ nodeSelectorTerms: { type: 'array', items: nodeSelectorTerm } }, ['nodeSelectorTerms']),
    preferredDuringSchedulingIgnoredDuringExecution: { type: 'array', items: closed({ weight: { type: 'integer', minimum: 1, maximum: 100 }, preference: nodeSelectorTerm }, ['weight', 'preference']) },
  }),
  podAffinity,
  podAntiAffinity: podAffinity,
});

/** Also the spec of the Pods ambit makes from a Deployment (the API server describes Pods with it). */
export const podSpec = closed(
  {
    serviceAccountName: { type: 'string', pattern: dns1123Subdomain },
    automountServiceAccountToken: bool,
    nodeName: { type: 'string', pattern: dns1123Label },
    nodeSelector: { type: 'object', propertyNames: { pattern: labelKey }, additionalProperties: str },
    containers: { type: 'array', items: container, minItems: 1 },
    volumes: { type: 'array', items: volume },
    hostNetwork: bool,
    dnsPolicy: { enum: ['ClusterFirst', 'ClusterFirstWithHostNet', 'Default', 'None'] },
    priorityClassName: { type: 'string', pattern: dns1123Subdomain },
    tolerations: { type: 'array', items: toleration },
    affinity,
    terminationGracePeriodSeconds: nonNegative,
    securityContext: closed({ runAsNonRoot: bool, runAsUser: nonNegative, runAsGroup: nonNegative, fsGroup: nonNegative, seccompProfile }),
  },
  ['containers'],
);

export const podTemplate = closed({ metadata: closed({ labels, annotations }), spec: podSpec }, ['spec']);
