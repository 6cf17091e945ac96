// The agent's view of the cluster, as last pushed by the controller: workloads, services,
// namespaces and policies, at a version. A push is checked whole before any of it is applied, so a
// rejected push leaves the previous version in place. Emits what changed for the query API.

import { EventEmitter } from 'node:events';
import { enrollLabels, isEnrolled } from '../../shared/enrollment.js';
import { type ConfigEntry, type ConfigPush, decodeEntry, type EntryKind, type NamespaceEntry, type NodeEntry, type PolicyEntry, type ServiceEntry, type TrustBundleEntry, type WorkloadEntry } from '../../shared/protocol/config.js';

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

export class AgentState extends EventEmitter<{ config: [ConfigEvent]; enrollment: [EnrollmentEvent] }> {
  version = 0;
  readonly workloads = new Map<string, WorkloadEntry>();
  readonly services = new Map<string, ServiceEntry>();
  readonly namespaces = new Map<string, NamespaceEntry>();
  readonly policies = new Map<string, PolicyEntry>();
  readonly trustBundles = new Map<string, TrustBundleEntry>();
  readonly nodes = new Map<string, NodeEntry>();
  private enrolled = new Map<string, boolean>();

  constructor(readonly node: string) {
    super();
  }

  /** Applies a push, or throws ConfigRejected with the reason and changes nothing. */
  apply(push: ConfigPush): void {
    if (!push.full && push.from !== this.version) throw new ConfigRejected(`delta from version ${push.from} does not apply to version ${this.version}`);
    if (!Number.isInteger(push.to) || push.to < (push.full ? 0 : this.version)) throw new ConfigRejected(`version ${push.to} goes backwards from ${this.version}`);
    if (!Array.isArray(push.upserts) || !Array.isArray(push.deletes)) throw new ConfigRejected('upserts and deletes must be lists');
    if (!push.deletes.every((k) => typeof k === 'string')) throw new ConfigRejected('deletes must be keys (strings)');
    const entries: ConfigEntry[] = [];
    for (const w of push.upserts) {
      const e = decodeEntry(w);
      if (typeof e === 'string') throw new ConfigRejected(e);
      entries.push(e);
    }
    if (push.full) for (const m of this.maps()) m.clear();
    for (const key of push.deletes) this.mapOf(key.split('/')[0] as EntryKind)?.delete(key);
    for (const e of entries) (this.mapOf(e.kind) as Map<string, unknown>).set(e.key, e.value);
    this.version = push.to;
    this.emit('config', { version: push.to, full: push.full, upserts: push.upserts.length, deletes: push.deletes.length });
    this.updateEnrollment();
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
    return [this.workloads, this.services, this.namespaces, this.policies, this.trustBundles, this.nodes];
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
      default:
        return undefined;
    }
  }
}
