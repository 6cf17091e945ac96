// Istio's durations for the waypoint's traffic policies. The parser lives in shared/duration.ts,
// since the controller checks the same durations when a resource is applied (LocalRateLimit).

export { istioDurationMs } from '../../shared/duration.js';
