// The vocabulary of the waypoint's L7 security: what it knows about one HTTP request when it decides
// (the request as normalized, the tunnel's peer, the JWT that authenticated it), and what it answers.
// Shared by the waypoint (which enforces) and explain (which walks the same decision).

/** `request.auth.*`: what a verified JWT says, in Istio's terms. */
export interface RequestAuth {
  /** Istio's request principal, `<iss>/<sub>`. */
  principal: string;
  issuer: string;
  subject: string;
  /** The token's `aud`, always a list. */
  audiences: string[];
  /** `azp`, when the token has one. */
  presenter?: string;
  /** Every claim of the payload, as decoded. */
  claims: Record<string, unknown>;
}

/** One HTTP request at the waypoint, as its L7 policies see it. */
export interface HttpRequestAttributes {
  method: string;
  /** The path after normalization, without its query (`request.url_path`): what policies and the backend see. */
  path: string;
  /** The Host (or `:authority`) as sent, port included when sent. */
  host: string;
  /** Lower-case names, as Node gives them. */
  headers: Record<string, string | string[] | undefined>;
  /** The tunnel's peer: the source workload's address (Forwarded `for=`), '' when unknown. */
  sourceIp: string;
  /** `<trust-domain>/ns/<ns>/sa/<sa>` of the source workload, '' without one. */
  sourcePrincipal: string;
  sourceNamespace: string;
  /** What the client dialled: the Service's address and port. */
  destinationIp: string;
  destinationPort: number;
  /** Absent when no JWT was presented (or none was required to be checked). */
  auth?: RequestAuth;
}

export type HttpPolicyAction = 'ALLOW' | 'DENY' | 'AUDIT';

/** The answer for one request. `audit` names the AUDIT policies that matched; they never change the answer. */
export interface HttpDecision {
  readonly allowed: boolean;
  /** `DENY policy shop/deny-admin rule 0`, `ALLOW policy shop/allow-get rule 1`, `no ALLOW policy matched`... */
  readonly reason: string;
  readonly policy?: string;
  readonly rule?: number;
  readonly action?: HttpPolicyAction;
  readonly audit?: readonly string[];
}
