// The local cluster's shape: the cluster file (how many nodes, which address blocks) and every name
// and address derived from it, in one place, so `up`, the runtime and `down` agree on them.

import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { Ajv } from 'ajv';
import { AmbitError } from '../shared/errors.js';
import { fieldPath } from '../shared/resources/validate.js';
import { defaultAgentPort, defaultMonitoringPort, defaultWebhookPort } from '../controller/config.js';
import { type Cidr, cidrSize, host, overlaps, parseCidr, subnet } from '../shared/net/ipv4.js';

export interface ClusterFile {
  apiVersion: 'ambit.dev/v1alpha1';
  kind: 'Cluster';
  metadata?: { name?: string };
  spec?: {
    /** A count (nodes named node-1, node-2, ...) or the node names. */
    nodes?: number | string[];
    podCIDR?: string;
    serviceCIDR?: string;
    nodeCIDR?: string;
    /** Address the agents' query API binds in each node (default loopback; others need the admin token). */
    agentAdminAddress?: string;
    /** How the agents redirect pods' traffic: nftables rules (default) or eBPF programs. */
    redirect?: 'iptables' | 'ebpf';
    /** Run a Prometheus that scrapes the agents and the controller (default true). */
    prometheus?: boolean;
    /** Controller replicas (default 1): with 2 or 3 they elect a leader and agents know them all. */
    controllerReplicas?: number;
  };
}

const clusterSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['apiVersion', 'kind'],
  properties: {
    apiVersion: { const: 'ambit.dev/v1alpha1' },
    kind: { const: 'Cluster' },
    metadata: { type: 'object', additionalProperties: false, properties: { name: { type: 'string' } } },
    spec: {
      type: 'object',
      additionalProperties: false,
      properties: {
        nodes: {
          oneOf: [
            { type: 'integer', minimum: 1, maximum: 16 },
            { type: 'array', minItems: 1, maxItems: 16, uniqueItems: true, items: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]{0,18}[a-z0-9])?$' } },
          ],
        },
        podCIDR: { type: 'string' },
        serviceCIDR: { type: 'string' },
        nodeCIDR: { type: 'string' },
        agentAdminAddress: { enum: ['127.0.0.1', '0.0.0.0'] },
        redirect: { enum: ['iptables', 'ebpf'] },
        prometheus: { type: 'boolean' },
        controllerReplicas: { type: 'integer', minimum: 1, maximum: 3 },
      },
    },
  },
};

export interface NodeLayout {
  name: string;
  /** 1-based position; the node's pod subnet and address derive from it. */
  index: number;
  netns: string;
  /** The node's address on the link between nodes. */
  ip: string;
  podCIDR: Cidr;
  /** The node bridge's address: the pods' gateway. */
  gateway: string;
  /** The node's veth end in the fabric namespace (at most 15 characters, a kernel limit). */
  fabricLink: string;
}

export interface Topology {
  name: string;
  podCIDR: Cidr;
  serviceCIDR: Cidr;
  nodeCIDR: Cidr;
  nodes: NodeLayout[];
  /** The namespace holding the bridge that joins the nodes, like a top-of-rack switch. */
  fabricNetns: string;
  /** The control-plane host on the fabric, where the controller runs and agents reach it. */
  control: { netns: string; ip: string; fabricLink: string };
  agentAdminAddress: string;
  redirect: 'iptables' | 'ebpf';
  prometheus: boolean;
  /** The controller replicas, all on the control-plane host, each on its own ports. */
  controllers: ControllerReplica[];
}

export interface ControllerReplica {
  /** Its identity in leader election, and its number (0 serves the dashboard and the CLI's default). */
  identity: string;
  index: number;
  /** Agents' wss, the admission webhook, Prometheus metrics. */
  agentPort: number;
  webhookPort: number;
  monitoringPort: number;
}

/** Replica 0 takes istiod's ports (15012, 15017, 15014); each next one the same plus 100. */
function controllerReplica(index: number): ControllerReplica {
  const shift = index * 100;
  return { identity: `ambit-controller-${index}`, index, agentPort: defaultAgentPort + shift, webhookPort: defaultWebhookPort + shift, monitoringPort: defaultMonitoringPort + shift };
}

/** Every network namespace, cgroup and link the project makes starts with this prefix. */
export const prefix = 'ambit';
export const fabricNetns = `${prefix}-fabric`;

export function defaultClusterFile(): ClusterFile {
  return { apiVersion: 'ambit.dev/v1alpha1', kind: 'Cluster', metadata: { name: 'ambit' }, spec: { nodes: 2 } };
}

export function readClusterFile(path: string): ClusterFile {
  let doc: unknown;
  try {
    doc = parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new AmbitError('ClusterFileInvalid', `${path}: ${(err as Error).message.split('\n')[0]}`);
  }
  const validate = new Ajv({ allErrors: true }).compile(clusterSchema);
  if (!validate(doc)) {
    const e = validate.errors![0]!;
    const extra = (e.params as { additionalProperty?: string }).additionalProperty;
    const field = fieldPath(e.instancePath, extra);
    throw new AmbitError('ClusterFileInvalid', `${path}: ${field || 'the file'} ${extra ? 'is not a known field' : e.message}`);
  }
  return doc as unknown as ClusterFile;
}

export function layout(file: ClusterFile): Topology {
  const spec = file.spec ?? {};
  const podCIDR = parseCidr(spec.podCIDR ?? '10.244.0.0/16');
  const serviceCIDR = parseCidr(spec.serviceCIDR ?? '10.96.0.0/16');
  const nodeCIDR = parseCidr(spec.nodeCIDR ?? '10.250.0.0/24');
  const blocks = { podCIDR, serviceCIDR, nodeCIDR };
  for (const [a, ca] of Object.entries(blocks)) {
    for (const [b, cb] of Object.entries(blocks)) {
      if (a < b && overlaps(ca, cb)) throw new AmbitError('ClusterFileInvalid', `spec.${a} ${ca.text} overlaps spec.${b} ${cb.text}`);
    }
  }
  if (podCIDR.bits > 23) throw new AmbitError('ClusterFileInvalid', `spec.podCIDR ${podCIDR.text} must be /23 or larger: each node takes a /24`);
  const names = typeof spec.nodes === 'object' ? spec.nodes : Array.from({ length: spec.nodes ?? 2 }, (_, i) => `node-${i + 1}`);
  const nodes = names.map((name, i): NodeLayout => {
    const index = i + 1;
    const pods = subnet(podCIDR, 24, index);
    return {
      name,
      index,
      netns: `${prefix}-node-${name}`,
      ip: host(nodeCIDR, index),
      podCIDR: pods,
      gateway: host(pods, 1),
      fabricLink: `${prefix}-f${index}`,
    };
  });
  const control = { netns: `${prefix}-control`, ip: host(nodeCIDR, cidrSize(nodeCIDR) - 2), fabricLink: `${prefix}-fc` };
  const controllers = Array.from({ length: spec.controllerReplicas ?? 1 }, (_, i) => controllerReplica(i));
  return { name: file.metadata?.name ?? 'ambit', podCIDR, serviceCIDR, nodeCIDR, nodes, fabricNetns, control, agentAdminAddress: spec.agentAdminAddress ?? '127.0.0.1', redirect: spec.redirect ?? 'iptables', prometheus: spec.prometheus ?? true, controllers };
}

export function podNetns(namespace: string, name: string): string {
  return `${prefix}-pod-${namespace}.${name}`;
}
