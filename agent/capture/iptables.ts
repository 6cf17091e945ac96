// The iptables redirect, installed inside a pod's own network namespace (never the node's or the
// host's tables), as Istio's in-pod mode does it: outbound TCP to the agent's 15001, inbound TCP to
// 15006 except HBONE on 15008. The agent's own sockets carry a mark and pass untouched, and so do
// loopback traffic and the health probes' source. Rules live in chains of their own, so installing
// again replaces them (never duplicates), and removal leaves nothing. A failed install removes
// what it added: a pod is captured whole or not at all.

import { spawn } from 'node:child_process';
import { AmbitError } from '../../shared/errors.js';

export const ports = { outbound: 15001, inbound: 15006, hbone: 15008 } as const;
/** The mark of the agent's own sockets (SO_MARK), and the bits it occupies. */
export const agentMark = 0x539;
export const markMask = 0xfff;

const outChain = 'AMBIT_OUTPUT';
const inChain = 'AMBIT_INBOUND';

export interface CaptureOptions {
  /** Where health probes come from (the node), which must reach the app directly. */
  probeSource?: string;
}

export class CaptureFailed extends AmbitError {
  constructor(netns: string, detail: string) {
    super('CaptureFailed', `capture in ${netns}: ${detail}`);
  }
}

/** iptables-restore input for the nat table's chains; --noflush leaves every other rule alone. */
export function captureRules(o: CaptureOptions = {}): string {
  const mark = `0x${agentMark.toString(16)}/0x${markMask.toString(16)}`;
  return [
    '*nat',
    `:${outChain} - [0:0]`,
    `:${inChain} - [0:0]`,
    `-A ${outChain} -m mark --mark ${mark} -j RETURN`,
    `-A ${outChain} -d 127.0.0.0/8 -j RETURN`,
    `-A ${outChain} -p tcp -j REDIRECT --to-ports ${ports.outbound}`,
    `-A ${inChain} -p tcp --dport ${ports.hbone} -j RETURN`,
    ...(o.probeSource ? [`-A ${inChain} -s ${o.probeSource}/32 -j RETURN`] : []),
    `-A ${inChain} -p tcp -j REDIRECT --to-ports ${ports.inbound}`,
    'COMMIT',
    '',
  ].join('\n');
}

/** The script that installs the chains and, once each, the jumps to them. */
function installScript(): string {
  return [
    'set -e',
    'iptables-restore --noflush',
    `iptables -t nat -C OUTPUT -p tcp -j ${outChain} 2>/dev/null || iptables -t nat -I OUTPUT 1 -p tcp -j ${outChain}`,
    `iptables -t nat -C PREROUTING -p tcp -j ${inChain} 2>/dev/null || iptables -t nat -I PREROUTING 1 -p tcp -j ${inChain}`,
  ].join('\n');
}

/** Removes the jumps (every copy) and the chains; succeeds when there is nothing to remove. */
function removeScript(): string {
  return [
    `while iptables -t nat -D OUTPUT -p tcp -j ${outChain} 2>/dev/null; do :; done`,
    `while iptables -t nat -D PREROUTING -p tcp -j ${inChain} 2>/dev/null; do :; done`,
    `for c in ${outChain} ${inChain}; do iptables -t nat -F $c 2>/dev/null || true; iptables -t nat -X $c 2>/dev/null || true; done`,
  ].join('\n');
}

function inPod(netnsPath: string, script: string, input = ''): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('nsenter', [`--net=${netnsPath}`, '--', '/bin/sh', '-c', script], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err) => resolve({ code: -1, stderr: err.message }));
    child.on('close', (code) => resolve({ code: code ?? -1, stderr }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

/** Installs (or replaces) the redirect in the pod's namespace; on failure removes it and throws. */
export async function installCapture(netnsPath: string, o: CaptureOptions = {}): Promise<void> {
  const r = await inPod(netnsPath, installScript(), captureRules(o));
  if (r.code === 0) return;
  await inPod(netnsPath, removeScript());
  throw new CaptureFailed(netnsPath, r.stderr.trim() || `exit ${r.code}`);
}

export async function removeCapture(netnsPath: string): Promise<void> {
  const r = await inPod(netnsPath, removeScript());
  if (r.code !== 0) throw new CaptureFailed(netnsPath, r.stderr.trim() || `exit ${r.code}`);
}

/** The pod's ambit rules as iptables-save prints them (empty when it is not captured). */
export async function captureState(netnsPath: string): Promise<string[]> {
  return new Promise((resolve) => {
    const child = spawn('nsenter', [`--net=${netnsPath}`, '--', 'iptables-save', '-t', 'nat'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('close', () => resolve(out.split('\n').filter((l) => l.includes('AMBIT'))));
  });
}
