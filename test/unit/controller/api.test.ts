// The controller API over real HTTP: the token is required, and errors keep their codes and fields.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Store } from '../../../controller/store/store.js';
import { ClusterIPAllocator } from '../../../controller/resources/allocator.js';
import { createApiServer } from '../../../controller/api/server.js';
import { parseCidr } from '../../../shared/net/ipv4.js';

let dir = '';
let server: Server;
let url = '';
const token = 'test-token-123';

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ambit-api-'));
  const ctx = { store: new Store(dir), allocator: new ClusterIPAllocator(parseCidr('10.96.0.0/16')) };
  server = createApiServer({ ctx, token, log: pino({ level: 'silent' }) });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
test.after(() => {
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

const call = async (path: string, init: RequestInit = {}, auth = `Bearer ${token}`) => {
  const res = await fetch(`${url}${path}`, { ...init, headers: { authorization: auth, 'content-type': 'application/json' } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

test('a request without the token, or with a wrong one, is refused with 401', async () => {
  assert.is((await call('/v1/resources', {}, '')).status, 401);
  assert.is((await call('/v1/resources', {}, 'Bearer wrong')).status, 401);
  assert.is((await call('/v1/resources')).status, 200);
});

test('apply, list and a refused apply with its problems', async () => {
  const ok = await call('/v1/apply', { method: 'POST', body: JSON.stringify({ resources: [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } }] }) });
  assert.is(ok.status, 200);
  const bad = await call('/v1/apply', { method: 'POST', body: JSON.stringify({ resources: [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x', colour: 1 } }] }) });
  assert.is(bad.status, 422);
  const err = bad.body.error as { code: string; problems: { field: string }[] };
  assert.is(err.code, 'ResourceInvalid');
  assert.is(err.problems[0]!.field, 'metadata.colour');
  const list = await call('/v1/resources?kind=Namespace');
  assert.equal((list.body.items as { metadata: { name: string } }[]).map((i) => i.metadata.name), ['shop']);
});

test('a body that is not JSON is a 400 that says so', async () => {
  const r = await call('/v1/apply', { method: 'POST', body: '{nope' });
  assert.is(r.status, 400);
  assert.match((r.body.error as { message: string }).message, /not JSON/);
});

test.run();
