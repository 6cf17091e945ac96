// The mTLS mode a workload port accepts, from PeerAuthentication with Istio's precedence: workload
// (selector) over namespace over mesh (root namespace), UNSET inheriting from the level above, and a
// workload policy's portLevelMtls on top. Enforcing the mode on inbound connections is the proxy's.

import type { PolicyEntry, WorkloadEntry } from '../protocol/config.js';
import { byName, canOverlap, isRecord, policyName, readSelector, type Selector, selects } from './spec.js';
import type { MtlsDecision, MtlsMode, PolicyWarning } from './types.js';

/** A policy's setting at one level: a decision, or `null` for UNSET (inherit). */
type Setting = MtlsDecision | null;

interface CompiledPeerAuthentication {
  name: string;
  selector: Selector | undefined;
  mtls: Setting;
  /** Target port of the workload (not the Service port) to its setting; workload policies only. */
  ports: Map<number, Setting>;
}

interface NamespacePolicies {
  namespaceWide?: CompiledPeerAuthentication;
  /** Workload-level policies, by name: the first that selects a workload wins. */
  workload: CompiledPeerAuthentication[];
}

// Proto comment of UNSET: "Inherit from parent, if has one. Otherwise treated as PERMISSIVE."
const defaultMode: MtlsDecision = Object.freeze({ mode: 'PERMISSIVE' });
const modes = new Set(['STRICT', 'PERMISSIVE', 'DISABLE']);

function compile(entry: PolicyEntry, rootNamespace: string, warn: (message: string) => void): CompiledPeerAuthentication | undefined {
  const name = policyName(entry);
  const spec = entry.spec ?? {};
  if (!isRecord(spec)) {
    warn('spec must be an object; the node proxy ignores this policy');
    return undefined;
  }
  const selector = readSelector(spec);
  if ('problem' in selector) {
    warn(`${selector.problem}; the node proxy ignores this policy`);
    return undefined;
  }
  // API doc: "PeerAuthentication policies with workload selectors are ignored when deployed in the root namespace."
  if (selector.selector && entry.namespace === rootNamespace) {
    warn(`has a selector in the root namespace ${rootNamespace}, where Istio ignores selectors: the policy is ignored`);
    return undefined;
  }
  const setting = (m: unknown, where: string): Setting => {
    const mode = isRecord(m) ? m.mode : undefined;
    if (mode === undefined || mode === 'UNSET') return null;
    if (typeof mode !== 'string' || !modes.has(mode)) {
      warn(`${where}.mode ${JSON.stringify(mode)} is not UNSET, DISABLE, PERMISSIVE or STRICT: treated as UNSET`);
      return null;
    }
    // Ambient docs: HBONE implies mTLS, "it is not possible to use the DISABLE mode"; as in istiod for
    // ztunnel, DISABLE only means "not STRICT": plaintext is accepted, as under PERMISSIVE.
    if (mode === 'DISABLE') warn(`${where}.mode DISABLE cannot turn off mTLS for HBONE; the node proxy accepts plaintext as under PERMISSIVE`);
    return Object.freeze({ mode: mode as MtlsMode, policy: name });
  };
  const ports = new Map<number, Setting>();
  const portLevel = spec.portLevelMtls;
  if (portLevel !== undefined && portLevel !== null) {
    // API doc, portLevelMtls: "These only apply when a workload selector is specified."
    if (!selector.selector) warn('portLevelMtls applies only to a policy with a selector: ignored');
    else if (!isRecord(portLevel)) warn('spec.portLevelMtls must map ports to { mode }: ignored');
    else
      for (const [key, m] of Object.entries(portLevel)) {
        const port = Number(key);
        if (!/^\d{1,5}$/.test(key) || port < 1 || port > 65535) warn(`spec.portLevelMtls key ${JSON.stringify(key)} is not a port 1-65535: ignored`);
        else ports.set(port, setting(m, `spec.portLevelMtls.${key}`));
      }
  }
  return { name, selector: selector.selector, mtls: setting(spec.mtls, 'spec.mtls'), ports };
}

export class PeerAuthenticator {
  private mesh: CompiledPeerAuthentication | undefined;
  private byNamespace = new Map<string, NamespacePolicies>();
  private problems: PolicyWarning[] = [];

  /** `rootNamespace`: Istio's root namespace, whose policy without selector is mesh-wide. */
  constructor(readonly rootNamespace = 'istio-system') {}

  /** Replaces every PeerAuthentication; other kinds in the list are skipped. */
  update(policies: readonly PolicyEntry[]): void {
    const problems: PolicyWarning[] = [];
    const byNamespace = new Map<string, NamespacePolicies>();
    let mesh: CompiledPeerAuthentication | undefined;
    // Istio: "When there are more than one policy in the same scope (i.e workload-level), the oldest
    // one win." Entries carry no creation time, so the first by name wins, and the others are reported.
    const sorted = policies.filter((p) => p.kind === 'PeerAuthentication').sort(byName);
    const shadowed = (p: CompiledPeerAuthentication, by: CompiledPeerAuthentication, scope: string) =>
      problems.push({ policy: p.name, message: `${by.name} is also ${scope} and comes first by name, so this policy is ignored (Istio would keep the older one)` });
    for (const entry of sorted) {
      const p = compile(entry, this.rootNamespace, (message) => problems.push({ policy: policyName(entry), message }));
      if (!p) continue;
      if (entry.namespace === this.rootNamespace) {
        if (mesh) shadowed(p, mesh, 'mesh-wide');
        else mesh = p;
        continue;
      }
      let ns = byNamespace.get(entry.namespace);
      if (!ns) byNamespace.set(entry.namespace, (ns = { workload: [] }));
      if (!p.selector) {
        if (ns.namespaceWide) shadowed(p, ns.namespaceWide, `namespace-wide in ${entry.namespace}`);
        else ns.namespaceWide = p;
        continue;
      }
      for (const other of ns.workload) {
        if (canOverlap(p.selector, other.selector)) {
          problems.push({ policy: p.name, message: `can select the same workloads as ${other.name} (${other.selector!.text}); on a workload both select, ${other.name} wins, first by name (Istio would keep the older one)` });
        }
      }
      ns.workload.push(p);
    }
    this.mesh = mesh;
    this.byNamespace = byNamespace;
    this.problems = problems;
  }

  /**
   * The mode for connections to `port` (the workload's target port) of a workload. Istio's
   * ComposePeerAuthentication: mesh, then namespace, then workload, each non-UNSET setting replacing
   * the one above; then the workload policy's setting for the port, where UNSET keeps the workload's.
   */
  mode(workload: WorkloadEntry, port: number): MtlsDecision {
    let result: MtlsDecision = this.mesh?.mtls ?? defaultMode;
    const ns = this.byNamespace.get(workload.namespace);
    if (!ns) return result;
    result = ns.namespaceWide?.mtls ?? result;
    for (let i = 0; i < ns.workload.length; i++) {
      const p = ns.workload[i]!;
      if (!selects(p.selector, workload.labels)) continue;
      result = p.mtls ?? result;
      return p.ports.get(port) ?? result;
    }
    return result;
  }

  /** What the node proxy does not apply as written, for every policy or for one (`namespace/name`). */
  warnings(policy?: string): PolicyWarning[] {
    return policy === undefined ? [...this.problems] : this.problems.filter((w) => w.policy === policy);
  }
}
