// Durations on command lines and in files: 90s, 5m, 24h, 7d (or a bare number of seconds).

import { AmbitError } from './errors.js';

const units: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

export function parseDuration(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new AmbitError('BadDuration', `${what} ${JSON.stringify(text)}: must be a duration such as 90s, 5m, 24h or 7d`);
  return Number(m[1]) * units[m[2] ?? 's']!;
}
