// The small JSON APIs a local process serves on a Unix socket to the CLI (the controller's, the
// local cluster's): a bearer token from the state directory (like a kubeconfig's, compared in
// constant time), JSON both ways, and typed errors that come back to the caller as typed errors:
// { error: { code, message, problems? } }.

import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { AmbitError, errorMessage, type FieldProblem, ResourceInvalid } from '../errors.js';
import type { Logger } from '../log.js';

/** Handles one request; what it returns is sent as the 200 answer. */
export type SocketApiHandler = (req: IncomingMessage, url: URL) => Promise<unknown>;

export function socketApiServer(o: { token: string; tokenFile: string; log: Logger; handle: SocketApiHandler }): Server {
  const expected = Buffer.from(`Bearer ${o.token}`);
  return createServer((req, res) => {
    const auth = Buffer.from(req.headers.authorization ?? '');
    if (auth.length !== expected.length || !timingSafeEqual(auth, expected)) {
      return send(res, 401, { error: { code: 'Unauthorized', message: `missing or wrong bearer token (see ${o.tokenFile})` } });
    }
    o.handle(req, new URL(req.url ?? '/', 'http://local')).then(
      (answer) => send(res, 200, answer),
      (err: unknown) => {
        if (err instanceof ResourceInvalid) return send(res, 422, { error: { code: err.code, message: err.message, problems: err.problems } });
        if (err instanceof AmbitError) return send(res, err.code === 'NotFound' ? 404 : 400, { error: { code: err.code, message: err.message } });
        o.log.error({ err: errorMessage(err), url: req.url }, 'api request failed');
        send(res, 500, { error: { code: 'Internal', message: errorMessage(err) } });
      },
    );
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * The client of such an API. `what` names the process in messages (`the controller`), and
 * `unreachable` is the error code when nothing answers on the socket.
 */
export class SocketApiClient {
  private readonly token: string;

  constructor(
    private readonly socketPath: string,
    tokenFile: string,
    private readonly what: string,
    private readonly unreachable: string,
  ) {
    if (!existsSync(tokenFile)) throw new AmbitError('NoCluster', `no token for ${what} at ${tokenFile}: is the cluster up? Run \`ambit up\``);
    this.token = readFileSync(tokenFile, 'utf8').trim();
  }

  request<T>(method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs = 30_000): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socketPath,
          path,
          method,
          timeout: timeoutMs,
          headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json', ...(payload ? { 'content-length': Buffer.byteLength(payload) } : {}) },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (d: string) => (text += d));
          res.on('end', () => {
            let data: { error?: { code: string; message: string; problems?: FieldProblem[] } };
            try {
              data = JSON.parse(text);
            } catch {
              return reject(new AmbitError('BadResponse', `${this.what} answered ${res.statusCode} with no JSON`));
            }
            if (data.error) return reject(data.error.problems ? new ResourceInvalid(data.error.problems) : new AmbitError(data.error.code, data.error.message));
            resolve(data as T);
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
      req.on('error', (err: NodeJS.ErrnoException) => {
        reject(new AmbitError(this.unreachable, `cannot reach ${this.what} at ${this.socketPath} (${err.code ?? err.message}); is the cluster up? Run \`ambit up\``));
      });
      req.end(payload);
    });
  }
}
