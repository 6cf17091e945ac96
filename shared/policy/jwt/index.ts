// The waypoint's RequestAuthentication (security.istio.io/v1), as Envoy's jwt_authn enforces it in
// Istio: which rules apply to a Service, whether a request's tokens are valid, and what goes upstream.
// The waypoint calls it; the controller refuses bad rules at apply time with jwtRuleProblems.

export { RequestAuthenticator } from './authenticator.js';
export type { JwtOptions, JwtRequest, JwtResult, JwtRuleSet } from './authenticator.js';
export { jwtRuleProblems, readJwtRules } from './rules.js';
export type { JwtRuleProblem, JwtRuleSpec } from './rules.js';
export { algorithms } from './keys.js';
