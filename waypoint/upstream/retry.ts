// Whether, and after how long, the waypoint retries a try that failed: the HTTPRoute rule's `retry`
// as Istio translates it, or Istio's default policy when the rule has none. Making the retry (a new
// pick avoiding the previous endpoint, the breaker's maxRetries, the request timeout) is the proxy's.
//
// What Istio does, read in istio/istio (pilot/pkg/networking/core/route/retry/retry.go and
// pilot/pkg/config/kube/gateway/conversion.go), which a waypoint's routes get like any outbound route:
// - no retry on the route: 2 retries on connect-failure, refused-stream, and the gRPC statuses
//   unavailable (14) and cancelled (1). Istio's retryOn also lists retriable-status-codes, but with no
//   codes, so no HTTP status is retried by default (503 included);
// - an HTTPRoute `retry`: the same conditions plus its `codes`; `attempts` (retries after the first
//   try) defaults to 2, and 0 turns retries off; `backoff` is Envoy's base interval.
// ambit adds reset-before-request (Istio's default for inbound routes): an upstream that reset before
// receiving any byte of the request never processed it, so a retry is as safe as after a failed connect.
//
// Every retry replays the request: the proxy makes one only while the whole body is still buffered
// (Envoy stops retrying once its buffer limit is passed); `decideRetry` cannot see that and says so.

import { istioDurationMs } from './duration.js';
import type { Random, UpstreamResult } from './types.js';

/** The Gateway API's HTTPRouteRetry. */
export interface HTTPRouteRetry {
  attempts?: number;
  codes?: number[];
  backoff?: string;
}

export type RetryOn = 'connect-failure' | 'refused-stream' | 'reset-before-request' | 'unavailable' | 'cancelled' | 'retriable-status-codes';

export interface RetryPolicy {
  /** Retries after the first try. */
  readonly numRetries: number;
  readonly retryOn: ReadonlySet<RetryOn>;
  readonly retriableStatusCodes: ReadonlySet<number>;
  readonly baseIntervalMs: number;
  /** Envoy's max_interval: 10 × the base unless set. */
  readonly maxIntervalMs: number;
  /** Envoy's previous_hosts predicate, which Istio sets except under consistent hashing. */
  readonly avoidPreviousEndpoint: boolean;
}

export type RetryDecision =
  | { retry: false; reason: 'not-retriable' | 'retries-exhausted' }
  /** Retry after `delayMs`, if the body can be replayed and the breaker has room (tryRetry). */
  | { retry: true; delayMs: number; condition: RetryOn };

/** Envoy's default base interval. */
export const defaultBaseIntervalMs = 25;
const grpcCancelled = 1;
const grpcUnavailable = 14;
const connectionConditions: RetryOn[] = ['connect-failure', 'refused-stream', 'reset-before-request', 'unavailable', 'cancelled'];
const noCodes: ReadonlySet<number> = new Set();

/**
 * The policy for a route rule: its `retry`, or Istio's default when it has none. Undefined when
 * retries are off (`attempts: 0`). `consistentHash`: the Service balances by hash, so a retry keeps
 * to the key's endpoint.
 */
export function retryPolicyFor(retry: HTTPRouteRetry | undefined, consistentHash = false): RetryPolicy | undefined {
  const numRetries = retry?.attempts ?? 2;
  if (numRetries <= 0) return undefined;
  const codes = retry?.codes?.length ? new Set(retry.codes) : noCodes;
  const baseIntervalMs = retry?.backoff !== undefined ? istioDurationMs(retry.backoff, 'retry.backoff') : defaultBaseIntervalMs;
  return {
    numRetries,
    retryOn: new Set<RetryOn>(codes.size ? [...connectionConditions, 'retriable-status-codes'] : connectionConditions),
    retriableStatusCodes: codes,
    baseIntervalMs,
    maxIntervalMs: baseIntervalMs * 10,
    avoidPreviousEndpoint: !consistentHash,
  };
}

/**
 * Whether the try that ended with `result` is retried, having made `retriesSoFar` retries already.
 * `grpcStatus` is the response's grpc-status header, when it has one.
 */
export function decideRetry(policy: RetryPolicy, result: UpstreamResult, retriesSoFar: number, random: Random, grpcStatus?: number): RetryDecision {
  const condition = matchingCondition(policy, result, grpcStatus);
  if (condition === undefined) return { retry: false, reason: 'not-retriable' };
  if (retriesSoFar >= policy.numRetries) return { retry: false, reason: 'retries-exhausted' };
  return { retry: true, delayMs: backoffMs(policy, retriesSoFar + 1, random), condition };
}

/**
 * Envoy's fully jittered exponential backoff: retry number N waits a random time in
 * [0, (2^N - 1) × base), and never as long as the max interval (10 × base unless set).
 */
export function backoffMs(policy: Pick<RetryPolicy, 'baseIntervalMs' | 'maxIntervalMs'>, retryNumber: number, random: Random): number {
  const ceiling = Math.min((2 ** Math.min(retryNumber, 30) - 1) * policy.baseIntervalMs, policy.maxIntervalMs);
  return Math.floor(random() * ceiling);
}

function matchingCondition(policy: RetryPolicy, result: UpstreamResult, grpcStatus: number | undefined): RetryOn | undefined {
  const on = policy.retryOn;
  switch (result) {
    case 'connect-failure':
    case 'refused-stream':
    case 'reset-before-request':
      return on.has(result) ? result : undefined;
    // The upstream may have acted on the request; Istio retries these only when retryOn says reset or 5xx.
    case 'reset':
    case 'timeout':
      return undefined;
  }
  if (grpcStatus === grpcUnavailable && on.has('unavailable')) return 'unavailable';
  if (grpcStatus === grpcCancelled && on.has('cancelled')) return 'cancelled';
  if (on.has('retriable-status-codes') && policy.retriableStatusCodes.has(result)) return 'retriable-status-codes';
  return undefined;
}
