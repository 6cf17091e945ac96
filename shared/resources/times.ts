// Kubernetes' two timestamp forms as the API server stores and returns them: a Time in UTC to the
// second ("2006-01-02T15:04:05Z") and a MicroTime in UTC to the microsecond
// ("2006-01-02T15:04:05.000000Z"), whatever RFC 3339 form the client wrote. Which fields are which
// is the caller's to say; a value that does not parse is left for the schema to refuse by name.

const rfc3339 = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/i;

/** `value` in UTC, its whole seconds and its fraction (digits, unpadded), or undefined if not RFC 3339. */
function parse(value: unknown): { seconds: string; fraction: string } | undefined {
  if (typeof value !== 'string') return undefined;
  const m = rfc3339.exec(value);
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]!.toUpperCase()}`);
  if (Number.isNaN(ms)) return undefined;
  return { seconds: new Date(ms).toISOString().slice(0, 19), fraction: m[2] ?? '' };
}

/** A metav1.Time as the server writes it: seconds precision (Go truncates the fraction), UTC. */
export function canonicalTime(value: unknown): unknown {
  const p = parse(value);
  return p ? `${p.seconds}Z` : value;
}

/** A metav1.MicroTime as the server writes it: six fractional digits (truncated, as Go does), UTC. */
export function canonicalMicroTime(value: unknown): unknown {
  const p = parse(value);
  return p ? `${p.seconds}.${p.fraction.padEnd(6, '0').slice(0, 6)}Z` : value;
}

/** Rewrites `obj[key]`, when present, with `f`. */
export function rewriteField(obj: Record<string, unknown> | undefined, key: string, f: (v: unknown) => unknown): void {
  if (obj && obj[key] !== undefined && obj[key] !== null) obj[key] = f(obj[key]);
}
