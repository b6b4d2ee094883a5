/**
 * The property campaign: many lockstep runs of one domain on fast-check.
 *
 * A campaign of `runs` runs from seed S is a list of independent runs; run k
 * draws its (config, trace) from the seed `runSeed(S, k)` and, if it fails,
 * fast-check shrinks it on its own. Independence is what makes the campaign
 * splittable: shards and workers take disjoint sets of run indices and their
 * merged totals are those of the single run with the same seed. Run 0's seed
 * is S itself, so `--seed <printed run seed> --runs 1` replays a failing run,
 * and fast-check's `path` jumps straight to its shrunk counterexample.
 */
import * as fc from 'fast-check';
import type { Domain, Json, OpShape, ResultShape, System } from './domain';
import { emptyTallies, mergeTallies, runTrace, type StepFailure, type StepRecord, type Tallies } from './lockstep';
import { emptyReach, recordArgs, recordRun, ScenarioWatch, type ReachTally } from './reach';
import { swarmLabel } from './swarm';
import { ddmin } from './ddmin';

export interface CheckOptions {
  readonly runs: number;
  readonly maxOps: number;
  readonly seed: number;
  /** Run against this mutant instead of the implementation. */
  readonly mutant?: string;
  /** Stop starting new runs after this many milliseconds. */
  readonly timeLimitMs?: number;
  /** Only the run indices k with k % count === index (sharding, workers). */
  readonly shard?: { readonly index: number; readonly count: number };
  /** fast-check replay path (with `runs: 1`): jump to a known counterexample. */
  readonly path?: string;
  /** Called after every run with the number of runs done. */
  readonly onProgress?: (done: number, total: number) => void;
  /** Asked before every run: true stops the campaign (Ctrl-C); the outcome says `interruptedBy: 'signal'`. */
  readonly shouldStop?: () => boolean;
}

export interface Counterexample<C, O, R> {
  readonly domain: string;
  readonly mutant?: string;
  /** The seed of the failing run (replays it as run 0). */
  readonly seed: number;
  /** Index of the failing run in its campaign. */
  readonly run: number;
  /** fast-check path to the shrunk counterexample. */
  readonly path: string;
  readonly config: C;
  readonly configInput: Json;
  /** The shrunk trace, cut after the failing step. */
  readonly ops: O[];
  readonly failure: StepFailure;
  readonly results: StepRecord<R>[];
  /** Ops in the trace as first found, before shrinking. */
  readonly originalLength: number;
  readonly shrinks: number;
  /** Length after fast-check's shrink, before delta debugging (harness/ddmin.ts). */
  readonly shrunkLength?: number;
  /** Replays delta debugging spent. */
  readonly ddminEvaluations?: number;
}

export interface CheckOutcome<C, O, R> {
  readonly domain: string;
  readonly seed: number;
  readonly runsPlanned: number;
  readonly runsExecuted: number;
  readonly elapsedMs: number;
  readonly failure: Counterexample<C, O, R> | null;
  readonly tallies: Tallies;
  readonly interrupted: boolean;
  /** Why the campaign stopped early, when it did. */
  readonly interruptedBy?: 'time-limit' | 'signal';
  /** Scenarios reached and swarm subsets drawn (harness/reach.ts). */
  readonly reach?: ReachTally;
}

/** Seed of run k of a campaign with seed S (run 0 is S itself). */
export function runSeed(seed: number, k: number): number {
  return (seed + Math.imul(k, 0x9e3779b9)) | 0;
}

/** The arbitrary of one run: a configuration, then a trace for it. */
export function caseArbitrary<C, O extends OpShape, R extends ResultShape, V, S>(
  domain: Domain<C, O, R, V, S>,
  maxOps: number,
): fc.Arbitrary<{ config: C; ops: O[] }> {
  return domain.arbitraries.config().chain((config) => domain.arbitraries.ops(config, maxOps).map((ops) => ({ config, ops })));
}

export function implFactory<C, O extends OpShape, R extends ResultShape, V, S>(
  domain: Domain<C, O, R, V, S>,
  mutant: string | undefined,
): (c: C) => System<O, R, V, S> {
  if (mutant === undefined) return (c) => domain.createImpl(c);
  const m = domain.mutants.find((x) => x.id === mutant);
  if (!m) throw new Error(`unknown mutant ${mutant} of ${domain.id}`);
  return (c) => m.create(c);
}

