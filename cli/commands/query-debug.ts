// `ambit query NODE profile|heap`: an agent's CPU profile over a window, or its heap snapshots, from
// the admin API's debug routes (agent/api/server.ts), summarised for people (where the busy time
// went; what the heap holds, by constructor) and kept as files for DevTools with --out.

import { get } from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AmbitError } from '../../shared/errors.js';
import { summarizeCpuProfile, summarizeHeapSnapshot, type CpuProfile, type HeapSummary, type ProfileSummary } from '../../shared/telemetry/profile.js';
import { printData, table, type OutputFormat } from '../output.js';

export interface DebugQuery {
  node: string;
  address: string;
  token: string | undefined;
  format: OutputFormat;
  /** Where the raw `.cpuprofile` / `.heapsnapshot` files go; none kept without it. */
  out: string | undefined;
}

export async function queryProfile(q: DebugQuery, seconds: number): Promise<number> {
  // Said when the request leaves, so that a caller can start its load inside the window.
  process.stderr.write(`profiling the event loops of ${q.node}'s agent for ${seconds} s\n`);
  const { status, body } = await fetchText(q, `/debug/cpuprofile?seconds=${seconds}`, (seconds + 15) * 1000);
  const reply = JSON.parse(body) as { threads?: CpuProfile[]; error?: { code: string; message: string } };
  if (status !== 200 || !reply.threads) throw new AmbitError(reply.error?.code ?? 'AgentQueryFailed', reply.error?.message ?? `HTTP ${status}`);
  const files = keep(q, reply.threads.map((p) => JSON.stringify(p)), 'cpuprofile');
  const summaries = reply.threads.map((p) => summarizeCpuProfile(p));
  if (printData(q.format, summaries.map((s, thread) => ({ thread, ...s, ...(files ? { file: files[thread] } : {}) })))) return 0;
  summaries.forEach((s, thread) => process.stdout.write(profileText(thread, s) + (files ? `profile: ${files[thread]}\n` : '') + '\n'));
  return 0;
}

export async function queryHeap(q: DebugQuery): Promise<number> {
  const snapshots: string[] = [];
  // Thread 0, then each worker until the agent says there is no such thread.
  for (let thread = 0; ; thread++) {
    const { status, body } = await fetchText(q, `/debug/heapsnapshot?thread=${thread}`, 120_000);
    if (status === 404 && thread > 0) break;
    if (status !== 200) {
      const err = (JSON.parse(body) as { error?: { code: string; message: string } }).error;
      throw new AmbitError(err?.code ?? 'AgentQueryFailed', err?.message ?? `HTTP ${status}`);
    }
    snapshots.push(body);
  }
  const files = keep(q, snapshots, 'heapsnapshot');
  const summaries = snapshots.map((s) => summarizeHeapSnapshot(JSON.parse(s) as Parameters<typeof summarizeHeapSnapshot>[0]));
  if (printData(q.format, summaries.map((s, thread) => ({ thread, ...s, ...(files ? { file: files[thread] } : {}) })))) return 0;
  summaries.forEach((s, thread) => process.stdout.write(heapText(thread, s) + (files ? `snapshot: ${files[thread]}\n` : '') + '\n'));
  return 0;
}

const pct = (share: number) => `${(share * 100).toFixed(1)}%`;

/** A profile's summary as people read it: busy share, then where the busy time went. */
export function profileText(thread: number, s: ProfileSummary): string {
  return (
    `thread ${thread}${thread === 0 ? ' (main)' : ''}: ${s.ms} ms sampled, busy ${pct(s.busyShare)}; shares of the busy time:\n` +
    table(['AREA', 'SHARE'], s.areas.map((a) => [a.area, pct(a.share)])) +
    table(['FUNCTION', 'WHERE', 'SHARE'], s.functions.map((f) => [f.name, f.where || '-', pct(f.share)]))
  );
}

export function heapText(thread: number, s: HeapSummary): string {
  return `thread ${thread}${thread === 0 ? ' (main)' : ''}: ${(s.totalBytes / 1048576).toFixed(1)} MB of objects; the largest groups (own sizes):\n` + table(['CONSTRUCTOR', 'COUNT', 'KB'], s.groups.map((g) => [g.name, g.count, (g.bytes / 1024).toFixed(0)]));
}

function keep(q: DebugQuery, texts: string[], ext: string): string[] | undefined {
  if (!q.out) return undefined;
  mkdirSync(q.out, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return texts.map((text, thread) => {
    const file = join(q.out!, `${q.node}-${stamp}-thread${thread}.${ext}`);
    writeFileSync(file, text);
    return file;
  });
}

function fetchText(q: DebugQuery, path: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get(`http://${q.address}${path}`, { headers: q.token ? { authorization: `Bearer ${q.token}` } : {}, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    req.on('error', (err) => reject(new AmbitError('AgentUnreachable', `cannot reach the agent of ${q.node}: ${err.message}`)));
  });
}
