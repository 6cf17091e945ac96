// The names a waypoint is known by, shared by the controller (which deploys waypoints and tells
// agents which Services use one), the agents (which send those Services' traffic to it and serve
// its identity and configuration), the waypoint itself and the CLI. Istio's labels are honoured
// beside ambit's, so Istio manifests and habits carry over.

import type { Labels } from '../resources/types.js';

/** A Gateway of this class declares a waypoint (Istio's is `istio-waypoint`). */
export const waypointGatewayClass = 'ambit-waypoint';

/** On a Service, a Pod or a Namespace: the waypoint (a Gateway's name) its traffic goes through; `none` opts a Service or Pod out. */
export const useWaypointLabels = ['ambit.dev/use-waypoint', 'istio.io/use-waypoint'];
/** Beside a use-waypoint label: the namespace of that waypoint, when it is not the Service's own. */
export const useWaypointNamespaceLabels = ['ambit.dev/use-waypoint-namespace', 'istio.io/use-waypoint-namespace'];
/** On the Gateway: what traffic it handles, `service` (the default), `workload`, `all` or `none`, as Istio's. */
export const waypointForLabels = ['ambit.dev/waypoint-for', 'istio.io/waypoint-for'];
export const waypointForValues = ['service', 'workload', 'all', 'none'] as const;
export type WaypointFor = (typeof waypointForValues)[number];

/** On the waypoint's pods (and its Deployment and Service): the Gateway they serve, as the Gateway API names it. */
export const gatewayNameLabel = 'gateway.networking.k8s.io/gateway-name';
/** On everything the controller made for a Gateway, as Istio's deployment controller marks it. */
export const managedLabel = 'gateway.istio.io/managed';
export const managedValue = 'ambit.dev-waypoint-controller';

/** On the Gateway: the OTLP/HTTP traces URL its waypoint exports spans to (`http://collector:4318/v1/traces`); no tracing without it. */
export const tracesEndpointAnnotation = 'ambit.dev/otlp-traces-endpoint';

/**
 * On the Gateway: how many event loops its waypoint runs (worker threads beside the main thread), a
 * whole number from 1 to 64, as Istio's proxy concurrency; `waypointWorkers` reads it.
 */
export const workersAnnotation = 'ambit.dev/waypoint-workers';
export const maxWaypointWorkers = 64;

/** A workers value (annotation or flag) as a number, or why it is not one. */
export function waypointWorkers(text: string): number | string {
  const n = Number(text);
  return /^[0-9]+$/.test(text) && n >= 1 && n <= maxWaypointWorkers ? n : `must be a whole number from 1 to ${maxWaypointWorkers} (the waypoint's event loops), not ${JSON.stringify(text)}`;
}

/** The waypoint's HBONE port, where node proxies send it the traffic of the Services that use it. */
export const waypointHbonePort = 15008;
/**
 * Inside a waypoint pod's network namespace only, on 127.0.0.1: its node agent's answers to that pod
 * (its certificate for a CSR, and its configuration as a WebSocket stream). Only processes in the
 * pod's namespace can reach it, so the agent knows which pod asks, as Istio's workload SDS socket does.
 */
export const waypointLocalPort = 15019;
export const waypointCertificatePath = '/v1/certificate';
export const waypointConfigPath = '/v1/config';

function first(labels: Labels | undefined, keys: string[]): string | undefined {
  for (const k of keys) {
    const v = labels?.[k];
    if (v !== undefined) return v;
  }
  return undefined;
}

/**
 * The waypoint a Service (or a Pod) uses, as `{ namespace, name }` of its Gateway: its own label first
 * (`none` there means none, whatever the namespace says), then its namespace's, as Istio decides it.
 * Whether that waypoint takes the traffic is its Gateway's `waypoint-for` (waypointTakes).
 */
export function useWaypointOf(serviceNamespace: string, serviceLabels: Labels | undefined, namespaceLabels: Labels | undefined): { namespace: string; name: string } | undefined {
  for (const labels of [serviceLabels, namespaceLabels]) {
    const name = first(labels, useWaypointLabels);
    if (name === undefined) continue;
    if (name === 'none' || name === '') return undefined;
    return { namespace: first(labels, useWaypointNamespaceLabels) ?? serviceNamespace, name };
  }
  return undefined;
}

/** The Gateway's `waypoint-for` (ambit's label first, then Istio's); `service` when unset. Apply-time validation refuses other values. */
export function waypointFor(gatewayLabels: Labels | undefined): WaypointFor {
  const v = first(gatewayLabels, waypointForLabels);
  return v === 'workload' || v === 'all' || v === 'none' ? v : 'service';
}

/**
 * Whether a waypoint of this `waypoint-for` takes traffic addressed to a Service (its VIP) or to a
 * pod (its own address), as Istio's: `service` the first, `workload` the second, `all` both, `none`
 * neither.
 */
export function waypointTakes(handles: WaypointFor, addressed: 'service' | 'workload'): boolean {
  return handles === 'all' || handles === addressed;
}
