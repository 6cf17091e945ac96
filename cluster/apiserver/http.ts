// The HTTP edges of the API server: reading a request body (JSON or YAML, bounded), choosing the
// response form from Accept (an object or list, or a Table for kubectl), and writing JSON replies.
// What the body means is the caller's.

import { readBody as readSharedBody } from '../../shared/http/body.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseYaml } from 'yaml';
import { ApiError, badRequest, notAcceptable, tooLarge, unsupportedMediaType } from './errors.js';

/** The real API server's limit on a request body (3 MiB); ours holds it in memory, so bound it too. */
export const maxBodyBytes = 3 * 1024 * 1024;

export function readBody(req: IncomingMessage, limit = maxBodyBytes): Promise<Buffer> {
  return readSharedBody(req, limit, () => tooLarge(limit));
}

/** The media type of a Content-Type header, without parameters, lower-cased. */
export function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]!.trim().toLowerCase();
}

export const objectMediaTypes = ['application/json', 'application/yaml'] as const;

/** A create or update body: JSON, or YAML (as `kubectl create --raw` or curl may send). */
export function parseObjectBody(contentType: string | undefined, body: Buffer): unknown {
  const type = mediaType(contentType);
  if (type === 'application/json' || type === '') return parseJson(body);
  if (type === 'application/yaml' || type === 'application/x-yaml' || type === 'text/yaml') return parseYamlBody(body);
  // kubectl's typed commands (create namespace, create deployment, run, expose) send protobuf;
  // decoding it needs the generated schema of every kind, which this server does not carry.
  if (type === 'application/vnd.kubernetes.protobuf') {
    throw new ApiError(415, 'UnsupportedMediaType', `${type} bodies are not supported by the local cluster's API server (it speaks JSON and YAML): write the object to a file and use kubectl create -f or kubectl apply -f`);
  }
  throw unsupportedMediaType(type, objectMediaTypes);
}

export function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw badRequest(`the body is not valid JSON: ${(err as Error).message}`);
  }
}

export function parseYamlBody(body: Buffer): unknown {
  try {
    return parseYaml(body.toString('utf8'));
  } catch (err) {
    throw badRequest(`the body is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
}

/** How a GET, LIST or WATCH answers: the objects themselves, or a Table of them. */
export type Rendering = 'object' | 'table';

/**
 * Reads Accept as the real server does: the first media type it can produce wins. JSON and Table
 * (meta.k8s.io/v1) are produced; protobuf and the older v1beta1 Table are not, so a client that
 * also accepts JSON gets JSON, and one that does not gets 406.
 */
export function negotiate(accept: string | undefined): Rendering {
  if (!accept) return 'object';
  for (const entry of accept.split(',')) {
    const [type, ...params] = entry.split(';').map((s) => s.trim());
    if (!['application/json', 'application/*', '*/*'].includes(type!.toLowerCase())) continue;
    const p = Object.fromEntries(params.map((x) => x.split('=').map((s) => s.trim()) as [string, string]));
    if (p.as === undefined) return 'object';
    if (p.as === 'Table' && p.g === 'meta.k8s.io' && p.v === 'v1') return 'table';
  }
  throw notAcceptable('application/json, application/json;as=Table;v=v1;g=meta.k8s.io');
}

export function sendJson(res: ServerResponse, code: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data), 'Cache-Control': 'no-cache, private' });
  res.end(data);
}

export function sendError(res: ServerResponse, err: ApiError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, err.code, err.status());
}
