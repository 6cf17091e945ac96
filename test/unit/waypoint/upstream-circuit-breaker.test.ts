// Connection pool limits: at the limit the next try overflows (503 UO, counted), and a released
// slot lets the next one through; without a DestinationRule there is, in effect, no limit.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CircuitBreaker, istioConnectionPoolDefaults } from '../../../waypoint/upstream/circuit-breaker.js';

const limits = (l: Partial<typeof istioConnectionPoolDefaults>) => new CircuitBreaker({ ...istioConnectionPoolDefaults, ...l });

test('requests beyond http2MaxRequests overflow with 503 UO, and are admitted again once one finishes', () => {
  const b = limits({ http2MaxRequests: 2 });
  assert.ok(b.tryRequest().ok);
  assert.ok(b.tryRequest().ok);
  const over = b.tryRequest();
  assert.equal(over, { ok: false, limit: 'http2MaxRequests', responseFlag: 'UO', status: 503 });
  assert.is(b.overflows.http2MaxRequests, 1);
  b.releaseRequest();
  assert.ok(b.tryRequest().ok);
});

test('at maxConnections a request waits as pending, and overflows past http1MaxPendingRequests', () => {
  const b = limits({ maxConnections: 1, http1MaxPendingRequests: 1 });
  assert.ok(b.tryConnection().ok);
  assert.is(b.tryConnection().ok, false);
  assert.ok(b.tryPending().ok);
  const over = b.tryPending();
  assert.ok(!over.ok && over.limit === 'http1MaxPendingRequests' && over.responseFlag === 'UO');
  assert.equal(b.overflows, { maxConnections: 1, http1MaxPendingRequests: 1, http2MaxRequests: 0, maxRetries: 0 });
  // The waiting request gets the connection when it frees.
  b.releasePending();
  b.releaseConnection();
  assert.ok(b.tryConnection().ok);
});

test('retries beyond maxRetries are not made', () => {
  const b = limits({ maxRetries: 1 });
  assert.ok(b.tryRetry().ok);
  assert.is(b.tryRetry().ok, false);
  b.releaseRetry();
  assert.ok(b.tryRetry().ok);
});

test('a connection is closed after maxRequestsPerConnection requests; 0 means never', () => {
  assert.ok(limits({ maxRequestsPerConnection: 1 }).connectionSpent(1));
  assert.not.ok(limits({ maxRequestsPerConnection: 3 }).connectionSpent(2));
  assert.not.ok(new CircuitBreaker().connectionSpent(1_000_000));
});

test("without a DestinationRule, Istio's defaults admit thousands of concurrent requests", () => {
  const b = new CircuitBreaker();
  for (let i = 0; i < 10_000; i++) assert.ok(b.tryRequest().ok && b.tryConnection().ok && b.tryPending().ok && b.tryRetry().ok);
  assert.is(istioConnectionPoolDefaults.http2MaxRequests, 2 ** 32 - 1);
});

test.run();
