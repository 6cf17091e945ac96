// The agent's view of the cluster, as last pushed by the controller: workloads, services,
// namespaces and policies, at a version. A push is checked whole before any of it is applied, so a
// rejected push leaves the previous version in place. Emits what changed for the query API, and
// counts revisions of the policies and trust bundles so their readers rebuild only when they change.

import { EventEmitter } from 'node:events';
import { enrollLabels, isEnrolled } from '../../shared/enrollment.js';
import { Pacer } from './pacer.js';
import { type ConfigEntry, type ConfigPush, decodeEntry, type EntryKind, type NamespaceEntry, type NodeEntry, type PolicyEntry, type ServiceEntry, type TrafficEntry, type TrustBundleEntry, type WorkloadEntry } from '../../shared/protocol/config.js';

export class ConfigRejected extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'ConfigRejected';
  }
}

export interface ConfigEvent {
  version: number;
  full: boolean;
  upserts: number;
  deletes: number;
}

export interface EnrollmentEvent {
  workload: string;
  enrolled: boolean;
}


/** The labels of a pod of another node that opts out, which is all its entry says of them. */
const optedOut = { [enrollLabels[0]!]: 'none' };

export class AgentState extends EventEmitter<{ config: [ConfigEvent]; enrollment: [EnrollmentEvent]; push: [ConfigPush] }> {
  version = 0;
  readonly workloads = new Map<string, WorkloadEntry>();
  readonly services = new Map<string, ServiceEntry>();
  readonly namespaces = new Map<string, NamespaceEntry>();
  readonly policies = new Map<string, PolicyEntry>();
  readonly trustBundles = new Map<string, TrustBundleEntry>();
  readonly nodes = new Map<string, NodeEntry>();
  /** Routes and destination rules, which only the node's waypoints read. */
  readonly traffic = new Map<string, TrafficEntry>();
  private enrolled = new Map<string, boolean>();
  /** Moves on whenever a push changes a policy (added, removed or different): the authorizer's cue. */
  policyRevision = 0;
  /** Moves on whenever a push changes a trust bundle. */
  trustBundleRevision = 0;

  constructor(readonly node: string) {
    super();
  }

  /** Applies a push, or throws ConfigRejected with the reason and changes nothing. */
  apply(push: ConfigPush): void {
    this.checkEnvelope(push);
    const entries: ConfigEntry[] = [];
    for (const w of push.upserts) entries.push(decoded(w));
    this.commit(push, entries);
  }

  /**
   * The same as `apply`, for a push of tens of thousands of entries: they are checked in slices
   * that give the event loop back between them, then applied at once (a full push of 12,000 entries
   * takes tens of milliseconds to check, which traffic would otherwise wait for).
   */
  async applyPaced(push: ConfigPush, pacer = new Pacer()): Promise<void> {
    this.checkEnvelope(push);
    const entries: ConfigEntry[] = [];
    for (let i = 0; i < push.upserts.length; i++) {
      entries.push(decoded(push.upserts[i]!));
      if ((i & 255) === 255 && pacer.due()) await pacer.pause();
    }
    // The version may have moved while this push waited (a caller applying another push directly).
    this.checkEnvelope(push);
    this.commit(push, entries);
  }

  private checkEnvelope(push: ConfigPush): void {
    if (!push.full && push.from !== this.version) throw new ConfigRejected(`delta from version ${push.from} does not apply to version ${this.version}`);
    if (!Number.isInteger(push.to) || push.to < (push.full ? 0 : this.version)) throw new ConfigRejected(`version ${push.to} goes backwards from ${this.version}`);
    if (!Array.isArray(push.upserts) || !Array.isArray(push.deletes)) throw new ConfigRejected('upserts and deletes must be lists');
    if (!push.deletes.every((k) => typeof k === 'string')) throw new ConfigRejected('deletes must be keys (strings)');
  }

  private commit(push: ConfigPush, entries: ConfigEntry[]): void {
    // Only the kinds a push touches are compared after it (a full push touches all of them).
    const touches = (kind: EntryKind) => push.full || entries.some((e) => e.kind === kind) || push.deletes.some((k) => k.startsWith(`${kind}/`));
    const policiesBefore = touches('policy') ? new Map(this.policies) : undefined;
    const bundlesBefore = touches('trustbundle') ? new Map(this.trustBundles) : undefined;
    if (push.full) for (const m of this.maps()) m.clear();
    for (const key of push.deletes) this.mapOf(key.split('/')[0] as EntryKind)?.delete(key);
    for (const e of entries) (this.mapOf(e.kind) as Map<string, unknown>).set(e.key, e.value);
    if (policiesBefore && !sameEntries(policiesBefore, this.policies)) this.policyRevision++;
    if (bundlesBefore && !sameEntries(bundlesBefore, this.trustBundles)) this.trustBundleRevision++;
    this.version = push.to;
    // The push as applied, for the worker threads' copies of this state (agent/workers/).
    this.emit('push', push);
    this.emit('config', { version: push.to, full: push.full, upserts: push.upserts.length, deletes: push.deletes.length });
    this.updateEnrollment();
  }

  /** Everything held now as one full push: what a copy of this state (a worker thread's) starts from. */
  snapshot(): ConfigPush {
    const upserts = this.maps().flatMap((m) => [...m].map(([key, value]) => ({ key, value: value as Record<string, unknown> })));
    return { type: 'config', full: true, from: 0, to: this.version, upserts, deletes: [] };
  }

  localWorkloads(): WorkloadEntry[] {
    return [...this.workloads.values()].filter((w) => w.node === this.node);
  }

  /** Whether a pod is in the mesh: its namespace is labelled ambient and it does not opt out. */
  isEnrolled(w: WorkloadEntry): boolean {
    return isEnrolled(this.namespaces.get(`namespace/${w.namespace}`)?.labels, w.labels ?? (w.optOut ? optedOut : undefined));
  }

  private updateEnrollment(): void {
    const next = new Map<string, boolean>();
    for (const w of this.localWorkloads()) next.set(`${w.namespace}/${w.name}`, this.isEnrolled(w));
    for (const [workload, enrolled] of next) if ((this.enrolled.get(workload) ?? false) !== enrolled) this.emit('enrollment', { workload, enrolled });
    for (const [workload, was] of this.enrolled) if (was && !next.has(workload)) this.emit('enrollment', { workload, enrolled: false });
    this.enrolled = next;
  }

  private maps(): Map<string, unknown>[] {
    return [this.workloads, this.services, this.namespaces, this.policies, this.trustBundles, this.nodes, this.traffic];
  }

  private mapOf(kind: EntryKind): Map<string, unknown> | undefined {
    switch (kind) {
      case 'workload':
        return this.workloads;
      case 'service':
        return this.services;
      case 'namespace':
        return this.namespaces;
      case 'policy':
        return this.policies;
      case 'trustbundle':
        return this.trustBundles;
      case 'node':
        return this.nodes;
      case 'traffic':
        return this.traffic;
      default:
        return undefined;
    }
  }
}

function decoded(w: ConfigPush['upserts'][number]): ConfigEntry {
  const e = decodeEntry(w);
  if (typeof e === 'string') throw new ConfigRejected(e);
  return e;
}

/** Whether two maps hold the same keys with equal values (as JSON would compare them). */
function sameEntries(a: Map<string, unknown>, b: Map<string, unknown>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (!b.has(k) || !sameJson(v, b.get(k))) return false;
  return true;
}

function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((v, i) => sameJson(v, bb[i]));
  }
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}
