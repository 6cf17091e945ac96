// The typed errors of ambit's HTTP/2: a connection error (the session ends with GOAWAY carrying the
// code), a stream error (one stream ends with RST_STREAM carrying it), and the HPACK failure that is
// always a connection error (RFC 9113 section 4.3). Codes are RFC 9113 section 7's, the same numbers
// as Node's http2.constants.NGHTTP2_*.

import { AmbitError } from '../../errors.js';

export const ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

const names = Object.fromEntries(Object.entries(ErrorCode).map(([k, v]) => [v, k])) as Record<number, string>;

export function errorName(code: number): string {
  return names[code] ?? `0x${code.toString(16)}`;
}

/** The session broke the protocol or failed as a whole: it is sent (or was sent) GOAWAY with `h2Code`. */
export class H2SessionError extends AmbitError {
  constructor(
    readonly h2Code: number,
    message: string,
  ) {
    super('H2SessionError', `HTTP/2 session error ${errorName(h2Code)}: ${message}`);
  }
}

/** One stream ended with RST_STREAM `h2Code`, sent or received; the session goes on. */
export class H2StreamError extends AmbitError {
  constructor(
    readonly h2Code: number,
    message: string,
  ) {
    super('H2StreamError', `HTTP/2 stream error ${errorName(h2Code)}: ${message}`);
  }
}

/** A header block that HPACK cannot decode: the compression state is lost, so the session ends (COMPRESSION_ERROR). */
export class H2CompressionError extends H2SessionError {
  constructor(message: string) {
    super(ErrorCode.COMPRESSION_ERROR, message);
  }
}
