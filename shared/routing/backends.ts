// Backend references: resolving a backendRef to a Service port (or to the reason it cannot be
// used), and the weighted draw among a rule's backends. Sending to the backend is the proxy's job.

import type { BackendTarget, CompiledBackend, CompiledRule, InvalidBackend, ServiceLookup } from './types.js';

export interface BackendRefSpec {
  group?: string;
  kind?: string;
  namespace?: string;
  name: string;
  port?: number;
}

/**
 * Where a backendRef points, or why it cannot be used. A BackendObjectReference defaults to group ""
 * and kind Service. Cross-namespace references need no ReferenceGrant in a mesh (GEP-1294: mesh
 * routes augment Services that clients can already reach, they expose nothing new).
 */
export function resolveBackendRef(ref: BackendRefSpec, routeNamespace: string, services: ServiceLookup): { target: BackendTarget; invalid?: InvalidBackend } {
  const namespace = ref.namespace || routeNamespace;
  const target: BackendTarget = { namespace, name: ref.name, port: ref.port };
  const group = ref.group ?? '';
  const kind = ref.kind ?? 'Service';
  if ((group !== '' && group !== 'core') || kind !== 'Service') {
    return { target, invalid: { reason: 'InvalidKind', message: `backendRef ${group ? `${group}/` : ''}${kind} ${namespace}/${ref.name}: only core Services can be backends` } };
  }
  const svc = services(namespace, ref.name);
  if (!svc) return { target, invalid: { reason: 'BackendNotFound', message: `backendRef Service ${namespace}/${ref.name} does not exist` } };
  if (ref.port !== undefined && !svc.ports.some((p) => p.port === ref.port)) {
    const has = svc.ports.map((p) => p.port).join(', ') || 'none';
    return { target, invalid: { reason: 'BackendNotFound', message: `backendRef Service ${namespace}/${ref.name} has no port ${ref.port} (its ports: ${has})` } };
  }
  return { target };
}

/**
 * A weighted random choice among the rule's backends; undefined when the rule has none or every
 * weight is 0 (the request then gets 500). Invalid backends take part in the draw, so their share of
 * requests fails, as the spec asks; the caller checks `invalid`.
 */
export function pickBackend(rule: CompiledRule, random: () => number = Math.random): CompiledBackend | undefined {
  const backends = rule.backends;
  if (rule.totalWeight <= 0) return undefined;
  if (backends.length === 1) return backends[0];
  let draw = random() * rule.totalWeight;
  for (let i = 0; i < backends.length; i++) {
    const b = backends[i]!;
    // Strictly less: a backend of weight 0 is never drawn.
    if (draw < b.weight) return b;
    draw -= b.weight;
  }
  // Only floating-point rounding gets here; the last backend with weight takes it.
  for (let i = backends.length - 1; i >= 0; i--) if (backends[i]!.weight > 0) return backends[i];
  return undefined;
}
