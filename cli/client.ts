// The CLI's client of the controller API: bearer token from the state directory, JSON both ways,
// and the controller's typed errors turned back into typed errors.

import { existsSync, readFileSync } from 'node:fs';
import { AmbitError, type FieldProblem, ResourceInvalid } from '../shared/errors.js';
import { tokenPath } from '../controller/config.js';
import type { CliContext } from './context.js';

export class ControllerClient {
  private readonly token: string;

  constructor(private readonly ctx: CliContext) {
    const path = tokenPath(ctx.stateDir);
    if (!existsSync(path)) throw new AmbitError('NoCluster', `no controller token at ${path}: is the cluster up? Run \`ambit up\``);
    this.token = readFileSync(path, 'utf8').trim();
  }

  async request<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.ctx.controllerUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
      throw new AmbitError('ControllerUnreachable', `cannot reach the controller at ${this.ctx.controllerUrl} (${cause}); is the cluster up? Run \`ambit status\``);
    }
    const data = (await res.json()) as { error?: { code: string; message: string; problems?: FieldProblem[] } };
    if (data.error) {
      if (data.error.problems) throw new ResourceInvalid(data.error.problems);
      throw new AmbitError(data.error.code, data.error.message);
    }
    return data as T;
  }
}
