// The EndpointSlice controller of the local cluster, as kube-controller-manager's: every Service with
// a selector has discovery.k8s.io/v1 EndpointSlices `<service>-<suffix>` listing the Running pods it
// selects, owned by the Service (so the garbage collector takes them with it). Pure planning: the
// runtime (cluster/runtime.ts) commits the plan. Traffic does not read them: kube-proxy/services.ts
// and the mesh work from Pods and Services, as before.

import { randomInt } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { controllerOf, ownerReferenceTo } from '../../shared/resources/owners.js';
import { type EndpointSlice, type EndpointSliceEndpoint, type EndpointSlicePort, type Pod, resolveTargetPort, type ResourceRef, selectorMatches, type Service } from '../../shared/resources/types.js';

/** The label naming a slice's Service, which clients select slices by (`-l kubernetes.io/service-name=web`). */
export const serviceNameLabel = 'kubernetes.io/service-name';
/** Which controller manages a slice; Kubernetes' controller touches only the slices it labelled. */
export const managedByLabel = 'endpointslice.kubernetes.io/managed-by';
export const managedBy = 'endpointslice-controller.k8s.io';

export interface EndpointSlicePlan {
  /** Slices to create (no uid yet) or rewrite. */
  upserts: EndpointSlice[];
  /** Managed slices no longer wanted. */
  deletes: ResourceRef[];
}

/**
 * What the Services want of the EndpointSlices. As Kubernetes' reconciler does, pods are grouped by
 * their resolved ports (a named targetPort may be a different number, or absent, on each pod), one
 * slice per group; a Service selecting no pod keeps one placeholder slice with no endpoints and no
 * ports. An existing slice is reused (its name kept) for the group whose ports it already has, and
 * rewritten only when what it lists changed, so that a quiet cluster commits nothing.
 * Services without a selector are left alone: their slices are the user's, as in Kubernetes.
 */
export function planEndpointSlices(services: Service[], pods: Pod[], slices: EndpointSlice[], suffix: () => string = randomSuffix): EndpointSlicePlan {
  const plan: EndpointSlicePlan = { upserts: [], deletes: [] };
  const byService = new Map<string, EndpointSlice[]>();
  for (const s of slices) {
    if (s.metadata.labels?.[managedByLabel] !== managedBy) continue;
    const owner = controllerOf(s);
    if (owner?.kind !== 'Service') continue;
    const key = `${s.metadata.namespace}/${owner.uid}`;
    byService.set(key, [...(byService.get(key) ?? []), s]);
  }
  const taken = new Set(slices.map((s) => `${s.metadata.namespace}/${s.metadata.name}`));
  for (const svc of services) {
    const selector = svc.spec?.selector;
    if (!selector || Object.keys(selector).length === 0 || !svc.metadata.uid) continue;
    const existing = [...(byService.get(`${svc.metadata.namespace}/${svc.metadata.uid}`) ?? [])];
    const groups = groupByPorts(svc, pods);
    if (groups.size === 0) groups.set('[]', { ports: [], endpoints: [] });
    const leftover: { ports: EndpointSlicePort[]; endpoints: EndpointSliceEndpoint[] }[] = [];
    const wanted: { slice: EndpointSlice | undefined; ports: EndpointSlicePort[]; endpoints: EndpointSliceEndpoint[] }[] = [];
    for (const g of groups.values()) {
      const i = existing.findIndex((s) => isDeepStrictEqual(s.ports ?? [], g.ports));
      if (i < 0) leftover.push(g);
      else wanted.push({ slice: existing.splice(i, 1)[0], ...g });
    }
    // A group whose ports changed takes over a slice left without its group, as Kubernetes updates
    // a slice in place rather than replacing it.
    for (const g of leftover) wanted.push({ slice: existing.shift(), ...g });
    for (const w of wanted) {
      let name = w.slice?.metadata.name;
      while (!name || (!w.slice && taken.has(`${svc.metadata.namespace}/${name}`))) name = `${svc.metadata.name}-${suffix()}`;
      taken.add(`${svc.metadata.namespace}/${name}`);
      const next = sliceFor(svc, name, w.ports, w.endpoints, w.slice);
      if (!w.slice || differs(w.slice, next)) plan.upserts.push(next);
    }
    for (const s of existing) plan.deletes.push({ kind: 'EndpointSlice', namespace: s.metadata.namespace!, name: s.metadata.name });
  }
  return plan;
}

