// What each node's agent is sent, computed incrementally from store changes: every entry is built
// and serialised once, with the set of nodes that need it. Workloads, Services and Namespaces go to
// every node (any pod may connect to any of them); a security policy goes only to the nodes that
// run a pod it applies to (all nodes for a mesh-wide policy in the root namespace).
// A short history of changed keys per revision lets a node that is a few versions behind get a
// delta; one further behind gets a full push.

import { gzipSync } from 'node:zlib';
import type { ChangeEvent } from '../store/store.js';
import { type ConfigEntry, encodeEntry, serviceKey, type ServiceEntry, workloadKey, type WorkloadEntry } from '../../shared/protocol/config.js';
import { enrollLabels } from '../../shared/enrollment.js';
import { hasTargetRefs } from '../../shared/policy/http/attachment.js';
import { canonicalFields } from '../../shared/resources/canonical.js';
import { gatewayNameLabel, useWaypointOf, waypointFor, waypointGatewayClass, waypointTakes } from '../../shared/waypoint/names.js';
import { type Labels, type Pod, type Resource, selectorMatches, type Service } from '../../shared/resources/types.js';
import { podOwner } from '../../shared/resources/owners.js';

export const policyKinds = new Set(['AuthorizationPolicy', 'PeerAuthentication', 'RequestAuthentication']);
/** What waypoints route and limit by; sent to every node, whose agent hands it to the waypoints it hosts. */
export const trafficKinds = new Set(['HTTPRoute', 'GRPCRoute', 'DestinationRule', 'FaultInjection', 'LocalRateLimit']);

type Scope = 'all' | Set<string>;

/** An entry as it goes on the wire: only its serialised forms are kept. */
interface Computed {
  json: string;
  scope: Scope;
  /** A workload's own node gets a richer form (labels, uid, phase). */
  localNode?: string;
  localJson?: string;
}

export interface Delta {
  upserts: string[];
  deletes: string[];
}

const maxHistoryKeys = 200_000;

export class ShareBuilder {
  private readonly entries = new Map<string, Computed>();
  private readonly pods = new Map<string, Map<string, Pod>>();
  private readonly services = new Map<string, Map<string, Service>>();
  private readonly policies = new Map<string, Map<string, Resource>>();
  private readonly nodeIps = new Map<string, string>();
  /** DestinationRules by namespace, by name. */
  private readonly destinationRules = new Map<string, Map<string, Resource>>();
  /** Namespace labels (which waypoint a namespace's Services use), and waypoint Gateways by namespace, by name. */
  private readonly namespaceLabels = new Map<string, Labels>();
  private readonly waypoints = new Map<string, Map<string, Resource>>();
  private readonly history: { revision: number; keys: string[] }[] = [];
  private historyKeys = 0;
  private commonCache: { revision: number; buffer: Buffer; gzip: Buffer } | undefined;
  /** Keys of entries with a node-specific form, by node; keys of entries scoped to some nodes. */
  private readonly localKeys = new Map<string, Set<string>>();
  private readonly scopedKeys = new Set<string>();
  /** The oldest version a delta can start from. */
  private deltaFloor = 0;
  revision = 0;

  constructor(private readonly rootNamespace: string) {}

