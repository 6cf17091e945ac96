// Reads one AuthorizationPolicy for the waypoint: its action and each rule as Checks, with what ambit
// cannot honour or what is invalid, by field. The controller refuses a policy with problems at apply
// time (httpPolicyProblems); the waypoint compiles what reaches it anyway, failing closed.

import type { PolicyEntry } from '../../protocol/config.js';
import { isRecord, policyName } from '../spec.js';
import { type Check, compileCheck, compileFields, conditionAttribute, type FieldProblem } from './checks.js';

/** Matches when `from` is empty or one source holds, `to` likewise, and every `when` holds. */
export interface CompiledHttpRule {
  /** Index in `spec.rules`. */
  index: number;
  /** Each source (operation) holds when every Check of it holds. */
  from: Check[][];
  to: Check[][];
  when: Check[];
}

export type HttpPolicyActionWritten = 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM';

export interface CompiledHttpPolicy {
  /** `namespace/name`. */
  name: string;
  /** CUSTOM, or an action that is none of Istio's, is enforced as DENY of what its rules match. */
  action: HttpPolicyActionWritten;
  rules: CompiledHttpRule[];
  warnings: { rule?: number; message: string }[];
}

const ruleFields = ['from', 'to', 'when'];

/** One rule; values that do not compile are left out and reported `dropped`. */
export function compileHttpRule(rule: unknown, index: number, policyNamespace: string, problems: FieldProblem[]): CompiledHttpRule {
  const where = `spec.rules[${index}]`;
  const out: CompiledHttpRule = { index, from: [], to: [], when: [] };
  if (!isRecord(rule)) {
    problems.push({ field: where, message: 'must be an object', dropped: true });
    return out;
  }
  for (const field of Object.keys(rule)) if (!ruleFields.includes(field)) problems.push({ field: `${where}.${field}`, message: 'is not a field of a rule (from, to, when)', dropped: true });
  out.from = clauses(rule.from, 'from', 'source', policyNamespace, where, problems);
  out.to = clauses(rule.to, 'to', 'operation', policyNamespace, where, problems);
  const when = rule.when ?? [];
  if (!Array.isArray(when)) problems.push({ field: `${where}.when`, message: 'must be a list', dropped: true });
  else when.forEach((c, i) => out.when.push(...condition(c, policyNamespace, i, `${where}.when[${i}]`, problems)));
  return out;
}

function clauses(list: unknown, field: 'from' | 'to', inner: 'source' | 'operation', ns: string, where: string, problems: FieldProblem[]): Check[][] {
  if (list === undefined || list === null) return [];
  const at = `${where}.${field}`;
  if (!Array.isArray(list)) {
    problems.push({ field: at, message: 'must be a list', dropped: true });
    return [];
  }
  // Istio's validation: "`from` must not be empty" (an empty list would match nothing, unlike no list).
  if (list.length === 0) problems.push({ field: at, message: 'must not be an empty list (leave it out to match any)', dropped: false });
  return list.map((item, i) => {
    const obj = isRecord(item) ? item[inner] : undefined;
    const path = `${at}[${i}].${inner}`;
    if (!isRecord(obj)) {
      problems.push({ field: path, message: 'must be an object', dropped: true });
      return [];
    }
    const checks = compileFields(inner, obj, ns, path, problems);
    if (Object.keys(obj).length === 0) problems.push({ field: path, message: 'must not be empty', dropped: false });
    const has = (k: string) => obj[k] !== undefined;
    if ((has('serviceAccounts') || has('notServiceAccounts')) && ['principals', 'notPrincipals', 'namespaces', 'notNamespaces'].some(has)) {
      problems.push({ field: path, message: 'cannot set serviceAccounts with namespaces or principals (Istio refuses it)', dropped: false });
    }
    return checks;
  });
}

function condition(c: unknown, ns: string, index: number, where: string, problems: FieldProblem[]): Check[] {
  if (!isRecord(c) || typeof c.key !== 'string' || c.key === '') {
    problems.push({ field: `${where}.key`, message: 'must be set', dropped: true });
    return [];
  }
  const key = c.key;
  const attribute = conditionAttribute(key, ns);
  if ('error' in attribute) {
    problems.push({ field: `${where}.key`, message: attribute.error, dropped: true });
    return [];
  }
  if (key === 'connection.sni') problems.push({ field: `${where}.key`, message: 'connection.sni is always empty at a waypoint (its HBONE stream has no SNI)', dropped: false });
  const hasValues = Array.isArray(c.values) && c.values.length > 0;
  const hasNot = Array.isArray(c.notValues) && c.notValues.length > 0;
  if (!hasValues && !hasNot) {
    problems.push({ field: where, message: `needs values or notValues (${key})`, dropped: true });
    return [];
  }
  const out: Check[] = [];
  const v = compileCheck(`when[${index}] ${key}`, c.values, false, attribute, `${where}.values`, problems);
  const n = compileCheck(`when[${index}] ${key} notValues`, c.notValues, true, attribute, `${where}.notValues`, problems);
  if (v) out.push(v);
  if (n) out.push(n);
  return out;
}

