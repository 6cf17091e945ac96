// ambit's HTTP/2 session (RFC 9113) over one TLS socket, limited to what HBONE needs: CONNECT
// streams, the connection preface and SETTINGS, HEADERS and CONTINUATION through HPACK, DATA with
// flow control on large windows, WINDOW_UPDATE, RST_STREAM, PING and GOAWAY. DATA goes out in
// frames as large as the peer allows (1 MiB between two ambit nodes, 16 KiB to a stock peer that
// kept the default), and every frame of one event-loop turn leaves in one corked write. DATA in is
// handed to its stream as it arrives, a view of the socket's chunk, never gathered into a frame.
// The API follows the part of Node's Http2Session the pool and server use (request, ping, close,
// goaway, destroy; 'stream', 'remoteSettings', 'goaway', 'error', 'close').

import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { ErrorCode, H2SessionError, H2StreamError, errorName } from './errors.js';
import { clientPreface, defaultMaxFrameSize, defaultWindow, Flag, frame, frameHeader, frameHeaderLength, FrameType, goawayFrame, largestMaxFrameSize, maxWindow, pingFrame, rstStreamFrame, Setting, settingsFrame, windowUpdateFrame } from './frame.js';
import { type HeaderList, HpackDecoder, HpackEncoder } from './hpack.js';
import { H2Stream } from './stream.js';

export type Headers = Record<string, string | string[] | number | undefined>;
/** Received headers, as Node's http2 gives them: one value per name, repeats joined (set-cookie as a list). */
export type IncomingHeaders = Record<string, string | string[] | undefined>;

export interface H2SessionOptions {
  /** Our receive window per stream (SETTINGS_INITIAL_WINDOW_SIZE) and for the whole session. */
  streamWindow: number;
  sessionWindow: number;
  /** Streams the peer may open at once (server); more are refused with REFUSED_STREAM. */
  maxConcurrentStreams?: number;
  /** The largest frame we accept (SETTINGS_MAX_FRAME_SIZE) and the largest DATA frame we send, if the peer allows it. Default 1 MiB. */
  maxFrameSize?: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE. Default 16 KiB. */
  maxHeaderListSize?: number;
}

export interface RemoteSettings {
  headerTableSize?: number;
  enablePush?: boolean;
  maxConcurrentStreams?: number;
  initialWindowSize?: number;
  maxFrameSize?: number;
  maxHeaderListSize?: number;
}

const oneMiB = 1024 * 1024;
/** A header block (HEADERS and its CONTINUATIONs) larger than this ends the session: no HBONE peer needs it. */
const maxHeaderBlock = 64 * 1024;
/** Control frames we owe the peer (PING and SETTINGS acks) while it does not read: past this, ENHANCE_YOUR_CALM. */
const maxUnreadOutput = 32 * oneMiB;
const connectionHeaders = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);
/** A request's pseudo-headers; not :protocol, which needs SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441), never sent. */
const requestPseudo = new Set([':method', ':scheme', ':authority', ':path']);

type PingCallback = (err: Error | null, duration?: number, payload?: Buffer) => void;

export class H2Session extends EventEmitter {
  readonly isServer: boolean;
  destroyed = false;
  /** GOAWAY sent or received: no new streams. */
  closed = false;
  readonly remoteSettings: RemoteSettings = {};
  private readonly streams = new Map<number, H2Stream>();
  private readonly decoder: HpackDecoder;
  private readonly encoder = new HpackEncoder();
  private readonly o: Required<H2SessionOptions>;
  private nextStreamId: number;
  /** The highest stream id the peer opened (server), for GOAWAY and to tell idle from closed streams. */
  private lastPeerStreamId = 0;
  /** Streams with ids above this were not processed by the peer (its GOAWAY). */
  private peerLastStreamId = maxWindow;
  private sendWindow = defaultWindow;
  private recvWindow: number;
  /** Bytes our readers took and the peer has not been given back yet as session window. */
  private unacked = 0;
  private peerInitialWindow = defaultWindow;
  private peerMaxFrameSize = defaultMaxFrameSize;
  /** Streams with DATA waiting for window. */
  private readonly blocked = new Set<H2Stream>();
  /** Write callbacks waiting for the socket to drain. */
  private drainWaiters: H2Stream[] = [];
  private corked = false;
  private readonly pings: { payload: Buffer; at: number; cb: PingCallback }[] = [];
  private pingCounter = 0;

  // Frame reading state.
  private preface: number;
  private settingsSeen = false;
  private readonly header = Buffer.allocUnsafe(frameHeaderLength);
  private headerHave = 0;
  /** A non-DATA frame (or padded DATA) being gathered. */
  private payload: Buffer | undefined;
  private payloadHave = 0;
  private payloadType = 0;
  private payloadFlags = 0;
  private payloadStream = 0;
  /** A DATA frame being streamed: its stream (undefined: discarded), what is left, and its END_STREAM. */
  private dataStream: H2Stream | undefined;
  private dataLeft = 0;
  private dataEnd = false;
  private inData = false;
  /** A header block waiting for CONTINUATION. */
  private block: { streamId: number; flags: number; parts: Buffer[]; length: number } | undefined;

