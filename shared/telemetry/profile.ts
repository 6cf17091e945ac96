// On-demand profiles of a running process, as Envoy's and ztunnel's admin ports offer them: a CPU
// profile of the calling thread over a window (V8's sampling profiler through node:inspector, the
// format Chrome DevTools and speedscope open), and summaries of CPU profiles and heap snapshots that
// say where the time and the memory go without another tool. Serving them is the admin API's part.

import { Session } from 'node:inspector/promises';

/** V8's `.cpuprofile`: the call tree, and which node was on the CPU at each sample. */
export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

let profiling = false;

/** Samples this thread's stacks for `ms` milliseconds (every `intervalUs`) and returns the profile. */
export async function cpuProfile(ms: number, intervalUs = 500): Promise<CpuProfile> {
  if (profiling) throw new Error('a CPU profile of this thread is being taken already; wait for it');
  profiling = true;
  const session = new Session();
  session.connect();
  try {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: intervalUs });
    await session.post('Profiler.start');
    await new Promise((resolve) => setTimeout(resolve, ms));
    const { profile } = await session.post('Profiler.stop');
    return profile as CpuProfile;
  } finally {
    session.disconnect();
    profiling = false;
  }
}

export interface ProfileSummary {
  /** The window, and the share of it the thread was busy (not idle in its event loop). */
  ms: number;
  busyShare: number;
  /** Self time by function, largest first, as shares of the busy time. */
  functions: { name: string; where: string; share: number }[];
  /** Self time by where the code lives: ambit's own files, Node's internals, each npm package, V8 (GC, native). */
  areas: { area: string; share: number }[];
}

/** Where the busy time of a profile went, by function (the `top` largest) and by area. */
export function summarizeCpuProfile(profile: CpuProfile, top = 12): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  // A sample's time is the delta to the next one, as DevTools counts it.
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
  }
  const fns = new Map<string, { name: string; where: string; us: number }>();
  const areas = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    total += us;
    if (frame.functionName === '(idle)') {
      idle += us;
      continue;
    }
    const where = frame.url ? `${shortUrl(frame.url)}:${frame.lineNumber + 1}` : '';
    const key = `${frame.functionName} ${where}`;
    const f = fns.get(key) ?? fns.set(key, { name: frame.functionName || '(anonymous)', where, us: 0 }).get(key)!;
    f.us += us;
    const area = areaOf(frame.url, frame.functionName);
    areas.set(area, (areas.get(area) ?? 0) + us);
  }
  const busy = total - idle || 1;
  return {
    ms: Math.round(total / 1000),
    busyShare: total ? (total - idle) / total : 0,
    functions: [...fns.values()].sort((a, b) => b.us - a.us).slice(0, top).map((f) => ({ name: f.name, where: f.where, share: f.us / busy })),
    areas: [...areas].sort((a, b) => b[1] - a[1]).map(([area, us]) => ({ area, share: us / busy })),
  };
}

function shortUrl(url: string): string {
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) return url.slice(nm + '/node_modules/'.length);
  const dist = url.lastIndexOf('/dist/');
  return dist >= 0 ? url.slice(dist + '/dist/'.length) : url.replace(/^file:\/\//, '');
}

function areaOf(url: string, fn: string): string {
  if (!url) return fn === '(garbage collector)' ? 'V8 garbage collection' : fn === '(program)' ? 'native (outside JavaScript)' : `native: ${fn}`;
  if (url.startsWith('node:')) return 'Node internals';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return `npm ${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  return 'ambit';
}

/** The parts of V8's `.heapsnapshot` a summary reads. */
interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

export interface HeapSummary {
  /** Bytes held by every object of the snapshot (their own sizes, not what they keep alive). */
  totalBytes: number;
  /** The largest groups: an object's constructor, or V8's kind for the rest (strings, code, arrays). */
  groups: { name: string; count: number; bytes: number }[];
}

/** What a heap snapshot's objects take, grouped by constructor (self sizes), the `top` largest first. */
export function summarizeHeapSnapshot(snapshot: HeapSnapshot, top = 20): HeapSummary {
  const fields = snapshot.snapshot.meta.node_fields;
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const types = snapshot.snapshot.meta.node_types[0];
  const groups = new Map<string, { name: string; count: number; bytes: number }>();
  let total = 0;
  for (let i = 0; i < snapshot.nodes.length; i += width) {
    const type = types[snapshot.nodes[i + typeAt]!]!;
    const bytes = snapshot.nodes[i + sizeAt]!;
    total += bytes;
    // Objects by their constructor; strings, code and the rest by kind, as DevTools' summary groups them.
    const name = type === 'object' || type === 'native' ? snapshot.strings[snapshot.nodes[i + nameAt]!]! : `(${type})`;
    const g = groups.get(name) ?? groups.set(name, { name, count: 0, bytes: 0 }).get(name)!;
    g.count++;
    g.bytes += bytes;
  }
  return { totalBytes: total, groups: [...groups.values()].sort((a, b) => b.bytes - a.bytes).slice(0, top) };
}
