// ambit.dev/v1alpha1 LocalRateLimit, read and checked: Envoy's local_ratelimit token bucket attached
// at a waypoint by Istio's targetRefs (attachment.ts). The controller refuses a bad one at apply time
// with these problems; the waypoint compiles the same reading. The buckets are waypoint/ratelimit.ts's.

import { istioDurationMs } from '../../duration.js';
import type { PolicyEntry, TrafficEntry } from '../../protocol/config.js';
import { isRecord } from '../spec.js';
import { type Attachment, type AttachmentProblem, readAttachment } from './attachment.js';

/** Envoy refuses a local_ratelimit token bucket that fills more often than every 50 ms. */
export const minFillIntervalMs = 50;
const maxUint32 = 4294967295;

/** Envoy's TokenBucket (max_tokens, tokens_per_fill, fill_interval), the interval in milliseconds. */
export interface TokenBucket {
  maxTokens: number;
  tokensPerFill: number;
  fillIntervalMs: number;
}

/** A LocalRateLimit as the waypoint enforces it. */
export interface CompiledRateLimit {
  /** `namespace/name` */
  policy: string;
  attachment: Attachment;
  bucket: TokenBucket;
  /** One bucket per source identity (SPIFFE principal) instead of one for all. */
  perSource: boolean;
}

/**
 * Every problem of a LocalRateLimit spec, each naming its field. Empty means `ambit apply` may store
 * it. `namespace` is the policy's; `rootNamespace` is where a policy may name every waypoint.
 */
export function rateLimitProblems(spec: unknown, namespace: string, rootNamespace: string): AttachmentProblem[] {
  return compile(spec, namespace, rootNamespace).problems;
}

/**
 * The compiled form of a LocalRateLimit entry, and its problems. `limit` is undefined when the bucket
 * is unusable or nothing is attached; a target ref with a problem attaches to nothing while the
 * others stay in force, as attachment.ts says of every waypoint policy.
 */
export function readRateLimit(entry: TrafficEntry | PolicyEntry, rootNamespace: string): { limit: CompiledRateLimit | undefined; problems: AttachmentProblem[] } {
  const c = compile(entry.spec, entry.namespace, rootNamespace);
  const a = c.attachment;
  const attached = a !== undefined && (a.everyWaypoint || a.gateways.length > 0 || a.services.length > 0 || a.routes.length > 0);
  if (!c.bucket || !attached) return { limit: undefined, problems: c.problems };
  return { limit: { policy: `${entry.namespace}/${entry.name}`, attachment: a, bucket: c.bucket, perSource: c.perSource }, problems: c.problems };
}

function compile(spec: unknown, namespace: string, rootNamespace: string): { attachment: Attachment | undefined; bucket: TokenBucket | undefined; perSource: boolean; problems: AttachmentProblem[] } {
  if (!isRecord(spec)) return { attachment: undefined, bucket: undefined, perSource: false, problems: [{ field: 'spec', message: 'is required: { targetRefs, tokenBucket, perSource }' }] };
  const { attachment, problems } = readAttachment(spec, namespace, rootNamespace, true);
  if (!attachment) {
    problems.push({ field: 'spec.targetRefs', message: 'is required: a LocalRateLimit applies at a waypoint, to the Gateway, Services, HTTPRoutes or GRPCRoutes it names' });
  }
  const bucket = readBucket(spec.tokenBucket, problems);
  if (spec.perSource !== undefined && typeof spec.perSource !== 'boolean') problems.push({ field: 'spec.perSource', message: 'must be true or false' });
  return { attachment, bucket, perSource: spec.perSource === true, problems };
}

function readBucket(b: unknown, problems: AttachmentProblem[]): TokenBucket | undefined {
  const field = 'spec.tokenBucket';
  if (!isRecord(b)) {
    problems.push({ field, message: 'is required: { maxTokens, tokensPerFill, fillInterval }' });
    return undefined;
  }
  const before = problems.length;
  const count = (name: string, v: unknown): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > maxUint32) problems.push({ field: `${field}.${name}`, message: 'must be a whole number from 1 to 4294967295' });
    return v as number;
  };
  const maxTokens = count('maxTokens', b.maxTokens);
  // Envoy adds a single token per fill when tokens_per_fill is left out.
  const tokensPerFill = b.tokensPerFill === undefined ? 1 : count('tokensPerFill', b.tokensPerFill);
  if (problems.length === before && tokensPerFill > maxTokens) {
    // Envoy accepts it and drops the excess; a budget that cannot hold one fill is a misreading.
    problems.push({ field: `${field}.tokensPerFill`, message: `is ${tokensPerFill}, more than maxTokens (${maxTokens}): the bucket never holds more than maxTokens, so raise maxTokens or lower tokensPerFill` });
  }
  let fillIntervalMs = 0;
  if (typeof b.fillInterval !== 'string') problems.push({ field: `${field}.fillInterval`, message: 'is required: a duration such as 1s, 500ms or 1m' });
  else {
    try {
      fillIntervalMs = istioDurationMs(b.fillInterval, `${field}.fillInterval`);
      if (fillIntervalMs < minFillIntervalMs) problems.push({ field: `${field}.fillInterval`, message: `is ${b.fillInterval}; Envoy's local rate limit fills at most every ${minFillIntervalMs}ms, so use ${minFillIntervalMs}ms or more` });
    } catch {
      problems.push({ field: `${field}.fillInterval`, message: `${JSON.stringify(b.fillInterval)} must be a duration such as 1s, 500ms or 1m` });
    }
  }
  return problems.length === before ? { maxTokens, tokensPerFill, fillIntervalMs } : undefined;
}
