// Fuzzes the controller's admission path (validation, defaults, ClusterIP allocation, references,
// one store commit) with mutated valid manifests: the samples and the Istio security and Gateway API
// kinds, with fields dropped, added, retyped, made huge or nested deep, in multi-document batches,
// against a real store in a temporary directory. Properties: applying throws nothing but
// ResourceInvalid, and a refused batch leaves the store's listing and revision exactly as they were.
// A second property does the same from YAML text with bytes changed, through the manifest reader.

import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { Store } from '../../controller/store/store.js';
import { ClusterIPAllocator } from '../../controller/resources/allocator.js';
import { applyResources, type ApplyContext } from '../../controller/resources/apply.js';
import { parseCidr } from '../../shared/net/ipv4.js';
import { type FieldProblem, ResourceInvalid } from '../../shared/errors.js';
import { parseManifest } from '../../shared/resources/manifest.js';
import { budget, type Outcome } from './common.js';

const samplesDir = new URL('../../../samples/manifests/', import.meta.url);

const meshKinds: unknown[] = [
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'istio-system' } },
  { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'allow-client', namespace: 'shop' }, spec: { selector: { matchLabels: { app: 'web' } }, action: 'ALLOW', rules: [{ from: [{ source: { principals: ['cluster.local/ns/client/sa/curl'], namespaces: ['client'] } }], to: [{ operation: { ports: ['8080'] } }] }] } },
  { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'deny-ns', namespace: 'shop' }, spec: { action: 'DENY', rules: [{ from: [{ source: { notNamespaces: ['shop'], ipBlocks: ['10.0.0.0/8'] } }] }] } },
  { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'strict', namespace: 'shop' }, spec: { mtls: { mode: 'STRICT' }, portLevelMtls: { '8080': { mode: 'PERMISSIVE' } } } },
  { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'mesh', namespace: 'istio-system' }, spec: { mtls: { mode: 'PERMISSIVE' } } },
  { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'web', namespace: 'shop' }, spec: { host: 'web', trafficPolicy: { loadBalancer: { simple: 'LEAST_REQUEST' } } } },
  { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'web', namespace: 'shop' }, spec: { parentRefs: [{ name: 'web', kind: 'Service', group: '' }], rules: [{ backendRefs: [{ name: 'web', port: 80, weight: 90 }] }] } },
];

function samples(): unknown[] {
  const problems: FieldProblem[] = [];
  const docs = readdirSync(samplesDir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .flatMap((f) => parseManifest(readFileSync(new URL(f, samplesDir), 'utf8'), f, problems).map((d) => d.value));
  if (problems.length) throw new Error(`the samples do not parse: ${JSON.stringify(problems)}`);
  return [...docs, ...meshKinds];
}

function deep(depth: number, leaf: unknown, asArray: boolean): unknown {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = asArray ? [v] : { a: v };
  return v;
}

const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 1.5, 2 ** 53, Number.MAX_VALUE, '', 'x', '0', 'ALLOW', 'STRICT', '10.96.0.10', '127.0.0.1', '::1', '*', '__proto__', 'constructor', [], {}),
  fc.string({ maxLength: 30 }),
  fc.fullUnicodeString({ maxLength: 20 }),
  fc.integer(),
  fc.double(),
  fc.nat(300_000).map((n) => 'x'.repeat(n)),
  fc.tuple(fc.nat(20_000), fc.anything({ maxDepth: 1 }), fc.boolean()).map(([d, leaf, arr]) => deep(d, leaf, arr)),
  fc.array(fc.string({ maxLength: 8 }), { maxLength: 3000 }),
  fc.anything({ maxDepth: 3 }),
);

type Mutation = { at: number; how: 'delete' | 'set' | 'add' | 'wrap' | 'clear'; key: string; value: unknown };
const mutation: fc.Arbitrary<Mutation> = fc.record({
  at: fc.nat(),
  how: fc.constantFrom('delete', 'set', 'set', 'add', 'wrap', 'clear'),
  key: fc.oneof(fc.constantFrom('name', 'namespace', 'spec', 'metadata', 'kind', 'apiVersion', 'labels', 'ports', 'port', 'rules', 'mode', 'action', 'selector', 'resourceVersion', 'uid', 'status', '__proto__', 'constructor'), fc.string({ maxLength: 10 })),
  value: anyValue,
});

/** Objects and arrays inside `v`, the root first, breadth first, at most 10,000 (deep values are walked without recursion). */
function containers(v: unknown): (Record<string, unknown> | unknown[])[] {
  const out: (Record<string, unknown> | unknown[])[] = [];
  for (let i = 0, queue = [v]; i < queue.length && out.length < 10_000; i++) {
    const x = queue[i];
    if (x && typeof x === 'object') {
      out.push(x as Record<string, unknown>);
      queue.push(...Object.values(x));
    }
  }
  return out;
}