/** The Service's selected Running pods by the ports they resolve to, keyed by those ports' JSON. */
function groupByPorts(svc: Service, pods: Pod[]): Map<string, { ports: EndpointSlicePort[]; endpoints: EndpointSliceEndpoint[] }> {
  const groups = new Map<string, { ports: EndpointSlicePort[]; endpoints: EndpointSliceEndpoint[] }>();
  const members = pods
    .filter((p) => p.metadata.namespace === svc.metadata.namespace && p.status?.phase === 'Running' && p.status.podIP && selectorMatches(svc.spec!.selector, p.metadata.labels))
    .sort((a, b) => a.status.podIP.localeCompare(b.status.podIP, 'en', { numeric: true }));
  for (const p of members) {
    const ports: EndpointSlicePort[] = [];
    for (const sp of svc.spec!.ports) {
      const port = resolveTargetPort(sp.targetPort ?? sp.port, p);
      // A named port the pod does not declare leaves that port out for this pod, as FindPort's error does.
      if (port === undefined) continue;
      ports.push({ name: sp.name ?? '', port, protocol: sp.protocol ?? 'TCP', ...(sp.appProtocol ? { appProtocol: sp.appProtocol } : {}) });
    }
    const key = JSON.stringify(ports);
    if (!groups.has(key)) groups.set(key, { ports, endpoints: [] });
    groups.get(key)!.endpoints.push(endpointOf(p));
  }
  return groups;
}

/**
 * A pod as an endpoint. Ready and serving mean its containers all run (what `kubectl get pods`
 * counts as READY); the local cluster has no readiness probes nor graceful termination in the
 * store, so a listed pod is never terminating.
 */
function endpointOf(p: Pod): EndpointSliceEndpoint {
  const ready = (p.status.containerStatuses ?? []).every((c) => c.state === 'running');
  return {
    addresses: [p.status.podIP],
    conditions: { ready, serving: ready, terminating: false },
    ...(p.spec.nodeName ? { nodeName: p.spec.nodeName } : {}),
    targetRef: { kind: 'Pod', namespace: p.metadata.namespace!, name: p.metadata.name, uid: p.metadata.uid ?? '' },
  };
}

/**
 * The slice as the controller writes it: the Service's labels with the two the controller owns set
 * over them, and a controller reference to the Service. An existing slice keeps its metadata
 * otherwise (uid, creationTimestamp, what the store set).
 */
function sliceFor(svc: Service, name: string, ports: EndpointSlicePort[], endpoints: EndpointSliceEndpoint[], existing: EndpointSlice | undefined): EndpointSlice {
  const labels = { ...svc.metadata.labels, [serviceNameLabel]: svc.metadata.name, [managedByLabel]: managedBy };
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { ...existing?.metadata, name, namespace: svc.metadata.namespace!, labels, ownerReferences: [ownerReferenceTo(svc)] },
    addressType: 'IPv4',
    endpoints,
    ports,
  };
}

/** Compared by value, key order aside: the store need not keep the order a slice was written in. */
function differs(a: EndpointSlice, b: EndpointSlice): boolean {
  const view = (s: EndpointSlice) => [s.metadata.labels, s.metadata.ownerReferences, s.addressType, s.endpoints, s.ports];
  return !isDeepStrictEqual(view(a), view(b));
}

// Kubernetes' generateName suffix alphabet (no vowels, no look-alike digits).
const suffixAlphabet = 'bcdfghjklmnpqrstvwxz2456789';
function randomSuffix(): string {
  let s = '';
  for (let i = 0; i < 5; i++) s += suffixAlphabet[randomInt(suffixAlphabet.length)];
  return s;
}