  /** Folds a store change in; returns the keys whose entry changed (or vanished). */
  apply(event: ChangeEvent): string[] {
    const changed = new Set<string>();
    const dirtyServices = new Set<string>();
    const dirtyPolicyNs = new Set<string>();
    for (const c of event.changes) {
      const r = c.resource;
      const ns = r.metadata.namespace ?? '';
      const gone = c.type === 'delete';
      switch (r.kind) {
        case 'Pod': {
          const old = this.pods.get(ns)?.get(r.metadata.name);
          setIn(this.pods, ns, r.metadata.name, gone ? undefined : (r as Pod));
          const key = workloadKey(ns, r.metadata.name);
          if (gone) this.remove(key, changed);
          else {
            const local = this.putWorkload(r as Pod, changed);
            // Where HBONE reaches the pod's node: sent once per node, when first seen or moved.
            const hostIP = (r as Pod).status.hostIP;
            if (hostIP && this.nodeIps.get(local.node) !== hostIP) {
              this.nodeIps.set(local.node, hostIP);
              this.put(`node/${local.node}`, { kind: 'node', key: `node/${local.node}`, value: { name: local.node, ip: hostIP } }, 'all', changed);
            }
          }
          for (const s of this.services.get(ns)?.values() ?? []) {
            if (selectorMatches(s.spec?.selector, old?.metadata.labels) || selectorMatches(s.spec?.selector, r.metadata.labels)) dirtyServices.add(`${ns}/${s.metadata.name}`);
          }
          // A pod that arrives, leaves or changes labels can change where policies apply.
          dirtyPolicyNs.add(ns);
          dirtyPolicyNs.add(this.rootNamespace);
          break;
        }
        case 'Service':
          setIn(this.services, ns, r.metadata.name, gone ? undefined : (r as Service));
          dirtyServices.add(`${ns}/${r.metadata.name}`);
          break;
        case 'TrustBundle': {
          const key = `trustbundle/${r.metadata.name}`;
          if (gone) this.remove(key, changed);
          else this.put(key, { kind: 'trustbundle', key, value: { trustDomain: r.metadata.name, roots: (r.spec as { roots: string[] }).roots } }, 'all', changed);
          break;
        }
        case 'Namespace': {
          const key = `namespace/${r.metadata.name}`;
          if (gone) this.remove(key, changed);
          else this.put(key, { kind: 'namespace', key, value: { name: r.metadata.name, labels: r.metadata.labels ?? {} } }, 'all', changed);
          // Its use-waypoint label may have changed: its Services say which waypoint they use.
          if (gone) this.namespaceLabels.delete(r.metadata.name);
          else this.namespaceLabels.set(r.metadata.name, r.metadata.labels ?? {});
          for (const name of this.services.get(r.metadata.name)?.keys() ?? []) dirtyServices.add(`${r.metadata.name}/${name}`);
          // And its pods' (waypoint-for workload): put() sends only those whose entry changed.
          for (const p of this.pods.get(r.metadata.name)?.values() ?? []) this.putWorkload(p, changed);
          break;
        }
        case 'Gateway': {
          const waypoint = !gone && (r.spec as { gatewayClassName?: string } | undefined)?.gatewayClassName === waypointGatewayClass;
          const had = this.waypoints.get(ns)?.has(r.metadata.name);
          setIn(this.waypoints, ns, r.metadata.name, waypoint ? r : undefined);
          // Rare, and a namespace elsewhere may point at it: every Service is looked at again.
          if (waypoint || had) {
            for (const [sns, names] of this.services) for (const name of names.keys()) dirtyServices.add(`${sns}/${name}`);
            for (const pods of this.pods.values()) for (const p of pods.values()) this.putWorkload(p, changed);
          }
          break;
        }
        case 'DestinationRule': {
          const key = `traffic/DestinationRule/${ns}/${r.metadata.name}`;
          if (gone) this.remove(key, changed);
          else this.put(key, { kind: 'traffic', key, value: { kind: r.kind, name: r.metadata.name, namespace: ns, spec: r.spec } }, 'all', changed);
          const old = this.destinationRules.get(ns)?.get(r.metadata.name);
          setIn(this.destinationRules, ns, r.metadata.name, gone ? undefined : r);
          // The Services its host names, before and after.
          for (const dr of [old, gone ? undefined : r]) {
            const target = dr && hostService(dr, ns);
            if (target) dirtyServices.add(target);
          }
          break;
        }
        default:
          if (trafficKinds.has(r.kind)) {
            const key = `traffic/${r.kind}/${ns}/${r.metadata.name}`;
            if (gone) this.remove(key, changed);
            else {
              const { name, creationTimestamp, generation } = r.metadata;
              this.put(key, { kind: 'traffic', key, value: { kind: r.kind, name, namespace: ns, ...(creationTimestamp ? { creationTimestamp } : {}), ...(generation ? { generation } : {}), spec: r.spec } }, 'all', changed);
            }
          }
          if (policyKinds.has(r.kind)) {
            setIn(this.policies, ns, `${r.kind}/${r.metadata.name}`, gone ? undefined : r);
            if (gone) this.remove(`policy/${r.kind}/${ns}/${r.metadata.name}`, changed);
            dirtyPolicyNs.add(ns);
          }
      }
    }
    for (const id of dirtyServices) {
      const [ns, name] = id.split('/') as [string, string];
      const s = this.services.get(ns)?.get(name);
      const key = serviceKey(ns, name);
      if (!s) this.remove(key, changed);
      else this.put(key, { kind: 'service', key, value: this.serviceOf(s) }, 'all', changed);
    }
    for (const ns of dirtyPolicyNs) {
      for (const p of this.policies.get(ns)?.values() ?? []) {
        const key = `policy/${p.kind}/${ns}/${p.metadata.name}`;
        this.put(key, { kind: 'policy', key, value: { kind: p.kind, name: p.metadata.name, namespace: ns, spec: p.spec } }, this.policyScope(p), changed);
      }
    }
    this.revision = event.revision;
    const keys = [...changed];
    this.history.push({ revision: event.revision, keys });
    this.historyKeys += keys.length;
    while (this.history.length > 1 && this.historyKeys > maxHistoryKeys) {
      const dropped = this.history.shift()!;
      this.historyKeys -= dropped.keys.length;
      // Whoever is before the dropped revision can no longer get a delta.
      this.deltaFloor = dropped.revision;
    }
    return keys;
  }

