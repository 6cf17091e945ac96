// The controller's resource store: every resource in memory for reads, and on disk under the state
// directory so it survives restarts. Durability is a write-ahead log plus snapshots, as etcd does
// it: a batch is appended to the log as one line and fsynced once, so it is all or nothing; a crash
// mid-write leaves a torn last line, which the next open discards. When the log grows, a snapshot
// (written to a temporary file, fsynced, renamed) replaces it.

import { EventEmitter } from 'node:events';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, statSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import { writeAll, writeFileAtomic } from '../../shared/host/files.js';
import { randomUUID } from 'node:crypto';
import { keyOf, refOf, type Resource, type ResourceRef } from '../../shared/resources/types.js';

// Kept importable from here, where the controller and the local cluster have always taken it.
export { writeFileAtomic };

export type Change = { type: 'upsert'; resource: Resource } | { type: 'delete'; ref: ResourceRef; resource: Resource };

export interface ChangeEvent {
  revision: number;
  changes: Change[];
}

interface Snapshot {
  revision: number;
  resources: Resource[];
}

/** One log line: a whole batch. */
interface LogRecord {
  revision: number;
  upserts: Resource[];
  deletes: ResourceRef[];
}

/** Past this size (by default) the log is folded into a snapshot. */
const defaultMaxLogBytes = 32 * 1024 * 1024;

export class Store extends EventEmitter<{ change: [ChangeEvent] }> {
  private readonly resources = new Map<string, Resource>();
  private revision = 0;
  private readonly snapshotPath: string;
  private readonly logPath: string;
  private logFd = -1;
  private logBytes = 0;

  constructor(
    dir: string,
    private readonly maxLogBytes = defaultMaxLogBytes,
  ) {
    super();
    mkdirSync(dir, { recursive: true });
    this.snapshotPath = join(dir, 'snapshot.json');
    this.logPath = join(dir, 'wal.log');
    this.load();
  }

  get currentRevision(): number {
    return this.revision;
  }

  get(kind: string, namespace: string, name: string): Resource | undefined {
    return this.resources.get(keyOf({ kind, namespace, name }));
  }

  list(kind?: string, namespace?: string): Resource[] {
    const out: Resource[] = [];
    for (const r of this.resources.values()) {
      if (kind && r.kind !== kind) continue;
      if (namespace && r.metadata.namespace !== namespace) continue;
      out.push(r);
    }
    const key = (r: Resource) => `${r.kind}/${r.metadata.namespace ?? ''}/${r.metadata.name}`;
    return out.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  }

  /**
   * Stores a batch of upserts and deletes as one revision. Resources get their resourceVersion,
   * uid and creationTimestamp here. Returns the event that listeners also receive; a batch that
   * changes nothing is not a revision.
   */
  commit(upserts: Resource[], deletes: ResourceRef[] = []): ChangeEvent {
    const revision = this.revision + 1;
    const changes: Change[] = [];
    const now = new Date().toISOString();
    for (const r of upserts) {
      const old = this.resources.get(keyOf(refOf(r)));
      const next: Resource = structuredClone(r);
      next.metadata.uid = old?.metadata.uid ?? randomUUID();
      next.metadata.creationTimestamp = old?.metadata.creationTimestamp ?? now;
      if (old && sameContent(old, next)) continue;
      next.metadata.resourceVersion = String(revision);
      changes.push({ type: 'upsert', resource: next });
    }
    for (const ref of deletes) {
      const old = this.resources.get(keyOf(ref));
      if (old) changes.push({ type: 'delete', ref, resource: old });
    }
    if (changes.length === 0) return { revision: this.revision, changes };
    const record: LogRecord = {
      revision,
      upserts: changes.flatMap((c) => (c.type === 'upsert' ? [c.resource] : [])),
      deletes: changes.flatMap((c) => (c.type === 'delete' ? [c.ref] : [])),
    };
    this.append(record);
    this.applyRecord(record);
    const event = { revision, changes };
    this.emit('change', event);
    if (this.logBytes > this.maxLogBytes) this.compact();
    return event;
  }

  /**
   * Appends a batch durably, or leaves the log as it was and throws: a failed write must not
   * leave bytes that a later batch would be glued to, nor reuse a revision that is on disk.
   */
  private append(record: LogRecord): void {
    const line = Buffer.from(JSON.stringify(record) + '\n');
    try {
      writeAll(this.logFd, line);
      fsyncSync(this.logFd);
    } catch (err) {
      try {
        ftruncateSync(this.logFd, this.logBytes);
        fsyncSync(this.logFd);
      } catch {
        // The log can be neither extended nor restored: stop rather than diverge from the disk.
        process.stderr.write(`fatal: the store's log at ${this.logPath} cannot be written or repaired: ${(err as Error).message}\n`);
        process.exit(70);
      }
      throw err;
    }
    this.logBytes += line.length;
  }

  private applyRecord(record: LogRecord): void {
    for (const r of record.upserts) this.resources.set(keyOf(refOf(r)), r);
    for (const ref of record.deletes) this.resources.delete(keyOf(ref));
    this.revision = record.revision;
  }

  private load(): void {
    if (existsSync(this.snapshotPath)) {
      const snap = JSON.parse(readFileSync(this.snapshotPath, 'utf8')) as Snapshot;
      for (const r of snap.resources) this.resources.set(keyOf(refOf(r)), r);
      this.revision = snap.revision;
    }
    let valid = 0;
    if (existsSync(this.logPath)) {
      const bytes = readFileSync(this.logPath);
      for (let start = 0, end = bytes.indexOf(0x0a); end >= 0; start = end + 1, end = bytes.indexOf(0x0a, start)) {
        let record: LogRecord;
        try {
          record = JSON.parse(bytes.toString('utf8', start, end)) as LogRecord;
        } catch {
          break; // a torn write: this batch and anything after it never completed
        }
        if (record.revision > this.revision) this.applyRecord(record);
        valid = end + 1;
      }
    }
    this.logFd = openSync(this.logPath, existsSync(this.logPath) ? 'r+' : 'w+');
    // Cut a torn tail away, so the next batch starts on a clean line.
    ftruncateSync(this.logFd, valid);
    this.logBytes = valid;
    this.seekEnd();
  }

  /** Folds the log into a new snapshot, then empties the log. */
  private compact(): void {
    // The snapshot (and its directory entry) is on disk before the log it replaces is emptied.
    writeFileAtomic(this.snapshotPath, JSON.stringify({ revision: this.revision, resources: [...this.resources.values()] } satisfies Snapshot));
    ftruncateSync(this.logFd, 0);
    fsyncSync(this.logFd);
    this.logBytes = 0;
    this.seekEnd();
  }

  private seekEnd(): void {
    // writeSync without a position writes at the file offset; reopen in append mode to be sure.
    closeSync(this.logFd);
    this.logFd = openSync(this.logPath, 'a');
    this.logBytes = statSync(this.logPath).size;
  }
}

function sameContent(a: Resource, b: Resource): boolean {
  const strip = (r: Resource) => JSON.stringify({ ...r, metadata: { ...r.metadata, resourceVersion: undefined } });
  return strip(a) === strip(b);
}
