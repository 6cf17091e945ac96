// What crossed the wire between two nodes while something ran: tcpdump on a node's link in the
// fabric namespace (the switch every packet between nodes passes), read back as text, complete up
// to a fence packet sent after it. The tour shows from it whether a request went in plaintext or
// as HBONE to 15008.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { AmbitError } from '../../shared/errors.js';

export interface WireCapture {
  /** The command, as a person would type it. */
  command: string;
  /** The packets, with their payload as ASCII (`tcpdump -A`). */
  text: string;
  /** Packets whose destination port is `port`. */
  toPort(port: number): number;
}

/**
 * A packet sent across the same link after `during`: tcpdump prints in order, so once the fence is
 * in its output, every packet of `during` is too, however slowly tcpdump keeps up.
 */
export interface Fence {
  send(): Promise<void>;
  seen(text: string): boolean;
}

/** Runs `during` while tcpdump listens on `link` in namespace `netns`, then waits for `fence` to cross. */
export async function watchWire(netns: string, link: string, during: () => Promise<void>, fence: Fence): Promise<WireCapture> {
  const args = ['-i', link, '-l', '-nn', '-A', '-s', '0', 'tcp'];
  const dump = spawn('nsenter', [`--net=/run/netns/${netns}`, '--', 'tcpdump', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  let err = '';
  dump.stdout.setEncoding('latin1').on('data', (d: string) => (text += d));
  dump.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = once(dump, 'close');
  try {
    await waitFor(() => err.includes('listening on') || dump.exitCode !== null, 5000);
    if (!err.includes('listening on')) throw new AmbitError('TcpdumpFailed', `tcpdump on ${link} did not start: ${err.trim() || 'no output'}; is tcpdump installed (scripts/setup.sh)?`);
    await during();
    await fence.send();
    await waitFor(() => fence.seen(text), 10_000);
    if (!fence.seen(text)) throw new AmbitError('TcpdumpFailed', `tcpdump on ${link} did not show the fence packet within 10 s; the capture cannot be read as complete`);
  } finally {
    dump.kill('SIGINT');
    await exited;
  }
  return {
    command: `ip netns exec ${netns} tcpdump ${args.map((a) => (a === 'tcp' ? "'tcp'" : a)).join(' ')}`,
    text,
    toPort: (port) => text.split('\n').filter((l) => new RegExp(`^\\S+ IP \\S+ > \\S+\\.${port}: `).test(l)).length,
  };
}

async function waitFor(ok: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}
