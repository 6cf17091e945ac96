// HTTP/2 frame layout (RFC 9113 section 4 and 6): the frame types, flags and settings ambit's
// HTTP/2 uses, and the writers of the frames it sends. Reading frames is session.ts's, since it
// streams DATA payloads to their streams as they arrive instead of gathering whole frames.

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const Flag = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

export const Setting = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

export const frameHeaderLength = 9;
/** Every peer accepts frames this large; larger ones only once it announced SETTINGS_MAX_FRAME_SIZE. */
export const defaultMaxFrameSize = 16_384;
export const largestMaxFrameSize = 16_777_215;
export const defaultWindow = 65_535;
export const maxWindow = 2 ** 31 - 1;
export const clientPreface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Writes a frame header at the start of `b`. */
function writeHeader(b: Buffer, length: number, type: number, flags: number, streamId: number): Buffer {
  b[0] = length >>> 16;
  b[1] = (length >>> 8) & 0xff;
  b[2] = length & 0xff;
  b[3] = type;
  b[4] = flags;
  b.writeUInt32BE(streamId, 5);
  return b;
}

/** A frame header (the only allocation per DATA frame: the payload is written as it is). */
export function frameHeader(length: number, type: number, flags: number, streamId: number): Buffer {
  return writeHeader(Buffer.allocUnsafe(frameHeaderLength), length, type, flags, streamId);
}

/** A whole frame with a payload of `payloadLength` bytes, header written; the caller fills from offset 9. */
export function frame(payloadLength: number, type: number, flags: number, streamId: number): Buffer {
  return writeHeader(Buffer.allocUnsafe(frameHeaderLength + payloadLength), payloadLength, type, flags, streamId);
}

export function settingsFrame(settings: [id: number, value: number][]): Buffer {
  const b = frame(6 * settings.length, FrameType.SETTINGS, 0, 0);
  for (const [i, [id, value]] of settings.entries()) {
    b.writeUInt16BE(id, 9 + 6 * i);
    b.writeUInt32BE(value, 11 + 6 * i);
  }
  return b;
}

export function windowUpdateFrame(streamId: number, increment: number): Buffer {
  const b = frame(4, FrameType.WINDOW_UPDATE, 0, streamId);
  b.writeUInt32BE(increment, 9);
  return b;
}

export function rstStreamFrame(streamId: number, code: number): Buffer {
  const b = frame(4, FrameType.RST_STREAM, 0, streamId);
  b.writeUInt32BE(code, 9);
  return b;
}

export function goawayFrame(lastStreamId: number, code: number, debug = ''): Buffer {
  const b = frame(8 + Buffer.byteLength(debug), FrameType.GOAWAY, 0, 0);
  b.writeUInt32BE(lastStreamId, 9);
  b.writeUInt32BE(code, 13);
  b.write(debug, 17);
  return b;
}

export function pingFrame(payload: Buffer, ack: boolean): Buffer {
  const b = frame(8, FrameType.PING, ack ? Flag.ACK : 0, 0);
  payload.copy(b, 9, 0, 8);
  return b;
}
