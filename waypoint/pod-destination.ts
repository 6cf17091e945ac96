// Traffic addressed to a pod rather than to a Service, which a waypoint takes for the pods bound to it
// when its `istio.io/waypoint-for` is workload or all: the pod stands as a destination with itself as
// the one endpoint, so the forwarder, its upstream policy and the telemetry run as for a Service.
// What belongs to Services does not apply to it, as in Istio: no route, DestinationRule,
// Service-attached policy or rate limit, and no destination_service; what is attached to the
// waypoint's Gateway (or its class) does.

import type { ServiceEntry, WorkloadEntry } from '../shared/protocol/config.js';

const pods = new WeakMap<ServiceEntry, WorkloadEntry>();

/** The destination standing for pod `w` addressed on `port`: its own address, one endpoint, itself. */
export function podDestination(w: WorkloadEntry, port: number): ServiceEntry {
  const d: ServiceEntry = { name: w.name, namespace: w.namespace, clusterIP: w.ip, ports: [{ port, targetPort: port }], endpoints: [{ ip: w.ip, node: w.node, ports: { [String(port)]: port } }] };
  pods.set(d, w);
  return d;
}

/** The pod a destination stands for, when the client addressed a pod; undefined for a Service. */
export function addressedPod(s: ServiceEntry): WorkloadEntry | undefined {
  return pods.get(s);
}
