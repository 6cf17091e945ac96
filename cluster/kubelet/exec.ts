// Running the system tools that build the local cluster (ip, nft, sysctl through nsenter), with
// failures that name the command and carry its stderr.

import { spawn } from 'node:child_process';
import { CommandFailed } from '../../shared/errors.js';

export interface RunOptions {
  input?: string;
  /** Exit codes other than 0 that count as success (e.g. "already gone"). */
  okCodes?: number[];
}

export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', (e) => reject(new CommandFailed(`${cmd} ${args.join(' ')}`, e.message, null)));
    child.on('close', (code) => {
      if (code === 0 || opts.okCodes?.includes(code ?? -1)) resolve(out);
      else reject(new CommandFailed(`${cmd} ${args.join(' ')}${opts.input ? ` <<< ${opts.input.trim().split('\n').slice(0, 3).join('; ')}` : ''}`, err, code));
    });
    if (child.stdin) {
      // A command that exits without reading its input must not crash us with EPIPE.
      child.stdin.on('error', () => undefined);
      child.stdin.end(opts.input);
    }
  });
}

/** Runs several `ip` commands in one process, optionally inside a network namespace. */
export function ipBatch(netns: string | null, lines: string[]): Promise<string> {
  const args = netns ? ['-n', netns, '-batch', '-'] : ['-batch', '-'];
  return run('ip', args, { input: lines.join('\n') + '\n' });
}

/** Runs a command inside a network namespace without the mount namespace `ip netns exec` makes. */
export function inNetns(netns: string, cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  return run('nsenter', [`--net=/run/netns/${netns}`, '--', cmd, ...args], opts);
}

export async function listNetns(): Promise<string[]> {
  const out = await run('ip', ['netns', 'list']);
  return out
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter(Boolean);
}
