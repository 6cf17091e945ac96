// The CustomResourceDefinitions of the mesh's kinds (Istio's security and networking kinds ambit
// accepts, the Gateway API's, and ambit.dev's own), which the local cluster installs at start as an
// installer would, never replacing one already there. No npm package ships the upstream CRDs'
// openAPIV3Schemas as data, so their schemas are made from ambit's own (shared/resources/mesh-schemas.ts)
// in Kubernetes' structural form; names, short names, categories and printer columns are upstream's.

import type { Store } from '../../controller/store/store.js';
import { kinds } from '../../shared/resources/kinds.js';
import { meshSpecs } from '../../shared/resources/mesh-schemas.js';
import type { Resource } from '../../shared/resources/types.js';
import { type Crd, crdProblems, crdStatus, type PrinterColumn } from './crd-validation.js';
import type { JsonSchemaProps } from './crd-schema.js';
import { builtInGroups } from './resources.js';

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
  // Alternatives that only require fields (Istio's oneOfs) are value validations a structural schema may carry.
  const requires = (x: unknown): x is { required: string[] } => isObject(x) && Array.isArray(x.required) && Object.keys(x).length === 1;
  const anyOf: unknown[] = [];
  if (Array.isArray(s.anyOf) && s.anyOf.every(requires)) anyOf.push({ anyOf: s.anyOf });
  for (const part of Array.isArray(s.allOf) ? s.allOf : []) if (isObject(part) && Array.isArray(part.anyOf) && part.anyOf.every(requires)) anyOf.push({ anyOf: part.anyOf });
  if (anyOf.length === 1) Object.assign(out, anyOf[0]);
  else if (anyOf.length > 1) out.allOf = anyOf;
  return out;
}

interface MeshCrdInfo {
  categories: string[];
  columns: PrinterColumn[];
  description: string;
}

const age: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };
const istio = (sub: string) => ['istio-io', `${sub}-istio-io`];
const gatewayApi = ['gateway-api'];

const info: Record<string, MeshCrdInfo> = {
  AuthorizationPolicy: { categories: istio('security'), columns: [{ name: 'Action', type: 'string', jsonPath: '.spec.action', description: 'The operation to take.' }, age], description: 'Istio AuthorizationPolicy: access control for workloads in the mesh.' },
  PeerAuthentication: { categories: istio('security'), columns: [{ name: 'Mode', type: 'string', jsonPath: '.spec.mtls.mode', description: 'Defines the mTLS mode used for peer authentication.' }, age], description: 'Istio PeerAuthentication: the mutual TLS mode of workloads.' },
  RequestAuthentication: { categories: istio('security'), columns: [], description: 'Istio RequestAuthentication: which JWTs a workload accepts.' },
  DestinationRule: { categories: istio('networking'), columns: [{ name: 'Host', type: 'string', jsonPath: '.spec.host', description: 'The name of a service from the service registry.' }, age], description: 'Istio DestinationRule: traffic policy for a service after routing.' },
  Gateway: {
    categories: gatewayApi,
    columns: [
      { name: 'Class', type: 'string', jsonPath: '.spec.gatewayClassName' },
      { name: 'Address', type: 'string', jsonPath: '.status.addresses[*].value' },
      { name: 'Programmed', type: 'string', jsonPath: '.status.conditions[?(@.type=="Programmed")].status' },
      age,
    ],
    description: 'Gateway API Gateway; of class ambit-waypoint, a waypoint.',
  },
  HTTPRoute: { categories: gatewayApi, columns: [{ name: 'Hostnames', type: 'string', jsonPath: '.spec.hostnames' }, age], description: 'Gateway API HTTPRoute: how HTTP requests are routed.' },
  GRPCRoute: { categories: gatewayApi, columns: [{ name: 'Hostnames', type: 'string', jsonPath: '.spec.hostnames' }, age], description: 'Gateway API GRPCRoute: how gRPC requests are routed.' },
  FaultInjection: { categories: ['ambit'], columns: [], description: 'ambit FaultInjection: delays and aborts an HTTPRoute refers to.' },
  LocalRateLimit: { categories: ['ambit'], columns: [], description: 'ambit LocalRateLimit: a token bucket at a waypoint.' },
  TrustBundle: { categories: ['ambit'], columns: [], description: "ambit TrustBundle: the mesh CA's roots for a trust domain, published by the controller's leader." },
};

/** The CRD of every kind that kinds.ts marks as served by one. */
export function meshCrds(): Crd[] {
  return kinds
    .filter((k) => k.crd)
    .map((k): Crd => {
      const [group, version] = k.apiVersion.split('/') as [string, string];
      const [singular, plural, ...shortNames] = k.names as [string, string, ...string[]];
      const mesh = meshSpecs[k.kind]!;
      const about = info[k.kind]!;
      const spec = structural(mesh.spec);
      const schema: JsonSchemaProps = {
        description: about.description,
        type: 'object',
        properties: {
          apiVersion: { type: 'string' },
          kind: { type: 'string' },
          metadata: { type: 'object' },
          spec,
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
          names: { plural, singular, kind: k.kind, listKind: `${k.kind}List`, ...(shortNames.length ? { shortNames } : {}), categories: about.categories },
          scope: k.namespaced ? 'Namespaced' : 'Cluster',
          versions: [
            {
              name: version,
              served: true,
              storage: true,
              schema: { openAPIV3Schema: schema },
              ...(k.kind === 'TrustBundle' ? {} : { subresources: { status: {} } }),
              ...(about.columns.length ? { additionalPrinterColumns: about.columns } : {}),
            },
          ],
          conversion: { strategy: 'None' },
        },
      } as Crd;
    });
}

/**
 * Installs the mesh's CRDs that `store` lacks, established, in one commit; one already there (a
 * user's own, or an older ambit's) is left as it is. Returns the names installed.
 */
export function installMeshCrds(store: Store): string[] {
  const existing = store.list('CustomResourceDefinition') as Crd[];
  const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  const added: Crd[] = [];
  for (const crd of meshCrds()) {
    if (existing.some((e) => e.metadata.name === crd.metadata.name)) continue;
    const all = [...existing, ...added];
    // A kind another CRD already serves (a user's Gateway of networking.istio.io, say) is not taken over.
    if (all.some((o) => o.spec.names.kind === crd.spec.names.kind)) continue;
    const problems = crdProblems(crd, undefined, builtInGroups, () => undefined);
    if (problems.length) throw new Error(`ambit's CRD ${crd.metadata.name} is invalid: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`);
    crd.status = crdStatus(crd, all, undefined, now);
    (crd.metadata as Resource['metadata'] & { generation?: number }).generation = 1;
    added.push(crd);
  }
  if (added.length) store.commit(added);
  return added.map((c) => c.metadata.name);
}
