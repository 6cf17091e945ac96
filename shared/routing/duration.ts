// Gateway API durations (GEP-2257): one to four <number><unit> parts, units h, m, s and ms, as in
// `10s`, `500ms` or `1h2m`. The schema checks the shape; this turns it into milliseconds.

const part = /([0-9]{1,5})(ms|h|m|s)/y;
const unitMs: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };

/** Milliseconds, or undefined when the text is not a GEP-2257 duration. `0s` gives 0. */
export function parseGatewayDuration(text: string): number | undefined {
  if (text.length === 0) return undefined;
  part.lastIndex = 0;
  let total = 0;
  let parts = 0;
  while (part.lastIndex < text.length) {
    const m = part.exec(text);
    if (!m || ++parts > 4) return undefined;
    total += Number(m[1]) * unitMs[m[2]!]!;
  }
  return total;
}
