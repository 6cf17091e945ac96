// The CustomResourceDefinitions of the mesh's kinds, as an installer applies them: Istio's and the
// Gateway API's exactly as upstream publishes them (vendored as data in manifests/crds/, with their
// source and licence in each file's header), and ambit.dev's own made from ambit's schemas
// (shared/resources/mesh-schemas.ts). Shared by the local cluster's API server, which installs them at
// start, and any installer of ambit onto a real cluster; checking and serving them is the API server's.

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { kinds } from '../resources/kinds.js';
import { meshSpecs } from '../resources/mesh-schemas.js';
import type { Resource } from '../resources/types.js';

/** A CRD version's openAPIV3Schema, or any node of it (apiextensions.k8s.io/v1 JSONSchemaProps). */
/** What ambit installs carries this label (`ambit uninstall` and a second install tell ambit's objects by it). */
export const partOfLabel = { 'app.kubernetes.io/part-of': 'ambit' } as const;

export type JsonSchemaProps = Record<string, unknown>;

export interface CrdNames {
  plural: string;
  singular: string;
  kind: string;
  listKind: string;
  shortNames?: string[];
  categories?: string[];
}

export interface PrinterColumn {
  name: string;
  type: string;
  jsonPath: string;
  format?: string;
  description?: string;
  priority?: number;
}

export interface CrdVersion {
  name: string;
  served: boolean;
  storage: boolean;
  deprecated?: boolean;
  deprecationWarning?: string;
  schema?: { openAPIV3Schema?: JsonSchemaProps };
  subresources?: { status?: Record<string, never>; scale?: unknown };
  additionalPrinterColumns?: PrinterColumn[];
}

export interface CrdSpec {
  group: string;
  names: CrdNames;
  scope: 'Namespaced' | 'Cluster';
  versions: CrdVersion[];
  conversion?: { strategy: string };
  preserveUnknownFields?: boolean;
}