const actions = ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'];

/** Policy-level problems, and the rules compiled. `policyNamespace` resolves bare service accounts. */
function read(spec: unknown, policyNamespace: string): { action: HttpPolicyActionWritten; rules: CompiledHttpRule[] | undefined; problems: FieldProblem[]; perRule: FieldProblem[][] } {
  const problems: FieldProblem[] = [];
  const perRule: FieldProblem[][] = [];
  if (!isRecord(spec)) return { action: 'DENY', rules: undefined, problems: [{ field: 'spec', message: 'must be an object', dropped: true }], perRule };
  const written = spec.action ?? 'ALLOW';
  let action: HttpPolicyActionWritten = 'DENY';
  if (typeof written !== 'string' || !actions.includes(written)) problems.push({ field: 'spec.action', message: `${JSON.stringify(written)} is not ALLOW, DENY, AUDIT or CUSTOM`, dropped: true });
  else action = written as HttpPolicyActionWritten;
  if (action === 'CUSTOM') problems.push({ field: 'spec.action', message: 'CUSTOM (an external authorizer) is not supported by ambit: use ALLOW, DENY or AUDIT', dropped: true });
  if (spec.provider !== undefined && action !== 'CUSTOM') problems.push({ field: 'spec.provider', message: 'is only for the CUSTOM action', dropped: false });
  const targeted = spec.targetRef !== undefined || (Array.isArray(spec.targetRefs) && spec.targetRefs.length > 0);
  if (spec.selector !== undefined && targeted) problems.push({ field: 'spec.selector', message: 'set selector or targetRefs, not both', dropped: false });
  if (spec.rules === undefined || spec.rules === null) {
    // Istio: "DENY action without `rules` is meaningless as it will never be triggered".
    if (action === 'DENY') problems.push({ field: 'spec.rules', message: 'a DENY policy without rules never matches: add an empty rule {} to deny every request', dropped: false });
    return { action, rules: [], problems, perRule };
  }
  if (!Array.isArray(spec.rules)) {
    problems.push({ field: 'spec.rules', message: 'must be a list', dropped: true });
    return { action, rules: undefined, problems, perRule };
  }
  const rules = spec.rules.map((r, i) => {
    const p: FieldProblem[] = [];
    perRule.push(p);
    return compileHttpRule(r, i, policyNamespace, p);
  });
  return { action, rules, problems, perRule };
}

/**
 * What ambit cannot honour in an AuthorizationPolicy spec at a waypoint, or what is invalid, each with
 * its field path; empty when the policy is enforced exactly as written. Used at apply time to refuse
 * a policy. Its targetRefs are readAttachment's to check (they need the policy's namespace).
 */
export function httpPolicyProblems(spec: unknown, policyNamespace = ''): { field: string; message: string }[] {
  const r = read(spec, policyNamespace);
  return [...r.problems, ...r.perRule.flat()].map(({ field, message }) => ({ field, message }));
}

/**
 * The policy as the waypoint enforces it. Failing closed where Istio's model does (istiod's
 * checkError: an ALLOW rule with a value it cannot translate is skipped, "a smaller allow policy";
 * for DENY and AUDIT the value is ignored, "a wider deny policy"), and further: istiod skips a rule
 * with an unknown `when` key whatever the action, but its validation refuses such a policy first;
 * ambit's waypoint drops that condition from a DENY rule, so the rule denies more, never less.
 * `rules` that is not a list allows nothing (ALLOW) or denies everything (DENY).
 */
export function compileHttpPolicy(entry: PolicyEntry): CompiledHttpPolicy {
  const r = read(entry.spec ?? {}, entry.namespace);
  const warnings: CompiledHttpPolicy['warnings'] = r.problems.map((p) => ({ message: `${p.field}: ${p.message}` }));
  const enforcedAs = r.action === 'ALLOW' || r.action === 'AUDIT' ? r.action : 'DENY';
  if (r.action === 'CUSTOM') warnings.push({ message: 'enforced as DENY of what its rules match, as Istio does for a CUSTOM policy whose provider it cannot use' });
  if (r.rules === undefined) {
    const rules = enforcedAs === 'DENY' ? [{ index: 0, from: [], to: [], when: [] }] : [];
    warnings.push({ message: enforcedAs === 'DENY' ? 'denies every request until it is fixed' : 'matches nothing until it is fixed' });
    return { name: policyName(entry), action: r.action, rules, warnings };
  }
  const rules: CompiledHttpRule[] = [];
  r.rules.forEach((rule, i) => {
    const problems = r.perRule[i]!;
    for (const p of problems) warnings.push({ rule: i, message: `${p.field}: ${p.message}` });
    const dropped = problems.some((p) => p.dropped);
    if (dropped && enforcedAs === 'ALLOW') warnings.push({ rule: i, message: 'this ALLOW rule never matches until it is fixed' });
    else {
      if (dropped) warnings.push({ rule: i, message: `this ${enforcedAs} rule is enforced without what it could not read, so it matches more than written` });
      rules.push(rule);
    }
  });
  return { name: policyName(entry), action: r.action, rules, warnings };
}