/** Changes `doc` in place (a copy already). */
function mutate(doc: unknown, ms: Mutation[]): unknown {
  const root = { doc };
  for (const m of ms) {
    const all = containers(root.doc);
    const target = all[m.at % all.length] as Record<string, unknown>;
    const keys = Object.keys(target);
    const key = keys.length && m.how !== 'add' ? keys[m.at % keys.length]! : m.key;
    if (m.how === 'delete') delete target[key];
    else if (m.how === 'wrap') target[key] = [target[key]];
    else if (m.how === 'clear') target[key] = Array.isArray(target[key]) ? [] : {};
    // defineProperty, so a "__proto__" key is an own field as JSON.parse would make it.
    else Object.defineProperty(target, key, { value: m.value, enumerable: true, writable: true, configurable: true });
  }
  return root.doc;
}

interface Tally {
  cases: number;
  applied: number;
  refused: number;
}

/** The one property both fuzzers check: only ResourceInvalid, and a refusal changes nothing. */
function applyChecked(ctx: ApplyContext, batch: unknown[], tally: Tally): void {
  const before = JSON.stringify(ctx.store.list());
  const revision = ctx.store.currentRevision;
  tally.cases++;
  try {
    applyResources(ctx, batch);
    tally.applied++;
  } catch (err) {
    if (!(err instanceof ResourceInvalid)) throw new Error(`applying threw ${(err as Error)?.name}: ${(err as Error)?.message?.slice(0, 300)}\n${(err as Error)?.stack?.split('\n').slice(1, 8).join('\n')}`, { cause: err });
    tally.refused++;
    if (ctx.store.currentRevision !== revision || JSON.stringify(ctx.store.list()) !== before) throw new Error('a refused batch changed the store', { cause: err });
  }
}

export async function fuzzValidator(): Promise<Outcome[]> {
  const docs = samples();
  const dir = mkdtempSync(join(tmpdir(), 'ambit-fuzz-store-'));
  const ctx: ApplyContext = { store: new Store(dir), allocator: new ClusterIPAllocator(parseCidr('10.96.0.0/16')), nodeNames: ['node-1', 'node-2'] };
  const out: Outcome[] = [];
  try {
    // Objects: a batch of valid documents with one to four of them mutated.
    let started = Date.now();
    const t: Tally = { cases: 0, applied: 0, refused: 0 };
    const batch = fc.tuple(fc.subarray(docs.map((_, i) => i), { minLength: 1 }), fc.array(fc.tuple(fc.nat(), fc.array(mutation, { minLength: 1, maxLength: 4 })), { minLength: 1, maxLength: 4 }));
    let details = fc.check(
      fc.property(batch, ([picked, mutations]) => {
        const b = picked.map((i) => structuredClone(docs[i]));
        for (const [which, ms] of mutations) b[which % b.length] = mutate(b[which % b.length], ms);
        applyChecked(ctx, b, t);
      }),
      budget(5000, 60),
    );
    out.push(result('validator: mutated manifests', details, started, t));

    // YAML text: the samples as written, with bytes replaced, inserted or deleted.
    started = Date.now();
    const y: Tally = { cases: 0, applied: 0, refused: 0 };
    const texts = readdirSync(samplesDir)
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => readFileSync(new URL(f, samplesDir), 'utf8'));
    const edit = fc.tuple(fc.nat(), fc.constantFrom('replace', 'insert', 'delete'), fc.oneof(fc.constantFrom(':', '-', ' ', '\n', '{', '[', '"', '&a', '*a', '!!binary', '<<: *a', '---\n', '\t', '#'), fc.string({ maxLength: 6 })));
    details = fc.check(
      fc.property(fc.nat(texts.length - 1), fc.array(edit, { minLength: 1, maxLength: 6 }), (which, edits) => {
        let text = texts[which]!;
        for (const [at, how, s] of edits) {
          const i = at % (text.length + 1);
          text = how === 'insert' ? text.slice(0, i) + s + text.slice(i) : how === 'delete' ? text.slice(0, i) + text.slice(i + s.length + 1) : text.slice(0, i) + s + text.slice(i + s.length);
        }
        const problems: FieldProblem[] = [];
        let values: unknown[];
        try {
          values = parseManifest(text, 'fuzz.yaml', problems).map((d) => d.value);
        } catch (err) {
          throw new Error(`reading the manifest threw ${(err as Error).name}: ${(err as Error).message}`, { cause: err });
        }
        if (problems.length || !values.length) {
          y.cases++;
          y.refused++;
          return;
        }
        applyChecked(ctx, values, y);
      }),
      budget(3000, 30),
    );
    out.push(result('validator: mutated YAML text', details, started, y));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

function result(name: string, details: fc.RunDetails<unknown>, started: number, t: Tally): Outcome {
  return {
    name,
    runs: details.numRuns,
    seconds: (Date.now() - started) / 1000,
    ok: !details.failed,
    notes: [
      `${t.cases} batches applied: ${t.applied} accepted, ${t.refused} refused with ResourceInvalid (store unchanged each time)`,
      ...(details.failed ? [`FAILED (seed ${details.seed}, path ${details.counterexamplePath}): ${String(details.errorInstance ?? details.error).slice(0, 2000)}`] : []),
    ],
  };
}
