// JSON Schemas of the mesh's own configuration, in the shapes users already write: Istio's
// security.istio.io/v1 AuthorizationPolicy, PeerAuthentication and RequestAuthentication, and the
// Gateway API's gateway.networking.k8s.io/v1 HTTPRoute, GRPCRoute and Gateway, Istio's
// networking.istio.io/v1 DestinationRule, and ambit's own FaultInjection and LocalRateLimit. Closed objects, so a
// misspelt field is an error, as in the kinds of schemas.ts.

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

// Istio's durations (Go's time.ParseDuration as its CRDs check them): 10s, 1m30s, 1.5s, 250ms.
const istioDuration: Schema = { type: 'string', pattern: '^([0-9]+(\\.[0-9]+)?(h|m|s|ms|us|ns))+$' };
const uint32: Schema = { type: 'integer', minimum: 0, maximum: 4294967295 };
const percent: Schema = { type: 'integer', minimum: 0, maximum: 100 };

const hashKeys = ['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName'];
/**
 * Istio's oneOfs, said so that every problem names a field: `anyOf` of `required` names each
 * alternative when none is set, and a `false` schema names the second one when two are set. (A
 * oneOf whose branches both pass reports no field, and validate.ts skips oneOf errors; Ajv here
 * is draft-07, hence `dependencies`.)
 */
function oneOfFields(keys: string[], required: boolean): Schema {
  const exclusive: Schema = { dependencies: Object.fromEntries(keys.map((k) => [k, { properties: Object.fromEntries(keys.filter((o) => o !== k).map((o) => [o, false])) }])) };
  return required ? { ...exclusive, anyOf: keys.map((k) => ({ required: [k] })) } : exclusive;
}

/**
 * networking.istio.io/v1 DestinationRule: the node agent reads loadBalancer.simple (for L4 picks); the
 * waypoint (waypoint/upstream/) acts on all of it. Fields Istio has and ambit does not implement
 * (subsets, portLevelSettings, tls, tunnel, proxyProtocol, warmup, locality distribute/failover) are
 * left out, so a rule using them is refused with the field named rather than half applied.
 */
const destinationRuleSpec = closed(
  {
    host: { type: 'string', minLength: 1 },
    trafficPolicy: closed({
      loadBalancer: {
        ...closed({
          simple: { enum: ['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM'] },
          consistentHash: {
            ...closed({
              httpHeaderName: { type: 'string', minLength: 1 },
              httpCookie: closed({ name: { type: 'string', minLength: 1 }, path: { type: 'string' }, ttl: istioDuration }, ['name']),
              useSourceIp: { type: 'boolean' },
              httpQueryParameterName: { type: 'string', minLength: 1 },
              ringHash: closed({ minimumRingSize: { type: 'integer', minimum: 1, maximum: 8388608 } }),
              maglev: closed({ tableSize: { type: 'integer', minimum: 1, maximum: 5000011 } }),
              minimumRingSize: { type: 'integer', minimum: 1, maximum: 8388608 },
            }),
            allOf: [oneOfFields(hashKeys, true), oneOfFields(['ringHash', 'maglev'], false)],
          },
          // ambit has nodes and no zones: enabled means "endpoints on the client's node first".
          localityLbSetting: closed({ enabled: { type: 'boolean' } }),
        }),
        ...oneOfFields(['simple', 'consistentHash'], false),
      },
      connectionPool: closed({
        tcp: closed({ maxConnections: uint32, connectTimeout: istioDuration, idleTimeout: istioDuration }),
        http: closed({
          http1MaxPendingRequests: uint32,
          http2MaxRequests: uint32,
          maxRequestsPerConnection: uint32,
          maxRetries: uint32,
          idleTimeout: istioDuration,
        }),
      }),
      outlierDetection: closed({
        consecutive5xxErrors: uint32,
        consecutiveGatewayErrors: uint32,
        splitExternalLocalOriginErrors: { type: 'boolean' },
        consecutiveLocalOriginFailures: uint32,
        interval: istioDuration,
        baseEjectionTime: istioDuration,
        maxEjectionPercent: percent,
        minHealthPercent: percent,
      }),
    }),
    exportTo: strings,
  },
  ['host'],
);

