// The store keeps resources across restarts and finishes a batch that a crash interrupted.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../../controller/store/store.js';

const ns = (name: string, labels?: Record<string, string>) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, ...(labels ? { labels } : {}) } });
let dir = '';

test.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'ambit-store-'));
});
test.after.each(() => rmSync(dir, { recursive: true, force: true }));

test('resources and the revision survive a restart', () => {
  const a = new Store(dir);
  a.commit([ns('shop'), ns('client')]);
  a.commit([], [{ kind: 'Namespace', namespace: '', name: 'client' }]);
  const b = new Store(dir);
  assert.equal(b.list('Namespace').map((r) => r.metadata.name), ['shop']);
  assert.is(b.currentRevision, 2);
  assert.is(b.get('Namespace', '', 'shop')!.metadata.resourceVersion, '1');
});

test('a batch that changes nothing makes no revision and no event', () => {
  const s = new Store(dir);
  s.commit([ns('shop')]);
  let events = 0;
  s.on('change', () => events++);
  const e = s.commit([ns('shop')]);
  assert.is(e.changes.length, 0);
  assert.is(s.currentRevision, 1);
  assert.is(events, 0);
  s.commit([ns('shop', { team: 'a' })]);
  assert.is(events, 1);
  assert.is(s.get('Namespace', '', 'shop')!.metadata.uid, new Store(dir).get('Namespace', '', 'shop')!.metadata.uid);
});

test('a crash after the journal was written is finished at the next open', () => {
  const s = new Store(dir);
  s.commit([ns('shop')]);
  // What commit() writes first; as if the process died before the per-resource files.
  const pending = { revision: 2, changes: [{ type: 'upsert', resource: { ...ns('late'), metadata: { name: 'late', resourceVersion: '2' } } }, { type: 'delete', ref: { kind: 'Namespace', namespace: '', name: 'shop' }, resource: ns('shop') }] };
  writeFileSync(join(dir, 'journal.json'), JSON.stringify(pending));
  const t = new Store(dir);
  assert.equal(t.list('Namespace').map((r) => r.metadata.name), ['late']);
  assert.is(t.currentRevision, 2);
  assert.not.ok(existsSync(join(dir, 'journal.json')));
});

test('a half-written temporary file from a crash is ignored', () => {
  const s = new Store(dir);
  s.commit([ns('shop')]);
  writeFileSync(join(dir, 'resources', 'Namespace', '_cluster', 'shop.json.tmp-123'), '{"trunc');
  assert.equal(new Store(dir).list().map((r) => r.metadata.name), ['shop']);
});

test.run();
