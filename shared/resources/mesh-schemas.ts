// JSON Schemas of the mesh's own configuration, in the shapes users already write: Istio's
// security.istio.io/v1 AuthorizationPolicy, PeerAuthentication and RequestAuthentication, and the
// Gateway API's gateway.networking.k8s.io/v1 HTTPRoute, GRPCRoute and Gateway. Closed objects, so a misspelt
// field is an error, as in the kinds of schemas.ts.

type Schema = Record<string, unknown>;

function closed(properties: Record<string, Schema>, required: string[] = []): Schema {
  return { type: 'object', properties, required, additionalProperties: false };
}

const strings: Schema = { type: 'array', items: { type: 'string' } };
const portString: Schema = { type: 'array', items: { type: 'string', pattern: '^[0-9]{1,5}$' } };
const matchLabels: Schema = { type: 'object', additionalProperties: { type: 'string' } };
const workloadSelector = closed({ matchLabels });
const policyTargetRef = closed(
  { group: { type: 'string' }, kind: { type: 'string', minLength: 1 }, name: { type: 'string', minLength: 1 }, namespace: { type: 'string' } },
  ['kind', 'name'],
);

const source = closed({
  principals: strings,
  notPrincipals: strings,
  requestPrincipals: strings,
  notRequestPrincipals: strings,
  namespaces: strings,
  notNamespaces: strings,
  ipBlocks: strings,
  notIpBlocks: strings,
  remoteIpBlocks: strings,
  notRemoteIpBlocks: strings,
  serviceAccounts: strings,
  notServiceAccounts: strings,
});
const operation = closed({
  hosts: strings,
  notHosts: strings,
  ports: portString,
  notPorts: portString,
  methods: strings,
  notMethods: strings,
  paths: strings,
  notPaths: strings,
});
const condition = closed({ key: { type: 'string', minLength: 1 }, values: strings, notValues: strings }, ['key']);

