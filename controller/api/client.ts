// The client of the controller API (the CLI and `ambit up` use it): HTTP over the controller's Unix socket, the bearer token
// from the state directory, JSON both ways, and the controller's typed errors turned back into
// typed errors.

import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { AmbitError, type FieldProblem, ResourceInvalid } from '../../shared/errors.js';
import { apiSocketPath, tokenPath } from '../config.js';

export class ControllerClient {
  private readonly token: string;
  private readonly socketPath: string;

  constructor(stateDir: string) {
    const path = tokenPath(stateDir);
    if (!existsSync(path)) throw new AmbitError('NoCluster', `no controller token at ${path}: is the cluster up? Run \`ambit up\``);
    this.token = readFileSync(path, 'utf8').trim();
    this.socketPath = apiSocketPath(stateDir);
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
              return reject(new AmbitError('BadResponse', `the controller answered ${res.statusCode} with no JSON`));
            }
            if (data.error) return reject(data.error.problems ? new ResourceInvalid(data.error.problems) : new AmbitError(data.error.code, data.error.message));
            resolve(data as T);
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
      req.on('error', (err: NodeJS.ErrnoException) => {
        reject(new AmbitError('ControllerUnreachable', `cannot reach the controller at ${this.socketPath} (${err.code ?? err.message}); is the cluster up? Run \`ambit up\``));
      });
      req.end(payload);
    });
  }
}
