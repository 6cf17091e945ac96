// The waypoint's routing engine: Gateway API HTTPRoutes and GRPCRoutes attached to Services (GAMMA)
// compiled into a table once per config version, then per request a lookup, a match and a plan.
// Pure: no I/O, no clock. Forwarding, retrying, timing out and writing status are the caller's.
//
//   const table = compileRoutes(routes, services);
//   const parent = table.lookup(service, port, clientNamespace);   // undefined: forward to the Service
//   const m = parent && table.match(parent, req);                   // undefined: 404 (gRPC: UNIMPLEMENTED)
//   const plan = applyRequestFilters(m, req, { port });             // redirect | failure | backend + edits

export { pickBackend, resolveBackendRef } from './backends.js';
export { parseGatewayDuration } from './duration.js';
export { knownExtensions } from './filters.js';
export { isGrpcRequest, matchRequest } from './match.js';
export { applyRequestFilters, editHeaders, modifyPath, redirectLocation, type PlanOptions, type RequestPlan } from './plan.js';
export { routeStatus, waypointControllerName, type RouteCondition, type RouteParentStatus } from './status.js';
export { compileRoutes, RouteTable } from './table.js';
export type * from './types.js';
