// The client of the controller API (the CLI and `ambit up` use it): its Unix socket and bearer
// token in the state directory (shared/http/socket-api.ts).

import { SocketApiClient } from '../../shared/http/socket-api.js';
import { apiSocketPath, tokenPath } from '../config.js';

export class ControllerClient extends SocketApiClient {
  constructor(stateDir: string) {
    super(apiSocketPath(stateDir), tokenPath(stateDir), 'the controller', 'ControllerUnreachable');
  }
}
