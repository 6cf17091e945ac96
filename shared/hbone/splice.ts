// Joining two byte streams both ways, the data path's innermost loop: each chunk read from one side
// is written to the other, reading pauses while the other side's buffer is full and resumes on its
// 'drain', an end (FIN, END_STREAM) is passed on as an end, so half-closed connections work, and a
// failure or an early close of either side is reported once. stream.pipeline does the same, but
// builds an AbortController, a DOMException and end-of-stream watchers per direction: about 7% of
// the CPU of a short connection (npm run bench:hbone). Nothing here allocates per chunk.

import type { Duplex } from 'node:stream';

/**
 * Both directions between `a` and `b`. `onFailure` runs once, when either side errors or closes
 * before it both ended and finished (a reset, a destroy, an aborted stream); the caller decides
 * how to end the other (a TCP reset, an RST_STREAM). A side that was paused (a client whose tunnel
 * was not up yet) stays paused until its owner resumes it.
 */
export function splice(a: Duplex, b: Duplex, onFailure: (err?: Error) => void): void {
  let failed = false;
  const fail = (err?: Error) => {
    if (failed) return;
    failed = true;
    onFailure(err);
  };
  // Permanent listeners: a side may emit a second error while it is destroyed.
  a.on('error', fail);
  b.on('error', fail);
  const closed = (s: Duplex) => () => {
    if (!s.readableEnded || !s.writableFinished) fail();
  };
  a.once('close', closed(a));
  b.once('close', closed(b));
  copy(a, b);
  copy(b, a);
}

/** `from` into `to` with backpressure, and its end. */
function copy(from: Duplex, to: Duplex): void {
  from.on('data', (chunk: Buffer) => {
    if (!to.write(chunk)) from.pause();
  });
  to.on('drain', () => from.resume());
  from.once('end', () => to.end());
}
