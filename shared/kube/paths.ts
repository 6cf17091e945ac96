// Where a kind's objects live in the Kubernetes REST API: `/api/v1/...` for the core group,
// `/apis/GROUP/VERSION/...` for the others, namespaced or not, by their plural.

import { AmbitError } from '../errors.js';
import { kindInfo } from '../resources/kinds.js';

export interface ResourceKind {
  kind: string;
  apiVersion: string;
  /** Lower-case plural: the URL segment. */
  plural: string;
  namespaced: boolean;
}

/** A kind of shared/resources/kinds.ts, with its URL segment. */
export function resourceKind(kind: string): ResourceKind {
  const info = kindInfo(kind);
  if (!info) throw new AmbitError('UnknownKind', `${kind} is not a kind ambit knows`);
  return { kind, apiVersion: info.apiVersion, plural: info.names[1]!, namespaced: info.namespaced };
}

function groupPath(apiVersion: string): string {
  return apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
}

/** The collection (for list, watch and create): every namespace when a namespaced kind is given none. */
export function collectionPath(k: ResourceKind, namespace?: string): string {
  return k.namespaced && namespace ? `${groupPath(k.apiVersion)}/namespaces/${encodeURIComponent(namespace)}/${k.plural}` : `${groupPath(k.apiVersion)}/${k.plural}`;
}

export function objectPath(k: ResourceKind, namespace: string, name: string, subresource?: string): string {
  if (k.namespaced && !namespace) throw new AmbitError('NamespaceRequired', `${k.kind} ${name}: a namespace is required`);
  return `${collectionPath(k, k.namespaced ? namespace : undefined)}/${encodeURIComponent(name)}${subresource ? `/${subresource}` : ''}`;
}
