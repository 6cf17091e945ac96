// The controller's resource store: every resource in memory for reads, and on disk under the state
// directory so it survives restarts. A batch is all or nothing: it is first written whole to a
// journal (write to a temporary file, fsync, rename), then to one file per resource, then the journal
// is removed; a crash in between is finished by replaying the journal at the next open.

import { EventEmitter } from 'node:events';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { keyOf, refOf, type Resource, type ResourceRef } from '../../shared/resources/types.js';

export type Change = { type: 'upsert'; resource: Resource } | { type: 'delete'; ref: ResourceRef; resource: Resource };

export interface ChangeEvent {
  revision: number;
  changes: Change[];
}

interface Journal {
  revision: number;
  changes: Change[];
}

/** Writes a file so that a reader sees either the old or the whole new content, never a part. */
export function writeFileAtomic(path: string, data: string, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

export class Store extends EventEmitter<{ change: [ChangeEvent] }> {
  private readonly resources = new Map<string, Resource>();
  private revision = 0;
  private readonly resourceDir: string;
  private readonly journalPath: string;

  constructor(private readonly dir: string) {
    super();
    this.resourceDir = join(dir, 'resources');
    this.journalPath = join(dir, 'journal.json');
    mkdirSync(this.resourceDir, { recursive: true });
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
    return out.sort((a, b) => keyOf(refOf(a)).localeCompare(keyOf(refOf(b))));
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
    const event = { revision, changes };
    if (changes.length === 0) return { revision: this.revision, changes };
    writeFileAtomic(this.journalPath, JSON.stringify(event));
    this.applyToDisk(changes);
    rmSync(this.journalPath, { force: true });
    this.applyToMemory(event);
    this.emit('change', event);
    return event;
  }

  private load(): void {
    for (const kind of readdirSync(this.resourceDir)) {
      for (const ns of readdirSync(join(this.resourceDir, kind))) {
        for (const file of readdirSync(join(this.resourceDir, kind, ns))) {
          if (!file.endsWith('.json')) continue; // a leftover temporary file from a crash
          const r = JSON.parse(readFileSync(join(this.resourceDir, kind, ns, file), 'utf8')) as Resource;
          this.resources.set(keyOf(refOf(r)), r);
          this.revision = Math.max(this.revision, Number(r.metadata.resourceVersion ?? 0));
        }
      }
    }
    const revisionFile = join(this.dir, 'revision');
    if (existsSync(revisionFile)) this.revision = Math.max(this.revision, Number(readFileSync(revisionFile, 'utf8')));
    if (existsSync(this.journalPath)) {
      // A crash happened after the journal was written: finish that batch.
      const journal = JSON.parse(readFileSync(this.journalPath, 'utf8')) as Journal;
      this.applyToDisk(journal.changes);
      this.applyToMemory(journal);
      rmSync(this.journalPath, { force: true });
    }
  }

  private fileOf(ref: ResourceRef): string {
    return join(this.resourceDir, ref.kind, ref.namespace || '_cluster', `${ref.name}.json`);
  }

  private applyToDisk(changes: Change[]): void {
    for (const c of changes) {
      if (c.type === 'upsert') writeFileAtomic(this.fileOf(refOf(c.resource)), JSON.stringify(c.resource));
      else rmSync(this.fileOf(c.ref), { force: true });
    }
  }

  private applyToMemory(event: Journal): void {
    for (const c of event.changes) {
      if (c.type === 'upsert') this.resources.set(keyOf(refOf(c.resource)), c.resource);
      else this.resources.delete(keyOf(c.ref));
    }
    this.revision = Math.max(this.revision, event.revision);
    // Deletes leave no file behind to carry the revision, so it is kept on its own.
    writeFileAtomic(join(this.dir, 'revision'), String(this.revision));
  }
}

function sameContent(a: Resource, b: Resource): boolean {
  const strip = (r: Resource) => JSON.stringify({ ...r, metadata: { ...r.metadata, resourceVersion: undefined } });
  return strip(a) === strip(b);
}
