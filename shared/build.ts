// Which ambit this is: the version of the package it was built from, read once from package.json
// beside the compiled tree, for the metrics (istio_build) and anything else that reports it.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** dist/shared/build.js → the package root two levels up. */
export const ambitVersion: string = (JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { version: string }).version;
