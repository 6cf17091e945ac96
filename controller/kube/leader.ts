// Leader election over a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it: the
// holder renews the Lease every retry period; a candidate takes it once the holder has not renewed
// it for a whole lease duration; every write carries the resourceVersion it read, so two candidates
// racing for it cannot both win (the loser gets 409). A leader that cannot renew within the renew
// deadline steps down before its Lease can expire, so two leaders never act at once.

import { EventEmitter } from 'node:events';
import { errorMessage } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import { KubeApiError, type KubeClient } from '../../shared/kube/client.js';
import { resourceKind } from '../../shared/kube/paths.js';
import type { Resource } from '../../shared/resources/types.js';
import { canonicalMicroTime } from '../../shared/resources/times.js';

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  /** Who this candidate is (pod name, or host and pid). */
  identity: string;
  /** client-go's defaults: 15 s, 10 s, 2 s. */
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  log: Logger;
}

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

const Lease = resourceKind('Lease');

const microTime = (ms: number) => canonicalMicroTime(new Date(ms).toISOString()) as string;

export class LeaderElector extends EventEmitter<{ started: []; stopped: [] }> {
  private leading = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private lastRenew = 0;
  /** The Lease as last read: who held it, and when this candidate first saw that record. */
  private observed: { record: string; at: number } | undefined;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;

  constructor(
    private readonly client: KubeClient,
    private readonly o: LeaderElectionOptions,
  ) {
    super();
    this.leaseDurationMs = o.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = o.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = o.retryPeriodMs ?? 2_000;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): this {
    void this.tick();
    // The renew deadline is kept by a clock of its own: a renewal stuck on a dead connection must
    // not keep this replica leading past it while a successor may already have taken the Lease.
    this.watchdog = setInterval(() => {
      if (this.leading && Date.now() - this.lastRenew > this.renewDeadlineMs) {
        this.o.log.warn({ identity: this.o.identity }, 'leader election: renew deadline passed; stepping down');
        this.setLeading(false);
      }
    }, Math.min(this.retryPeriodMs, 500));
    return this;
  }

  /** Stops campaigning; a leader gives the Lease up at once (an empty holder), so a successor need not wait for it to expire. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.watchdog);
    if (!this.leading) return;
    this.setLeading(false);
    try {
      const lease = await this.client.get<Resource<'Lease', LeaseSpec>>(Lease, this.o.namespace, this.o.name);
      if (lease?.spec?.holderIdentity === this.o.identity) {
        await this.client.update(Lease, { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1 } });
      }
    } catch (err) {
      this.o.log.warn({ err: errorMessage(err) }, 'could not release the leader Lease; it expires by itself');
    }
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    try {
      const attempt = Date.now();
      const held = await this.tryAcquireOrRenew();
      // The renewal counts from when it was sent: the Lease said so from then on.
      if (held) this.lastRenew = attempt;
      // One that came back after the deadline does not make this replica lead again on its own
      // authority: the next round renews it afresh.
      if (!this.stopped && (!held || Date.now() - attempt <= this.renewDeadlineMs)) this.setLeading(held);
    } catch (err) {
      if (!(err instanceof KubeApiError && err.status === 409)) this.o.log.warn({ err: errorMessage(err), lease: `${this.o.namespace}/${this.o.name}` }, 'leader election: could not read or write the Lease');
    }
    if (!this.stopped) this.timer = setTimeout(() => void this.tick(), this.retryPeriodMs);
  }

  /** One round: true when this candidate holds the Lease after it. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = Date.now();
    const mine: LeaseSpec = { holderIdentity: this.o.identity, leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1000), acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 };
    const lease = await this.client.get<Resource<'Lease', LeaseSpec>>(Lease, this.o.namespace, this.o.name);
    if (!lease) {
      await this.client.create(Lease, { apiVersion: Lease.apiVersion, kind: 'Lease', metadata: { name: this.o.name, namespace: this.o.namespace }, spec: mine });
      this.o.log.info({ identity: this.o.identity, lease: `${this.o.namespace}/${this.o.name}` }, 'leader election: created the Lease; leading');
      return true;
    }
    const spec = lease.spec ?? {};
    // Expiry is judged by this candidate's clock from when it saw the record change, not by the
    // holder's timestamps, so clocks that disagree between nodes do not matter (as client-go does).
    const record = JSON.stringify([spec.holderIdentity, spec.renewTime, spec.leaseDurationSeconds]);
    if (this.observed?.record !== record) this.observed = { record, at: now };
    const holder = spec.holderIdentity ?? '';
    const expired = holder === '' || now - this.observed.at > (spec.leaseDurationSeconds ?? 15) * 1000;
    if (holder !== this.o.identity && !expired) return false;
    const next: LeaseSpec =
      holder === this.o.identity
        ? { ...spec, renewTime: microTime(now), leaseDurationSeconds: mine.leaseDurationSeconds }
        : { ...mine, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 };
    // The read resourceVersion goes with the write: if another candidate wrote meanwhile, this is 409.
    const written = await this.client.update(Lease, { ...lease, spec: next });
    this.observed = { record: JSON.stringify([next.holderIdentity, next.renewTime, next.leaseDurationSeconds]), at: now };
    if (holder !== this.o.identity) this.o.log.info({ identity: this.o.identity, previous: holder || undefined, transitions: (written.spec as LeaseSpec).leaseTransitions }, 'leader election: took the Lease; leading');
    return true;
  }

  private setLeading(leading: boolean): void {
    if (leading === this.leading) return;
    this.leading = leading;
    this.emit(leading ? 'started' : 'stopped');
  }
}
