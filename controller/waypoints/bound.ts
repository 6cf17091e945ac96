// Which waypoint serves a Service, as the cluster is now: the Service's (or its namespace's)
// use-waypoint label, naming a Gateway of the waypoint class that exists and takes Service traffic
// (waypoint-for service or all). Route status and policy status both say whether what they attach
// to is served, and why not.

import type { Resource } from '../../shared/resources/types.js';
import { useWaypointOf, waypointFor, waypointGatewayClass, waypointTakes } from '../../shared/waypoint/names.js';
import type { ClusterReader } from '../kube/view.js';

export type Served = { waypoint: string } | { reason: 'NoService' | 'NoWaypoint'; message: string };

export function isWaypointGateway(g: Resource | undefined): boolean {
  return (g?.spec as { gatewayClassName?: string } | undefined)?.gatewayClassName === waypointGatewayClass;
}

/** `namespace/name` of the waypoint serving Service `ns/name`, or why none does, in words for a status message. */
export function servingWaypoint(store: ClusterReader, ns: string, name: string): Served {
  const service = store.get('Service', ns, name);
  if (!service) return { reason: 'NoService', message: `Service ${ns}/${name} does not exist` };
  const use = useWaypointOf(ns, service.metadata.labels, store.get('Namespace', '', ns)?.metadata.labels);
  if (!use) return { reason: 'NoWaypoint', message: `Service ${ns}/${name} uses no waypoint: label it or its namespace istio.io/use-waypoint=<waypoint> (ambit waypoint apply -n ${ns} --enroll-namespace)` };
  const gateway = store.get('Gateway', use.namespace, use.name);
  if (!isWaypointGateway(gateway)) return { reason: 'NoWaypoint', message: `Service ${ns}/${name} names waypoint ${use.namespace}/${use.name}, which does not exist` };
  const handles = waypointFor(gateway!.metadata.labels);
  if (!waypointTakes(handles, 'service')) return { reason: 'NoWaypoint', message: `Service ${ns}/${name} names waypoint ${use.namespace}/${use.name}, which takes no Service traffic (istio.io/waypoint-for: ${handles}; ambit waypoint apply -n ${use.namespace} --for service or all)` };
  return { waypoint: `${use.namespace}/${use.name}` };
}
