// Compiles one AuthorizationPolicy, as applied, into what the node proxy can enforce at L4: its
// scope, its action, and each rule as clauses of Matches; with a warning for every part it cannot
// enforce as written. Deciding on a connection from compiled policies is authorization.ts's concern.

import type { PolicyEntry } from '../protocol/config.js';
import { type Match, ipRange, port, stringMatch } from './match.js';
import { isRecord, policyName, readSelector, type Selector } from './spec.js';
import type { PolicyAction, PolicyWarning } from './types.js';

/** Matches when every clause does; a clause (`from`, `to`, each `when`) when any of its Matches does. */
export interface CompiledRule {
  /** Index in `spec.rules`. */
  index: number;
  clauses: Match[][];
}

export interface CompiledPolicy {
  /** `namespace/name`. */
  name: string;
  namespace: string;
  action: PolicyAction;
  /** Undefined: every workload in scope. */
  selector: Selector | undefined;
  /** The rules that can match; an ALLOW rule the node proxy cannot evaluate is left out. */
  rules: CompiledRule[];
}

// The source and operation fields a node proxy can evaluate. The others only a waypoint (an HTTP
// proxy) can: requestPrincipals, remoteIpBlocks, hosts, methods, paths and their `not` forms, which
// istiod reports for ztunnel as "ztunnel does not support HTTP attributes" (its httpSources and
// httpOperations). remoteIpBlocks is among them: it comes from X-Forwarded-For or the PROXY protocol.
const sourceFields = ['principals', 'notPrincipals', 'namespaces', 'notNamespaces', 'serviceAccounts', 'notServiceAccounts', 'ipBlocks', 'notIpBlocks'];
const operationFields = ['ports', 'notPorts'];
// `when` keys a node proxy can see (istiod's l4WhenAttributes); any other key is treated as L7.
const l4WhenKeys = new Set(['source.ip', 'source.namespace', 'source.principal', 'destination.ip', 'destination.port']);

const ipBlock = 'an IPv4 address or CIDR block';
export const serviceAccountForm = 'a service account (<namespace>/<name> or <name>, no wildcard)';

/**
 * A `serviceAccounts` value as the principal suffix `/ns/<namespace>/sa/<name>` that match.ts's
 * matchesServiceAccount looks for, or undefined when it is not one. API doc: "This takes the format
 * <namespace>/<serviceaccount>. <serviceaccount> may also be used to use the same namespace as the
 * AuthorizationPolicy. No form of wildcard (*) is allowed."
 */
export function serviceAccountSuffix(text: string, policyNamespace: string): string | undefined {
  const parts = text.split('/');
  if (parts.length > 2 || text.includes('*') || parts.some((p) => p === '')) return undefined;
  const [ns, sa] = parts.length === 2 ? parts : [policyNamespace, parts[0]];
  return `/ns/${ns}/sa/${sa}`;
}
const portNumber = 'a port number (0-65535)';

/** Reads one rule, noting what the node proxy cannot see (`unseen`) and what is malformed (`invalid`). */
class RuleReader {
  readonly unseen = new Set<string>();
  readonly invalid: string[] = [];

  constructor(private readonly policyNamespace: string) {}

