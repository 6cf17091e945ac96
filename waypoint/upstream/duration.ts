// Istio's durations (Go's time.ParseDuration, as Istio's CRDs check them) into milliseconds: 10s,
// 1m30s, 1.5s, 250ms. shared/duration.ts reads the CLI's single-unit form; this reads the API's.

import { AmbitError } from '../../shared/errors.js';

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
