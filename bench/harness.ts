/**
 * Benchmark helpers shared by every domain's bench: wall-clock timing with
 * warm-up, and lockstep throughput measured on pre-generated traces (so
 * fast-check's generation is not counted as lockstep work).
 */
import * as fc from 'fast-check';
import type { Domain, OpShape, ResultShape } from '../harness/domain';
import { caseArbitrary } from '../harness/check';
import { emptyTallies, runTrace } from '../harness/lockstep';

/** Milliseconds per call of `fn`, the best of `repeats` timed batches after one warm-up call. */
export function timeMs(fn: () => void, repeats = 3): number {
  fn();
  let best = Infinity;
  for (let i = 0; i < repeats; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (ms < best) best = ms;
  }
  return best;
}

export interface Throughput {
  readonly ops: number;
  readonly ms: number;
  readonly opsPerSecond: number;
  readonly microsecondsPerOp: number;
}

/** Lockstep ops/s (model + impl + every invariant on both Views after every op). */
export function lockstepThroughput<C, O extends OpShape, R extends ResultShape, V, S>(
  domain: Domain<C, O, R, V, S>,
  options: { traces: number; maxOps: number; seed: number; config?: fc.Arbitrary<C> },
): Throughput {
  const arb = options.config
    ? options.config.chain((config) => domain.arbitraries.ops(config, options.maxOps).map((ops) => ({ config, ops })))
    : caseArbitrary(domain, options.maxOps);
  const samples = fc.sample(arb, { seed: options.seed, numRuns: options.traces });
  const run = () => {
    let failures = 0;
    for (const s of samples) if (runTrace(domain, s.config, s.ops, { tallies: emptyTallies() }).failure) failures++;
    if (failures > 0) throw new Error(`${domain.id}: ${failures} traces failed during the benchmark`);
  };
  const ms = timeMs(run, 3);
  const ops = samples.reduce((n, s) => n + s.ops.length, 0);
  return { ops, ms, opsPerSecond: Math.round((ops / ms) * 1000), microsecondsPerOp: (ms * 1000) / ops };
}

export function fmt(n: number, digits = 1): string {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(digits);
}
