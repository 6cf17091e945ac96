// Expiry of core/v1 Events, as the API server's --event-ttl (default 1 h) does it: Events are a
// record of what happened lately, so they must not grow the store without bound. A sweep deletes
// each Event an hour after it last happened; writing Events is everyone else's.

import type { Store } from '../../controller/store/store.js';
import { type CoreEvent, lastSeen } from '../../shared/resources/events.js';
import type { Logger } from '../../shared/log.js';

export interface EventTtlOptions {
  /** How long an Event lives after it last happened (Kubernetes' --event-ttl; default 1 h). */
  ttlMs?: number;
  /** How often to sweep (default a minute): an Event outlives its TTL by up to this much. */
  sweepIntervalMs?: number;
}

export const defaultEventTtlMs = 60 * 60_000;

/**
 * Kubernetes attaches an etcd lease to every Event write, so an Event expires a TTL after its last
 * write. The store keeps no write times, so the sweep reads the Event's own last occurrence
 * (series, lastTimestamp, eventTime, firstTimestamp, else creation), which every recorder moves
 * forward when it writes the Event again.
 */
export class EventExpiry {
  private timer: NodeJS.Timeout | undefined;
  private readonly ttlMs: number;
  private readonly intervalMs: number;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    o: EventTtlOptions = {},
  ) {
    this.ttlMs = o.ttlMs ?? defaultEventTtlMs;
    this.intervalMs = o.sweepIntervalMs ?? 60_000;
  }

  start(): void {
    this.timer = setInterval(() => this.sweep(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Deletes, in one commit, every Event whose last occurrence is more than the TTL ago; returns how many. */
  sweep(now = Date.now()): number {
    const expired = (this.store.list('Event') as CoreEvent[]).filter((e) => (lastSeen(e) ?? now) + this.ttlMs < now);
    if (!expired.length) return 0;
    try {
      this.store.commit(
        [],
        expired.map((e) => ({ kind: 'Event', namespace: e.metadata.namespace ?? 'default', name: e.metadata.name })),
      );
    } catch (err) {
      // A full disk or the like: the next sweep tries again.
      this.log.warn({ err, events: expired.length }, 'expiring events failed');
      return 0;
    }
    return expired.length;
  }
}
