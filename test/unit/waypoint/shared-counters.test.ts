// The counters the waypoint's event loops share (waypoint/upstream/shared-counters.ts), across real
// worker threads: a key names the same slot in every thread, a limit holds exactly however the
// threads race for it, a circuit breaker in one thread overflows for the requests another holds, a
// LocalRateLimit's budget is spent once over both threads, outlier detection counts the errors in a
// row of both and ejects for both (one sweeps each interval), and a full table gives new keys counters
// of their own thread instead of failing.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { giveBack, SharedCounters, takeBelow } from '../../../waypoint/upstream/shared-counters.js';
import { CircuitBreaker, istioConnectionPoolDefaults } from '../../../waypoint/upstream/circuit-breaker.js';
import { RateLimiter } from '../../../waypoint/ratelimit.js';
import { istioOutlierDefaults, OutlierDetector, type OutlierEvent } from '../../../waypoint/upstream/outlier.js';

const modules = {
  counters: new URL('../../../waypoint/upstream/shared-counters.js', import.meta.url).href,
  breaker: new URL('../../../waypoint/upstream/circuit-breaker.js', import.meta.url).href,
  ratelimit: new URL('../../../waypoint/ratelimit.js', import.meta.url).href,
  outlier: new URL('../../../waypoint/upstream/outlier.js', import.meta.url).href,
};

/** Runs `body` (an async function's text, given the `counters`, `breaker`, `ratelimit` modules, `buffer` and `extra`) in a worker thread; resolves with what it returns. */
async function inWorker<T>(buffer: SharedArrayBuffer, body: string, extra: Record<string, unknown> = {}): Promise<T> {
  const w = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     (async () => {
       const counters = await import(workerData.modules.counters);
       const breaker = await import(workerData.modules.breaker);
       const ratelimit = await import(workerData.modules.ratelimit);
       const outlier = await import(workerData.modules.outlier);
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

test("a LocalRateLimit's budget is one for both threads: racing, they are allowed exactly maxTokens between them, per source too", async () => {
  const shared = new SharedCounters({ slots: 256 });
  const traffic = [
    { kind: 'LocalRateLimit', name: 'budget', namespace: 'shop', spec: { targetRefs: [{ group: '', kind: 'Service', name: 'echo' }], tokenBucket: { maxTokens: 3000, tokensPerFill: 1, fillInterval: '1h' } } },
    { kind: 'LocalRateLimit', name: 'each', namespace: 'shop', spec: { targetRefs: [{ group: '', kind: 'Service', name: 'api' }], tokenBucket: { maxTokens: 2000, tokensPerFill: 1, fillInterval: '1h' }, perSource: true } },
  ];
  const race = (service: string, source: string) =>
    `const l = new ratelimit.RateLimiter({ waypoint: 'shop/waypoint', rootNamespace: 'istio-system', shared: new counters.SharedCounters({ buffer }) }); l.update(extra.traffic);
     const go = new counters.SharedCounters({ buffer }).slot('go ${service}'); Atomics.store(go, 0, 1);
     let allowed = 0; for (let i = 0; i < 5000; i++) if (!l.take('${service}', undefined, '${source}').limited) allowed++; return allowed;`;
  for (const [service, source, budget] of [['shop/echo', 'alice', 3000], ['shop/api', 'bob', 2000]] as const) {
    const here = new RateLimiter({ waypoint: 'shop/waypoint', rootNamespace: 'istio-system', shared });
    here.update(traffic as never);
    const theirs = inWorker<number>(shared.buffer, race(service, source), { traffic });
    const deadline = Date.now() + 10_000;
    while (Atomics.load(shared.slot(`go ${service}`), 0) === 0 && Date.now() < deadline);
    let mine = 0;
    for (let i = 0; i < 5000; i++) if (!here.take(service, undefined, source)!.limited) mine++;
    const other = await theirs;
    assert.is(mine + other, budget, `${service}: this thread was allowed ${mine}, the worker ${other}`);
    // Another source has a budget of its own under perSource, and none is left of the shared one.
    assert.is(here.take(service, undefined, 'carol')!.limited, service === 'shop/echo');
  }
});

test('outlier detection: 5xx in a row over both threads eject the endpoint for both, and one sweep returns it', async () => {
  const shared = new SharedCounters({ slots: 256 });
  const config = { ...istioOutlierDefaults, maxEjectionPercent: 100, baseEjectionTimeMs: 1000, intervalMs: 1000 };
  const clock = { ms: 5_000_000 };
  const events: OutlierEvent[] = [];
  const here = new OutlierDetector(config, () => clock.ms, (e) => events.push(e), { counters: shared, scope: 'shop/echo/80' });
  const endpoints = ['10.0.0.1:8080', '10.0.0.2:8080'];
  here.setEndpoints(endpoints);
  const version = here.version;
  for (let i = 0; i < 3; i++) here.report(endpoints[0]!, 503);
  // The worker's detector over the same Service: two more 5xx make five in a row.
  const seen = await inWorker<{ ejected: boolean; events: string[]; swept: number }>(
    shared.buffer,
    `const d = new outlier.OutlierDetector(extra.config, () => extra.now, undefined, { counters: new counters.SharedCounters({ buffer }), scope: 'shop/echo/80' });
     d.setEndpoints(extra.endpoints);
     const events = [d.report(extra.endpoints[0], 503), d.report(extra.endpoints[0], 502)].filter(Boolean).map((e) => e.type);
     return { ejected: d.isEjected(extra.endpoints[0]), events, swept: 0 };`,
    { config, endpoints, now: clock.ms },
  );
  assert.equal(seen, { ejected: true, events: ['ejected'], swept: 0 }, 'the fifth error in a row, in the worker, ejects it');
  assert.ok(here.isEjected(endpoints[0]!), 'and this thread sees it ejected');
  assert.not.ok(here.isEjected(endpoints[1]!));
  assert.ok(here.version > version, 'its version moved, so its balancer looks again');
  assert.is(here.report(endpoints[0]!, 503), undefined, 'results from an ejected endpoint are ignored');
  // After the ejection time, the worker sweeps first and returns it; this thread's sweep of the same interval does nothing.
  clock.ms += 1500;
  const returned = await inWorker<string[]>(
    shared.buffer,
    `const d = new outlier.OutlierDetector(extra.config, () => extra.now, undefined, { counters: new counters.SharedCounters({ buffer }), scope: 'shop/echo/80' });
     d.setEndpoints(extra.endpoints);
     return d.sweep().map((e) => e.type + ' ' + e.key);`,
    { config, endpoints, now: clock.ms },
  );
  assert.equal(returned, ['returned 10.0.0.1:8080']);
  assert.not.ok(here.isEjected(endpoints[0]!));
  assert.equal(here.sweep(), [], 'one sweep per interval over all event loops');
  assert.equal(events, [], 'events are told by the event loop that caused them');
});

test('a full table gives a new key fields of its own thread, counts it, and says so once', () => {
  const full: string[] = [];
  const t = new SharedCounters({ slots: 2, onFull: (key) => full.push(key) });
  const a = t.slot('a');
  const b = t.slot('b');
  const c = t.slot('c');
  const d = t.slot('d');
  assert.ok(a.buffer instanceof SharedArrayBuffer && b.buffer instanceof SharedArrayBuffer);
  assert.is(t.slot('a'), a, 'a key placed keeps its slot');
  assert.not.ok(c.buffer instanceof SharedArrayBuffer);
  assert.is.not(c, d);
  assert.equal(full, ['c']);
  assert.is(t.pastFull, 2);
  assert.equal([t.used(), t.capacity], [2, 2]);
});

test.run();