  /** The objects under `field` (`from`/`to`), each unwrapped from its `source`/`operation`. */
  items(rule: Record<string, unknown>, field: string, inner: string, where: string): [unknown, string][] {
    const v = rule[field];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) return this.bad(`${where}.${field} must be a list`, []);
    return v.map((item, i) => [isRecord(item) ? item[inner] : undefined, `${where}.${field}[${i}].${inner}`]);
  }

  source(s: unknown, where: string): Match {
    if (!isRecord(s)) return this.bad(`${where} must be an object`, {});
    this.noteUnseen(s, sourceFields);
    const f = (field: string) => this.list(s, field, where);
    return {
      principals: f('principals')?.map(stringMatch),
      notPrincipals: f('notPrincipals')?.map(stringMatch),
      namespaces: f('namespaces')?.map(stringMatch),
      notNamespaces: f('notNamespaces')?.map(stringMatch),
      serviceAccounts: this.parse(f('serviceAccounts'), `${where}.serviceAccounts`, serviceAccountForm, this.serviceAccount),
      notServiceAccounts: this.parse(f('notServiceAccounts'), `${where}.notServiceAccounts`, serviceAccountForm, this.serviceAccount),
      sourceIps: this.parse(f('ipBlocks'), `${where}.ipBlocks`, ipBlock, ipRange),
      notSourceIps: this.parse(f('notIpBlocks'), `${where}.notIpBlocks`, ipBlock, ipRange),
    };
  }

  operation(o: unknown, where: string): Match {
    if (!isRecord(o)) return this.bad(`${where} must be an object`, {});
    this.noteUnseen(o, operationFields);
    return {
      destinationPorts: this.parse(this.list(o, 'ports', where), `${where}.ports`, portNumber, port),
      notDestinationPorts: this.parse(this.list(o, 'notPorts', where), `${where}.notPorts`, portNumber, port),
    };
  }

  /** A `when` condition as a Match, or undefined when the node proxy cannot evaluate it. */
  condition(c: unknown, where: string): Match | undefined {
    if (!isRecord(c) || typeof c.key !== 'string') return this.bad(`${where} needs a key`, undefined);
    const key = c.key;
    if (!l4WhenKeys.has(key)) {
      this.unseen.add(key);
      return undefined;
    }
    const values = this.list(c, 'values', where);
    const notValues = this.list(c, 'notValues', where);
    if (!values && !notValues) return this.bad(`${where} (${key}) needs values or notValues`, undefined);
    const at = `${where} (${key})`;
    switch (key) {
      case 'source.ip':
        return { sourceIps: this.parse(values, at, ipBlock, ipRange), notSourceIps: this.parse(notValues, at, ipBlock, ipRange) };
      case 'destination.ip':
        return { destinationIps: this.parse(values, at, ipBlock, ipRange), notDestinationIps: this.parse(notValues, at, ipBlock, ipRange) };
      case 'destination.port':
        return { destinationPorts: this.parse(values, at, portNumber, port), notDestinationPorts: this.parse(notValues, at, portNumber, port) };
      case 'source.namespace':
        return { namespaces: values?.map(stringMatch), notNamespaces: notValues?.map(stringMatch) };
      default:
        return { principals: values?.map(stringMatch), notPrincipals: notValues?.map(stringMatch) };
    }
  }

  private serviceAccount = (text: string): string | undefined => serviceAccountSuffix(text, this.policyNamespace);

  private noteUnseen(obj: Record<string, unknown>, seen: string[]): void {
    for (const [field, v] of Object.entries(obj)) {
      const set = v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0);
      if (set && !seen.includes(field)) this.unseen.add(field);
    }
  }

  private list(obj: Record<string, unknown>, field: string, where: string): string[] | undefined {
    const v = obj[field];
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) return this.bad(`${where}.${field} must be a list of strings`, undefined);
    return v.length === 0 ? undefined : (v as string[]);
  }

  /** Every value parsed, or undefined (the field is dropped) with a problem noted for the first bad one. */
  private parse<T>(values: string[] | undefined, where: string, what: string, read: (s: string) => T | undefined): T[] | undefined {
    if (!values) return undefined;
    const out: T[] = [];
    for (const v of values) {
      const parsed = read(v);
      if (parsed === undefined) return this.bad(`${where} ${JSON.stringify(v)} is not ${what}`, undefined);
      out.push(parsed);
    }
    return out;
  }

  private bad<T>(problem: string, result: T): T {
    this.invalid.push(problem);
    return result;
  }
}

const isEmpty = (m: Match) => Object.values(m).every((v) => v === undefined);

/**
 * Istio ambient's fail-closed rule (istiod's handleRule for ztunnel): "Within an ALLOW policy, rules
 * matching HTTP attributes are omitted"; "DENY policy with HTTP attributes is enforced without the
 * HTTP rules. This will be more restrictive than requested." A malformed value is treated the same
 * way: the ALLOW rule is dropped, the DENY rule loses that field. Either way it is reported.
 */
