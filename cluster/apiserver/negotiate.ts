// Content negotiation for the documents the API server serves itself (discovery, OpenAPI, version):
// the Accept header parsed into media ranges, and the JSON answer with its ETag, so a client's
// If-None-Match gets a 304 as from the real server. Serialising resources is the REST server's.

import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError } from './errors.js';

export interface MediaRange {
  type: string;
  subtype: string;
  /** Parameters other than q, lower-cased names: kubectl's `g`, `v`, `as`, `profile`. */
  params: Record<string, string>;
  q: number;
}

/** The media ranges of an Accept header, most preferred first (by q, then as written); none is `*\/*`. */
export function parseAccept(header: string | undefined): MediaRange[] {
  if (!header || !header.trim()) return [{ type: '*', subtype: '*', params: {}, q: 1 }];
  const ranges: MediaRange[] = [];
  for (const clause of header.split(',')) {
    const [full = '', ...rest] = clause.split(';').map((s) => s.trim());
    const [type, subtype] = full.toLowerCase().split('/');
    if (!type || !subtype) continue;
    const params: Record<string, string> = {};
    let q = 1;
    for (const p of rest) {
      const eq = p.indexOf('=');
      if (eq < 0) continue;
      const name = p.slice(0, eq).trim().toLowerCase();
      const value = p.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
      if (name === 'q') q = Number(value);
      else params[name] = value;
    }
    if (q > 0) ranges.push({ type, subtype, params, q });
  }
  // Array.prototype.sort is stable, so ranges of equal q keep the client's order.
  return ranges.sort((a, b) => b.q - a.q);
}

/** Whether `range` admits plain `application/json` (no `g`/`v`/`as` asking for another shape). */
export function acceptsPlainJson(range: MediaRange): boolean {
  const typeOk = range.type === '*' || (range.type === 'application' && (range.subtype === '*' || range.subtype === 'json'));
  return typeOk && range.params.as === undefined;
}

/** The 406 the real server sends when no acceptable type is JSON (kubectl asking for protobuf only). */
export function notAcceptable(accept: string | undefined): ApiError {
  return new ApiError(406, 'NotAcceptable', `the server was unable to respond with a content type that the client supports (Accept: ${accept ?? ''}); ask for application/json`);
}

export function etagOf(body: string): string {
  return createHash('sha512').update(body).digest('hex').toUpperCase();
}

export interface SendOptions {
  contentType?: string;
  status?: number;
  /** Quoted into the ETag header; a matching If-None-Match answers 304 without the body. */
  etag?: string;
  headers?: Record<string, string>;
}

export function sendJson(req: IncomingMessage, res: ServerResponse, body: string, opts: SendOptions = {}): void {
  const headers: Record<string, string> = { 'content-type': opts.contentType ?? 'application/json', vary: 'Accept', ...opts.headers };
  if (opts.etag) {
    headers.etag = `"${opts.etag}"`;
    const ifNoneMatch = req.headers['if-none-match'];
    if (ifNoneMatch && ifNoneMatch.split(',').some((t) => t.trim().replace(/^W\//, '') === headers.etag)) {
      res.writeHead(304, headers).end();
      return;
    }
  }
  headers['content-length'] = String(Buffer.byteLength(body));
  res.writeHead(opts.status ?? 200, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}

export function sendStatus(req: IncomingMessage, res: ServerResponse, err: ApiError): void {
  sendJson(req, res, JSON.stringify(err.status()), { status: err.code });
}
