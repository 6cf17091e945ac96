// The status of policies: who enforces each (node proxies or waypoints) and what a node proxy cannot
// enforce of it, from the same review `ambit apply` runs; and for policies attached to waypoints
// (AuthorizationPolicy and RequestAuthentication with targetRefs, LocalRateLimit) Istio's
// `WaypointAccepted` condition, True with "bound to <namespace>/<waypoint>" when every target is
// served by a waypoint, False with the targets that are not, so `kubectl get -o yaml` tells whether
// the policy is in force. Followed like route status.

import type { Logger } from '../../shared/log.js';
import { readAttachment } from '../../shared/policy/http/attachment.js';
import type { Resource } from '../../shared/resources/types.js';
import type { ClusterView, ControllerWriter } from '../kube/view.js';
import { isWaypointGateway, servingWaypoint } from './bound.js';
import { reviewPolicy } from '../resources/policy-review.js';
import { followChanges } from './reconcile.js';

export const waypointAcceptedCondition = 'WaypointAccepted';
/** Policies a waypoint enforces when attached to it: WaypointAccepted. */
const waypointKinds = ['AuthorizationPolicy', 'RequestAuthentication', 'LocalRateLimit'];
/** Every policy whose status says who enforces it. */
const policyKinds = [...waypointKinds, 'PeerAuthentication'];

const same = (a: Condition | undefined, b: Condition) => a !== undefined && a.status === b.status && a.reason === b.reason && a.message === b.message && a.observedGeneration === b.observedGeneration;

interface Condition {
  type: string;
  status: 'True' | 'False';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime?: string;
}

export class PolicyStatusWriter {
  private stopFollowing: (() => void) | undefined;

  constructor(
    private readonly store: ClusterView,
    private readonly writer: ControllerWriter,
    private readonly log: Logger,
    private readonly rootNamespace: string,
  ) {}

  start(): void {
    const concerns = (r: Resource) => policyKinds.includes(r.kind) || r.kind === 'Service' || r.kind === 'Namespace' || r.kind === 'Gateway' || r.kind === 'HTTPRoute' || r.kind === 'GRPCRoute';
    this.stopFollowing = followChanges(this.store, concerns, () => this.write(), this.log, 'policy status');
  }

  stop(): void {
    this.stopFollowing?.();
  }

  private async write(): Promise<void> {
    const updates: Resource[] = [];
    for (const kind of policyKinds) {
      for (const r of this.store.list(kind)) {
        const status = (r.status ?? {}) as { enforcedBy?: string; warnings?: string[]; conditions?: Condition[] };
        const { enforcedBy, warnings, conditions: had, ...rest } = status;
        // Who enforces it, and what a node proxy cannot: the same review `ambit apply` and the
        // admission webhook run (a write through the Kubernetes API arrives without it).
        const review = reviewPolicy(r, this.rootNamespace)?.status ?? {};
        const others = (had ?? []).filter((x) => x.type !== waypointAcceptedCondition);
        const was = had?.find((x) => x.type === waypointAcceptedCondition);
        const c = waypointKinds.includes(kind) ? this.condition(r) : undefined;
        let conditions = others;
        if (c && same(was, c)) conditions = [...others, was!];
        else if (c) {
          c.lastTransitionTime = was?.status === c.status && was.lastTransitionTime ? was.lastTransitionTime : new Date().toISOString();
          conditions = [...others, c];
        }
        const next = { ...rest, ...review, ...(conditions.length ? { conditions } : {}) };
        if (JSON.stringify(next) !== JSON.stringify(r.status ?? {})) updates.push({ ...r, status: next });
      }
    }
    for (const u of updates) await this.writer.status(u, u.status);
  }

  /** WaypointAccepted for a policy attached with targetRefs; undefined for a selector policy. */
  private condition(r: Resource): Condition | undefined {
    const ns = r.metadata.namespace!;
    const { attachment } = readAttachment(r.spec, ns, this.rootNamespace, r.kind === 'LocalRateLimit');
    if (!attachment) return undefined;
    const bound = new Set<string>();
    const unbound: string[] = [];
    if (attachment.everyWaypoint) bound.add('every waypoint');
    for (const g of attachment.gateways) {
      const [gns, gname] = g.split('/') as [string, string];
      if (isWaypointGateway(this.store.get('Gateway', gns, gname))) bound.add(g);
      else unbound.push(`Gateway ${g} is not a waypoint that exists`);
    }
    for (const s of attachment.services) {
      const [sns, sname] = s.split('/') as [string, string];
      const served = servingWaypoint(this.store, sns, sname);
      if ('waypoint' in served) bound.add(served.waypoint);
      else unbound.push(served.message);
    }
    for (const route of attachment.routes) {
      const [rns, rname] = route.split('/') as [string, string];
      const found = this.store.get('HTTPRoute', rns, rname) ?? this.store.get('GRPCRoute', rns, rname);
      if (!found) {
        unbound.push(`route ${route} does not exist`);
        continue;
      }
      const parents = ((found.spec as { parentRefs?: { kind?: string; name: string; namespace?: string }[] }).parentRefs ?? []).filter((p) => p.kind === 'Service');
      const waypoints = parents.map((p) => servingWaypoint(this.store, p.namespace ?? rns, p.name)).filter((x): x is { waypoint: string } => 'waypoint' in x);
      if (waypoints.length === 0) unbound.push(`route ${route} is on no Service a waypoint serves`);
      for (const w of waypoints) bound.add(w.waypoint);
    }
    const gen = r.metadata.generation !== undefined ? { observedGeneration: r.metadata.generation } : {};
    if (unbound.length === 0) return { type: waypointAcceptedCondition, status: 'True', reason: 'Accepted', message: `bound to ${[...bound].join(', ')}`, ...gen };
    const message = `${bound.size ? `bound to ${[...bound].join(', ')}; ` : ''}not in force for the rest: ${unbound.join('; ')}`;
    return { type: waypointAcceptedCondition, status: 'False', reason: 'TargetNotFound', message, ...gen };
  }
}
