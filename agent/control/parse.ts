// Parses a large config push without holding the event loop for the whole of it: a scanner that
// knows only strings and nesting finds the entries of the top-level `upserts` array, then the
// envelope and the entries are parsed a few hundred at a time, with the event loop given back
// between slices. The result is what one JSON.parse of the text would give.

import type { Pacer } from '../state/pacer.js';

const quote = 0x22;
const backslash = 0x5c;
const comma = 0x2c;
const colon = 0x3a;
const openBrace = 0x7b;
const closeBrace = 0x7d;
const openBracket = 0x5b;
const closeBracket = 0x5d;
/** Characters scanned, and entries parsed, between two looks at the clock. */
const scanStride = 65_536;
const entriesPerParse = 256;

/** Where the elements of the top-level `upserts` array start, and where the array closes. */
interface UpsertsSpan {
  open: number;
  close: number;
  starts: number[];
}

export async function parseConfigPush(text: string, pacer: Pacer): Promise<unknown> {
  const span = await findUpserts(text, pacer);
  // Not the shape a push has: one parse, which also says what is wrong.
  if (!span) return JSON.parse(text);
  const envelope = JSON.parse(text.slice(0, span.open + 1) + text.slice(span.close)) as Record<string, unknown>;
  // Another `upserts` key later in the text would win in JSON.parse; so it does here.
  if (!Array.isArray(envelope.upserts) || envelope.upserts.length > 0) return JSON.parse(text);
  const upserts: unknown[] = [];
  const n = span.starts.length;
  for (let i = 0; i < n; i += entriesPerParse) {
    const j = Math.min(n, i + entriesPerParse);
    const end = j < n ? span.starts[j]! - 1 : span.close;
    for (const e of JSON.parse(`[${text.slice(span.starts[i], end)}]`) as unknown[]) upserts.push(e);
    if (pacer.due()) await pacer.pause();
  }
  envelope.upserts = upserts;
  return envelope;
}

async function findUpserts(text: string, pacer: Pacer): Promise<UpsertsSpan | undefined> {
  let depth = 0;
  let span: UpsertsSpan | undefined;
  let nextLook = scanStride;
  for (let i = 0; i < text.length; i++) {
    if (i >= nextLook) {
      nextLook = i + scanStride;
      if (pacer.due()) await pacer.pause();
    }
    const c = text.charCodeAt(i);
    if (c === quote) {
      const end = stringEnd(text, i);
      if (end < 0) return undefined;
      if (depth === 1 && !span && text.slice(i + 1, end) === 'upserts') {
        const afterColon = nextToken(text, end + 1);
        if (text.charCodeAt(afterColon) === colon) {
          const open = nextToken(text, afterColon + 1);
          if (text.charCodeAt(open) !== openBracket) return undefined;
          span = { open, close: -1, starts: [] };
          if (text.charCodeAt(nextToken(text, open + 1)) !== closeBracket) span.starts.push(open + 1);
          depth = 2;
          i = open;
          continue;
        }
      }
      i = end;
    } else if (c === openBrace || c === openBracket) depth++;
    else if (c === closeBrace || c === closeBracket) {
      depth--;
      if (span && depth === 1 && span.close < 0) {
        span.close = i;
        return span;
      }
    } else if (c === comma && span && depth === 2) span.starts.push(i + 1);
  }
  return undefined;
}

/** The index of the quote that closes the string opening at `start`, or -1. */
function stringEnd(text: string, start: number): number {
  let j = text.indexOf('"', start + 1);
  while (j > 0) {
    let slashes = 0;
    for (let k = j - 1; text.charCodeAt(k) === backslash; k--) slashes++;
    if (slashes % 2 === 0) return j;
    j = text.indexOf('"', j + 1);
  }
  return -1;
}

function nextToken(text: string, from: number): number {
  let i = from;
  while (i < text.length && /\s/.test(text[i]!)) i++;
  return i;
}
