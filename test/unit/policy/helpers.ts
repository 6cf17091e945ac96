// Policies, workloads and connections for the policy engine's tests, in the shapes the controller pushes.

import type { PolicyEntry, WorkloadEntry } from '../../../shared/protocol/config.js';
import type { ConnectionAttributes } from '../../../shared/policy/index.js';

export const authz = (name: string, spec: unknown, namespace = 'shop'): PolicyEntry => ({ kind: 'AuthorizationPolicy', name, namespace, spec });
export const peerAuth = (name: string, spec: unknown, namespace = 'shop'): PolicyEntry => ({ kind: 'PeerAuthentication', name, namespace, spec });

export function workload(name: string, labels: Record<string, string> = { app: name }, namespace = 'shop'): WorkloadEntry {
  return { name, namespace, ip: '10.244.1.10', node: 'node-1', serviceAccount: name, owner: `Deployment/${name}`, labels };
}

/** An mTLS connection from `sa` in `ns` (trust domain cluster.local) to port 8080 of 10.244.1.10. */
export function mtls(ns = 'front', sa = 'web', extra: Partial<ConnectionAttributes> = {}): ConnectionAttributes {
  return { sourceIp: '10.244.2.7', sourcePrincipal: `cluster.local/ns/${ns}/sa/${sa}`, sourceNamespace: ns, destinationIp: '10.244.1.10', destinationPort: 8080, ...extra };
}

/** A plaintext connection: no principal, no namespace. */
export function plaintext(extra: Partial<ConnectionAttributes> = {}): ConnectionAttributes {
  return { sourceIp: '192.168.5.5', destinationIp: '10.244.1.10', destinationPort: 8080, ...extra };
}

export const allowFrom = (source: Record<string, unknown>) => ({ action: 'ALLOW', rules: [{ from: [{ source }] }] });
