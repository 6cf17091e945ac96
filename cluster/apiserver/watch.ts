// WATCH: a stream of newline-delimited JSON events ({type, object}) built from the store's change
// events. A bounded history of recent changes lets a watch resume from the resourceVersion of an
// earlier list; a version older than the history gets an ERROR event with a 410 Expired Status,
// as the real server answers after etcd compaction, and the client lists again.

import type { ServerResponse } from 'node:http';
import type { ChangeEvent, Store } from '../../controller/store/store.js';
import { keyOf, refOf, type Resource } from '../../shared/resources/types.js';
import { badRequest, expired } from './errors.js';
import type { ApiResource } from './routes.js';
import type { Selector } from './selectors.js';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoredEvent {
  type: WatchEventType;
  object: Resource;
  /** The object as it was before this change (for MODIFIED and DELETED), to see whether it left a selector. */
  previous?: Resource;
}

interface Entry {
  revision: number;
  at: number;
  events: StoredEvent[];
}

export interface HistoryLimits {
  /** How many revisions are kept. */
  revisions: number;
  /** How long a revision is kept. */
  ageMs: number;
}

const defaultLimits: HistoryLimits = { revisions: 1000, ageMs: 5 * 60_000 };

/** The store's recent changes as watch events, and the live feed of new ones. */
export class ChangeHistory {
  private readonly entries: Entry[] = [];
  /** Every revision after this one is in `entries`; a watch from before it cannot be replayed. */
  private complete: number;
  /** The last stored state of every object: a change event says what is new, not what was. */
  private readonly last = new Map<string, Resource>();
  private readonly listeners = new Set<(e: Entry) => void>();
  private readonly onChange = (e: ChangeEvent) => this.record(e);

  constructor(
    private readonly store: Store,
    private readonly limits: HistoryLimits = defaultLimits,
  ) {
    this.complete = store.currentRevision;
    for (const r of store.list()) this.last.set(keyOf(refOf(r)), r);
    store.on('change', this.onChange);
  }

  get revision(): number {
    return this.store.currentRevision;
  }

  /** The events after `revision`, or undefined when some of them are no longer kept. */
  since(revision: number): StoredEvent[] | undefined {
    this.trim();
    if (revision < this.complete) return undefined;
    return this.entries.filter((e) => e.revision > revision).flatMap((e) => e.events);
  }

  /** The oldest revision a watch can start from. */
  get oldest(): number {
    this.trim();
    return this.complete;
  }

