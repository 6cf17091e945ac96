// Reading a request body with a size limit, for every HTTP server of the project (the controller's
// API, the dashboard, the local Kubernetes API): past the limit the request is dropped and the
// caller's error is raised, so no client can make a server buffer without bound.

import type { IncomingMessage } from 'node:http';
import { AmbitError } from '../errors.js';

/** The whole body, or `tooLarge()` once it passes `limit` bytes. */
export function readBody(req: IncomingMessage, limit: number, tooLarge: () => Error): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(tooLarge());
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** The body parsed as JSON (empty: `{}`); BadRequest when it is too large or not JSON. */
export async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const body = await readBody(req, limit, () => new AmbitError('BadRequest', `request body over ${limit} bytes`));
  try {
    return JSON.parse(body.toString('utf8') || '{}');
  } catch {
    throw new AmbitError('BadRequest', 'request body is not JSON');
  }
}
