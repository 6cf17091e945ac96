// Reading Istio security specs as applied (`spec: unknown`): the parts AuthorizationPolicy and
// PeerAuthentication share, that is policy names, field access and the workload selector, compiled so
// that matching a workload's labels on the connection path allocates nothing.

import type { Labels } from '../resources/types.js';
import type { PolicyEntry } from '../protocol/config.js';

export function policyName(p: PolicyEntry): string {
  return `${p.namespace}/${p.name}`;
}

/** Orders policies by namespace, then name, by code point: the same order on every node. */
export function byName(a: PolicyEntry, b: PolicyEntry): number {
  const x = policyName(a);
  const y = policyName(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

export function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** `selector.matchLabels` as parallel arrays; `text` is `app=web,version=v1` for messages. */
export interface Selector {
  keys: string[];
  values: string[];
  text: string;
}

/**
 * The selector of a spec, `undefined` when it selects every workload in scope (absent, or no labels:
 * Istio treats an empty `matchLabels` as no selector), or a problem to report.
 */
export function readSelector(spec: Record<string, unknown>): { selector: Selector | undefined } | { problem: string } {
  const s = spec.selector;
  if (s === undefined || s === null) return { selector: undefined };
  if (!isRecord(s) || (s.matchLabels !== undefined && !isRecord(s.matchLabels))) return { problem: 'spec.selector must be { matchLabels: { label: value } }' };
  const labels = (s.matchLabels ?? {}) as Record<string, unknown>;
  const keys = Object.keys(labels).sort();
  const values: string[] = [];
  for (const k of keys) {
    const v = labels[k];
    if (typeof v !== 'string') return { problem: `spec.selector.matchLabels.${k} must be a string` };
    values.push(v);
  }
  if (keys.length === 0) return { selector: undefined };
  return { selector: { keys, values, text: keys.map((k, i) => `${k}=${values[i]}`).join(',') } };
}

/** Whether a selector (or its absence, which selects all) selects a workload with these labels. */
export function selects(selector: Selector | undefined, labels: Labels | undefined): boolean {
  if (selector === undefined) return true;
  if (labels === undefined) return false;
  for (let i = 0; i < selector.keys.length; i++) {
    if (labels[selector.keys[i]!] !== selector.values[i]) return false;
  }
  return true;
}

/** Whether some set of labels is selected by both: no label required with two different values. */
export function canOverlap(a: Selector | undefined, b: Selector | undefined): boolean {
  if (a === undefined || b === undefined) return true;
  for (let i = 0; i < a.keys.length; i++) {
    const j = b.keys.indexOf(a.keys[i]!);
    if (j >= 0 && b.values[j] !== a.values[i]) return false;
  }
  return true;
}
