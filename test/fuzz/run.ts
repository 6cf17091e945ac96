// `npm run fuzz`: every fuzzer and flood in turn, each bounded in runs and time (FUZZ_SCALE=10 for
// ten times more, FUZZ_SEED to replay), then one summary. Exits 1 if any property failed.

import { type Outcome, scale, seed, Target } from './common.js';
import { fuzzHboneFrames, fuzzHboneRequests, targetParams } from './hbone.fuzz.js';
import type { HboneTargetInfo } from './hbone-target.js';
import { fuzzValidator } from './validator.fuzz.js';
import { fuzzQuery } from './query.fuzz.js';
import { floods } from './floods.js';

const only = process.argv[2];
const outcomes: Outcome[] = [];
const started = Date.now();
console.log(`fuzz: seed ${seed}, scale ${scale}${only ? `, only ${only}` : ''}`);

async function part(name: string, fn: () => Promise<Outcome | Outcome[]>): Promise<void> {
  if (only && !name.includes(only)) return;
  try {
    const o = await fn();
    for (const x of [o].flat()) {
      outcomes.push(x);
      console.log(`${x.ok ? 'ok  ' : 'FAIL'} ${x.name}: ${x.runs} runs, ${x.seconds.toFixed(1)} s\n     ${x.notes.join('\n     ')}`);
    }
  } catch (err) {
    outcomes.push({ name, runs: 0, seconds: 0, ok: false, notes: [String((err as Error).stack ?? err)] });
    console.log(`FAIL ${name}: ${String((err as Error).stack ?? err)}`);
  }
}

await part('hbone', async () => {
  const { target, info } = await Target.start<HboneTargetInfo>('./hbone-target.js', targetParams);
  try {
    return [await fuzzHboneRequests(target, info), await fuzzHboneFrames(target, info)];
  } finally {
    await target.stop();
  }
});

await part('validator', fuzzValidator);
await part('query', fuzzQuery);
await part('floods', floods);

const failed = outcomes.filter((o) => !o.ok);
console.log(`\nfuzz: ${outcomes.length - failed.length}/${outcomes.length} passed in ${((Date.now() - started) / 1000).toFixed(0)} s (seed ${seed})`);
process.exit(failed.length ? 1 : 0);