  subscribe(fn: (events: StoredEvent[]) => void): () => void {
    const l = (e: Entry) => fn(e.events);
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  close(): void {
    this.store.off('change', this.onChange);
    this.listeners.clear();
  }

  private record(e: ChangeEvent): void {
    const events = e.changes.map((c): StoredEvent => {
      const key = keyOf(refOf(c.resource));
      const previous = this.last.get(key);
      if (c.type === 'upsert') {
        this.last.set(key, c.resource);
        return previous ? { type: 'MODIFIED', object: c.resource, previous } : { type: 'ADDED', object: c.resource };
      }
      this.last.delete(key);
      // A deleted object is sent as it last was, at the revision of its deletion, as etcd reports it.
      return { type: 'DELETED', object: atRevision(c.resource, e.revision), previous: c.resource };
    });
    this.entries.push({ revision: e.revision, at: Date.now(), events });
    this.trim();
    for (const l of this.listeners) l(this.entries[this.entries.length - 1]!);
  }

  private trim(): void {
    const now = Date.now();
    while (this.entries.length > this.limits.revisions || (this.entries.length > 0 && now - this.entries[0]!.at > this.limits.ageMs)) {
      this.complete = this.entries.shift()!.revision;
    }
  }
}

function atRevision(r: Resource, revision: number): Resource {
  return { ...r, metadata: { ...r.metadata, resourceVersion: String(revision) } };
}

export interface WatchRequest {
  resource: ApiResource;
  namespace?: string;
  matches: Selector;
  /** The `resourceVersion` parameter: unset or "0" starts with every current object as ADDED. */
  resourceVersion: string | null;
  bookmarks: boolean;
  timeoutMs: number;
  /** The objects now, for a watch that starts with them. */
  current: () => Resource[];
  /** False for kinds outside the store (Nodes): they never change, so there is nothing to replay or miss. */
  inStore: boolean;
  /** The wire form of an event's object (the object, or a one-row Table). */
  render: (r: Resource) => unknown;
  /** The wire form of a BOOKMARK's object at `revision`. */
  bookmark: (revision: string) => unknown;
}

export interface WatchTiming {
  bookmarkIntervalMs: number;
}

/** How soon after an unseen change a watch with bookmarks is told the new revision. */
const promptBookmarkMs = 50;

/** A slow reader is cut off past this much unsent data, rather than holding the server's memory. */
const maxBuffered = 16 * 1024 * 1024;

/**
 * Streams the watch to `res` until the client goes, the timeout passes or `stop` is called (the
 * server closing). Returns that stop function.
 */
export function serveWatch(res: ServerResponse, history: ChangeHistory, w: WatchRequest, timing: WatchTiming): () => void {
  let from: number | undefined;
  if (w.resourceVersion && w.resourceVersion !== '0') {
    from = Number(w.resourceVersion);
    if (!/^\d+$/.test(w.resourceVersion)) throw badRequest(`resourceVersion ${JSON.stringify(w.resourceVersion)} is not a resource version this server gave`);
  }
  res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
  res.flushHeaders();
  let closed = false;
  const send = (type: string, object: unknown) => {
    if (closed) return;
    res.write(JSON.stringify({ type, object }) + '\n');
    if (res.writableLength > maxBuffered) stop();
  };
  const inScope = (r: Resource) => r.kind === w.resource.kind && (!w.namespace || r.metadata.namespace === w.namespace);
  // Besides the periodic bookmark, one shortly after changes this watch did not see (coalesced), so
  // that a client waiting for a revision (the mesh controller, for `ambit apply --wait`) learns it has
  // seen everything up to it without waiting for the next period. Clients take bookmarks at any time.
  let promptBookmark: NodeJS.Timeout | undefined;
  const bookmarkSoon = () => {
    promptBookmark ??= setTimeout(() => {
      promptBookmark = undefined;
      send('BOOKMARK', w.bookmark(String(history.revision)));
    }, promptBookmarkMs);
  };
  const deliver = (events: StoredEvent[]) => {
    let sent = false;
    for (const e of events) {
      if (!inScope(e.object)) continue;
      // As the real watch cache does: an object that enters the selector is ADDED, one that leaves it DELETED.
      const now = e.type !== 'DELETED' && w.matches(e.object);
      const before = e.previous !== undefined && w.matches(e.previous);
      if (now) send(before ? 'MODIFIED' : 'ADDED', w.render(e.object));
      else if (before) send('DELETED', w.render(e.type === 'DELETED' ? e.object : atRevision(e.previous!, Number(e.object.metadata.resourceVersion))));
      else continue;
      sent = true;
    }
    if (!sent && w.bookmarks && !closed) bookmarkSoon();
  };

  const timers: NodeJS.Timeout[] = [];
  let unsubscribe = () => {};
  const stop = () => {
    if (closed) return;
    closed = true;
    unsubscribe();
    for (const t of timers) clearTimeout(t);
    clearTimeout(promptBookmark);
    res.end();
  };
  // The response's close is the client going (or the stream ending); the request's is only its
  // body being read, which says nothing about the connection.
  res.on('close', stop);

  if (from === undefined) {
    for (const r of w.current()) if (w.matches(r)) send('ADDED', w.render(r));
  } else if (w.inStore) {
    const replay = history.since(from);
    if (!replay) {
      send('ERROR', expired(`too old resource version: ${from} (${history.oldest})`).status());
      stop();
      return stop;
    }
    deliver(replay);
  }
  // Replay and subscription happen in one turn of the event loop: the store emits synchronously,
  // so no change can fall between them.
  if (w.inStore) unsubscribe = history.subscribe(deliver);
  if (w.bookmarks) timers.push(setInterval(() => send('BOOKMARK', w.bookmark(String(history.revision))), timing.bookmarkIntervalMs));
  timers.push(setTimeout(stop, w.timeoutMs));
  return stop;
}