  /**
   * Every entry a node needs, serialised, in two parts: what every node gets (built once per revision and
   * shared by all full pushes of it), then what only this node gets or gets in another form, which
   * comes later in the push and so replaces the common form of the same key.
   */
  fullPush(node: string): { common: Buffer; commonGzip: Buffer; own: string[] } {
    if (!this.commonCache || this.commonCache.revision !== this.revision) {
      const parts: string[] = [];
      for (const c of this.entries.values()) if (c.scope === 'all') parts.push(c.json);
      const buffer = Buffer.from(parts.join(','));
      this.commonCache = { revision: this.revision, buffer, gzip: gzipSync(buffer) };
    }
    const own: string[] = [];
    for (const key of this.localKeys.get(node) ?? []) own.push(this.entries.get(key)!.localJson!);
    for (const key of this.scopedKeys) {
      const c = this.entries.get(key)!;
      if (c.scope !== 'all' && c.scope.has(node)) own.push(c.json);
    }
    return { common: this.commonCache.buffer, commonGzip: this.commonCache.gzip, own };
  }

  /** What changed for `node` since `version`, or undefined when the history no longer reaches back to it. */
  deltaSince(node: string, version: number): Delta | undefined {
    if (version < this.deltaFloor || version > this.revision) return undefined;
    const keys = new Set<string>();
    for (const h of this.history) if (h.revision > version) for (const k of h.keys) keys.add(k);
    const delta: Delta = { upserts: [], deletes: [] };
    for (const k of keys) {
      const c = this.entries.get(k);
      if (c && inScope(c.scope, node)) delta.upserts.push(c.localNode === node ? c.localJson! : c.json);
      else delta.deletes.push(k);
    }
    return delta;
  }

  /** Builds everything from the store's current content at `revision`; deltas start from there. */
  load(resources: Resource[], revision: number): void {
    this.apply({ revision, changes: resources.map((resource) => ({ type: 'upsert', resource })) });
    this.history.length = 0;
    this.historyKeys = 0;
    this.deltaFloor = revision;
  }

  private put(key: string, entry: ConfigEntry, scope: Scope, changed: Set<string>, local?: { node: string; entry: ConfigEntry }): void {
    const json = JSON.stringify(encodeEntry(entry));
    const localJson = local ? JSON.stringify(encodeEntry(local.entry)) : undefined;
    const old = this.entries.get(key);
    if (old && old.json === json && old.localJson === localJson && old.localNode === local?.node && sameScope(old.scope, scope)) return;
    this.unindex(key);
    this.entries.set(key, { json, scope, ...(local ? { localNode: local.node, localJson } : {}) });
    if (local) {
      let keys = this.localKeys.get(local.node);
      if (!keys) this.localKeys.set(local.node, (keys = new Set()));
      keys.add(key);
    }
    if (scope !== 'all') this.scopedKeys.add(key);
    changed.add(key);
  }

