// What every subcommand gets from the entry point: where the state lives, where the project is,
// and how to reach the controller (through the state directory). Read once from flags and the environment in cli/ambit.ts.

import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface CliContext {
  stateDir: string;
  /** Project root (holds bin/, samples/, dist/). */
  root: string;
  /** The kubeconfig apply/get/delete use: $KUBECONFIG's first file, else the local cluster's. */
  kubeconfig: string;
}

export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const cliEntry = join(projectRoot, 'dist', 'cli', 'ambit.js');
export const binDir = join(projectRoot, 'bin');
