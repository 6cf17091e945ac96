// Waiting in unit tests for a state, never for a time: polls until `fn` gives a truthy value and
// returns it, or fails naming what was awaited. The deadline is generous, since slower machines than
// this one run the suite; it bounds a failure, it does not pace a pass.

export async function until<T>(what: string, fn: () => T | undefined | null | false, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
