// One HTTP/2 stream of ambit's session as a Duplex: what the peer sends in DATA is its readable
// side, what is written to it goes out as DATA, end() sends END_STREAM, destroy() or close(code)
// sends RST_STREAM. Flow control and framing are the session's: the stream holds at most one chunk
// (Writable hands it one at a time) and tells the session when its reader took data, which is when
// the peer is given more window. The names follow Node's Http2Stream (rstCode, respond, close,
// 'response', 'aborted'), so that the pool, the server and their callers take either.

import { Duplex } from 'node:stream';
import { ErrorCode, H2StreamError, errorName } from './errors.js';
import type { H2Session, Headers } from './session.js';

type Callback = (err?: Error | null) => void;

export class H2Stream extends Duplex {
  /** RST_STREAM code sent or received; NO_ERROR once the stream closed cleanly. Undefined while open. */
  rstCode: number | undefined;
  /** HEADERS sent: the request (client) or the response (server). */
  headersSent = false;
  /** Response HEADERS seen (client). */
  responded = false;
  /** END_STREAM received, or sent. */
  remoteEnded = false;
  localEnded = false;
  /** What the peer may still send (our receive window), and what we may still send. */
  recvWindow: number;
  sendWindow: number;
  /** Bytes pushed to the readable side, and of them, given back to the peer as window. */
  pushed = 0;
  credited = 0;
  /** Bytes taken (or padding) not yet given back to the peer as stream window. */
  owed = 0;
  /** The chunk being sent, from `offset`, with its Writable callback; held while windows are shut. */
  chunk: Buffer | undefined;
  offset = 0;
  chunkCallback: Callback | undefined;
  /** A server stream's write or end waiting for respond(). */
  private heldUntilRespond: (() => void) | undefined;
  /** setTimeout()'s idle timer, refreshed (not reallocated) by traffic. */
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly session: H2Session,
    readonly id: number,
    recvWindow: number,
    sendWindow: number,
  ) {
    super({ allowHalfOpen: true, autoDestroy: true, emitClose: true, decodeStrings: true });
    this.recvWindow = recvWindow;
    this.sendWindow = sendWindow;
  }

  /** The response to a request (server): `:status` and headers, ending the stream when `endStream`. */
  respond(headers: Headers, options?: { endStream?: boolean }): void {
    if (this.headersSent) throw new H2StreamError(ErrorCode.INTERNAL_ERROR, `stream ${this.id} has already responded`);
    if (this.destroyed) return;
    const end = options?.endStream === true;
    this.headersSent = true;
    this.session.sendHeaders(this, headers, end);
    if (end) {
      this.localEnded = true;
      this.settle();
    }
    const held = this.heldUntilRespond;
    this.heldUntilRespond = undefined;
    held?.();
  }

  /** Ends the stream with RST_STREAM `code` (NO_ERROR by default), as Node's Http2Stream.close. */
  close(code: number = ErrorCode.NO_ERROR): void {
    if (this.destroyed) return;
    if (this.rstCode === undefined) {
      this.rstCode = code;
      this.session.sendReset(this, code);
    }
    this.destroy();
  }

  /** 'timeout' after `ms` without traffic either way (0 stops it), as a socket's and Node's Http2Stream's setTimeout. */
  setTimeout(ms: number, cb?: () => void): this {
    if (cb) this.once('timeout', cb);
    clearTimeout(this.idleTimer);
    this.idleTimer = ms > 0 && !this.destroyed ? setTimeout(() => this.emit('timeout'), ms).unref() : undefined;
    return this;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: Callback): void {
    this.idleTimer?.refresh();
    if (!this.headersSent) {
      this.heldUntilRespond = () => this._write(chunk, _encoding, cb);
      return;
    }
    if (chunk.length === 0) return cb();
    this.chunk = chunk;
    this.offset = 0;
    this.chunkCallback = cb;
    this.session.sendData(this);
  }

  override _final(cb: Callback): void {
    if (!this.headersSent) {
      this.heldUntilRespond = () => this._final(cb);
      return;
    }
    if (!this.localEnded) {
      this.localEnded = true;
      this.session.sendEnd(this);
    }
    this.settle();
    cb();
  }

  override _read(): void {
    this.session.consumed(this);
  }

  /** DATA from the peer, already counted against the windows. */
  receive(data: Buffer): void {
    this.idleTimer?.refresh();
    this.pushed += data.length;
    this.push(data);
    // A reader in flowing mode took it at once: the peer may have it back as window.
    if (this.readableLength === 0) this.session.consumed(this);
  }

  /** END_STREAM from the peer. */
  receiveEnd(): void {
    if (this.remoteEnded) return;
    this.remoteEnded = true;
    this.push(null);
    this.settle();
  }

  /** RST_STREAM from the peer: the stream is over whatever was pending. */
  receiveReset(code: number): void {
    if (this.destroyed) return;
    this.rstCode = code;
    if (!this.remoteEnded || !this.localEnded) this.emit('aborted');
    // CANCEL is how a client abandons a request: not an error, as in Node's http2.
    this.destroy(code === ErrorCode.NO_ERROR || code === ErrorCode.CANCEL ? undefined : new H2StreamError(code, `the peer reset stream ${this.id} with ${errorName(code)}`));
  }

  /** Both directions ended: the stream is closed, with code NO_ERROR. */
  private settle(): void {
    if (this.remoteEnded && this.localEnded && this.rstCode === undefined) {
      this.rstCode = ErrorCode.NO_ERROR;
      this.session.streamDone(this);
      // Ended by respond({ endStream }): the Writable ends too, so the stream closes (autoDestroy)
      // once its reader has the end.
      if (!this.writableEnded) this.end();
    }
  }

  override _destroy(err: Error | null, cb: Callback): void {
    // Still open in some direction: the peer is told with RST_STREAM (NO_ERROR for a destroy
    // without an error, as Node's http2 does; INTERNAL_ERROR with one).
    if (this.rstCode === undefined) {
      const code = err ? (err instanceof H2StreamError ? err.h2Code : ErrorCode.INTERNAL_ERROR) : ErrorCode.NO_ERROR;
      this.rstCode = code;
      this.session.sendReset(this, code);
    }
    this.heldUntilRespond = undefined;
    clearTimeout(this.idleTimer);
    const pending = this.chunkCallback;
    this.chunk = undefined;
    this.chunkCallback = undefined;
    this.session.streamDone(this);
    // Bytes the reader will never take still count against the session's window: give them back.
    this.session.discarded(this.readableLength);
    pending?.(err ?? new H2StreamError(this.rstCode, `stream ${this.id} closed before the write went out`));
    // Node's Http2Stream raises an error for a reset other than NO_ERROR and CANCEL.
    if (!err && this.rstCode !== ErrorCode.NO_ERROR && this.rstCode !== ErrorCode.CANCEL) err = new H2StreamError(this.rstCode, `stream ${this.id} was reset with ${errorName(this.rstCode)}`);
    cb(err);
  }
}
