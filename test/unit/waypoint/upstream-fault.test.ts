// Fault injection: the share of requests delayed or aborted matches the percentage, aborts carry
// the HTTP or gRPC status, and the access log gets DI and FI.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Fault } from '../../../waypoint/upstream/fault.js';
import { seededRandom } from '../../helpers/random.js';

test('a 50% abort aborts about half of many requests', () => {
  const f = new Fault({ abort: { httpStatus: 503, percentage: { value: 50 } } }, seededRandom(42));
  let aborted = 0;
  const draws = 20_000;
  for (let i = 0; i < draws; i++) {
    const d = f.decide();
    if (d.abort) {
      aborted++;
      assert.is(d.abort.httpStatus, 503);
      assert.is(d.responseFlags, 'FI');
    }
  }
  assert.ok(Math.abs(aborted / draws - 0.5) < 0.015, `${aborted} of ${draws}`);
  assert.is(f.counters.aborts, aborted);
});

test('a 10% delay delays about one request in ten, by the fixed delay, flagged DI', () => {
  const f = new Fault({ delay: { fixedDelay: '1.5s', percentage: { value: 10 } } }, seededRandom(7));
  let delayed = 0;
  for (let i = 0; i < 20_000; i++) {
    const d = f.decide();
    if (d.delayMs) {
      delayed++;
      assert.is(d.delayMs, 1500);
      assert.is(d.responseFlags, 'DI');
    } else assert.is(d.responseFlags, '');
  }
  assert.ok(Math.abs(delayed / 20_000 - 0.1) < 0.01, `${delayed}`);
});

test('delay and abort are drawn apart, and both at 100% give DI,FI', () => {
  const d = new Fault({ delay: { fixedDelay: '10ms', percentage: { value: 100 } }, abort: { httpStatus: 500, percentage: { value: 100 } } }, seededRandom(1)).decide();
  assert.equal({ delayMs: d.delayMs, status: d.abort?.httpStatus, flags: d.responseFlags }, { delayMs: 10, status: 500, flags: 'DI,FI' });
});

test('a gRPC abort answers 200 with the gRPC status code', () => {
  const d = new Fault({ abort: { grpcStatus: 'UNAVAILABLE', percentage: { value: 100 } } }, seededRandom(1)).decide();
  assert.equal(d.abort, { httpStatus: 200, grpcStatus: 14 });
});

test('a 0% fault never fires', () => {
  const f = new Fault({ abort: { httpStatus: 503, percentage: { value: 0 } } }, seededRandom(3));
  for (let i = 0; i < 1000; i++) assert.is(f.decide().abort, undefined);
});

test.run();
