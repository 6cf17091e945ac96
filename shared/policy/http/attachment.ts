// Which waypoint policies (AuthorizationPolicy, RequestAuthentication, LocalRateLimit) apply to which
// requests: Istio's `targetRefs` attachment for waypoints. A policy names the waypoint's Gateway (all
// its traffic), Services (requests to them through the waypoint), or, in the root namespace, the
// waypoint GatewayClass (every waypoint). A policy with a `selector` applies to workloads, at their
// node proxy, never to a waypoint. Istio's reference, AuthorizationPolicy.targetRefs: Gateway and
// Service "in the same namespace", GatewayClass "in the root namespace".

import { waypointGatewayClass } from '../../waypoint/names.js';
import { isRecord } from '../spec.js';

const gatewayGroup = 'gateway.networking.k8s.io';

/** What a policy is attached to, as read from its `targetRef`/`targetRefs`. */
export interface Attachment {
  /** `namespace/name` of each Gateway it names (its own namespace only). */
  gateways: string[];
  /** `namespace/name` of each Service it names. */
  services: string[];
  /** Named the waypoint GatewayClass from the root namespace: every waypoint. */
  everyWaypoint: boolean;
  /** Route names (`namespace/name`) it names (LocalRateLimit may attach to an HTTPRoute). */
  routes: string[];
}

export interface AttachmentProblem {
  /** `spec.targetRefs[1].kind` */
  field: string;
  message: string;
}

/** Whether a policy is attached with targetRef(s), so a waypoint enforces it (the node proxy enforces the selector kind). */
export function hasTargetRefs(spec: unknown): boolean {
  return isRecord(spec) && ((spec.targetRef !== undefined && spec.targetRef !== null) || (Array.isArray(spec.targetRefs) && spec.targetRefs.length > 0));
}

/**
 * The attachment of a policy spec, or undefined when it has no targetRef(s) (a selector policy, for
 * node proxies). `allowRoutes`: HTTPRoute and GRPCRoute are accepted targets (rate limits).
 * Problems are the refs ambit cannot honour, each named by field; a policy with problems is refused
 * at apply time and, if it reaches a waypoint anyway, those refs attach to nothing.
 */
export function readAttachment(spec: unknown, policyNamespace: string, rootNamespace: string, allowRoutes = false): { attachment: Attachment | undefined; problems: AttachmentProblem[] } {
  const problems: AttachmentProblem[] = [];
  if (!isRecord(spec)) return { attachment: undefined, problems };
  const refs: [unknown, string][] = [];
  if (spec.targetRef !== undefined && spec.targetRef !== null) refs.push([spec.targetRef, 'spec.targetRef']);
  if (Array.isArray(spec.targetRefs)) spec.targetRefs.forEach((r, i) => refs.push([r, `spec.targetRefs[${i}]`]));
  if (refs.length === 0) return { attachment: undefined, problems };
  const out: Attachment = { gateways: [], services: [], everyWaypoint: false, routes: [] };
  for (const [ref, field] of refs) {
    if (!isRecord(ref) || typeof ref.name !== 'string' || ref.name === '' || typeof ref.kind !== 'string') {
      problems.push({ field, message: 'needs kind and name' });
      continue;
    }
    const group = typeof ref.group === 'string' ? ref.group : '';
    if (ref.namespace !== undefined && ref.namespace !== policyNamespace) {
      problems.push({ field: `${field}.namespace`, message: `must be the policy's own namespace (${policyNamespace}): Istio does not attach across namespaces` });
      continue;
    }
    const key = `${policyNamespace}/${ref.name}`;
    if (ref.kind === 'Gateway' && group === gatewayGroup) out.gateways.push(key);
    else if (ref.kind === 'Service' && (group === '' || group === 'core')) out.services.push(key);
    else if (ref.kind === 'GatewayClass' && group === gatewayGroup) {
      if (policyNamespace !== rootNamespace) problems.push({ field, message: `a GatewayClass is a target only for a policy in the root namespace (${rootNamespace})` });
      else if (ref.name !== waypointGatewayClass && ref.name !== 'istio-waypoint') problems.push({ field: `${field}.name`, message: `GatewayClass ${JSON.stringify(ref.name)} is not a waypoint class (${waypointGatewayClass})` });
      else out.everyWaypoint = true;
    } else if (allowRoutes && (ref.kind === 'HTTPRoute' || ref.kind === 'GRPCRoute') && group === gatewayGroup) out.routes.push(key);
    else {
      const kinds = `Gateway or GatewayClass (group ${gatewayGroup}), Service (group "")${allowRoutes ? ', HTTPRoute or GRPCRoute' : ''}`;
      problems.push({ field, message: `${group ? `${group}/` : ''}${ref.kind} is not a target ambit's waypoints honour (${kinds})` });
    }
  }
  return { attachment: out, problems };
}

/**
 * Whether an attached policy applies to a request through waypoint `waypoint` (`namespace/name` of its
 * Gateway) to Service `service` (`namespace/name`), and, for rate limits, by route `route`.
 */
export function attachedTo(a: Attachment, waypoint: string, service: string, route?: string): boolean {
  return a.everyWaypoint || a.gateways.includes(waypoint) || a.services.includes(service) || (route !== undefined && a.routes.includes(route));
}
