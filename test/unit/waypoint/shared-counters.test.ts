// The counters the waypoint's event loops share (waypoint/upstream/shared-counters.ts), across real
// worker threads: a key names the same slot in every thread, a limit holds exactly however the
// threads race for it, a circuit breaker in one thread overflows for the requests another holds, and
// a full table gives new keys counters of their own thread instead of failing.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { giveBack, SharedCounters, takeBelow } from '../../../waypoint/upstream/shared-counters.js';
import { CircuitBreaker, istioConnectionPoolDefaults } from '../../../waypoint/upstream/circuit-breaker.js';

const modules = { counters: new URL('../../../waypoint/upstream/shared-counters.js', import.meta.url).href, breaker: new URL('../../../waypoint/upstream/circuit-breaker.js', import.meta.url).href };

/** Runs `body` (an async function's text, given `counters`, `breaker` modules and `buffer`) in a worker thread; resolves with what it returns. */
async function inWorker<T>(buffer: SharedArrayBuffer, body: string, extra: Record<string, unknown> = {}): Promise<T> {
  const w = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     (async () => {
       const counters = await import(workerData.modules.counters);
       const breaker = await import(workerData.modules.breaker);
       const buffer = workerData.buffer;
       const extra = workerData.extra;
       parentPort.postMessage(await (async () => { ${body} })());
     })();`,
    { eval: true, workerData: { modules, buffer, extra } },
  );
  const [result] = (await once(w, 'message')) as [T];
  await w.terminate();
  return result;
}

test('a key names the same slot in every thread, another key another slot', async () => {
  const mine = new SharedCounters({ slots: 64 });
  Atomics.store(mine.slot('breaker shop/web/80'), 2, 7);
  const seen = await inWorker<number[]>(mine.buffer, `const t = new counters.SharedCounters({ buffer }); return [Atomics.load(t.slot('breaker shop/web/80'), 2), Atomics.load(t.slot('breaker shop/api/80'), 2)];`);
  assert.equal(seen, [7, 0]);
});

test('racing threads take exactly the limit, never more, and every give-back counts', async () => {
  const mine = new SharedCounters({ slots: 64 });
  const fields = mine.slot('k');
  // Both start together: the worker raises a flag and goes, the main thread goes when it sees it.
  const go = mine.slot('go');
  const race = `const t = new counters.SharedCounters({ buffer }); const f = t.slot('k'); Atomics.store(t.slot('go'), 0, 1); let won = 0; for (let i = 0; i < 200000; i++) if (counters.takeBelow(f, 0, 5000)) won++; return won;`;
  const worker = inWorker<number>(mine.buffer, race);
  const started = Date.now() + 10_000;
  while (Atomics.load(go, 0) === 0 && Date.now() < started);
  let won = 0;
  for (let i = 0; i < 200_000; i++) if (takeBelow(fields, 0, 5000)) won++;
  const theirs = await worker;
  assert.is(won + theirs, 5000, `main took ${won}, the worker ${theirs}`);
  assert.is(Atomics.load(fields, 0), 5000);
  // Takes and gives back from both threads at once, for as long: those holding a take, counted apart
  // (Atomics.add on another field), are never more than the limit, and the count ends at zero. A take
  // that read and then wrote would lose updates and let a fourth in.
  Atomics.store(fields, 0, 0);
  Atomics.store(go, 0, 0);
  const churn = `let most = 0; const end = Date.now() + 100; while (Date.now() < end) for (let i = 0; i < 1000; i++) if (counters.takeBelow(f, 0, 3)) { most = Math.max(most, Atomics.add(f, 1, 1) + 1); Atomics.sub(f, 1, 1); counters.giveBack(f, 0); } return most;`;
  const other = inWorker<number>(mine.buffer, `const t = new counters.SharedCounters({ buffer }); const f = t.slot('k'); Atomics.store(t.slot('go'), 0, 1); ${churn}`);
  // A busy wait (this thread has nothing else to do): it starts the moment the worker does.
  const deadline = Date.now() + 10_000;
  while (Atomics.load(go, 0) === 0 && Date.now() < deadline);
  let most = 0;
  const end = Date.now() + 100;
  while (Date.now() < end)
    for (let i = 0; i < 1000; i++)
      if (takeBelow(fields, 0, 3)) {
        most = Math.max(most, Atomics.add(fields, 1, 1) + 1);
        Atomics.sub(fields, 1, 1);
        giveBack(fields, 0);
      }
  const theirMost = await other;
  assert.ok(most <= 3 && theirMost <= 3, `at most 3 held at once: ${most}, ${theirMost}`);
  assert.is(Atomics.load(fields, 0), 0);
});

test("a circuit breaker in one thread overflows for the requests another thread holds, and admits again once they end", async () => {
  const shared = new SharedCounters({ slots: 64 });
  const limits = { ...istioConnectionPoolDefaults, http2MaxRequests: 2 };
  const here = new CircuitBreaker(limits, shared.slot('breaker shop/web/80'));
  const held = await inWorker<boolean[]>(shared.buffer, `const b = new breaker.CircuitBreaker(extra.limits, new counters.SharedCounters({ buffer }).slot('breaker shop/web/80')); return [b.tryRequest().ok, b.tryRequest().ok];`, { limits });
  assert.equal(held, [true, true]);
  assert.is(here.requests, 2);
  assert.equal(here.tryRequest(), { ok: false, limit: 'http2MaxRequests', responseFlag: 'UO', status: 503 });
  await inWorker<void>(shared.buffer, `const b = new breaker.CircuitBreaker(extra.limits, new counters.SharedCounters({ buffer }).slot('breaker shop/web/80')); b.releaseRequest();`, { limits });
  assert.ok(here.tryRequest().ok);
});

test('a full table gives a new key a counter of its own thread, and says so once', () => {
  const full: string[] = [];
  const t = new SharedCounters({ slots: 2, onFull: (key) => full.push(key) });
  const a = t.slot('a');
  const b = t.slot('b');
  const c = t.slot('c');
  const d = t.slot('d');
  assert.ok(a.buffer instanceof SharedArrayBuffer && b.buffer instanceof SharedArrayBuffer);
  assert.not.ok(c.buffer instanceof SharedArrayBuffer);
  assert.is(t.slot('c'), c, 'the same key keeps its own counter');
  assert.is.not(c, d);
  assert.equal(full, ['c']);
});

test.run();
