// Retries: Istio's default for a route without `retry`, an HTTPRoute's codes and attempts, and
// Envoy's jittered exponential backoff within its bounds.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { backoffMs, decideRetry, retryPolicyFor } from '../../../waypoint/upstream/retry.js';
import { seededRandom } from '../../helpers/random.js';

const random = seededRandom(11);

test('without a route retry, a request that never reached the app is retried twice', () => {
  const p = retryPolicyFor(undefined)!;
  for (const failure of ['connect-failure', 'refused-stream', 'reset-before-request'] as const) {
    assert.ok(decideRetry(p, failure, 0, random).retry, failure);
    assert.ok(decideRetry(p, failure, 1, random).retry);
    assert.equal(decideRetry(p, failure, 2, random), { retry: false, reason: 'retries-exhausted' });
  }
});

test('without a route retry, no HTTP status is retried (503 included), nor a reset after the request was sent', () => {
  const p = retryPolicyFor(undefined)!;
  for (const result of [503, 500, 'reset', 'timeout'] as const) assert.equal(decideRetry(p, result, 0, random), { retry: false, reason: 'not-retriable' });
});

test('gRPC UNAVAILABLE and CANCELLED are retried by default', () => {
  const p = retryPolicyFor(undefined)!;
  assert.ok(decideRetry(p, 200, 0, random, 14).retry);
  assert.ok(decideRetry(p, 200, 0, random, 1).retry);
  assert.not.ok(decideRetry(p, 200, 0, random, 13).retry);
});

test("an HTTPRoute's codes are retried up to its attempts", () => {
  const p = retryPolicyFor({ attempts: 3, codes: [503, 504] })!;
  assert.ok(decideRetry(p, 503, 2, random).retry);
  assert.equal(decideRetry(p, 503, 3, random), { retry: false, reason: 'retries-exhausted' });
  assert.not.ok(decideRetry(p, 500, 0, random).retry);
  assert.ok(decideRetry(p, 'connect-failure', 0, random).retry);
});

test('attempts: 0 turns retries off', () => {
  assert.is(retryPolicyFor({ attempts: 0 }), undefined);
});

test('backoff is jittered within [0, (2^N - 1) × base) and never reaches 10 × base', () => {
  const p = retryPolicyFor({ backoff: '100ms' })!;
  assert.is(p.baseIntervalMs, 100);
  const max = [0, 0, 0, 0, 0];
  for (let i = 0; i < 20_000; i++) {
    for (let n = 1; n <= 5; n++) {
      const d = backoffMs(p, n, random);
      assert.ok(d >= 0);
      max[n - 1] = Math.max(max[n - 1]!, d);
    }
  }
  // Upper bounds 100, 300, 700, then the 1000 ms cap; the jitter comes close to each.
  const bounds = [100, 300, 700, 1000, 1000];
  max.forEach((m, i) => assert.ok(m < bounds[i]! && m > bounds[i]! * 0.95, `retry ${i + 1}: max ${m}`));
});

test("Envoy's default base of 25 ms applies without a backoff", () => {
  const p = retryPolicyFor({ attempts: 1 })!;
  assert.is(p.baseIntervalMs, 25);
  assert.is(p.maxIntervalMs, 250);
  const d = decideRetry(p, 'connect-failure', 0, random);
  assert.ok(d.retry && d.delayMs < 25);
});

test('under consistent hashing a retry stays with the endpoint of the key', () => {
  assert.is(retryPolicyFor(undefined, true)!.avoidPreviousEndpoint, false);
  assert.is(retryPolicyFor(undefined, false)!.avoidPreviousEndpoint, true);
});

test.run();
