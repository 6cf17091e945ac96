// Outlier detection as a user sees it: an endpoint answering 5xx in a row is ejected, gets no
// requests, and returns after the ejection time; longer each time; never more than
// maxEjectionPercent of the endpoints out.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { istioOutlierDefaults, type OutlierConfig, OutlierDetector, type OutlierEvent } from '../../../waypoint/upstream/outlier.js';
import { FakeClock } from './upstream-helpers.js';
import { SharedCounters } from '../../../waypoint/upstream/shared-counters.js';

const keys = (n: number) => Array.from({ length: n }, (_, i) => `10.0.0.${i + 1}:8080`);
function detector(n: number, config: Partial<OutlierConfig> = {}) {
  const clock = new FakeClock();
  const events: OutlierEvent[] = [];
  const d = new OutlierDetector({ ...istioOutlierDefaults, maxEjectionPercent: 100, ...config }, clock.read, (e) => events.push(e));
  d.setEndpoints(keys(n));
  return { d, clock, events };
}

test('an endpoint is ejected at the fifth 5xx in a row, not before', () => {
  const { d } = detector(3);
  for (let i = 0; i < 4; i++) assert.is(d.report('10.0.0.1:8080', 500), undefined);
  assert.not.ok(d.isEjected('10.0.0.1:8080'));
  const e = d.report('10.0.0.1:8080', 503);
  assert.equal(e && { type: e.type, reason: 'reason' in e && e.reason }, { type: 'ejected', reason: 'consecutive-5xx' });
  assert.ok(d.isEjected('10.0.0.1:8080'));
});

test('a success in between starts the count again', () => {
  const { d } = detector(3, { consecutive5xxErrors: 3 });
  d.report('10.0.0.1:8080', 500);
  d.report('10.0.0.1:8080', 500);
  d.report('10.0.0.1:8080', 200);
  d.report('10.0.0.1:8080', 500);
  d.report('10.0.0.1:8080', 500);
  assert.not.ok(d.isEjected('10.0.0.1:8080'));
});

test('connect failures count as 503 unless local-origin errors are split off', () => {
  const { d } = detector(3, { consecutive5xxErrors: 2 });
  d.report('10.0.0.1:8080', 'connect-failure');
  d.report('10.0.0.1:8080', 'connect-failure');
  assert.ok(d.isEjected('10.0.0.1:8080'));
  const split = detector(3, { consecutive5xxErrors: 2, splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 3 }).d;
  split.report('10.0.0.1:8080', 'connect-failure');
  split.report('10.0.0.1:8080', 'connect-failure');
  assert.not.ok(split.isEjected('10.0.0.1:8080'));
  assert.is(split.report('10.0.0.1:8080', 'connect-failure')?.type, 'ejected');
});

test('consecutive gateway errors eject on 502/503/504 and a 500 interrupts them', () => {
  const { d } = detector(3, { consecutive5xxErrors: 0, consecutiveGatewayErrors: 3 });
  d.report('10.0.0.1:8080', 502);
  d.report('10.0.0.1:8080', 504);
  d.report('10.0.0.1:8080', 500);
  d.report('10.0.0.1:8080', 503);
  assert.not.ok(d.isEjected('10.0.0.1:8080'));
  d.report('10.0.0.1:8080', 'timeout');
  const e = d.report('10.0.0.1:8080', 502);
  assert.ok(e?.type === 'ejected' && e.reason === 'consecutive-gateway-errors');
});

test('an ejected endpoint returns at the first sweep after baseEjectionTime, as an event', () => {
  const { d, clock, events } = detector(3, { baseEjectionTimeMs: 30_000, intervalMs: 10_000 });
  for (let i = 0; i < 5; i++) d.report('10.0.0.1:8080', 500);
  clock.advance(10_000);
  assert.equal(d.sweep(), []);
  clock.advance(10_000);
  d.sweep();
  assert.ok(d.isEjected('10.0.0.1:8080'));
  clock.advance(10_000);
  const back = d.sweep();
  assert.equal(back, [{ type: 'returned', key: '10.0.0.1:8080', at: clock.now, ejectedMs: 30_000 }]);
  assert.not.ok(d.isEjected('10.0.0.1:8080'));
  assert.equal(events.map((e) => e.type), ['ejected', 'returned']);
  assert.equal(d.counters, { ejected: 1, overflow: 0, returned: 1 });
});

