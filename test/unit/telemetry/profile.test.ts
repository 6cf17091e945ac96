// On-demand profiles (shared/telemetry/profile.ts) and the agent's debug routes serving them: a
// real CPU profile of this thread names the function that was busy, a real heap snapshot's summary
// counts the objects that were made, bad parameters are refused by name, and the routes answer
// loopback clients only (a heap snapshot holds the workload keys).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { once } from 'node:events';
import { get } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getHeapSnapshot } from 'node:v8';
import { text } from 'node:stream/consumers';
import { pino } from 'pino';
import { AgentState } from '../../../agent/state/state.js';
import { EventLog } from '../../../agent/api/events.js';
import { createAdminServer } from '../../../agent/api/server.js';
import { cpuProfile, summarizeCpuProfile, summarizeHeapSnapshot } from '../../../shared/telemetry/profile.js';

/**
 * Busy in its own frame for `ms`: the clock is read once per 100,000 rounds, so the rounds, not the
 * clock, take the time, on a fast machine as on a slow one.
 */
function spinForProfile(ms: number): number {
  let x = 0;
  for (const end = performance.now() + ms; performance.now() < end; ) for (let i = 0; i < 100_000; i++) x = (x * 31 + i) % 1000003;
  return x;
}

class ProfileMarker {
  constructor(readonly n: number) {}
}

test('a CPU profile of this thread names the busy function and its share, and one profile runs at a time', async () => {
  const spin = setInterval(() => spinForProfile(8), 10);
  try {
    const taking = cpuProfile(600);
    const second = await cpuProfile(100).then(() => undefined, (err: Error) => err.message);
    assert.match(second ?? 'it ran', /being taken already/);
    const s = summarizeCpuProfile(await taking);
    assert.ok(s.ms >= 500 && s.ms <= 1500, `window ${s.ms} ms`);
    assert.ok(s.busyShare > 0.4, `busy ${s.busyShare}`);
    const top = s.functions[0]!;
    assert.is(top.name, 'spinForProfile');
    assert.match(top.where, /test\/unit\/telemetry\/profile\.test\.js:\d+$/);
    assert.ok(top.share > 0.3, `share ${top.share}`);
    assert.is(s.areas.find((a) => a.area === 'ambit') !== undefined, true);
    const sum = s.areas.reduce((a, b) => a + b.share, 0);
    assert.ok(Math.abs(sum - 1) < 1e-6, `area shares sum to ${sum}`);
  } finally {
    clearInterval(spin);
  }
});

test('a heap snapshot summary counts the objects by constructor', async () => {
  const held = Array.from({ length: 20_000 }, (_, i) => new ProfileMarker(i));
  const s = summarizeHeapSnapshot(JSON.parse(await text(getHeapSnapshot())));
  const g = s.groups.find((x) => x.name === 'ProfileMarker');
  assert.ok(g, `ProfileMarker among ${s.groups.map((x) => x.name).join(', ')}`);
  assert.ok(g.count >= held.length, `count ${g.count}`);
  assert.ok(g.bytes >= held.length * 16, `bytes ${g.bytes}`);
  assert.ok(s.totalBytes > g.bytes);
});

test('the debug routes serve a profile and a snapshot, and refuse bad parameters by name', async () => {
  const server = createAdminServer({
    state: new AgentState('n1'),
    events: new EventLog(),
    token: 't',
    log: pino({ level: 'silent' }),
    controller: () => ({ connected: true }),
    debug: { cpuProfiles: async (ms) => [await cpuProfile(ms)], heapSnapshot: async (thread) => (thread === 0 ? getHeapSnapshot() : Promise.reject(new Error('no thread 1'))) },
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    for (const bad of ['0', '61', '1.5', 'x']) {
      const res = await fetch(`${base}/debug/cpuprofile?seconds=${bad}`);
      assert.is(res.status, 400);
      assert.match(((await res.json()) as { error: { message: string } }).error.message, /seconds must be a whole number from 1 to 60/);
    }
    const res = await fetch(`${base}/debug/cpuprofile?seconds=1`);
    assert.is(res.status, 200);
    const body = (await res.json()) as { seconds: number; threads: { nodes: unknown[] }[] };
    assert.is(body.threads.length, 1);
    assert.ok(body.threads[0]!.nodes.length > 0);
    const snap = await fetch(`${base}/debug/heapsnapshot?thread=0`);
    assert.is(snap.status, 200);
    assert.ok(summarizeHeapSnapshot(JSON.parse(await snap.text())).totalBytes > 1e6);
    const none = await fetch(`${base}/debug/heapsnapshot?thread=1`);
    assert.is(none.status, 404);
    assert.match(await none.text(), /no thread 1/);
    assert.is((await fetch(`${base}/debug/heapsnapshot?thread=-1`)).status, 400);
    // From another address, even with the admin token: refused, since a snapshot holds the keys.
    const port = (server.address() as AddressInfo).port;
    const remote = await new Promise<{ status: number; body: string }>((resolve, reject) =>
      get({ host: '127.0.0.1', port, path: '/debug/heapsnapshot?thread=0', localAddress: '127.0.0.2', headers: { authorization: 'Bearer t' } }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      }).on('error', reject),
    );
    assert.is(remote.status, 403);
    assert.match(remote.body, /loopback clients only/);
  } finally {
    server.close();
    server.closeAllConnections();
  }
});

test.run();
