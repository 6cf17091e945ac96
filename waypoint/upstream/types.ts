// What every upstream concern shares: an endpoint of a Service, the injected clock and random
// source (tests advance a fake clock and seed the random), and what became of one try to an endpoint.

/** One endpoint (pod ip:port) of a backend Service, on the node its pod runs on. */
export interface Endpoint {
  ip: string;
  node: string;
  port: number;
}

/** Milliseconds on a monotonic clock. */
export type Clock = () => number;
/** A number in [0, 1), as Math.random. */
export type Random = () => number;

/**
 * How one try to an endpoint ended: the response status (for a gRPC response, the HTTP status, with
 * its grpc-status given beside it), or a failure the proxy saw itself before any response arrived,
 * which Envoy calls locally originated:
 * - connect-failure: the connection (or HBONE CONNECT stream) to the endpoint failed or timed out;
 * - refused-stream: the upstream refused the stream (HTTP/2 REFUSED_STREAM), so it never saw it;
 * - reset-before-request: the upstream reset before any byte of the request reached it;
 * - reset: the upstream reset after the request was sent, before a response header;
 * - timeout: no response within the per-try or request timeout.
 */
export type UpstreamResult = number | LocalFailure;
export type LocalFailure = 'connect-failure' | 'refused-stream' | 'reset-before-request' | 'reset' | 'timeout';

export function endpointKey(e: Endpoint): string {
  return `${e.ip}:${e.port}`;
}

/** Istio's "unlimited" for connection pool settings: 2^32-1. */
export const unlimited = 4294967295;

