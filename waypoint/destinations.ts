// Where a request goes once its backend Service is known: that Service's traffic policy
// (upstream/policy.ts, from the DestinationRule in force) picks an endpoint among the ready ones
// with its load balancer, skipping ejected ones, and keeps its circuit breaker and outlier detector.
// Endpoints are handed to a policy whenever the configuration changes; outliers return on a sweep
// each second. Fault injection's FaultInjection resources are compiled here too, per configuration.

import type { Logger } from '../shared/log.js';
import type { Resource } from '../shared/resources/types.js';
import type { ServiceEntry, WorkloadEntry } from '../shared/protocol/config.js';
import type { SharedCounters } from './upstream/shared-counters.js';
import { UpstreamPolicies, type ServicePolicy } from './upstream/policy.js';
import type { Pick, PickRequest } from './upstream/balancer.js';
import { Fault, type FaultInjectionSpec } from './upstream/fault.js';
import type { Endpoint } from './proxy/upstream.js';
import type { WaypointState } from './state.js';
import { addressedPod } from './pod-destination.js';

export interface Chosen {
  endpoint: Endpoint;
  pick: Pick;
}

export class Destinations {
  private readonly policies: UpstreamPolicies;
  /** The config version each policy last had its endpoints set at. */
  private readonly fed = new WeakMap<ServicePolicy, number>();
  private faults = new Map<string, Fault>();
  /** Pods addressed directly, by `ip:port`; dropped with each configuration, as pods come and go. */
  private podPolicies = new Map<string, ServicePolicy>();
  /** Each Service entry's policies by port, found once per configuration instead of by name per request. */
  private byService = new WeakMap<ServiceEntry, Map<number, ServicePolicy>>();
  /** The Endpoint of each of the balancers' endpoints (which outlive configurations), with the version it was made at. */
  private readonly endpoints = new WeakMap<Pick['endpoint'], { version: number; service: ServiceEntry; endpoint: Endpoint }>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly state: WaypointState,
    o: { rootNamespace: string; waypointNamespace: string; log: Logger; random?: () => number; shared?: SharedCounters },
  ) {
    this.policies = new UpstreamPolicies({
      ...(o.shared ? { shared: o.shared } : {}),
      rootNamespace: o.rootNamespace,
      waypointNamespace: o.waypointNamespace,
      // The same in every thread (ejection times are shared with workers).
      clock: () => performance.timeOrigin + performance.now(),
      random: o.random ?? Math.random,
      onOutlierEvent: (service, e) => o.log.info({ service, ...e }, `outlier detection: ${e.type}`),
    });
    const load = () => {
      const rules = state.traffic.filter((t) => t.kind === 'DestinationRule').map((t) => ({ apiVersion: 'networking.istio.io/v1', kind: t.kind, metadata: { name: t.name, namespace: t.namespace, ...(t.creationTimestamp ? { creationTimestamp: t.creationTimestamp } : {}) }, spec: t.spec }) as Resource);
      for (const p of this.policies.setDestinationRules(rules)) o.log.warn({ err: p.message }, 'a DestinationRule is not in force');
      const faults = new Map<string, Fault>();
      for (const t of state.traffic) {
        if (t.kind !== 'FaultInjection') continue;
        try {
          faults.set(`${t.namespace}/${t.name}`, new Fault(t.spec as FaultInjectionSpec, o.random ?? Math.random));
        } catch (err) {
          o.log.warn({ fault: `${t.namespace}/${t.name}`, err: (err as Error).message }, 'a FaultInjection is not in force');
        }
      }
      this.faults = faults;
      this.podPolicies = new Map();
      this.byService = new WeakMap();
    };
    load();
    state.on('changed', load);
    this.sweeper = setInterval(() => this.policies.sweepIfDue(), 1000).unref();
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  /**
   * The policy of Service `s` on `port`, its endpoints up to date with the configuration. A pod
   * addressed directly gets the default policy (no DestinationRule names a pod), one per pod and port.
   */
  policy(s: ServiceEntry, port: number): ServicePolicy {
    let ports = this.byService.get(s);
    const held = ports?.get(port);
    if (held) return held;
    const p = addressedPod(s) ? this.podPolicy(s, port) : this.policies.policyFor(s.namespace, s.name, port);
    if (this.fed.get(p) !== this.state.version) {
      const key = String(port);
      p.setEndpoints(s.endpoints.filter((e) => e.ports[key] !== undefined).map((e) => ({ ip: e.ip, node: e.node, port: e.ports[key]! })));
      this.fed.set(p, this.state.version);
    }
    if (!ports) this.byService.set(s, (ports = new Map()));
    ports.set(port, p);
    return p;
  }

  private podPolicy(s: ServiceEntry, port: number): ServicePolicy {
    const key = `${s.clusterIP}:${port}`;
    let p = this.podPolicies.get(key);
    if (!p) this.podPolicies.set(key, (p = this.policies.defaultPolicy(`${s.namespace}/${s.name}`)));
    return p;
  }

  /** An endpoint of `s` on `port` for this request, avoiding `avoid` (`ip:port`, the last try's) where the policy says so. */
  choose(s: ServiceEntry, port: number, request: PickRequest, avoid?: string): Chosen | undefined {
    const pick = this.policy(s, port).pick(request, avoid);
    if (!pick) return undefined;
    return { pick, endpoint: this.endpointOf(pick, s) };
  }

  /** The endpoint a pick names, made once per configuration and Service: its pod may change with either. */
  private endpointOf(pick: Pick, s: ServiceEntry): Endpoint {
    const e = pick.endpoint;
    const held = this.endpoints.get(e);
    if (held && held.version === this.state.version && held.service === s) return held.endpoint;
    const workload: WorkloadEntry | undefined = this.state.workloadAt(e.ip);
    const endpoint: Endpoint = { ip: e.ip, port: e.port, address: pick.key, node: e.node, service: s, ...(workload ? { workload } : {}) };
    this.endpoints.set(e, { version: this.state.version, service: s, endpoint });
    return endpoint;
  }

  /** The FaultInjection `namespace/name`, as compiled for this configuration. */
  fault(namespace: string, name: string): Fault | undefined {
    return this.faults.get(`${namespace}/${name}`);
  }
}
