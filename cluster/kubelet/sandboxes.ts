// The kubelet's pod sandboxes: a pod's network namespace wired through its node's CNI chain
// (network.ts), retried with backoff when the chain fails, each failure reported as the kubelet
// reports it (a FailedCreatePodSandBox Event on the pod), and what a previous controller run left
// (sandboxes and cgroups of pods no longer in the store) removed. Pod status is the runtime's.

import { randomBytes } from 'node:crypto';
import type { Store } from '../../controller/store/store.js';
import { errorMessage } from '../../shared/errors.js';
import type { CoreEvent } from '../../shared/resources/events.js';
import type { Pod } from '../../shared/resources/types.js';
import type { Logger } from '../../shared/log.js';
import type { NodeLayout, Topology } from '../topology.js';
import { NodeNetwork, type PodSandbox, sandboxId } from './network.js';
import { nodePodCgroups, podUidOfCgroup, removeHosts, stopCgroup } from './pods.js';

export interface SandboxesOptions {
  store: Store;
  topology: Topology;
  stateDir: string;
  log: Logger;
  /** How long a stray pod's processes get after SIGTERM. */
  graceMs: number;
}

/** The kubelet's backoff between sandbox attempts of one pod: 1 s doubling up to 30 s. */
const firstRetryMs = 1000;
const maxRetryMs = 30_000;

export class PodSandboxes {
  private readonly networks = new Map<string, NodeNetwork>();
  private readonly retry = new Map<string, { at: number; delayMs: number }>();
  /** The Event each pod's latest sandbox failure was recorded in, so repeats count up in it. */
  private readonly events = new Map<string, string>();
  private straysCleaned = false;

  constructor(private readonly o: SandboxesOptions) {}

  network(node: NodeLayout): NodeNetwork {
    let n = this.networks.get(node.name);
    if (!n) this.networks.set(node.name, (n = new NodeNetwork(this.o.stateDir, node)));
    return n;
  }

  /** Pods without a network whose next attempt is due. */
  due(pods: Pod[], now = Date.now()): Pod[] {
    const uids = new Set(pods.map((p) => p.metadata.uid));
    for (const uid of this.retry.keys()) if (!uids.has(uid)) this.retry.delete(uid);
    for (const uid of this.events.keys()) if (!uids.has(uid)) this.events.delete(uid);
    return pods.filter((p) => !p.status.podIP && p.status.phase !== 'Failed' && p.metadata.uid && now >= (this.retry.get(p.metadata.uid)?.at ?? 0));
  }

  /** The pod's address on success; on failure the error, recorded as an Event, and the next attempt scheduled. */
  async create(p: Pod, s: PodSandbox, node: NodeLayout): Promise<{ ip: string } | { error: string }> {
    try {
      const ip = await this.network(node).createPodNetwork(s);
      this.retry.delete(s.uid);
      this.events.delete(s.uid);
      return { ip };
    } catch (err) {
      const prev = this.retry.get(s.uid);
      const delayMs = prev ? Math.min(maxRetryMs, prev.delayMs * 2) : firstRetryMs;
      this.retry.set(s.uid, { at: Date.now() + delayMs, delayMs });
      // As the kubelet words it, so what users search for finds it.
      const message = `Failed to create pod sandbox: failed to set up network for sandbox ${sandboxId(s.uid).slice(0, 12)}: ${errorMessage(err)}`;
      this.recordFailure(p, message);
      return { error: message };
    }
  }

  /** Removes the pod's network (DEL through the chain, then the namespace). */
  async remove(s: PodSandbox, node: NodeLayout): Promise<void> {
    await this.network(node).deletePodNetwork(s);
    this.retry.delete(s.uid);
    this.events.delete(s.uid);
  }

  /**
   * Once, at the first reconcile: the sandboxes (cached CNI results) and pod cgroups of pods the
   * store no longer has, left by a controller that stopped before it tore them down.
   */
  async cleanStrays(pods: Pod[]): Promise<void> {
    if (this.straysCleaned) return;
    const uids = new Set(pods.map((p) => p.metadata.uid).filter((u): u is string => !!u));
    const known = new Set([...uids].map(sandboxId));
    for (const node of this.o.topology.nodes) {
      for (const dir of nodePodCgroups(node.name)) {
        if (uids.has(podUidOfCgroup(dir)!)) continue;
        this.o.log.info({ node: node.name, cgroup: dir }, 'stopping the processes of a pod no longer in the store');
        await stopCgroup(dir, this.o.graceMs);
      }
      const network = this.network(node);
      for (const stray of network.strayAttachments(known)) {
        this.o.log.info({ node: node.name, sandbox: stray.containerId.slice(0, 12), netns: stray.netns }, 'removing the network of a pod no longer in the store');
        await network.deleteStray(stray);
        removeHosts(stray.netns.replace(/^\/run\/netns\//, ''));
      }
    }
    this.straysCleaned = true;
  }

  /** A Warning Event on the pod, as the kubelet's recorder writes one; the same message again counts up. */
  private recordFailure(p: Pod, message: string): void {
    const ns = p.metadata.namespace!;
    const now = new Date().toISOString();
    const uid = p.metadata.uid!;
    const name = this.events.get(uid);
    const old = name ? (this.o.store.get('Event', ns, name) as CoreEvent | undefined) : undefined;
    const same = old?.message === message;
    const event: CoreEvent = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { namespace: ns, name: same ? name! : `${p.metadata.name}.${randomBytes(8).toString('hex')}` },
      involvedObject: { kind: 'Pod', namespace: ns, name: p.metadata.name, uid },
      reason: 'FailedCreatePodSandBox',
      message,
      type: 'Warning',
      count: same ? (old.count ?? 1) + 1 : 1,
      firstTimestamp: same ? (old.firstTimestamp ?? now) : now,
      lastTimestamp: now,
      source: { component: 'kubelet', host: p.spec.nodeName },
    };
    this.events.set(uid, event.metadata.name);
    try {
      this.o.store.commit([event]);
    } catch (err) {
      this.o.log.warn({ err: errorMessage(err) }, 'could not record an Event');
    }
  }
}