function compileRule(rule: unknown, index: number, action: PolicyAction, namespace: string, warn: (rule: number, message: string) => void): CompiledRule | undefined {
  const r = new RuleReader(namespace);
  const where = `rules[${index}]`;
  const clauses: Match[][] = [];
  if (!isRecord(rule)) {
    r.invalid.push(`${where} must be an object`);
  } else {
    const from = r.items(rule, 'from', 'source', where).map(([s, at]) => r.source(s, at));
    const to = r.items(rule, 'to', 'operation', where).map(([o, at]) => r.operation(o, at));
    if (from.length > 0) clauses.push(from);
    if (to.length > 0) clauses.push(to);
    const when = rule.when ?? [];
    if (!Array.isArray(when)) r.invalid.push(`${where}.when must be a list`);
    for (const [i, c] of (Array.isArray(when) ? when : []).entries()) {
      const m = r.condition(c, `${where}.when[${i}]`);
      if (m) clauses.push([m]);
    }
    for (const field of Object.keys(rule)) if (!['from', 'to', 'when'].includes(field)) r.unseen.add(field);
  }
  const allow = action === 'ALLOW';
  if (r.unseen.size > 0) {
    const names = [...r.unseen].sort().join(', ');
    const everything = clauses.every((c) => c.some(isEmpty)) ? ': every connection to the workloads it selects' : '';
    const effect = allow
      ? 'this ALLOW rule never matches (fail-closed); enforce it with a waypoint'
      : `this DENY rule is enforced without them, so it denies more than written${everything}`;
    warn(index, `uses ${names}, which the node proxy cannot see at L4: ${effect}`);
  }
  for (const problem of r.invalid) {
    warn(index, `${problem}: ${allow ? 'this ALLOW rule never matches until it is fixed' : 'this DENY rule is enforced without that field, so it denies more than written'}`);
  }
  if (allow && (r.unseen.size > 0 || r.invalid.length > 0)) return undefined;
  return { index, clauses };
}

/** The policy as the node proxy enforces it, or undefined when the node proxy does not enforce it. */
export function compileAuthorizationPolicy(entry: PolicyEntry, report: (w: PolicyWarning) => void): CompiledPolicy | undefined {
  const name = policyName(entry);
  const warn = (message: string, rule?: number) => report(rule === undefined ? { policy: name, message } : { policy: name, rule, message });
  const spec = entry.spec ?? {};
  if (!isRecord(spec)) {
    warn('spec must be an object; the node proxy does not enforce this policy');
    return undefined;
  }
  // istiod, for ztunnel: "TargetRef is not intended for ztunnel". A waypoint enforces it
  // (shared/policy/http/): nothing for the node proxy to do, or to warn about.
  const targetRefs = spec.targetRefs;
  if (spec.targetRef !== undefined || (Array.isArray(targetRefs) && targetRefs.length > 0)) {
    return undefined;
  }
  const action = spec.action ?? 'ALLOW';
  if (action === 'CUSTOM' || action === 'AUDIT') {
    warn(`the node proxy does not enforce the ${action} action (ztunnel does not support it); ${action === 'AUDIT' ? 'AUDIT never changes a decision' : 'use a waypoint for CUSTOM'}`);
    return undefined;
  }
  if (action !== 'ALLOW' && action !== 'DENY') {
    warn(`spec.action ${JSON.stringify(action)} is not ALLOW, DENY, AUDIT or CUSTOM; the node proxy does not enforce this policy`);
    return undefined;
  }
  const selector = readSelector(spec);
  if ('problem' in selector) {
    warn(`${selector.problem}; the node proxy does not enforce this policy`);
    return undefined;
  }

  // API doc, spec.rules: "If not set, the match will never occur. This is equivalent to setting a
  // default of deny for the target workloads if the action is ALLOW." And, for Rule: "An empty rule is
  // always matched", so `rules: [{}]` allows (or denies) everything.
  const rules: CompiledRule[] = [];
  const written = spec.rules ?? [];
  if (!Array.isArray(written)) {
    warn(`spec.rules must be a list: ${action === 'ALLOW' ? 'this ALLOW policy allows nothing' : 'this DENY policy denies every connection'} until it is fixed`);
    if (action === 'DENY') rules.push({ index: 0, clauses: [] });
  } else {
    written.forEach((rule, i) => {
      const compiled = compileRule(rule, i, action, entry.namespace, (ruleIndex, message) => warn(message, ruleIndex));
      if (compiled) rules.push(compiled);
    });
    if (action === 'ALLOW' && written.length > 0 && rules.length === 0) {
      warn('no rule of this ALLOW policy can match at L4: the workloads it selects accept only what another ALLOW policy allows');
    }
  }
  return { name, namespace: entry.namespace, action, selector: selector.selector, rules };
}
