// Durations on command lines and in files: 90s, 5m, 24h, 7d (or a bare number of seconds), and
// Istio's API durations (Go's time.ParseDuration form: 10s, 1m30s, 250ms), which the waypoint's
// traffic policies and the controller's apply-time checks both read.

import { AmbitError } from './errors.js';

const units: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

export function parseDuration(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new AmbitError('BadDuration', `${what} ${JSON.stringify(text)}: must be a duration such as 90s, 5m, 24h or 7d`);
  return Number(m[1]) * units[m[2] ?? 's']!;
}

const unitMs: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001, ns: 0.000001 };
const part = /([0-9]+(?:\.[0-9]+)?)(h|ms|m|s|us|ns)/y;

/** Milliseconds of an Istio duration; throws BadDuration naming `field` when it is not one. */
export function istioDurationMs(text: string, field: string): number {
  let total = 0;
  part.lastIndex = 0;
  let at = 0;
  while (at < text.length) {
    const m = part.exec(text);
    if (!m) break;
    total += Number(m[1]) * unitMs[m[2]!]!;
    at = part.lastIndex;
  }
  if (at !== text.length || text.length === 0) {
    throw new AmbitError('BadDuration', `${field} ${JSON.stringify(text)}: must be a duration such as 10s, 1m30s or 250ms`);
  }
  return total;
}
