// The vocabulary of the node proxy's L4 policy engine: what it is asked about a connection, what it
// answers, and the warnings it keeps per policy for status. Shared by authorization.ts and
// peer-authentication.ts; the proxy and the admin API import these types from index.ts.

/**
 * What the destination node proxy knows about an inbound connection at L4. `sourcePrincipal` is
 * Istio's principal form, `<trust-domain>/ns/<namespace>/sa/<service-account>` (no `spiffe://`), and
 * with `sourceNamespace` is absent for a plaintext connection.
 */
export interface ConnectionAttributes {
  sourceIp: string;
  sourcePrincipal?: string;
  sourceNamespace?: string;
  destinationIp: string;
  destinationPort: number;
}

export type PolicyAction = 'ALLOW' | 'DENY';

/** The answer for one connection. Shared and frozen: the connection path allocates nothing for it. */
export interface Decision {
  readonly allowed: boolean;
  /** `DENY policy shop/deny-legacy rule 0`, `ALLOW policy shop/allow-web rule 1`, `no ALLOW policy matched`... */
  readonly reason: string;
  /** `namespace/name` of the policy that decided, when one did. */
  readonly policy?: string;
  readonly rule?: number;
  readonly action?: PolicyAction;
}

/** Something of a policy the node proxy does not enforce as written; `rule` is the index in `spec.rules`. */
export interface PolicyWarning {
  /** `namespace/name`. */
  policy: string;
  rule?: number;
  message: string;
}

export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

/** The mTLS mode a workload port accepts, and the PeerAuthentication (`namespace/name`) that set it. */
export interface MtlsDecision {
  readonly mode: MtlsMode;
  readonly policy?: string;
}