const authorizationPolicySpec = closed({
  selector: workloadSelector,
  targetRef: policyTargetRef,
  targetRefs: { type: 'array', items: policyTargetRef },
  action: { enum: ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'] },
  provider: closed({ name: { type: 'string' } }, ['name']),
  rules: {
    type: 'array',
    items: closed({
      from: { type: 'array', items: closed({ source }, ['source']) },
      to: { type: 'array', items: closed({ operation }, ['operation']) },
      when: { type: 'array', items: condition },
    }),
  },
});

const mtlsMode: Schema = { enum: ['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'] };
const peerAuthenticationSpec = closed({
  selector: workloadSelector,
  mtls: closed({ mode: mtlsMode }),
  portLevelMtls: {
    type: 'object',
    propertyNames: { pattern: '^[0-9]{1,5}$' },
    additionalProperties: closed({ mode: mtlsMode }),
  },
});

const jwtRule = closed(
  {
    issuer: { type: 'string', minLength: 1 },
    audiences: strings,
    jwksUri: { type: 'string' },
    jwks: { type: 'string' },
    fromHeaders: { type: 'array', items: closed({ name: { type: 'string' }, prefix: { type: 'string' } }, ['name']) },
    fromParams: strings,
    fromCookies: strings,
    outputPayloadToHeader: { type: 'string' },
    forwardOriginalToken: { type: 'boolean' },
    outputClaimToHeaders: { type: 'array', items: closed({ header: { type: 'string' }, claim: { type: 'string' } }, ['header', 'claim']) },
    timeout: { type: 'string' },
  },
  ['issuer'],
);
const requestAuthenticationSpec = closed({
  selector: workloadSelector,
  targetRef: policyTargetRef,
  targetRefs: { type: 'array', items: policyTargetRef },
  jwtRules: { type: 'array', items: jwtRule },
});

const parentRef = closed(
  {
    group: { type: 'string' },
    kind: { type: 'string' },
    namespace: { type: 'string' },
    name: { type: 'string', minLength: 1 },
    sectionName: { type: 'string' },
    port: { type: 'integer', minimum: 1, maximum: 65535 },
  },
  ['name'],
);
const headerMatch = closed({ type: { enum: ['Exact', 'RegularExpression'] }, name: { type: 'string', minLength: 1 }, value: { type: 'string' } }, ['name', 'value']);
const headerModifier = closed({
  set: { type: 'array', items: closed({ name: { type: 'string' }, value: { type: 'string' } }, ['name', 'value']) },
  add: { type: 'array', items: closed({ name: { type: 'string' }, value: { type: 'string' } }, ['name', 'value']) },
  remove: strings,
});
const pathModifier = closed({ type: { enum: ['ReplaceFullPath', 'ReplacePrefixMatch'] }, replaceFullPath: { type: 'string' }, replacePrefixMatch: { type: 'string' } }, ['type']);
const backendObjectRef = closed({ group: { type: 'string' }, kind: { type: 'string' }, name: { type: 'string', minLength: 1 }, namespace: { type: 'string' }, port: { type: 'integer', minimum: 1, maximum: 65535 } }, ['name']);
const requestMirror = closed(
  { backendRef: backendObjectRef, percent: { type: 'integer', minimum: 0, maximum: 100 }, fraction: closed({ numerator: { type: 'integer' }, denominator: { type: 'integer' } }, ['numerator']) },
  ['backendRef'],
);
const filter = closed(
  {
    type: { enum: ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror', 'RequestRedirect', 'URLRewrite', 'ExtensionRef'] },
    requestHeaderModifier: headerModifier,
    responseHeaderModifier: headerModifier,
    requestMirror,
    requestRedirect: closed({ scheme: { enum: ['http', 'https'] }, hostname: { type: 'string' }, path: pathModifier, port: { type: 'integer' }, statusCode: { enum: [301, 302, 303, 307, 308] } }),
    urlRewrite: closed({ hostname: { type: 'string' }, path: pathModifier }),
    extensionRef: closed({ group: { type: 'string' }, kind: { type: 'string' }, name: { type: 'string' } }, ['group', 'kind', 'name']),
  },
  ['type'],
);
const duration: Schema = { type: 'string', pattern: '^([0-9]{1,5}(h|m|s|ms)){1,4}$' };
const httpRouteSpec = closed({
  parentRefs: { type: 'array', items: parentRef },
  hostnames: strings,
  rules: {
    type: 'array',
    items: closed({
      name: { type: 'string' },
      matches: {
        type: 'array',
        items: closed({
          path: closed({ type: { enum: ['Exact', 'PathPrefix', 'RegularExpression'] }, value: { type: 'string' } }),
          headers: { type: 'array', items: headerMatch },
          queryParams: { type: 'array', items: headerMatch },
          method: { enum: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'] },
        }),
      },
      filters: { type: 'array', items: filter },
      backendRefs: {
        type: 'array',
        items: closed(
          {
            group: { type: 'string' },
            kind: { type: 'string' },
            name: { type: 'string', minLength: 1 },
            namespace: { type: 'string' },
            port: { type: 'integer', minimum: 1, maximum: 65535 },
            weight: { type: 'integer', minimum: 0, maximum: 1000000 },
            filters: { type: 'array', items: filter },
          },
          ['name'],
        ),
      },
      timeouts: closed({ request: duration, backendRequest: duration }),
      retry: closed({ codes: { type: 'array', items: { type: 'integer', minimum: 400, maximum: 599 } }, attempts: { type: 'integer', minimum: 0 }, backoff: duration }),
    }),
  },
});

/** GRPCRoute has the filters that make sense for gRPC: no redirects or rewrites. */
const grpcFilter = closed(
  {
    type: { enum: ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror', 'ExtensionRef'] },
    requestHeaderModifier: headerModifier,
    responseHeaderModifier: headerModifier,
    requestMirror,
    extensionRef: closed({ group: { type: 'string' }, kind: { type: 'string' }, name: { type: 'string' } }, ['group', 'kind', 'name']),
  },
  ['type'],
);
const grpcRouteSpec = closed({
  parentRefs: { type: 'array', items: parentRef },
  hostnames: strings,
  rules: {
    type: 'array',
    items: closed({
      name: { type: 'string' },
      matches: {
        type: 'array',
        items: closed({
          method: closed({ type: { enum: ['Exact', 'RegularExpression'] }, service: { type: 'string' }, method: { type: 'string' } }),
          headers: { type: 'array', items: headerMatch },
        }),
      },
      filters: { type: 'array', items: grpcFilter },
      backendRefs: {
        type: 'array',
        items: closed(
          {
            group: { type: 'string' },
            kind: { type: 'string' },
            name: { type: 'string', minLength: 1 },
            namespace: { type: 'string' },
            port: { type: 'integer', minimum: 1, maximum: 65535 },
            weight: { type: 'integer', minimum: 0, maximum: 1000000 },
            filters: { type: 'array', items: grpcFilter },
          },
          ['name'],
        ),
      },
    }),
  },
});

const gatewaySpec = closed(
  {
    gatewayClassName: { type: 'string', minLength: 1 },
    listeners: {
      type: 'array',
      minItems: 1,
      items: closed(
        {
          name: { type: 'string', minLength: 1 },
          hostname: { type: 'string' },
          port: { type: 'integer', minimum: 1, maximum: 65535 },
          protocol: { type: 'string', minLength: 1 },
          tls: { type: 'object' },
          allowedRoutes: { type: 'object' },
        },
        ['name', 'port', 'protocol'],
      ),
    },
    addresses: { type: 'array', items: closed({ type: { type: 'string' }, value: { type: 'string' } }, ['value']) },
    infrastructure: { type: 'object' },
  },
  ['gatewayClassName', 'listeners'],
);

/** networking.istio.io/v1 DestinationRule, the part a node proxy acts on: the load balancer. */
const destinationRuleSpec = closed(
  {
    host: { type: 'string', minLength: 1 },
    trafficPolicy: closed({
      loadBalancer: closed({ simple: { enum: ['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM'] } }),
    }),
    exportTo: strings,
  },
  ['host'],
);

export const meshSpecs: Record<string, { apiVersion: string; spec: Schema; specRequired: boolean }> = {
  AuthorizationPolicy: { apiVersion: 'security.istio.io/v1', spec: authorizationPolicySpec, specRequired: false },
  PeerAuthentication: { apiVersion: 'security.istio.io/v1', spec: peerAuthenticationSpec, specRequired: false },
  RequestAuthentication: { apiVersion: 'security.istio.io/v1', spec: requestAuthenticationSpec, specRequired: false },
  DestinationRule: { apiVersion: 'networking.istio.io/v1', spec: destinationRuleSpec, specRequired: true },
  HTTPRoute: { apiVersion: 'gateway.networking.k8s.io/v1', spec: httpRouteSpec, specRequired: true },
  GRPCRoute: { apiVersion: 'gateway.networking.k8s.io/v1', spec: grpcRouteSpec, specRequired: true },
  Gateway: { apiVersion: 'gateway.networking.k8s.io/v1', spec: gatewaySpec, specRequired: true },
};
