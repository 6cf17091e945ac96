// Turns the controller's messages into applied pushes, strictly in the order they arrived, with
// the heavy steps kept off the event loop or cut into slices: a full push is decompressed on
// libuv's thread pool, parsed entry by entry in slices, and checked in slices before it is applied
// at once. Answers each push with an ack or nack; the connection (client.ts) owns the socket.

import { gunzip } from 'node:zlib';
import { promisify } from 'node:util';
import type { Logger } from '../../shared/log.js';
import type { AgentMessage, ConfigPush } from '../../shared/protocol/config.js';
import { Pacer } from '../state/pacer.js';
import { type AgentState, ConfigRejected } from '../state/state.js';
import { parseConfigPush } from './parse.js';

const gunzipAsync = promisify(gunzip);

/** The largest push an agent accepts, decompressed. */
export const maxPushBytes = 512 * 1024 * 1024;

/** Below this a push is parsed and applied in one go: slicing it would cost more than it saves. */
const smallPushBytes = 64 * 1024;

export interface ReceiverOptions {
  state: AgentState;
  log: Logger;
  /** A delta did not fit our version: ask for everything. */
  resync(reason: string): void;
  /** How long one slice of a large push may hold the event loop. */
  sliceMs?: number;
}

export class PushReceiver {
  /** The end of the chain of pushes received so far: each starts when the one before it is done. */
  private tail: Promise<void> = Promise.resolve();

  constructor(private readonly o: ReceiverOptions) {}

  /**
   * Takes one message as the WebSocket gave it: gzip (binary, a full push) or JSON text (a delta).
   * Decompression starts at once, on the thread pool; the push is applied only after every push
   * received before it (a small delta never overtakes a full push still being decompressed).
   */
  receive(data: Buffer, isBinary: boolean, reply: (message: AgentMessage) => void): void {
    const text: Promise<string> = isBinary ? gunzipAsync(data, { maxOutputLength: maxPushBytes }).then((b) => b.toString()) : Promise.resolve(data.toString());
    // Settled here so that a push that failed to decompress does not break the chain.
    const outcome = text.then(
      (t) => ({ text: t }),
      (err: Error) => ({ error: `a compressed push did not decompress: ${err.message}` }),
    );
    this.tail = this.tail
      .then(async () => {
        const r = await outcome;
        if ('error' in r) return reply({ type: 'nack', version: -1, reason: r.error });
        await this.apply(r.text, reply);
      })
      .catch((err: Error) => this.o.log.error({ err: err.message }, 'a config push failed unexpectedly'));
  }

  /** Resolves when every push received so far has been applied or refused. */
  idle(): Promise<void> {
    return this.tail;
  }

  private async apply(text: string, reply: (message: AgentMessage) => void): Promise<void> {
    const small = text.length < smallPushBytes;
    const pacer = new Pacer(this.o.sliceMs);
    let push: ConfigPush;
    try {
      push = (small ? JSON.parse(text) : await parseConfigPush(text, pacer)) as ConfigPush;
    } catch {
      return reply({ type: 'nack', version: -1, reason: 'push is not JSON' });
    }
    if (typeof push !== 'object' || push === null || push.type !== 'config') {
      return reply({ type: 'nack', version: -1, reason: 'a push must be a JSON object of type config' });
    }
    try {
      if (small) this.o.state.apply(push);
      else await this.o.state.applyPaced(push, pacer);
      reply({ type: 'ack', version: push.to });
    } catch (err) {
      const reason = err instanceof ConfigRejected ? err.reason : (err as Error).message;
      this.o.log.warn({ version: push.to, reason }, 'rejected a config push');
      reply({ type: 'nack', version: push.to, reason });
      if (!push.full && push.from !== this.o.state.version) this.o.resync(reason);
    }
  }
}