export function checkDomain<C, O extends OpShape, R extends ResultShape, V, S>(
  domain: Domain<C, O, R, V, S>,
  options: CheckOptions,
): CheckOutcome<C, O, R> {
  const steps = campaign(domain, options);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/**
 * The same campaign, giving the event loop a turn every `sliceMs` so that a
 * signal handler (Ctrl-C) or a message from the parent process can set
 * `shouldStop` while it runs. Same runs, same outcome as `checkDomain`.
 */
export async function checkDomainAsync<C, O extends OpShape, R extends ResultShape, V, S>(
  domain: Domain<C, O, R, V, S>,
  options: CheckOptions,
  sliceMs = 50,
): Promise<CheckOutcome<C, O, R>> {
  const steps = campaign(domain, options);
  let since = Date.now();
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    if (Date.now() - since >= sliceMs) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      since = Date.now();
    }
  }
}

/** A campaign as a generator: one `yield` after each run. */
function* campaign<C, O extends OpShape, R extends ResultShape, V, S>(
  domain: Domain<C, O, R, V, S>,
  options: CheckOptions,
): Generator<void, CheckOutcome<C, O, R>, void> {
  const start = Date.now();
  const create = implFactory(domain, options.mutant);
  const arb = caseArbitrary(domain, options.maxOps);
  const tallies = emptyTallies();
  const reach = emptyReach();
  const scenarios = domain.scenarios ?? [];
  const scenarioIds = scenarios.map((s) => s.id);
  const shard = options.shard ?? { index: 0, count: 1 };
  const mine: number[] = [];
  for (let k = shard.index; k < options.runs; k += shard.count) mine.push(k);

  let executed = 0;
  let interruptedBy: 'time-limit' | 'signal' | undefined;
  let failure: Counterexample<C, O, R> | null = null;

  for (const k of mine) {
    if (options.shouldStop?.()) {
      interruptedBy = 'signal';
      break;
    }
    if (options.timeLimitMs !== undefined && Date.now() - start > options.timeLimitMs) {
      interruptedBy = 'time-limit';
      break;
    }
    const seed = runSeed(options.seed, k);
    const runTallies = emptyTallies();
    let first = true;
    let originalLength = 0;
    const details = fc.check(
      fc.property(arb, ({ config, ops }) => {
        // Only the generated run counts towards statistics, not shrink attempts.
        const watch = first && scenarios.length > 0 ? new ScenarioWatch(scenarios, config) : undefined;
        const out = runTrace(domain, config, ops, first ? { tallies: runTallies, ...(watch ? { observer: watch } : {}) } : {}, create);
        if (first) {
          originalLength = ops.length;
          recordRun(reach, scenarioIds, watch?.reached ?? new Set(), swarmLabel(ops));
          recordArgs(reach, ops);
        }
        first = false;
        return out.failure === null;
      }),
      { seed, numRuns: 1, ...(options.path !== undefined ? { path: options.path } : {}) },
    );
    executed++;
    mergeTallies(tallies, runTallies);
    options.onProgress?.(executed, mine.length);
    if (details.failed && details.counterexample) {
      const [{ config, ops }] = details.counterexample;
      const replay = runTrace(domain, config, ops, {}, create);
      const f: StepFailure =
        replay.failure ??
        ({ kind: 'crash', step: ops.length - 1, message: `the property failed but its replay did not: ${String(details.errorInstance)}` } as const);
      let cut = f.step >= 0 ? f.step + 1 : ops.length;
      const shrunkLength = cut;
      // Delta debugging on the ops themselves (fast-check shrank the generator's choices).
      let finalOps = ops.slice(0, cut);
      let finalFailure = f;
      let finalResults = replay.results;
      let evaluations = 0;
      if (replay.failure !== null) {
        const dd = ddmin(domain, config, finalOps, replay.failure, create);
        evaluations = dd.evaluations;
        if (dd.ops.length <= finalOps.length) {
          const again = runTrace(domain, config, dd.ops, {}, create);
          if (again.failure !== null) {
            finalOps = dd.ops;
            finalFailure = again.failure;
            finalResults = again.results;
            cut = again.failure.step >= 0 ? again.failure.step + 1 : dd.ops.length;
          }
        }
      }
      failure = {
        domain: domain.id,
        ...(options.mutant !== undefined ? { mutant: options.mutant } : {}),
        seed,
        run: k,
        path: details.counterexamplePath ?? '',
        config,
        configInput: domain.encodeConfig(config),
        ops: finalOps.slice(0, cut),
        failure: finalFailure,
        results: finalResults.slice(0, cut),
        originalLength,
        shrinks: details.numShrinks,
        shrunkLength,
        ddminEvaluations: evaluations,
      };
      break;
    }
    yield;
  }
  return {
    domain: domain.id,
    seed: options.seed,
    runsPlanned: mine.length,
    runsExecuted: executed,
    elapsedMs: Date.now() - start,
    failure,
    tallies,
    interrupted: interruptedBy !== undefined,
    ...(interruptedBy !== undefined ? { interruptedBy } : {}),
    reach,
  };
}
