// Exponential backoff with full jitter (a random delay below a doubling ceiling), so that many
// clients retrying the same server do not come back in step.

export class Backoff {
  private attempts = 0;

  constructor(
    private readonly minMs = 250,
    private readonly maxMs = 10_000,
  ) {}

  /** The delay before the next attempt; each call doubles the ceiling, up to `maxMs`. */
  next(): number {
    const ceiling = Math.min(this.maxMs, this.minMs * 2 ** this.attempts);
    this.attempts++;
    return Math.round(Math.random() * ceiling);
  }

  get failures(): number {
    return this.attempts;
  }

  /** After a success: the next failure waits little again. */
  reset(): void {
    this.attempts = 0;
  }
}
