// Decides whether the node proxy lets a connection reach a workload, from the AuthorizationPolicies
// that select it, in Istio's order: DENY, then ALLOW, default deny once an ALLOW applies. Policies are
// compiled and indexed by namespace on update; a decision scans two namespaces and allocates nothing.

import type { PolicyEntry, WorkloadEntry } from '../protocol/config.js';
import type { Labels } from '../resources/types.js';
import { type CompiledPolicy, compileAuthorizationPolicy } from './authorization-rules.js';
import { type ConnectionFacts, ipv4, type Match, matches } from './match.js';
import { byName, selects } from './spec.js';
import type { ConnectionAttributes, Decision, PolicyWarning } from './types.js';

interface EnforcedRule {
  clauses: Match[][];
  decision: Decision;
}

interface EnforcedPolicy {
  selector: CompiledPolicy['selector'];
  rules: EnforcedRule[];
}

/** The policies of one namespace (or of the mesh, for the root namespace), split by action, by name. */
interface PolicySet {
  deny: EnforcedPolicy[];
  allow: EnforcedPolicy[];
}

const noPolicies: PolicySet = { deny: [], allow: [] };
const noAllowPolicy: Decision = Object.freeze({ allowed: true, reason: 'no ALLOW policy applies' });
const noAllowMatched: Decision = Object.freeze({ allowed: false, reason: 'no ALLOW policy matched' });

function enforced(p: CompiledPolicy): EnforcedPolicy {
  const rules = p.rules.map((r) => ({
    clauses: r.clauses,
    decision: Object.freeze({ allowed: p.action === 'ALLOW', reason: `${p.action} policy ${p.name} rule ${r.index}`, policy: p.name, rule: r.index, action: p.action }),
  }));
  return { selector: p.selector, rules };
}

function ruleMatches(rule: EnforcedRule, facts: ConnectionFacts): boolean {
  for (let i = 0; i < rule.clauses.length; i++) {
    const clause = rule.clauses[i]!;
    let any = false;
    for (let j = 0; j < clause.length && !any; j++) any = matches(clause[j]!, facts);
    if (!any) return false;
  }
  return true;
}

export class Authorizer {
  private mesh: PolicySet = noPolicies;
  private byNamespace = new Map<string, PolicySet>();
  private problems: PolicyWarning[] = [];
  private readonly facts: ConnectionFacts = { sourceIp: -1, destinationIp: -1, destinationPort: 0, principal: '', namespace: '' };
  /** Set by `firstMatch`: some policy it scanned selects the destination. */
  private selected = false;

  /** `rootNamespace`: Istio's root namespace, whose policies apply mesh-wide. */
  constructor(readonly rootNamespace = 'istio-system') {}

  /** Replaces every AuthorizationPolicy; other kinds in the list are skipped. */
  update(policies: readonly PolicyEntry[]): void {
    const problems: PolicyWarning[] = [];
    const byNamespace = new Map<string, PolicySet>();
    const sorted = policies.filter((p) => p.kind === 'AuthorizationPolicy').sort(byName);
    for (const entry of sorted) {
      const compiled = compileAuthorizationPolicy(entry, (w) => problems.push(w));
      if (!compiled) continue;
      let set = byNamespace.get(compiled.namespace);
      if (!set) byNamespace.set(compiled.namespace, (set = { deny: [], allow: [] }));
      (compiled.action === 'DENY' ? set.deny : set.allow).push(enforced(compiled));
    }
    this.mesh = byNamespace.get(this.rootNamespace) ?? noPolicies;
    byNamespace.delete(this.rootNamespace);
    this.byNamespace = byNamespace;
    this.problems = problems;
  }

  /**
   * Istio's evaluation (API doc, AuthorizationPolicy): "2. If there are any DENY policies that match
   * the request, deny the request. 3. If there are no ALLOW policies for the workload, allow the
   * request. 4. If any of the ALLOW policies match the request, allow the request. 5. Deny the
   * request." Policies of the root namespace apply to workloads of every namespace.
   */
  authorize(destination: WorkloadEntry, conn: ConnectionAttributes): Decision {
    const local = destination.namespace === this.rootNamespace ? noPolicies : (this.byNamespace.get(destination.namespace) ?? noPolicies);
    const mesh = this.mesh;
    if (local === noPolicies && mesh === noPolicies) return noAllowPolicy;
    const facts = this.facts;
    facts.sourceIp = ipv4(conn.sourceIp);
    facts.destinationIp = ipv4(conn.destinationIp);
    facts.destinationPort = conn.destinationPort;
    facts.principal = conn.sourcePrincipal ?? '';
    facts.namespace = conn.sourceNamespace ?? '';
    const labels = destination.labels;
    const denied = this.firstMatch(mesh.deny, labels) ?? this.firstMatch(local.deny, labels);
    if (denied) return denied;
    this.selected = false;
    const allowed = this.firstMatch(mesh.allow, labels) ?? this.firstMatch(local.allow, labels);
    if (allowed) return allowed;
    return this.selected ? noAllowMatched : noAllowPolicy;
  }

  /** What the node proxy does not enforce as written, for every policy or for one (`namespace/name`). */
  warnings(policy?: string): PolicyWarning[] {
    return policy === undefined ? [...this.problems] : this.problems.filter((w) => w.policy === policy);
  }

  private firstMatch(policies: EnforcedPolicy[], labels: Labels | undefined): Decision | undefined {
    for (let i = 0; i < policies.length; i++) {
      const p = policies[i]!;
      if (!selects(p.selector, labels)) continue;
      this.selected = true;
      for (let j = 0; j < p.rules.length; j++) if (ruleMatches(p.rules[j]!, this.facts)) return p.rules[j]!.decision;
    }
    return undefined;
  }
}
