// Decides whether the waypoint lets one HTTP request reach a Service, from the AuthorizationPolicies
// attached to the waypoint or the Service (targetRefs), in Istio's order: DENY, then ALLOW, default
// deny once an ALLOW applies; AUDIT only recorded. Answering the request is the waypoint's concern.

import type { PolicyEntry } from '../../protocol/config.js';
import { byName } from '../spec.js';
import { type Attachment, attachedTo, readAttachment } from './attachment.js';
import { type Check, holds, prepareFacts, type RequestFacts } from './checks.js';
import { compileHttpPolicy, type CompiledHttpRule } from './rules.js';
import type { HttpDecision, HttpRequestAttributes } from './types.js';

interface EnforcedRule {
  rule: CompiledHttpRule;
  /** Shared and frozen: a decision allocates nothing for it. */
  decision: HttpDecision;
}

interface EnforcedPolicy {
  /** `namespace/name`. */
  name: string;
  /** As written: CUSTOM (or an unknown action) is enforced as DENY. */
  written: string;
  attachment: Attachment;
  rules: EnforcedRule[];
}

/** The policies that apply to one Service through this waypoint, by action, by name. */
interface ServicePolicies {
  deny: EnforcedPolicy[];
  allow: EnforcedPolicy[];
  audit: EnforcedPolicy[];
}

export interface HttpPolicyWarning {
  /** `namespace/name`. */
  policy: string;
  rule?: number;
  message: string;
}

const noPolicy: HttpDecision = Object.freeze({ allowed: true, reason: 'no policy applies' });
const noAllowPolicy: HttpDecision = Object.freeze({ allowed: true, reason: 'no ALLOW policy applies' });
const noAllowMatched: HttpDecision = Object.freeze({ allowed: false, reason: 'no ALLOW policy matched' });

function sourcesHold(sources: Check[][], f: RequestFacts): boolean {
  if (sources.length === 0) return true;
  for (let i = 0; i < sources.length; i++) {
    const checks = sources[i]!;
    let all = true;
    for (let j = 0; j < checks.length && all; j++) all = holds(checks[j]!, f);
    if (all) return true;
  }
  return false;
}

/** Istio's Rule: "A match occurs when at least one source, one operation and all conditions matches the request." */
function ruleMatches(r: CompiledHttpRule, f: RequestFacts): boolean {
  if (!sourcesHold(r.from, f) || !sourcesHold(r.to, f)) return false;
  for (let i = 0; i < r.when.length; i++) if (!holds(r.when[i]!, f)) return false;
  return true;
}

function failure(c: Check, f: RequestFacts): string {
  return `${c.field} [${c.values.join(', ')}] ${c.negate ? 'matched' : 'did not match'} ${c.seen(f)}`;
}

/** Why a rule does not match, or undefined when it does: explain's reading of ruleMatches. */
function whyNot(r: CompiledHttpRule, f: RequestFacts): string | undefined {
  for (const [name, sources] of [['from', r.from], ['to', r.to]] as const) {
    if (sourcesHold(sources, f)) continue;
    const each = sources.map((checks, i) => `${name}[${i}]: ${failure(checks.find((c) => !holds(c, f))!, f)}`);
    return each.length === 1 ? each[0] : `no ${name} matched (${each.join('; ')})`;
  }
  const failed = r.when.find((c) => !holds(c, f));
  return failed ? failure(failed, f) : undefined;
}

export class HttpAuthorizer {
  private policies: EnforcedPolicy[] = [];
  private byService = new Map<string, ServicePolicies>();
  private problems: HttpPolicyWarning[] = [];
  private readonly facts: RequestFacts = { a: undefined as unknown as HttpRequestAttributes, host: '', sourceIp: -1, destinationIp: -1 };

  /**
   * `waypoint`: `namespace/name` of this waypoint's Gateway; `rootNamespace`: Istio's root namespace,
   * where a policy may name the waypoint GatewayClass to apply at every waypoint.
   */
  constructor(
    readonly waypoint: string,
    readonly rootNamespace: string,
  ) {}