export interface Condition {
  type: string;
  status: 'True' | 'False';
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export type Crd = Resource & { spec: CrdSpec; status?: { conditions?: Condition[]; acceptedNames?: CrdNames; storedVersions?: string[] } };

/** The vendored upstream files, beside the package root (dist/shared/kube/ is three levels below it). */
export const upstreamCrdFiles = ['istio.yaml', 'gateway-api.yaml'].map((f) => fileURLToPath(new URL(`../../../manifests/crds/${f}`, import.meta.url)));
/** Their parsed form, kept beside the compiled tree (dist/manifests/crds/). */
const parsedDir = fileURLToPath(new URL('../../manifests/crds/', import.meta.url));

let upstream: Crd[] | undefined;

/**
 * The documents of one vendored file. Parsing a megabyte of YAML takes seconds, so the result is
 * kept as JSON beside the compiled tree, keyed by the file's hash, and parsed again only when the
 * file changed; a tree that cannot be written to parses every time.
 */
function documentsOf(file: string): Crd[] {
  const text = readFileSync(file, 'utf8');
  const hash = createHash('sha256').update(text).digest('hex');
  const cache = join(parsedDir, `${basename(file, '.yaml')}.json`);
  try {
    const kept = JSON.parse(readFileSync(cache, 'utf8')) as { sha256: string; documents: Crd[] };
    if (kept.sha256 === hash) return kept.documents;
  } catch {
    // None kept yet, or unreadable: parse the YAML.
  }
  const documents = parseAllDocuments(text).flatMap((doc) => {
    if (doc.errors.length) throw new Error(`${file}: ${doc.errors[0]!.message}`);
    const crd = doc.toJS() as Crd | null;
    if (!crd) return [];
    // kubebuilder writes `creationTimestamp: null`; the server sets its own.
    delete (crd.metadata as { creationTimestamp?: unknown }).creationTimestamp;
    return [crd];
  });
  try {
    mkdirSync(parsedDir, { recursive: true });
    const tmp = `${cache}.tmp-${process.pid}`;
    writeFileSync(tmp, JSON.stringify({ sha256: hash, documents }));
    renameSync(tmp, cache);
  } catch {
    // A read-only install: correct, only slower.
  }
  return documents;
}

/** The upstream CRDs as published (read once per process; callers get their own copies). */
export function upstreamCrds(): Crd[] {
  upstream ??= upstreamCrdFiles.flatMap(documentsOf);
  return structuredClone(upstream);
}

type Schema = Record<string, unknown>;

const isObject = (v: unknown): v is Schema => typeof v === 'object' && v !== null && !Array.isArray(v);
const typeOf = (v: unknown) => (typeof v === 'string' ? 'string' : typeof v === 'boolean' ? 'boolean' : Number.isInteger(v) ? 'integer' : 'number');

/**
 * A JSON Schema of ambit's in the structural form a CRD needs: every node typed; `const` as a
 * one-value enum; closed objects open-ended in the text (a structural schema is closed by what it
 * names, and the server refuses the rest); an object with no properties keeps unknown fields;
 * `propertyNames` and `dependencies` (not allowed in a CRD) are left out, and ambit's own checks,
 * which the API server still runs for these kinds, enforce them.
 */
export function structural(s: Schema): JsonSchemaProps {
  const out: JsonSchemaProps = {};
  for (const k of ['description', 'pattern', 'minLength', 'maxLength', 'minimum', 'maximum', 'minItems', 'maxItems', 'minProperties', 'maxProperties', 'format']) if (s[k] !== undefined) out[k] = s[k];
  if ('const' in s) out.enum = [s.const];
  if (Array.isArray(s.enum)) out.enum = s.enum;
  let type = typeof s.type === 'string' ? s.type : undefined;
  if (!type && Array.isArray(out.enum)) type = typeOf((out.enum as unknown[])[0]);
  if (!type && (s.properties || s.additionalProperties !== undefined)) type = 'object';
  if (type) out.type = type;
  if (isObject(s.properties)) out.properties = Object.fromEntries(Object.entries(s.properties).map(([k, v]) => [k, structural(v as Schema)]));
  if (Array.isArray(s.required) && s.required.length) out.required = s.required;
  if (isObject(s.items)) out.items = structural(s.items);
  if (isObject(s.additionalProperties)) out.additionalProperties = structural(s.additionalProperties);
  if (type === 'object' && !out.properties && !out.additionalProperties) out['x-kubernetes-preserve-unknown-fields'] = true;
  // Alternatives that only require fields are value validations a structural schema may carry.
  const requires = (x: unknown): x is { required: string[] } => isObject(x) && Array.isArray(x.required) && Object.keys(x).length === 1;
  const anyOf: unknown[] = [];
  if (Array.isArray(s.anyOf) && s.anyOf.every(requires)) anyOf.push({ anyOf: s.anyOf });
  for (const part of Array.isArray(s.allOf) ? s.allOf : []) if (isObject(part) && Array.isArray(part.anyOf) && part.anyOf.every(requires)) anyOf.push({ anyOf: part.anyOf });
  if (anyOf.length === 1) Object.assign(out, anyOf[0]);
  else if (anyOf.length > 1) out.allOf = anyOf;
  return out;
}

const ambitKinds: Record<string, { description: string; status: boolean }> = {
  FaultInjection: { description: 'ambit FaultInjection: delays and aborts an HTTPRoute refers to.', status: true },
  LocalRateLimit: { description: 'ambit LocalRateLimit: a token bucket at a waypoint.', status: true },
  TrustBundle: { description: "ambit TrustBundle: the mesh CA's roots for a trust domain, published by the controller's leader.", status: false },
};

/** The CRD of one of ambit.dev's own kinds, from ambit's schema of it. */
function ambitCrd(kind: string): Crd {
  const k = kinds.find((x) => x.kind === kind)!;
  const [group, version] = k.apiVersion.split('/') as [string, string];
  const [singular, plural, ...shortNames] = k.names as [string, string, ...string[]];
  const mesh = meshSpecs[kind]!;
  const about = ambitKinds[kind]!;
  const schema: JsonSchemaProps = {
    description: about.description,
    type: 'object',
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      spec: structural(mesh.spec),
      // Written by ambit's controller; what it holds is the controller's (conditions, warnings).
      status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
    },
    ...(mesh.specRequired ? { required: ['spec'] } : {}),
  };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${group}`, labels: { 'app.kubernetes.io/part-of': 'ambit', 'ambit.dev/schema': 'ambit' } },
    spec: {
      group,
      names: { plural, singular, kind, listKind: `${kind}List`, ...(shortNames.length ? { shortNames } : {}), categories: ['ambit'] },
      scope: k.namespaced ? 'Namespaced' : 'Cluster',
      versions: [{ name: version, served: true, storage: true, schema: { openAPIV3Schema: schema }, ...(about.status ? { subresources: { status: {} } } : {}) }],
      conversion: { strategy: 'None' },
    },
  } as Crd;
}

/**
 * The CRD of every kind that kinds.ts marks as served by one: upstream's for Istio's and the Gateway
 * API's, ambit's own for ambit.dev's. Throws when a kind has none, or its CRD does not serve the
 * version ambit's clients use (kinds.ts), which would be a broken vendored file.
 */
export function meshCrds(): Crd[] {
  const published = upstreamCrds();
  return kinds
    .filter((k) => k.crd)
    .map((k) => {
      const [group, version] = k.apiVersion.split('/') as [string, string];
      if (group === 'ambit.dev') return ambitCrd(k.kind);
      const crd = published.find((c) => c.spec.group === group && c.spec.names.kind === k.kind);
      if (!crd) throw new Error(`no upstream CustomResourceDefinition of ${k.kind} (${group}) in ${upstreamCrdFiles.join(', ')}`);
      if (!crd.spec.versions.some((v) => v.name === version && v.served)) throw new Error(`the upstream CustomResourceDefinition ${crd.metadata.name} does not serve ${version}, which ambit uses`);
      return crd;
    });
}
