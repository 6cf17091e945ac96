// The controller's configuration, read once at start from its command line and handed down.

import { join } from 'node:path';

export interface ControllerConfig {
  stateDir: string;
  /** Address of the API that `ambit apply/get/delete` use. Loopback by default. */
  apiHost: string;
  apiPort: number;
  serviceCIDR: string;
  /** Serve the local cluster: run its pods and Service rules from this process. */
  localCluster: boolean;
  /** Directory with the `ambit` wrapper, put on the PATH of local pods. */
  binDir: string;
  logLevel: string;
}

export const defaultApiPort = 15010;

export function tokenPath(stateDir: string): string {
  return join(stateDir, 'controller', 'token');
}

export function storeDir(stateDir: string): string {
  return join(stateDir, 'controller', 'store');
}