// gRPC status names as Istio's HTTPFaultInjection.Abort.grpcStatus takes them.
export const grpcStatusCodes: Record<string, number> = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, ALREADY_EXISTS: 6, PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, ABORTED: 10, OUT_OF_RANGE: 11, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14,
  DATA_LOSS: 15, UNAUTHENTICATED: 16,
};

/**
 * ambit.dev/v1alpha1 FaultInjection: Istio's HTTPFaultInjection as a kind of its own, since the
 * Gateway API has no fault filter; an HTTPRoute refers to it with an ExtensionRef filter
 * (group ambit.dev, kind FaultInjection). `percentage` is required: Istio injects into no request
 * when it is left out, a silent no-op that a required field turns into an error.
 */
const faultPercentage = closed({ value: { type: 'number', minimum: 0, maximum: 100 } }, ['value']);
const faultInjectionSpec = {
  ...closed({
    delay: closed({ fixedDelay: istioDuration, percentage: faultPercentage }, ['fixedDelay', 'percentage']),
    abort: {
      ...closed({ httpStatus: { type: 'integer', minimum: 200, maximum: 599 }, grpcStatus: { enum: Object.keys(grpcStatusCodes) }, percentage: faultPercentage }, ['percentage']),
      ...oneOfFields(['httpStatus', 'grpcStatus'], true),
    },
  }),
  anyOf: [{ required: ['delay'] }, { required: ['abort'] }],
};

/**
 * ambit.dev/v1alpha1 LocalRateLimit: Envoy's local_ratelimit token bucket (TokenBucket: max_tokens,
 * tokens_per_fill, fill_interval), attached at a waypoint by Istio-style `targetRefs`. The rules a
 * schema cannot say (fill interval at least 50 ms, tokensPerFill within maxTokens, which targets a
 * waypoint honours) are shared/policy/http/rate-limit.ts's, checked at apply time too.
 */
const localRateLimitSpec = closed(
  {
    targetRefs: { type: 'array', minItems: 1, items: policyTargetRef },
    tokenBucket: closed(
      { maxTokens: { type: 'integer', minimum: 1, maximum: 4294967295 }, tokensPerFill: { type: 'integer', minimum: 1, maximum: 4294967295 }, fillInterval: istioDuration },
      ['maxTokens', 'fillInterval'],
    ),
    perSource: { type: 'boolean' },
  },
  ['targetRefs', 'tokenBucket'],
);

/**
 * ambit.dev/v1alpha1 TrustBundle: the roots agents trust for a trust domain (named after it), as
 * the controller's leader publishes them from its CA (Istio's istio-ca-root-cert ConfigMap plays
 * this part); a PEM certificate per entry, the current root first.
 */
const trustBundleSpec = closed({ roots: { type: 'array', minItems: 1, maxItems: 16, items: { type: 'string', pattern: '^-----BEGIN CERTIFICATE-----', maxLength: 16384 } } }, ['roots']);

export const meshSpecs: Record<string, { apiVersion: string; spec: Schema; specRequired: boolean }> = {
  AuthorizationPolicy: { apiVersion: 'security.istio.io/v1', spec: authorizationPolicySpec, specRequired: false },
  PeerAuthentication: { apiVersion: 'security.istio.io/v1', spec: peerAuthenticationSpec, specRequired: false },
  RequestAuthentication: { apiVersion: 'security.istio.io/v1', spec: requestAuthenticationSpec, specRequired: false },
  DestinationRule: { apiVersion: 'networking.istio.io/v1', spec: destinationRuleSpec, specRequired: true },
  HTTPRoute: { apiVersion: 'gateway.networking.k8s.io/v1', spec: httpRouteSpec, specRequired: true },
  GRPCRoute: { apiVersion: 'gateway.networking.k8s.io/v1', spec: grpcRouteSpec, specRequired: true },
  Gateway: { apiVersion: 'gateway.networking.k8s.io/v1', spec: gatewaySpec, specRequired: true },
  FaultInjection: { apiVersion: 'ambit.dev/v1alpha1', spec: faultInjectionSpec, specRequired: true },
  LocalRateLimit: { apiVersion: 'ambit.dev/v1alpha1', spec: localRateLimitSpec, specRequired: true },
  TrustBundle: { apiVersion: 'ambit.dev/v1alpha1', spec: trustBundleSpec, specRequired: true },
};