  constructor(
    readonly socket: Duplex,
    role: 'client' | 'server',
    options: H2SessionOptions,
  ) {
    super();
    this.isServer = role === 'server';
    this.o = { maxConcurrentStreams: 100, maxFrameSize: oneMiB, maxHeaderListSize: 16 * 1024, ...options };
    this.nextStreamId = this.isServer ? 2 : 1;
    this.preface = this.isServer ? clientPreface.length : 0;
    this.recvWindow = this.o.sessionWindow;
    this.decoder = new HpackDecoder();
    const settings: [number, number][] = [
      [Setting.INITIAL_WINDOW_SIZE, this.o.streamWindow],
      [Setting.MAX_FRAME_SIZE, this.o.maxFrameSize],
      [Setting.MAX_HEADER_LIST_SIZE, this.o.maxHeaderListSize],
    ];
    if (this.isServer) settings.unshift([Setting.MAX_CONCURRENT_STREAMS, this.o.maxConcurrentStreams]);
    else settings.unshift([Setting.ENABLE_PUSH, 0]);
    if (!this.isServer) this.write(clientPreface);
    this.write(settingsFrame(settings));
    if (this.o.sessionWindow > defaultWindow) this.write(windowUpdateFrame(0, this.o.sessionWindow - defaultWindow));
    this.onData = this.onData.bind(this);
    socket.on('data', this.onData);
    socket.on('error', (err: Error) => this.destroy(new H2SessionError(ErrorCode.INTERNAL_ERROR, `the connection failed: ${err.message}`)));
    socket.once('end', () => this.destroy(this.streams.size ? new H2SessionError(ErrorCode.CANCEL, 'the peer closed the connection with streams open') : undefined));
    socket.once('close', () => this.destroy(this.streams.size ? new H2SessionError(ErrorCode.CANCEL, 'the connection closed with streams open') : undefined));
    (socket as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
    process.nextTick(() => this.emit('connect', this));
  }

  /** Open streams. */
  get streamCount(): number {
    return this.streams.size;
  }

  // ------------------------------------------------------------------ the API

  /** A new stream (client) with the request `headers` (`:method` and `:authority` for CONNECT). */
  request(headers: Headers, options?: { endStream?: boolean }): H2Stream {
    if (this.destroyed || this.closed) throw new H2SessionError(ErrorCode.REFUSED_STREAM, 'the session is closing: no new streams');
    if (this.isServer) throw new H2SessionError(ErrorCode.INTERNAL_ERROR, 'a server opens no streams');
    if (this.nextStreamId > maxWindow) {
      this.close();
      throw new H2SessionError(ErrorCode.REFUSED_STREAM, 'the session has used every stream id');
    }
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const stream = new H2Stream(this, id, this.o.streamWindow, this.peerInitialWindow);
    this.streams.set(id, stream);
    stream.headersSent = true;
    const end = options?.endStream === true;
    this.sendHeaders(stream, headers, end);
    if (end) {
      stream.localEnded = true;
      stream.end();
    }
    return stream;
  }

  /** A PING; `cb` gets the round trip in ms, or an error if the session ends first. */
  ping(cb: PingCallback): boolean {
    if (this.destroyed) return false;
    const payload = Buffer.allocUnsafe(8);
    payload.writeUInt32BE(0x616d6269, 0); // "ambi"
    payload.writeUInt32BE(++this.pingCounter >>> 0, 4);
    this.pings.push({ payload, at: performance.now(), cb });
    this.write(pingFrame(payload, false));
    return true;
  }

  /** Raises our session receive window to `size` (Node's setLocalWindowSize). */
  setLocalWindowSize(size: number): void {
    const current = this.o.sessionWindow;
    if (size <= current || this.destroyed) return;
    this.o.sessionWindow = size;
    this.recvWindow += size - current;
    this.write(windowUpdateFrame(0, size - current));
  }

  /**
   * GOAWAY with `code` (no destroy): the streams open may finish, no new ones are accepted. With
   * `lastStreamId` below the last the peer opened, the streams above it are declared unprocessed
   * (the peer may retry them elsewhere) and dropped here.
   */
  goaway(code: number = ErrorCode.NO_ERROR, lastStreamId = this.lastPeerStreamId, debug = ''): void {
    if (this.destroyed) return;
    this.closed = true;
    this.write(goawayFrame(lastStreamId, code, debug));
    for (const s of [...this.streams.values()]) {
      const theirs = (s.id % 2 === 1) === this.isServer;
      if (theirs && s.id > lastStreamId) {
        s.rstCode = ErrorCode.REFUSED_STREAM;
        s.destroy();
      }
    }
  }

  /** Graceful close: GOAWAY, then the connection ends when the last stream does. */
  close(cb?: () => void): void {
    if (cb) this.once('close', cb);
    if (this.destroyed) return;
    if (!this.closed) this.goaway(ErrorCode.NO_ERROR);
    this.closed = true;
    this.endIfIdle();
  }

  /** Ends the session now: its streams are destroyed (with `err`, or a session error), the socket too. */
  destroy(err?: Error): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.closed = true;
    this.uncork();
    // As Node's http2: with an error, the open streams fail with it; without, they close (CANCEL).
    for (const s of [...this.streams.values()]) {
      if (s.rstCode === undefined) s.rstCode = err instanceof H2SessionError ? err.h2Code : ErrorCode.CANCEL;
      s.destroy(err);
    }
    this.streams.clear();
    this.blocked.clear();
    for (const p of this.pings.splice(0)) p.cb(err ?? new H2SessionError(ErrorCode.CANCEL, 'the session closed before the PING was answered'));
    this.socket.off('data', this.onData);
    // Written frames (a GOAWAY) leave before the socket closes.
    if (this.socket.writableLength) this.socket.end(() => this.socket.destroy());
    else this.socket.destroy();
    process.nextTick(() => {
      if (err) this.emit('error', err);
      this.emit('close');
    });
  }

