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

/**
 * Steady-state timing for short workloads: run `fn` for at least `warmupMs`
 * (and 3 calls) so the JIT has compiled the hot paths, then time every call
 * for at least `measureMs` (and 5 calls). Best and median per call, in ms.
 * A check campaign of thousands of runs spends nearly all its time in this
 * steady state; the first calls of a fresh process are several times slower.
 */
export function steadyMs(fn: () => void, warmupMs = 1000, measureMs = 2000): { best: number; median: number; calls: number } {
  const now = (): number => Number(process.hrtime.bigint()) / 1e6;
  const w0 = now();
  for (let k = 0; k < 3 || now() - w0 < warmupMs; k++) fn();
  const times: number[] = [];
  const m0 = now();
  while (times.length < 5 || now() - m0 < measureMs) {
    const t0 = now();
    fn();
    times.push(now() - t0);
  }
  times.sort((a, b) => a - b);
  return { best: times[0]!, median: times[Math.floor(times.length / 2)]!, calls: times.length };
}

export interface Throughput {
  readonly ops: number;
  /** Best time for all the traces (ms). */
  readonly ms: number;
  /** From the best time. */
  readonly opsPerSecond: number;
  /** From the median time: what a typical call reached. */
  readonly medianOpsPerSecond: number;
  readonly microsecondsPerOp: number;
  /** Timed calls after the warm-up. */
  readonly calls: number;
}

/** Lockstep ops/s (model + impl + every invariant on both Views after every op), in the steady state. */
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
  const t = steadyMs(run);
  const ops = samples.reduce((n, s) => n + s.ops.length, 0);
  return {
    ops,
    ms: t.best,
    opsPerSecond: Math.round((ops / t.best) * 1000),
    medianOpsPerSecond: Math.round((ops / t.median) * 1000),
    microsecondsPerOp: (t.best * 1000) / ops,
    calls: t.calls,
  };
}

export function fmt(n: number, digits = 1): string {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(digits);
}
