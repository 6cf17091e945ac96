// Reading manifests: YAML files with one or more documents, or a directory of them. Keeps each
// document's source position so a validation problem can name its file and line.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type Document, LineCounter, parseAllDocuments } from 'yaml';
import { AmbitError, type FieldProblem, ResourceInvalid } from '../errors.js';

export interface ManifestDocument {
  file: string;
  /** 1-based line where the document starts. */
  line: number;
  value: unknown;
  doc: Document;
  lines: LineCounter;
}

export function manifestFiles(path: string): string[] {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new AmbitError('FileNotFound', `${path}: no such file or directory`);
  }
  if (!st.isDirectory()) return [path];
  return readdirSync(path)
    .filter((f) => /\.(ya?ml|json)$/.test(f))
    .sort()
    .map((f) => join(path, f));
}

/** Parses every document of every file; a syntax error anywhere refuses all of them. */
export function readManifests(paths: string[]): ManifestDocument[] {
  const out: ManifestDocument[] = [];
  const problems: FieldProblem[] = [];
  for (const file of paths.flatMap(manifestFiles)) {
    const text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
    out.push(...parseManifest(text, file, problems));
  }
  if (problems.length) throw new ResourceInvalid(problems);
  return out;
}

export function parseManifest(text: string, file: string, problems: FieldProblem[]): ManifestDocument[] {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const out: ManifestDocument[] = [];
  for (const doc of Array.isArray(docs) ? docs : [docs]) {
    for (const e of doc.errors) {
      problems.push({ index: -1, resource: 'YAML', field: '', message: `syntax error: ${e.message.split('\n')[0]}`, file, line: lines.linePos(e.pos[0]).line });
    }
    if (doc.errors.length) continue;
    let value: unknown;
    try {
      // Aliases are resolved here, not while parsing: an alias to no anchor, or more aliases than
      // the yaml library allows (its guard against exponential expansion), throws a ReferenceError.
      value = doc.toJS();
    } catch (err) {
      problems.push({ index: -1, resource: 'YAML', field: '', message: (err as Error).message.split('\n')[0]!, file, line: lines.linePos(doc.contents?.range?.[0] ?? 0).line });
      continue;
    }
    if (value === null || value === undefined) continue; // empty document, e.g. a trailing `---`
    const start = doc.contents?.range?.[0] ?? 0;
    out.push({ file, line: lines.linePos(start).line, value, doc, lines });
  }
  return out;
}

/** The line of a dotted field path inside a document, or of its nearest existing parent. */
export function lineOf(d: ManifestDocument, field: string): number {
  const path = field
    .replace(/\[(\d+)\]/g, '.$1')
    .split('.')
    .filter(Boolean)
    .map((p) => (/^\d+$/.test(p) ? Number(p) : p));
  for (let n = path.length; n >= 0; n--) {
    const node = d.doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined;
    if (node && typeof node === 'object' && node.range) return d.lines.linePos(node.range[0]).line;
    // A scalar key's pair: ask the parent map for the key's position.
    const parent = n > 0 ? (d.doc.getIn(path.slice(0, n - 1), true) as { items?: { key: { value?: unknown; range?: number[] } }[] } | undefined) : undefined;
    const item = parent?.items?.find((i) => i.key?.value === path[n - 1]);
    if (item?.key?.range) return d.lines.linePos(item.key.range[0]).line;
  }
  return d.line;
}

/** Fills in file and line of problems found in documents read by readManifests. */
export function locate(problems: FieldProblem[], docs: ManifestDocument[]): FieldProblem[] {
  return problems.map((p) => {
    const d = docs[p.index];
    return d ? { ...p, file: d.file, line: lineOf(d, p.field) } : p;
  });
}