  /**
   * Replaces every policy; only AuthorizationPolicies with targetRefs are the waypoint's (a selector
   * policy is the node proxy's). Which apply to a Service is worked out on its first request.
   */
  update(policies: readonly PolicyEntry[]): void {
    const enforced: EnforcedPolicy[] = [];
    const problems: HttpPolicyWarning[] = [];
    for (const entry of policies.filter((p) => p.kind === 'AuthorizationPolicy').sort(byName)) {
      const { attachment, problems: refs } = readAttachment(entry.spec, entry.namespace, this.rootNamespace);
      if (!attachment) continue;
      const compiled = compileHttpPolicy(entry);
      const policy = compiled.name;
      for (const p of refs) problems.push({ policy, message: `${p.field}: ${p.message}; that ref attaches to nothing` });
      for (const w of compiled.warnings) problems.push(w.rule === undefined ? { policy, message: w.message } : { policy, rule: w.rule, message: w.message });
      const action = compiled.action === 'ALLOW' || compiled.action === 'AUDIT' ? compiled.action : 'DENY';
      const rules = compiled.rules.map((rule) => {
        const reason = compiled.action === 'CUSTOM' ? `CUSTOM policy ${policy} rule ${rule.index} (not supported: denied)` : `${action} policy ${policy} rule ${rule.index}`;
        return { rule, decision: Object.freeze({ allowed: action !== 'DENY', reason, policy, rule: rule.index, action }) };
      });
      enforced.push({ name: policy, written: compiled.action, attachment, rules });
    }
    this.policies = enforced;
    this.byService = new Map();
    this.problems = problems;
  }

  /**
   * Istio's evaluation (API doc, AuthorizationPolicy): "If there are any DENY policies that match the
   * request, deny the request. If there are no ALLOW policies for the workload, allow the request. If
   * any of the ALLOW policies match the request, allow the request. Deny the request." AUDIT policies
   * "will not affect whether requests are allowed or denied"; those that match are named in `audit`.
   * `service`: `namespace/name` of the Service the request is for.
   */
  authorize(service: string, a: HttpRequestAttributes): HttpDecision {
    const set = this.policiesFor(service);
    if (set.deny.length === 0 && set.allow.length === 0 && set.audit.length === 0) return noPolicy;
    const f = this.facts;
    prepareFacts(f, a);
    const decision = firstMatch(set.deny, f) ?? firstMatch(set.allow, f) ?? (set.allow.length > 0 ? noAllowMatched : noAllowPolicy);
    if (set.audit.length === 0) return decision;
    let audit: string[] | undefined;
    for (const p of set.audit) {
      if (p.rules.some((r) => ruleMatches(r.rule, f))) (audit ??= []).push(p.name);
    }
    return audit ? Object.freeze({ ...decision, audit }) : decision;
  }

  /** The decision, and a line for each policy and rule considered: which matched, which field failed. */
  explain(service: string, a: HttpRequestAttributes): { decision: HttpDecision; lines: string[] } {
    const decision = this.authorize(service, a);
    const set = this.policiesFor(service);
    const lines: string[] = [];
    const f = this.facts;
    prepareFacts(f, a);
    for (const [action, policies] of [['DENY', set.deny], ['ALLOW', set.allow], ['AUDIT', set.audit]] as const) {
      for (const p of policies) {
        const label = p.written === action ? `${action} ${p.name}` : `${action} ${p.name} (written ${p.written})`;
        if (p.rules.length === 0) lines.push(`${label}: no rules, matches nothing`);
        for (const r of p.rules) {
          const why = whyNot(r.rule, f);
          lines.push(`${label} rule ${r.rule.index}: ${why ?? 'matched'}`);
        }
      }
    }
    if (lines.length === 0) lines.push(`no AuthorizationPolicy is attached to ${service} or to waypoint ${this.waypoint}`);
    lines.push(`${decision.allowed ? 'allowed' : 'denied'}: ${decision.reason}${decision.audit ? `; audited by ${decision.audit.join(', ')}` : ''}`);
    return { decision, lines };
  }

  /** What the waypoint does not enforce as written, for every attached policy. */
  warnings(): HttpPolicyWarning[] {
    return [...this.problems];
  }

  private policiesFor(service: string): ServicePolicies {
    let set = this.byService.get(service);
    if (!set) {
      set = { deny: [], allow: [], audit: [] };
      for (const p of this.policies) {
        if (!attachedTo(p.attachment, this.waypoint, service)) continue;
        const action = p.written === 'ALLOW' || p.written === 'AUDIT' ? p.written : 'DENY';
        (action === 'ALLOW' ? set.allow : action === 'AUDIT' ? set.audit : set.deny).push(p);
      }
      this.byService.set(service, set);
    }
    return set;
  }
}

function firstMatch(policies: EnforcedPolicy[], f: RequestFacts): HttpDecision | undefined {
  for (let i = 0; i < policies.length; i++) {
    const rules = policies[i]!.rules;
    for (let j = 0; j < rules.length; j++) if (ruleMatches(rules[j]!.rule, f)) return rules[j]!.decision;
  }
  return undefined;
}
