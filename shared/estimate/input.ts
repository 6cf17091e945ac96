// What an estimate is asked for (cluster size, load, prices) and the one check of it, shared by the
// CLI (flags) and any other caller (a dashboard form): each refusal names the field as the caller
// calls it, so the CLI says `--pods` and a form can say `pods`.

import { AmbitError } from '../errors.js';

export interface EstimateInput {
  nodes: number;
  pods: number;
  services: number;
  /** Requests per second between pods in the mesh, cluster-wide. */
  rps: number;
  /** Waypoints (L7 proxies) deployed; 0 for none. */
  waypoints: number;
  /** Share of the requests that pass a waypoint, 0..1. */
  l7Share: number;
  /** Open connections through the mesh, cluster-wide. Defaults to one per pod. */
  connections: number;
  /** USD per core-month and per GiB-month; defaults from figures.ts. */
  priceCore?: number;
  priceGiB?: number;
}

/** A value the caller gave is missing or outside what an estimate can use. */
export class EstimateInputInvalid extends AmbitError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super('EstimateInputInvalid', `${field} ${message}`);
  }
}

export type RawInput = Partial<Record<keyof EstimateInput, string | number | undefined>>;

/**
 * Checks and completes raw values (strings from flags or a form, or numbers). `label` turns a field
 * name into what the caller shows (the CLI passes `(f) => '--' + kebab(f)`).
 */
export function parseInput(raw: RawInput, label: (field: keyof EstimateInput) => string = (f) => f): EstimateInput {
  const read = (field: keyof EstimateInput, opts: { whole?: boolean; required?: boolean; min?: number; max?: number }): number | undefined => {
    const v = raw[field];
    if (v === undefined || v === '') {
      if (opts.required) throw new EstimateInputInvalid(label(field), 'is required');
      return undefined;
    }
    const n = typeof v === 'number' ? v : /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/.test(v) ? Number(v) : NaN;
    if (!Number.isFinite(n)) throw new EstimateInputInvalid(label(field), `must be a number, got ${JSON.stringify(v)}`);
    if (opts.whole && !Number.isInteger(n)) throw new EstimateInputInvalid(label(field), `must be a whole number, got ${v}`);
    const min = opts.min ?? 0;
    if (n < min) throw new EstimateInputInvalid(label(field), min === 0 ? `must not be negative, got ${v}` : `must be at least ${min}, got ${v}`);
    if (opts.max !== undefined && n > opts.max) throw new EstimateInputInvalid(label(field), `must be between ${min} and ${opts.max}, got ${v}`);
    return n;
  };
  const nodes = read('nodes', { whole: true, required: true, min: 1 })!;
  const pods = read('pods', { whole: true, required: true })!;
  const services = read('services', { whole: true, required: true })!;
  const rps = read('rps', { required: true })!;
  const waypoints = read('waypoints', { whole: true }) ?? 0;
  const l7Given = read('l7Share', { max: 1 });
  // Waypoints with no share given carry all traffic: the costlier reading, and the one a reader
  // would notice if it were wrong. A share with no waypoint to carry it is a mistake, not a zero.
  if (l7Given !== undefined && l7Given > 0 && waypoints === 0) throw new EstimateInputInvalid(label('l7Share'), `is ${l7Given}, but no waypoint carries it: give ${label('waypoints')} N`);
  const l7Share = l7Given ?? (waypoints > 0 ? 1 : 0);
  const connections = read('connections', { whole: true }) ?? pods;
  const priceCore = read('priceCore', {});
  const priceGiB = read('priceGiB', {});
  return { nodes, pods, services, rps, waypoints, l7Share, connections, ...(priceCore !== undefined && { priceCore }), ...(priceGiB !== undefined && { priceGiB }) };
}
