// DestinationRule's traffic policy and the FaultInjection kind are validated before they are stored:
// Istio's fields pass, a misspelt or unsupported field is refused with its name.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { validateResources } from '../../../shared/resources/validate.js';
import { kindByName } from '../../../shared/resources/kinds.js';

const rule = (trafficPolicy: unknown) => ({ apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'web', namespace: 'shop' }, spec: { host: 'web', trafficPolicy } });
const fault = (spec: unknown) => ({ apiVersion: 'ambit.dev/v1alpha1', kind: 'FaultInjection', metadata: { name: 'flaky', namespace: 'shop' }, spec });
const fields = (r: unknown) => validateResources([r]).map((p) => p.field);

test("Istio's connectionPool, outlierDetection and consistent-hash load balancing are accepted", () => {
  const r = rule({
    connectionPool: { tcp: { maxConnections: 100, connectTimeout: '30ms' }, http: { http1MaxPendingRequests: 10, http2MaxRequests: 1000, maxRequestsPerConnection: 10, maxRetries: 3, idleTimeout: '1m30s' } },
    outlierDetection: { consecutive5xxErrors: 7, consecutiveGatewayErrors: 3, interval: '5m', baseEjectionTime: '15m', maxEjectionPercent: 100, minHealthPercent: 50 },
    loadBalancer: { consistentHash: { httpCookie: { name: 'user', path: '/', ttl: '0s' }, ringHash: { minimumRingSize: 4096 } }, localityLbSetting: { enabled: true } },
  });
  assert.equal(validateResources([r]), []);
  assert.equal(fields(rule({ loadBalancer: { simple: 'LEAST_REQUEST' } })), []);
  assert.equal(fields(rule({ loadBalancer: { consistentHash: { useSourceIp: true, maglev: { tableSize: 65537 } } } })), []);
});

test('a misspelt connection pool field is refused by name', () => {
  assert.equal(fields(rule({ connectionPool: { http: { maxRetrys: 3 } } })), ['spec.trafficPolicy.connectionPool.http.maxRetrys']);
});

test('a field ambit does not implement (subsets, locality failover) is refused, not ignored', () => {
  assert.equal(fields(rule({ loadBalancer: { localityLbSetting: { enabled: true, failover: [{ from: 'a', to: 'b' }] } } })), ['spec.trafficPolicy.loadBalancer.localityLbSetting.failover']);
  const withSubsets = rule({});
  (withSubsets.spec as Record<string, unknown>).subsets = [{ name: 'v1', labels: { version: 'v1' } }];
  assert.equal(fields(withSubsets), ['spec.subsets']);
});

test("durations must be in Istio's format and percentages at most 100", () => {
  assert.equal(fields(rule({ outlierDetection: { interval: '10 seconds', maxEjectionPercent: 150 } })), ['spec.trafficPolicy.outlierDetection.interval', 'spec.trafficPolicy.outlierDetection.maxEjectionPercent']);
});

test('simple and consistentHash together are refused, naming the second', () => {
  assert.equal(fields(rule({ loadBalancer: { simple: 'RANDOM', consistentHash: { useSourceIp: true } } })), ['spec.trafficPolicy.loadBalancer.consistentHash', 'spec.trafficPolicy.loadBalancer.simple']);
});

test('a consistent hash must say what it hashes, and only one thing', () => {
  assert.ok(fields(rule({ loadBalancer: { consistentHash: {} } })).includes('spec.trafficPolicy.loadBalancer.consistentHash.httpHeaderName'));
  assert.ok(fields(rule({ loadBalancer: { consistentHash: { httpHeaderName: 'x-user', useSourceIp: true } } })).includes('spec.trafficPolicy.loadBalancer.consistentHash.useSourceIp'));
});

test('FaultInjection takes a delay and an abort with HTTP or gRPC status, and is known to the CLI', () => {
  assert.equal(validateResources([fault({ delay: { fixedDelay: '5s', percentage: { value: 12.5 } }, abort: { httpStatus: 503, percentage: { value: 50 } } })]), []);
  assert.equal(validateResources([fault({ abort: { grpcStatus: 'UNAVAILABLE', percentage: { value: 100 } } })]), []);
  assert.is(kindByName('faultinjections')?.kind, 'FaultInjection');
});

test('a FaultInjection abort with both statuses, an unknown gRPC status or no percentage is refused by field', () => {
  assert.ok(fields(fault({ abort: { httpStatus: 503, grpcStatus: 'UNAVAILABLE', percentage: { value: 1 } } })).includes('spec.abort.grpcStatus'));
  assert.equal(fields(fault({ abort: { grpcStatus: 'BROKEN', percentage: { value: 1 } } })), ['spec.abort.grpcStatus']);
  assert.equal(fields(fault({ delay: { fixedDelay: '1s' } })), ['spec.delay.percentage']);
  assert.equal(fields(fault({ delay: { fixedDelay: '1s', percentage: { value: 1 } }, retry: {} })), ['spec.retry']);
});

test('an HTTPRoute refers to a FaultInjection with an ExtensionRef filter', () => {
  const route = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'web', namespace: 'shop' },
    spec: { parentRefs: [{ kind: 'Service', name: 'web' }], rules: [{ filters: [{ type: 'ExtensionRef', extensionRef: { group: 'ambit.dev', kind: 'FaultInjection', name: 'flaky' } }], backendRefs: [{ name: 'web', port: 80 }] }] },
  };
  assert.equal(validateResources([route]), []);
});

test.run();