  // ------------------------------------------------------------------ writing

  private write(b: Buffer): void {
    if (this.socket.destroyed) return;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.uncorkNow);
    }
    this.socket.write(b);
  }

  private readonly uncorkNow = () => this.uncork();

  private uncork(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
  }

  /** HEADERS (and CONTINUATION if the block is larger than the peer's frame size). */
  sendHeaders(stream: H2Stream, headers: Headers, endStream: boolean): void {
    const list: HeaderList = [];
    // Pseudo-headers first (RFC 9113 section 8.3).
    for (const name of Object.keys(headers)) if (name.startsWith(':')) add(list, name, headers[name]);
    for (const name of Object.keys(headers)) if (!name.startsWith(':')) add(list, name.toLowerCase(), headers[name]);
    const block = this.encoder.encode(list);
    const max = this.peerMaxFrameSize;
    let at = 0;
    let type: number = FrameType.HEADERS;
    do {
      const n = Math.min(max, block.length - at);
      const last = at + n === block.length;
      const flags = (last ? Flag.END_HEADERS : 0) | (type === FrameType.HEADERS && endStream ? Flag.END_STREAM : 0);
      this.write(frameHeader(n, type, flags, stream.id));
      this.write(block.subarray(at, at + n));
      at += n;
      type = FrameType.CONTINUATION;
    } while (at < block.length);
  }

  /** Sends what the window allows of the stream's chunk; calls its callback once all is out and the socket can take more. */
  sendData(stream: H2Stream): void {
    const chunk = stream.chunk!;
    while (stream.offset < chunk.length) {
      const room = Math.min(stream.sendWindow, this.sendWindow, this.peerMaxFrameSize, this.o.maxFrameSize);
      if (room <= 0) {
        this.blocked.add(stream);
        return;
      }
      const n = Math.min(room, chunk.length - stream.offset);
      this.write(frameHeader(n, FrameType.DATA, 0, stream.id));
      this.write(stream.offset === 0 && n === chunk.length ? chunk : chunk.subarray(stream.offset, stream.offset + n));
      stream.offset += n;
      stream.sendWindow -= n;
      this.sendWindow -= n;
    }
    stream.chunk = undefined;
    const cb = stream.chunkCallback!;
    stream.chunkCallback = undefined;
    // The socket's buffer is full: the stream's writer waits with it (backpressure end to end).
    if (this.socket.writableNeedDrain) {
      if (this.drainWaiters.length === 0) this.socket.once('drain', this.onDrain);
      this.drainWaiters.push(stream);
      stream.chunkCallback = cb;
      return;
    }
    cb();
  }

  private readonly onDrain = () => {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const s of waiters) {
      const cb = s.chunkCallback;
      s.chunkCallback = undefined;
      if (!s.destroyed) cb?.();
    }
  };

  sendEnd(stream: H2Stream): void {
    this.write(frameHeader(0, FrameType.DATA, Flag.END_STREAM, stream.id));
  }

  sendReset(stream: H2Stream, code: number): void {
    if (!this.destroyed) this.write(rstStreamFrame(stream.id, code));
  }

  /** The stream's reader took data: give the peer window back, per stream and for the session, a quarter window at a time. */
  consumed(stream: H2Stream): void {
    const taken = stream.pushed - stream.readableLength - stream.credited;
    if (taken <= 0 || this.destroyed) return;
    stream.credited += taken;
    stream.owed += taken;
    this.unacked += taken;
    // A stream the peer ended needs no more window.
    if (!stream.remoteEnded && !stream.destroyed && stream.owed >= this.o.streamWindow / 4) {
      stream.recvWindow += stream.owed;
      this.write(windowUpdateFrame(stream.id, stream.owed));
      stream.owed = 0;
    }
    this.creditSession();
  }

  /** Bytes that reached no reader (a destroyed stream's buffer, DATA for a closed stream): the session's window gets them back. */
  discarded(bytes: number): void {
    if (bytes <= 0 || this.destroyed) return;
    this.unacked += bytes;
    this.creditSession();
  }

  private creditSession(): void {
    if (this.unacked >= this.o.sessionWindow / 4) {
      this.recvWindow += this.unacked;
      this.write(windowUpdateFrame(0, this.unacked));
      this.unacked = 0;
    }
  }

  /** A stream closed (both ends, or reset): it leaves the session. */
  streamDone(stream: H2Stream): void {
    if (this.streams.get(stream.id) !== stream) return;
    this.streams.delete(stream.id);
    this.blocked.delete(stream);
    this.endIfIdle();
  }

  private endIfIdle(): void {
    if (this.closed && !this.destroyed && this.streams.size === 0) {
      // Let the turn's frames (the last END_STREAM, the GOAWAY) out first.
      setImmediate(() => {
        if (!this.destroyed && this.streams.size === 0) this.destroy();
      });
    }
  }

  // ------------------------------------------------------------------ reading

  private onData(chunk: Buffer): void {
    try {
      this.read(chunk);
    } catch (err) {
      if (err instanceof H2SessionError) this.fail(err);
      else this.fail(new H2SessionError(ErrorCode.INTERNAL_ERROR, (err as Error).message));
    }
  }

  /** A connection error: GOAWAY with its code, then the end. */
  private fail(err: H2SessionError): void {
    if (this.destroyed) return;
    this.write(goawayFrame(this.lastPeerStreamId, err.h2Code));
    this.destroy(err);
  }

  private read(chunk: Buffer): void {
    let i = 0;
    const n = chunk.length;
    if (this.preface > 0) {
      const take = Math.min(this.preface, n);
      const at = clientPreface.length - this.preface;
      if (chunk.compare(clientPreface, at, at + take, 0, take) !== 0) throw new H2SessionError(ErrorCode.PROTOCOL_ERROR, 'the client did not send the HTTP/2 connection preface');
      this.preface -= take;
      i = take;
    }
    while (i < n && !this.destroyed) {
      if (this.inData) {
        const take = Math.min(this.dataLeft, n - i);
        if (take > 0) {
          const s = this.dataStream;
          if (s && !s.destroyed) s.receive(i === 0 && take === n ? chunk : chunk.subarray(i, i + take));
          else this.discarded(take);
          i += take;
          this.dataLeft -= take;
        }
        if (this.dataLeft === 0) this.endData();
        continue;
      }
      if (this.payload) {
        const take = Math.min(this.payload.length - this.payloadHave, n - i);
        chunk.copy(this.payload, this.payloadHave, i, i + take);
        this.payloadHave += take;
        i += take;
        if (this.payloadHave === this.payload.length) {
          const p = this.payload;
          this.payload = undefined;
          this.frame(this.payloadType, this.payloadFlags, this.payloadStream, p);
        }
        continue;
      }
      let h: Buffer;
      let at: number;
      if (this.headerHave > 0 || n - i < frameHeaderLength) {
        const take = Math.min(frameHeaderLength - this.headerHave, n - i);
        chunk.copy(this.header, this.headerHave, i, i + take);
        this.headerHave += take;
        i += take;
        if (this.headerHave < frameHeaderLength) return;
        this.headerHave = 0;
        h = this.header;
        at = 0;
      } else {
        h = chunk;
        at = i;
        i += frameHeaderLength;
      }
      const length = (h[at]! << 16) | (h[at + 1]! << 8) | h[at + 2]!;
      const type = h[at + 3]!;
      const flags = h[at + 4]!;
      const streamId = h.readUInt32BE(at + 5) & 0x7fffffff;
      if (length > this.o.maxFrameSize) throw new H2SessionError(ErrorCode.FRAME_SIZE_ERROR, `a frame of ${length} bytes exceeds our SETTINGS_MAX_FRAME_SIZE ${this.o.maxFrameSize}`);
      if (!this.settingsSeen && type !== FrameType.SETTINGS) throw new H2SessionError(ErrorCode.PROTOCOL_ERROR, `the peer's first frame is ${type}, not SETTINGS`);
      if (this.block && type !== FrameType.CONTINUATION) throw new H2SessionError(ErrorCode.PROTOCOL_ERROR, 'a header block was interrupted by another frame');
      if (type === FrameType.DATA && !(flags & Flag.PADDED)) {
        this.beginData(length, flags, streamId);
        continue;
      }
      if (type !== FrameType.DATA && length > maxHeaderBlock) throw new H2SessionError(type === FrameType.HEADERS || type === FrameType.CONTINUATION ? ErrorCode.ENHANCE_YOUR_CALM : ErrorCode.FRAME_SIZE_ERROR, `a frame of type ${type} has ${length} bytes`);
      if (n - i >= length) {
        const p = chunk.subarray(i, i + length);
        i += length;
        this.frame(type, flags, streamId, p);
      } else {
        this.payload = Buffer.allocUnsafe(length);
        this.payloadHave = 0;
        this.payloadType = type;
        this.payloadFlags = flags;
        this.payloadStream = streamId;
      }
    }
  }

  /** A DATA frame's header: windows checked now for the whole frame, its bytes streamed to the stream as they come. */
  private beginData(length: number, flags: number, streamId: number): void {
    const s = this.dataTarget(length, streamId);
    this.dataStream = s;
    this.dataLeft = length;
    this.dataEnd = (flags & Flag.END_STREAM) !== 0;
    this.inData = true;
    if (length === 0) this.endData();
  }

  /** Counts `length` against the windows; the stream to deliver to, or undefined to discard (already credited back). */
  private dataTarget(length: number, streamId: number): H2Stream | undefined {
    if (streamId === 0) throw new H2SessionError(ErrorCode.PROTOCOL_ERROR, 'DATA on stream 0');
    if (length > this.recvWindow) throw new H2SessionError(ErrorCode.FLOW_CONTROL_ERROR, `DATA of ${length} bytes exceeds the session window of ${this.recvWindow}`);
    this.recvWindow -= length;
    const s = this.streams.get(streamId);
    if (!s || s.remoteEnded || s.destroyed) {
      this.idleCheck(streamId, 'DATA');
      // Not for any reader: the session window gets it back; a half-closed stream is told so.
      if (s && !s.destroyed) this.resetStream(s, ErrorCode.STREAM_CLOSED, 'DATA after END_STREAM');
      this.discarded(length);
      return undefined;
    }
    if (length > s.recvWindow) {
      this.resetStream(s, ErrorCode.FLOW_CONTROL_ERROR, `DATA of ${length} bytes exceeds the stream window of ${s.recvWindow}`);
      this.discarded(length);
      return undefined;
    }
    s.recvWindow -= length;
    return s;
  }

  private endData(): void {
    this.inData = false;
    const s = this.dataStream;
    this.dataStream = undefined;
    if (s && this.dataEnd && !s.destroyed) s.receiveEnd();
  }

  /** A stream id we know nothing of: closed long ago (ignored) or never opened (a connection error, RFC 9113 section 5.1). */
  private idleCheck(streamId: number, what: string): void {
    const ours = (streamId % 2 === 0) === this.isServer;
    const idle = ours ? streamId >= this.nextStreamId : streamId > this.lastPeerStreamId;
    if (idle) throw new H2SessionError(ErrorCode.PROTOCOL_ERROR, `${what} on stream ${streamId}, which was never opened`);
  }

  private resetStream(s: H2Stream, code: number, message: string): void {
    s.rstCode = code;
    this.sendReset(s, code);
    s.destroy(new H2StreamError(code, message));
  }

  /** A whole frame other than unpadded DATA. */
  private frame(type: number, flags: number, streamId: number, p: Buffer): void {
    switch (type) {
      case FrameType.DATA:
        return this.paddedData(flags, streamId, p);
      case FrameType.HEADERS:
        return this.headers(flags, streamId, p);
      case FrameType.CONTINUATION:
        return this.continuation(flags, streamId, p);
      case FrameType.SETTINGS:
        return this.settings(flags, streamId, p);
      case FrameType.WINDOW_UPDATE:
        return this.windowUpdate(streamId, p);
      case FrameType.RST_STREAM:
        return this.rstStream(streamId, p);
      case FrameType.PING:
        return this.pingFrame(flags, streamId, p);
      case FrameType.GOAWAY:
        return this.goawayReceived(streamId, p);
      case FrameType.PUSH_PROMISE:
        throw new H2SessionError(ErrorCode.PROTOCOL_ERROR, 'PUSH_PROMISE, though push is disabled');
      case FrameType.PRIORITY:
        if (streamId === 0) throw new H2SessionError(ErrorCode.PROTOCOL_ERROR, 'PRIORITY on stream 0');
        return; // priorities are advisory; HBONE's tunnels have none
      default:
        return; // unknown frame types are ignored (RFC 9113 section 4.1)
    }
  }

  private paddedData(flags: number, streamId: number, p: Buffer): void {
    const pad = p.length ? p[0]! : 0;
    if (p.length === 0 || pad >= p.length) throw new H2SessionError(ErrorCode.PROTOCOL_ERROR, 'DATA padding is as long as the frame');
    const s = this.dataTarget(p.length, streamId);
    if (s) {
      // Padding counts against the windows but reaches no reader.
      this.discarded(pad + 1);
      s.owed += pad + 1;
      s.receive(p.subarray(1, p.length - pad));
      if (flags & Flag.END_STREAM) s.receiveEnd();
    }
  }

  private headers(flags: number, streamId: number, p: Buffer): void {
    if (streamId === 0) throw new H2SessionError(ErrorCode.PROTOCOL_ERROR, 'HEADERS on stream 0');
    let start = 0;
    let end = p.length;
    if (flags & Flag.PADDED) {
      const pad = p[0] ?? 0;
      start = 1;
      end -= pad;
    }
    if (flags & Flag.PRIORITY) start += 5;
    if (start > end) throw new H2SessionError(ErrorCode.PROTOCOL_ERROR, 'HEADERS padding or priority longer than the frame');
    const fragment = p.subarray(start, end);
    if (flags & Flag.END_HEADERS) return this.headerBlock(streamId, flags, fragment);
    this.block = { streamId, flags, parts: [Buffer.from(fragment)], length: fragment.length };
  }

  private continuation(flags: number, streamId: number, p: Buffer): void {
    const b = this.block;
    if (!b || b.streamId !== streamId) throw new H2SessionError(ErrorCode.PROTOCOL_ERROR, 'CONTINUATION without the HEADERS it continues');
    b.length += p.length;
    if (b.length > maxHeaderBlock) throw new H2SessionError(ErrorCode.ENHANCE_YOUR_CALM, `a header block past ${maxHeaderBlock} bytes`);
    b.parts.push(Buffer.from(p));
    if (!(flags & Flag.END_HEADERS)) return;
    this.block = undefined;
    this.headerBlock(streamId, b.flags, Buffer.concat(b.parts, b.length));
  }

  /** A complete header block: always decoded (HPACK's table must stay in step), then a new stream, a response or trailers. */
  private headerBlock(streamId: number, flags: number, block: Buffer): void {
    const { headers: list, tooLarge } = this.decoder.decode(block, this.o.maxHeaderListSize);
    const endStream = (flags & Flag.END_STREAM) !== 0;
    const existing = this.streams.get(streamId);
    if (existing) {
      if (existing.remoteEnded) return this.resetStream(existing, ErrorCode.STREAM_CLOSED, 'HEADERS after END_STREAM');
      if (!this.isServer && !existing.responded) return this.response(existing, list, endStream);
      // Trailers: only as the end of the stream.
      if (!endStream) return this.resetStream(existing, ErrorCode.PROTOCOL_ERROR, 'a second HEADERS without END_STREAM');
      existing.receiveEnd();
      return;
    }
    if (!this.isServer || streamId % 2 === 0) {
      this.idleCheck(streamId, 'HEADERS');
      return; // a stream we closed already
    }
    if (streamId <= this.lastPeerStreamId) return; // closed (reset) streams' late frames
    this.lastPeerStreamId = streamId;
    // After our GOAWAY, new streams are ignored (the peer knows from the last stream id).
    if (this.closed) return;
    const s = new H2Stream(this, streamId, this.o.streamWindow, this.peerInitialWindow);
    if (this.streams.size >= this.o.maxConcurrentStreams) {
      s.rstCode = ErrorCode.REFUSED_STREAM;
      this.sendReset(s, ErrorCode.REFUSED_STREAM);
      return;
    }
    const problem = tooLarge ? 'the header list exceeds SETTINGS_MAX_HEADER_LIST_SIZE' : requestProblem(list);
    if (problem) {
      s.rstCode = ErrorCode.PROTOCOL_ERROR;
      this.sendReset(s, ErrorCode.PROTOCOL_ERROR);
      this.emit('malformed', streamId, problem);
      return;
    }
    this.streams.set(streamId, s);
    if (endStream) s.receiveEnd();
    this.emit('stream', s, toObject(list), flags);
  }

  private response(s: H2Stream, list: HeaderList, endStream: boolean): void {
    const status = list[0]?.[0] === ':status' ? Number(list[0][1]) : NaN;
    if (!(status >= 100 && status <= 999) || list.some(([n], i) => i > 0 && n.startsWith(':'))) return this.resetStream(s, ErrorCode.PROTOCOL_ERROR, 'a response without a valid :status');
    if (status < 200) {
      if (endStream) this.resetStream(s, ErrorCode.PROTOCOL_ERROR, 'an informational response with END_STREAM');
      return;
    }
    s.responded = true;
    const headers = toObject(list);
    if (endStream) s.receiveEnd();
    s.emit('response', headers, endStream ? Flag.END_STREAM : 0);
  }

  private settings(flags: number, streamId: number, p: Buffer): void {
    if (streamId !== 0) throw new H2SessionError(ErrorCode.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (flags & Flag.ACK) {
      if (p.length) throw new H2SessionError(ErrorCode.FRAME_SIZE_ERROR, 'a SETTINGS ack with a payload');
      if (!this.settingsSeen) throw new H2SessionError(ErrorCode.PROTOCOL_ERROR, "the peer's first frame is a SETTINGS ack");
      return;
    }
    if (p.length % 6) throw new H2SessionError(ErrorCode.FRAME_SIZE_ERROR, 'a SETTINGS frame whose length is not a multiple of 6');
    const r = this.remoteSettings;
    for (let at = 0; at < p.length; at += 6) {
      const id = p.readUInt16BE(at);
      const value = p.readUInt32BE(at + 2);
      switch (id) {
        case Setting.HEADER_TABLE_SIZE:
          r.headerTableSize = value;
          this.encoder.tableSizeChanged();
          break;
        case Setting.ENABLE_PUSH:
          if (value > 1 || (value === 1 && !this.isServer)) throw new H2SessionError(ErrorCode.PROTOCOL_ERROR, `SETTINGS_ENABLE_PUSH ${value}`);
          r.enablePush = value === 1;
          break;
        case Setting.MAX_CONCURRENT_STREAMS:
          r.maxConcurrentStreams = value;
          break;
        case Setting.INITIAL_WINDOW_SIZE: {
          if (value > maxWindow) throw new H2SessionError(ErrorCode.FLOW_CONTROL_ERROR, `SETTINGS_INITIAL_WINDOW_SIZE ${value} exceeds 2^31-1`);
          const delta = value - this.peerInitialWindow;
          this.peerInitialWindow = value;
          r.initialWindowSize = value;
          for (const s of this.streams.values()) {
            s.sendWindow += delta;
            if (s.sendWindow > maxWindow) throw new H2SessionError(ErrorCode.FLOW_CONTROL_ERROR, 'SETTINGS_INITIAL_WINDOW_SIZE overflows a stream window');
          }
          break;
        }
        case Setting.MAX_FRAME_SIZE:
          if (value < defaultMaxFrameSize || value > largestMaxFrameSize) throw new H2SessionError(ErrorCode.PROTOCOL_ERROR, `SETTINGS_MAX_FRAME_SIZE ${value} is outside 16384-16777215`);
          this.peerMaxFrameSize = value;
          r.maxFrameSize = value;
          break;
        case Setting.MAX_HEADER_LIST_SIZE:
          r.maxHeaderListSize = value;
          break;
        default:
          break; // unknown settings are ignored
      }
    }
    this.settingsSeen = true;
    this.control(frame(0, FrameType.SETTINGS, Flag.ACK, 0));
    this.resumeBlocked();
    this.emit('remoteSettings', { ...r });
  }

  /** A frame we owe the peer; a peer that makes us owe without reading is cut. */
  private control(b: Buffer): void {
    if (this.socket.writableLength > maxUnreadOutput) throw new H2SessionError(ErrorCode.ENHANCE_YOUR_CALM, 'the peer asks for replies it does not read');
    this.write(b);
  }

  private windowUpdate(streamId: number, p: Buffer): void {
    if (p.length !== 4) throw new H2SessionError(ErrorCode.FRAME_SIZE_ERROR, 'a WINDOW_UPDATE of other than 4 bytes');
    const increment = p.readUInt32BE(0) & 0x7fffffff;
    if (streamId === 0) {
      if (increment === 0) throw new H2SessionError(ErrorCode.PROTOCOL_ERROR, 'a WINDOW_UPDATE of 0 for the session');
      this.sendWindow += increment;
      if (this.sendWindow > maxWindow) throw new H2SessionError(ErrorCode.FLOW_CONTROL_ERROR, 'the session window overflows 2^31-1');
      return this.resumeBlocked();
    }
    const s = this.streams.get(streamId);
    if (!s) return this.idleCheck(streamId, 'WINDOW_UPDATE');
    if (increment === 0) return this.resetStream(s, ErrorCode.PROTOCOL_ERROR, 'a WINDOW_UPDATE of 0');
    s.sendWindow += increment;
    if (s.sendWindow > maxWindow) return this.resetStream(s, ErrorCode.FLOW_CONTROL_ERROR, 'the stream window overflows 2^31-1');
    if (this.blocked.has(s)) {
      this.blocked.delete(s);
      this.sendData(s);
    }
  }

  private resumeBlocked(): void {
    if (!this.blocked.size) return;
    const waiting = [...this.blocked];
    this.blocked.clear();
    for (const s of waiting) if (!s.destroyed && s.chunk) this.sendData(s);
  }

  private rstStream(streamId: number, p: Buffer): void {
    if (p.length !== 4) throw new H2SessionError(ErrorCode.FRAME_SIZE_ERROR, 'an RST_STREAM of other than 4 bytes');
    if (streamId === 0) throw new H2SessionError(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    const s = this.streams.get(streamId);
    if (!s) return this.idleCheck(streamId, 'RST_STREAM');
    s.receiveReset(p.readUInt32BE(0));
  }

  private pingFrame(flags: number, streamId: number, p: Buffer): void {
    if (streamId !== 0) throw new H2SessionError(ErrorCode.PROTOCOL_ERROR, 'PING on a stream');
    if (p.length !== 8) throw new H2SessionError(ErrorCode.FRAME_SIZE_ERROR, 'a PING of other than 8 bytes');
    if (!(flags & Flag.ACK)) return this.control(pingFrame(p, true));
    const i = this.pings.findIndex((x) => x.payload.equals(p));
    if (i < 0) return; // an answer to a PING we did not send: ignored
    const [ping] = this.pings.splice(i, 1);
    ping!.cb(null, performance.now() - ping!.at, p);
  }

  private goawayReceived(streamId: number, p: Buffer): void {
    if (streamId !== 0) throw new H2SessionError(ErrorCode.PROTOCOL_ERROR, 'GOAWAY on a stream');
    if (p.length < 8) throw new H2SessionError(ErrorCode.FRAME_SIZE_ERROR, 'a GOAWAY shorter than 8 bytes');
    const last = p.readUInt32BE(0) & 0x7fffffff;
    const code = p.readUInt32BE(4);
    this.peerLastStreamId = Math.min(this.peerLastStreamId, last);
    this.closed = true;
    // An error ends everything now, as Node's http2 does: the streams fail with the session's error.
    if (code !== ErrorCode.NO_ERROR) {
      this.emit('goaway', code, last, p.subarray(8));
      return this.destroy(new H2SessionError(code, `the peer sent GOAWAY ${errorName(code)}${p.length > 8 ? ` (${p.toString('latin1', 8, Math.min(p.length, 200))})` : ''}`));
    }
    // Our streams the peer never processed may be retried elsewhere (RFC 9113 section 6.8).
    for (const s of [...this.streams.values()]) {
      const ours = (s.id % 2 === 0) === this.isServer;
      if (ours && s.id > this.peerLastStreamId) {
        s.rstCode = ErrorCode.REFUSED_STREAM;
        s.destroy(new H2StreamError(ErrorCode.REFUSED_STREAM, `the peer's GOAWAY did not process stream ${s.id}`));
      }
    }
    this.emit('goaway', code, last, p.subarray(8));
    this.endIfIdle();
  }
}

function add(list: HeaderList, name: string, value: string | string[] | number | undefined): void {
  if (value === undefined) return;
  if (Array.isArray(value)) for (const v of value) list.push([name, String(v)]);
  else list.push([name, String(value)]);
}

/** As Node's http2 presents them: a repeated name's values joined (cookie with "; "), set-cookie as a list. */
function toObject(list: HeaderList): IncomingHeaders {
  const o: IncomingHeaders = Object.create(null) as IncomingHeaders;
  for (const [n, v] of list) {
    const had = o[n];
    if (had === undefined) o[n] = n === 'set-cookie' ? [v] : v;
    else if (Array.isArray(had)) had.push(v);
    else o[n] = `${had}${n === 'cookie' ? '; ' : ', '}${v}`;
  }
  return o;
}

/** Why a request's header list is malformed (RFC 9113 sections 8.2, 8.3 and 8.5), or undefined. */
function requestProblem(list: HeaderList): string | undefined {
  const pseudo = new Map<string, string>();
  let regular = false;
  for (const [n, v] of list) {
    if (n.startsWith(':')) {
      if (regular) return `the pseudo-header ${n} follows a regular header`;
      if (!requestPseudo.has(n)) return `the pseudo-header ${n} is not one of a request's`;
      if (pseudo.has(n)) return `the pseudo-header ${n} appears twice`;
      pseudo.set(n, v);
      continue;
    }
    regular = true;
    if (n !== n.toLowerCase()) return `the header name ${n} is not lowercase`;
    if (connectionHeaders.has(n)) return `the connection-specific header ${n}`;
    if (n === 'te' && v !== 'trailers') return 'te other than "trailers"';
  }
  const method = pseudo.get(':method');
  if (!method) return 'no :method';
  if (method === 'CONNECT') {
    if (pseudo.has(':scheme') || pseudo.has(':path')) return 'CONNECT with :scheme or :path';
    if (!pseudo.get(':authority')) return 'CONNECT without :authority';
    return undefined;
  }
  if (!pseudo.get(':scheme') || !pseudo.get(':path')) return `${method} without :scheme and :path`;
  return undefined;
}
