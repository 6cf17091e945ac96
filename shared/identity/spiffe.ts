// SPIFFE identities of workloads: spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>.

export interface Identity {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

export function spiffeId(i: Identity): string {
  return `spiffe://${i.trustDomain}/ns/${i.namespace}/sa/${i.serviceAccount}`;
}

/** Istio's principal form, as AuthorizationPolicy `principals` write it: no scheme. */
export function principal(i: Identity): string {
  return `${i.trustDomain}/ns/${i.namespace}/sa/${i.serviceAccount}`;
}

const pattern = /^spiffe:\/\/([a-z0-9._-]+)\/ns\/([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/sa\/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/;

/** The identity a SPIFFE ID names, or undefined when it is not a workload identity of this form. */
export function parseSpiffeId(uri: string): Identity | undefined {
  const m = pattern.exec(uri);
  if (!m) return undefined;
  return { trustDomain: m[1]!, namespace: m[2]!, serviceAccount: m[4]! };
}

/** A node agent's own identity, for its channel to the controller: spiffe://<td>/ambit/node/<name>. */
export function nodeSpiffeId(trustDomain: string, node: string): string {
  return `spiffe://${trustDomain}/ambit/node/${node}`;
}

export function parseNodeSpiffeId(uri: string): { trustDomain: string; node: string } | undefined {
  const m = /^spiffe:\/\/([a-z0-9._-]+)\/ambit\/node\/([a-z0-9]([-a-z0-9]*[a-z0-9])?)$/.exec(uri);
  return m ? { trustDomain: m[1]!, node: m[2]! } : undefined;
}