test('an endpoint ejected again soon after is ejected for longer, up to 300s', () => {
  const { d, clock } = detector(3, { baseEjectionTimeMs: 100_000, intervalMs: 1000 });
  const times: number[] = [];
  for (let round = 0; round < 5; round++) {
    let e: OutlierEvent | undefined;
    for (let i = 0; i < 5; i++) e = d.report('10.0.0.1:8080', 500) ?? e;
    assert.ok(e?.type === 'ejected');
    times.push(e.forMs);
    while (d.isEjected('10.0.0.1:8080')) {
      clock.advance(1000);
      d.sweep();
    }
  }
  assert.equal(times, [100_000, 200_000, 300_000, 300_000, 300_000]);
});

test('a host that stays healthy for intervals earns its shorter ejection back', () => {
  const { d, clock } = detector(3, { baseEjectionTimeMs: 10_000, intervalMs: 10_000 });
  const eject = () => {
    let e: OutlierEvent | undefined;
    for (let i = 0; i < 5; i++) e = d.report('10.0.0.1:8080', 500) ?? e;
    return e?.type === 'ejected' ? e.forMs : -1;
  };
  assert.is(eject(), 10_000);
  clock.advance(10_000);
  d.sweep();
  // Two healthy intervals: the multiplier goes back down to zero.
  clock.advance(10_000);
  d.sweep();
  clock.advance(10_000);
  d.sweep();
  assert.is(eject(), 10_000);
});

test("maxEjectionPercent keeps enough endpoints in; Istio's default 10% still ejects one", () => {
  const { d } = detector(10, { maxEjectionPercent: 20, consecutive5xxErrors: 1 });
  const results = keys(10).map((k) => d.report(k, 500)?.type);
  assert.is(results.filter((t) => t === 'ejected').length, 2);
  assert.is(results.filter((t) => t === 'overflow').length, 8);
  assert.is(d.ejectedCount, 2);
  const small = detector(3, { maxEjectionPercent: istioOutlierDefaults.maxEjectionPercent, consecutive5xxErrors: 1 }).d;
  assert.equal(keys(3).map((k) => small.report(k, 503)?.type), ['ejected', 'overflow', 'overflow']);
});

test('an endpoint that leaves takes its ejection with it', () => {
  const { d } = detector(2, { consecutive5xxErrors: 1 });
  d.report('10.0.0.1:8080', 500);
  const version = d.version;
  d.setEndpoints(['10.0.0.2:8080']);
  assert.is(d.ejectedCount, 0);
  assert.ok(d.version > version);
});

test('an ejection time past 24.8 days is held to 24.8 days, not cut short by the field it is kept in', () => {
  const { d, clock } = detector(2, { consecutive5xxErrors: 1, baseEjectionTimeMs: 720 * 3600_000, intervalMs: 10_000 });
  const e = d.report('10.0.0.1:8080', 500);
  assert.equal(e && e.type === 'ejected' && e.forMs, 0x7fffffff);
  clock.advance(10_000);
  assert.equal(d.sweep(), []);
  assert.ok(d.isEjected('10.0.0.1:8080'), 'still out after the first sweep');
});

test('an endpoint another event loop is ejecting counts against maxEjectionPercent, so two loops cannot pass the cap together', () => {
  const shared = new SharedCounters({ slots: 64 });
  const clock = new FakeClock();
  const d = new OutlierDetector({ ...istioOutlierDefaults, consecutive5xxErrors: 1, maxEjectionPercent: 50 }, clock.read, undefined, { counters: shared, scope: 'shop/echo/80' });
  d.setEndpoints(keys(2));
  // The other loop has taken 10.0.0.2 to eject it (state 1) and not finished.
  Atomics.store(shared.slot('outlier shop/echo/80 10.0.0.2:8080'), 3, 1);
  assert.equal(d.report('10.0.0.1:8080', 500)?.type, 'overflow');
  assert.not.ok(d.isEjected('10.0.0.1:8080'));
});

test.run();
