// Fault injection from an ambit.dev/v1alpha1 FaultInjection (Istio's HTTPFaultInjection, which an
// HTTPRoute rule names with an ExtensionRef filter): per request, whether to delay it and whether to
// abort it, each drawn at its percentage from the injected random, independently, as Envoy's fault
// filter does. Waiting out the delay and writing the aborted response are the proxy's.

import { grpcStatusCodes } from '../../shared/resources/mesh-schemas.js';
import { istioDurationMs } from './duration.js';
import type { Random } from './types.js';

export interface FaultInjectionSpec {
  delay?: { fixedDelay: string; percentage: { value: number } };
  abort?: { httpStatus?: number; grpcStatus?: string; percentage: { value: number } };
}

export interface FaultAbort {
  /** The status to answer; 200 for a gRPC status, which goes in grpc-status (a trailers-only response). */
  readonly httpStatus: number;
  readonly grpcStatus?: number;
}

export interface FaultDecision {
  /** 0: no delay. */
  readonly delayMs: number;
  readonly abort?: FaultAbort;
  /** Envoy's response flags for the access log: DI (delay injected), FI (fault injected, an abort). */
  readonly responseFlags: '' | 'DI' | 'FI' | 'DI,FI';
}

const none: FaultDecision = Object.freeze({ delayMs: 0, responseFlags: '' });

export class Fault {
  private readonly delayPercent: number;
  private readonly abortPercent: number;
  // The four possible answers, made once, so a decision allocates nothing.
  private readonly delayed: FaultDecision;
  private readonly aborted: FaultDecision;
  private readonly both: FaultDecision;
  /** Counted as Envoy's fault filter counts: delays_injected, aborts_injected. */
  readonly counters = { delays: 0, aborts: 0 };

  constructor(
    spec: FaultInjectionSpec,
    private readonly random: Random,
  ) {
    const delayMs = spec.delay ? istioDurationMs(spec.delay.fixedDelay, 'spec.delay.fixedDelay') : 0;
    this.delayPercent = spec.delay && delayMs > 0 ? spec.delay.percentage.value : 0;
    let abort: FaultAbort | undefined;
    if (spec.abort?.grpcStatus !== undefined) abort = Object.freeze({ httpStatus: 200, grpcStatus: grpcStatusCodes[spec.abort.grpcStatus]! });
    else if (spec.abort?.httpStatus !== undefined) abort = Object.freeze({ httpStatus: spec.abort.httpStatus });
    this.abortPercent = abort ? spec.abort!.percentage.value : 0;
    this.delayed = Object.freeze({ delayMs, responseFlags: 'DI' });
    this.aborted = Object.freeze({ delayMs: 0, abort, responseFlags: 'FI' });
    this.both = Object.freeze({ delayMs, abort, responseFlags: 'DI,FI' });
  }

  /** This request's faults: the delay comes first, then the abort, as in Envoy. */
  decide(): FaultDecision {
    // A draw only for a fault that can happen, so a 0% fault costs nothing and a 100% one always hits.
    const delay = this.delayPercent > 0 && this.random() * 100 < this.delayPercent;
    const abort = this.abortPercent > 0 && this.random() * 100 < this.abortPercent;
    if (delay) this.counters.delays++;
    if (abort) this.counters.aborts++;
    return delay ? (abort ? this.both : this.delayed) : abort ? this.aborted : none;
  }
}