  private remove(key: string, changed: Set<string>): void {
    this.unindex(key);
    if (this.entries.delete(key)) changed.add(key);
  }

  private unindex(key: string): void {
    const old = this.entries.get(key);
    if (old?.localNode) this.localKeys.get(old.localNode)?.delete(key);
    this.scopedKeys.delete(key);
  }

  /** A pod's entry: the full form for its own node, the remote form for the others. */
  private putWorkload(p: Pod, changed: Set<string>): WorkloadEntry {
    const key = workloadKey(p.metadata.namespace!, p.metadata.name);
    const waypoint = this.workloadWaypointOf(p);
    const local = { ...workloadOf(p), ...(waypoint ? { waypoint } : {}) };
    const { labels, uid, phase, ...remote } = local;
    this.put(key, { kind: 'workload', key, value: remote }, 'all', changed, { node: local.node, entry: { kind: 'workload', key, value: local } });
    return local;
  }

  /**
   * The waypoint a pod's pod-addressed traffic goes through: the one its own or its namespace's
   * use-waypoint label names, if that Gateway exists, is of the waypoint class and takes workload
   * traffic (`waypoint-for` workload or all, as Istio's). A waypoint's own pods never use one.
   */
  private workloadWaypointOf(p: Pod): { namespace: string; name: string } | undefined {
    if (p.metadata.labels?.[gatewayNameLabel]) return undefined;
    const ns = p.metadata.namespace!;
    const use = useWaypointOf(ns, p.metadata.labels, this.namespaceLabels.get(ns));
    const gateway = use && this.waypoints.get(use.namespace)?.get(use.name);
    return gateway && waypointTakes(waypointFor(gateway.metadata.labels), 'workload') ? use : undefined;
  }

  private serviceOf(s: Service): ServiceEntry {
    const spec = s.spec!;
    const ns = s.metadata.namespace!;
    const endpoints: ServiceEntry['endpoints'] = [];
    for (const p of this.pods.get(ns)?.values() ?? []) {
      if (p.status.phase !== 'Running' || !selectorMatches(spec.selector, p.metadata.labels)) continue;
      const ports: Record<string, number> = {};
      for (const sp of spec.ports) {
        const target = sp.targetPort ?? sp.port;
        const resolved = typeof target === 'number' ? target : namedPort(p, target);
        if (resolved !== undefined) ports[String(sp.port)] = resolved;
      }
      endpoints.push({ ip: p.status.podIP, node: p.spec.nodeName, ports });
    }
    endpoints.sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0));
    const lb = this.loadBalancerOf(ns, s.metadata.name);
    const waypoint = this.waypointOf(s);
    return {
      name: s.metadata.name,
      namespace: ns,
      clusterIP: spec.clusterIP ?? '',
      ports: spec.ports.map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.port, targetPort: p.targetPort ?? p.port })),
      endpoints,
      ...(lb ? { loadBalancer: lb } : {}),
      ...(spec.trafficDistribution === 'PreferClose' ? { preferClose: true as const } : {}),
      ...(waypoint ? { waypoint } : {}),
    };
  }

  /**
   * The waypoint a Service's traffic goes through: the one its own or its namespace's use-waypoint
   * label names, if that Gateway exists, is of the waypoint class and handles Service traffic. A
   * waypoint's own Service never uses one.
   */
  private waypointOf(s: Service): { namespace: string; name: string } | undefined {
    if (s.metadata.labels?.[gatewayNameLabel]) return undefined;
    const ns = s.metadata.namespace!;
    const use = useWaypointOf(ns, s.metadata.labels, this.namespaceLabels.get(ns));
    if (!use) return undefined;
    const gateway = this.waypoints.get(use.namespace)?.get(use.name);
    if (!gateway) return undefined;
    return waypointTakes(waypointFor(gateway.metadata.labels), 'service') ? use : undefined;
  }

  /**
   * The load balancer a DestinationRule sets for a Service: one in the Service's namespace first,
   * then one in the root namespace (Istio's lookup order, without exportTo); by name when several.
   */
  private loadBalancerOf(ns: string, name: string): ServiceEntry['loadBalancer'] {
    for (const where of [ns, this.rootNamespace]) {
      const rules = [...(this.destinationRules.get(where)?.values() ?? [])].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
      for (const dr of rules) {
        if (hostService(dr, where) !== `${ns}/${name}`) continue;
        const simple = (dr.spec as { trafficPolicy?: { loadBalancer?: { simple?: ServiceEntry['loadBalancer'] } } }).trafficPolicy?.loadBalancer?.simple;
        if (simple) return simple;
      }
    }
    return undefined;
  }

  /**
   * Istio's scoping: a policy applies to the workloads of its namespace that its selector matches
   * (all of them without a selector); in the root namespace, to matching workloads of every namespace.
   * A policy attached to a waypoint goes to every node.
   */
  private policyScope(p: Resource): Scope {
    // Attached with targetRefs: a waypoint enforces it, and waypoints take their policies from the
    // agent of their node, as they take routes: every node, like the traffic kinds.
    if (hasTargetRefs(p.spec)) return 'all';
    const labels = (p.spec as { selector?: { matchLabels?: Labels } } | undefined)?.selector?.matchLabels;
    // Istio: an empty selector selects every workload, like no selector.
    const selector = labels && Object.keys(labels).length > 0 ? labels : undefined;
    const ns = p.metadata.namespace!;
    const root = ns === this.rootNamespace;
    if (root && !selector) return 'all';
    const nodes = new Set<string>();
    const scan = (pods: Map<string, Pod> | undefined) => {
      for (const pod of pods?.values() ?? []) if (!selector || selectorMatches(selector, pod.metadata.labels)) nodes.add(pod.spec.nodeName);
    };
    if (root) for (const pods of this.pods.values()) scan(pods);
    else scan(this.pods.get(ns));
    return nodes;
  }
}

