// The impact calculator's public surface, for the CLI (`ambit estimate`) and the controller's
// dashboard: loadFigures(rootDir) once, then estimate(input, figures) per question. parseInput
// checks raw values (flags, a form) and names the field it refuses.

export { estimate, type Amount, type Estimate, type Resources } from './model.js';
export { loadFigures, FiguresUnreadable, type Figure, type Figures, type Source } from './figures.js';
export { parseInput, EstimateInputInvalid, type EstimateInput, type RawInput } from './input.js';
