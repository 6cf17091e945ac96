// The dashboard's Estimate page, server side: `ambit estimate` as JSON, from the same arithmetic
// (shared/estimate/) and the same recorded figures (bench/mesh.json, bench/push.json in the
// project's root), so the page and the command always agree. Figures are read once, on first use.

import { fileURLToPath } from 'node:url';
import { estimate, type Estimate, type EstimateInput, type Figures, loadFigures, parseInput, type RawInput } from '../../shared/estimate/index.js';

/** The project's root, from this module's place in dist/controller/dashboard/. */
const projectRoot = fileURLToPath(new URL('../../../', import.meta.url));

const fields: (keyof EstimateInput)[] = ['nodes', 'pods', 'services', 'rps', 'waypoints', 'l7Share', 'connections', 'priceCore', 'priceGiB'];

export class EstimateService {
  private figures: Figures | undefined;

  constructor(private readonly rootDir = projectRoot) {}

  /** The estimate for a form's values (query parameters named as EstimateInput's fields). */
  answer(params: URLSearchParams): Estimate {
    const raw: RawInput = {};
    for (const f of fields) {
      const v = params.get(f);
      if (v !== null && v !== '') raw[f] = v;
    }
    const input = parseInput(raw);
    // Kept only once read: a missing file is reported, and found after a fix without a restart.
    this.figures ??= loadFigures(this.rootDir);
    return estimate(input, this.figures);
  }
}