function workloadOf(p: Pod): WorkloadEntry {
  const owner = podOwner(p);
  return {
    uid: p.metadata.uid ?? `${p.metadata.namespace}/${p.metadata.name}`,
    name: p.metadata.name,
    namespace: p.metadata.namespace!,
    ip: p.status.podIP,
    node: p.spec.nodeName,
    serviceAccount: p.spec.serviceAccountName ?? 'default',
    labels: p.metadata.labels ?? {},
    owner,
    phase: p.status.phase,
    ...(enrollLabels.some((l) => p.metadata.labels?.[l] === 'none') ? { optOut: true as const } : {}),
    // Kept in the form other nodes get (labels are not): their agents label this pod's connections too.
    ...canonicalFields(p.metadata.labels, owner, p.metadata.name),
  };
}

function namedPort(p: Pod, name: string): number | undefined {
  for (const c of p.spec.containers) for (const port of c.ports ?? []) if (port.name === name) return port.containerPort;
  return undefined;
}

function setIn<T>(m: Map<string, Map<string, T>>, ns: string, name: string, value: T | undefined): void {
  let inner = m.get(ns);
  if (!inner) m.set(ns, (inner = new Map()));
  if (value === undefined) inner.delete(name);
  else inner.set(name, value);
}

function inScope(scope: Scope, node: string): boolean {
  return scope === 'all' || scope.has(node);
}

function sameScope(a: Scope, b: Scope): boolean {
  if (a === 'all' || b === 'all') return a === b;
  if (a.size !== b.size) return false;
  for (const n of a) if (!b.has(n)) return false;
  return true;
}

/**
 * The Service a DestinationRule's host names, as `namespace/name`: `web` (the rule's namespace),
 * `web.shop`, `web.shop.svc` or `web.shop.svc.cluster.local`. Wildcards and external hosts name none here.
 */
function hostService(dr: Resource, ns: string): string | undefined {
  const host = (dr.spec as { host?: string } | undefined)?.host ?? '';
  const parts = host.split('.');
  if (host.includes('*')) return undefined;
  if (parts.length === 1) return `${ns}/${parts[0]}`;
  if (parts.length === 2 || (parts[2] === 'svc' && (parts.length === 3 || parts.slice(3).join('.') === 'cluster.local'))) return `${parts[1]}/${parts[0]}`;
  return undefined;
}
