// Which controller replica an agent talks to. On a real cluster one Service spreads agents over the
// replicas; here (and where an operator lists them) the agent has the list itself: it stays with
// one while it answers, and moves to the next when a connection to it fails. The push channel and
// the CA client follow the same choice, so the CA sees the pods the agent was sent.

import { AmbitError } from '../../shared/errors.js';

export class ControllerAddresses {
  private index = 0;

  constructor(readonly urls: readonly string[]) {
    if (urls.length === 0) throw new AmbitError('AgentConfig', 'the agent needs at least one controller address (--controller wss://HOST:PORT[,wss://...])');
  }

  readonly current = (): string => this.urls[this.index]!;

  /** A connection to `url` failed: the next replica from now on (unless another failure moved on already). */
  readonly failed = (url: string): void => {
    if (this.urls.length > 1 && this.urls[this.index] === url) this.index = (this.index + 1) % this.urls.length;
  };
}
