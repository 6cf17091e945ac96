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
import { createApiServer } from '../../../controller/api/server.js';

let dir = '';
let server: Server;
let url = '';
const token = 'test-token-123';

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ambit-api-'));
  server = createApiServer({ apiVersion: async () => 0, token, tokenFile: join(dir, 'token'), replica: () => ({ identity: 'replica-a', leader: true }), log: pino({ level: 'silent' }) });
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
  assert.is((await call('/v1/agents', {}, '')).status, 401);
  const wrong = await call('/v1/agents', {}, 'Bearer wrong');
  assert.is(wrong.status, 401);
  assert.match((wrong.body.error as { message: string }).message, join(dir, 'token'));
  assert.is((await call('/v1/agents')).status, 200);
});

test('/healthz says which replica answers and whether it leads', async () => {
  const r = await call('/healthz');
  assert.is(r.status, 200);
  assert.equal([r.body.identity, r.body.leader], ['replica-a', true]);
});

test('resources are not served here (the Kubernetes API serves them): an unknown route is a 404 naming it', async () => {
  const r = await call('/v1/resources');
  assert.is(r.status, 404);
  assert.match((r.body.error as { message: string }).message, 'no API route GET /v1/resources');
});

test('a body that is not JSON, or not the shape asked for, is a 400 that says so', async () => {
  const r = await call('/v1/wait', { method: 'POST', body: '{nope' });
  assert.is(r.status, 400);
  assert.match((r.body.error as { message: string }).message, /not JSON/);
  const shape = await call('/v1/wait', { method: 'POST', body: JSON.stringify({ resourceVersion: '7' }) });
  assert.is(shape.status, 400);
  assert.match((shape.body.error as { message: string }).message, '{"resourceVersion": N, "kinds": [...], "waitSeconds": N}');
});

test.run();
