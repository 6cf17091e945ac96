// Long work on the agent's one event loop, cut into slices: the caller asks `due()` between small
// steps and, when the slice has run its budget, awaits `pause()`, which lets timers, sockets and
// TLS handshakes queued meanwhile run before the work goes on. Knows nothing of what the work is.

import { setImmediate as nextTurn } from 'node:timers/promises';

/** How long one slice of background work may hold the event loop (about a p99 budget for traffic). */
export const defaultSliceMs = 4;

export class Pacer {
  private sliceStart = performance.now();

  constructor(private readonly sliceMs = defaultSliceMs) {}

  /** Whether the current slice has used its budget; cheap enough to ask every few hundred steps. */
  due(): boolean {
    return performance.now() - this.sliceStart >= this.sliceMs;
  }

  /** Yields to the event loop (I/O callbacks run first), then starts a new slice. */
  async pause(): Promise<void> {
    await nextTurn();
    this.sliceStart = performance.now();
  }
}
