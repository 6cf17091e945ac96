// The local cluster's nodes as core/v1 Node objects, built from the topology (cluster/topology.ts):
// each node is a network namespace whose "kubelet" is the runtime inside the controller, so they
// are always Ready. They are not in the store and the API serves them read-only.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { arch, release } from 'node:os';
import type { Resource } from '../../shared/resources/types.js';
import type { Topology } from '../topology.js';

/**
 * What `kubectl get nodes` shows under VERSION. The local cluster speaks the Kubernetes 1.32 API
 * subset; the suffix says the kubelet is ambit's runtime, not a real kubelet.
 */
export const kubeletVersion = 'v1.32.0-ambit';

/** Go's architecture names, which node labels and nodeInfo use. */
const goArch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386' };

function osImage(): string {
  try {
    return /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? 'Linux';
  } catch {
    return 'Linux';
  }
}

/** A stable uid per cluster and node, so a client that cached it sees the same node after a restart. */
function uidOf(cluster: string, node: string): string {
  const h = createHash('sha256').update(`${cluster}/node/${node}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** The Node objects of `topology`, created (and Ready since) now. */
export function nodeObjects(topology: Topology, now = new Date()): Resource[] {
  const since = now.toISOString().replace(/\.\d+Z$/, 'Z');
  const architecture = goArch[arch()] ?? arch();
  const image = osImage();
  return topology.nodes.map((n) => ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: n.name,
      uid: uidOf(topology.name, n.name),
      // Nodes never change while the cluster runs; their one version is the first.
      resourceVersion: '1',
      creationTimestamp: since,
      labels: { 'kubernetes.io/hostname': n.name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': architecture, 'ambit.dev/netns': n.netns },
    },
    spec: { podCIDR: n.podCIDR.text, podCIDRs: [n.podCIDR.text] },
    status: {
      conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'the node namespace is up and ambit runs its pods', lastHeartbeatTime: since, lastTransitionTime: since }],
      addresses: [
        { type: 'InternalIP', address: n.ip },
        { type: 'Hostname', address: n.name },
      ],
      nodeInfo: {
        kubeletVersion,
        kubeProxyVersion: kubeletVersion,
        operatingSystem: 'linux',
        architecture,
        osImage: image,
        kernelVersion: release(),
        containerRuntimeVersion: 'ambit://local-processes',
        machineID: '',
        systemUUID: '',
        bootID: '',
      },
    },
  }));
}
