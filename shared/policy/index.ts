// The node proxy's L4 policy engine: AuthorizationPolicy decisions and the PeerAuthentication mTLS
// mode of a workload port, pure and synchronous. Feeding it policies and enforcing its answers on
// connections is the proxy's concern.

export { Authorizer } from './authorization.js';
export { PeerAuthenticator } from './peer-authentication.js';
export type { ConnectionAttributes, Decision, MtlsDecision, MtlsMode, PolicyAction, PolicyWarning } from './types.js';
