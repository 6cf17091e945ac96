// The store keeps resources across restarts and finishes a batch that a crash interrupted.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
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

test('a batch torn by a crash mid-write is dropped whole, and the log continues after it', () => {
  const s = new Store(dir);
  s.commit([ns('shop')]);
  // What a crash in the middle of the second batch's write leaves: half a line.
  appendFileSync(join(dir, 'wal.log'), '{"revision":2,"upserts":[{"apiVersion":"v1","kind":"Namespace","metadata":{"na');
  const t = new Store(dir);
  assert.equal(t.list('Namespace').map((r) => r.metadata.name), ['shop']);
  assert.is(t.currentRevision, 1);
  t.commit([ns('next')]);
  assert.equal(new Store(dir).list('Namespace').map((r) => r.metadata.name), ['next', 'shop']);
});

test('a large log is folded into a snapshot, and both are read back', () => {
  const s = new Store(dir, 1024 * 1024);
  const big = 'x'.repeat(100_000);
  for (let i = 0; i < 30; i++) s.commit([{ ...ns(`n${i % 3}`), metadata: { name: `n${i % 3}`, annotations: { big: `${big}${i}` } } }]);
  assert.ok(existsSync(join(dir, 'snapshot.json')), 'a snapshot was written');
  const t = new Store(dir);
  assert.is(t.currentRevision, 30);
  assert.is(t.get('Namespace', '', 'n2')!.metadata.annotations!.big, `${big}29`);
});

test.run();
