/**
 * The lockstep property: model and implementation side by side.
 *
 * For a trace of ops: apply each op to both systems; the two results must
 * agree; every invariant must hold on both Views; the two Views must agree on
 * what the domain declares observable. The first failure ends the trace and
 * is reported as a `StepFailure` naming the step and what went wrong.
 *
 * Incremental checking: a system that offers `liveView()` reports the scope
 * of each op's change, and invariants check only that scope. Periodically
 * and after the last step the harness takes a fresh `view()` and checks
 * everything, including that the live View equals the fresh one — a change
 * the system forgot to report, or a scope too narrow, cannot hide.
 *
 * The period: a full check is linear in the View, so running it every 64
 * steps would make the cost per op grow with the state. It runs every
 * max(64, |View| / 16) steps instead (|View| = nodes of both fresh Views at
 * the previous full check), which bounds its amortized cost at about 16
 * node visits per op at any state size. A forgotten change is then reported
 * at most that many steps late, and always by the end of the trace; the
 * shrinker shortens the trace from there as for any failure.
 */
import type { Domain, Json, OpShape, ResultShape, System } from './domain';
import { deepEqual, firstDifference, jsonSize, partialMatch } from './codec';

/** Full checks run at least this many steps apart (see the header). */
export const MIN_FULL_CHECK_INTERVAL = 64;
/** ... and at most this many View nodes apart per step. */
export const FULL_CHECK_NODES_PER_STEP = 16;

export type FailureKind = 'result-mismatch' | 'invariant' | 'view-mismatch' | 'expect' | 'live-view-stale' | 'crash';

export interface StepFailure {
  readonly kind: FailureKind;
  /** 0-based index of the failing step. */
  readonly step: number;
  /** Which side failed (invariant and stale-view failures). */
  readonly side?: 'model' | 'impl';
  /** Invariant id for `invariant` failures. */
  readonly invariant?: string;
  readonly message: string;
}

export interface StepRecord<R> {
  readonly model: R;
  /** `null` when the impl threw at this step (the model's result is not copied over). */
  readonly impl: R | null;
}

/** Per-invariant coverage: checks run and how many were non-trivial. */
export interface InvariantTally {
  checks: number;
  nonTrivial: number;
}

/** Per-op tally: generated, succeeded, failed by error code. */
export interface OpTally {
  generated: number;
  ok: number;
  errors: { [code: string]: number };
}

export interface Tallies {
  invariants: { [id: string]: InvariantTally };
  ops: { [op: string]: OpTally };
  steps: number;
  counters: { model: { [k: string]: number }; impl: { [k: string]: number } };
}

export function emptyTallies(): Tallies {
  return { invariants: {}, ops: {}, steps: 0, counters: { model: {}, impl: {} } };
}

export function mergeTallies(into: Tallies, from: Tallies): Tallies {
  into.steps += from.steps;
  for (const [id, v] of Object.entries(from.invariants)) {
    const x = (into.invariants[id] ??= { checks: 0, nonTrivial: 0 });
    x.checks += v.checks;
    x.nonTrivial += v.nonTrivial;
  }
  for (const [op, v] of Object.entries(from.ops)) {
    const x = (into.ops[op] ??= { generated: 0, ok: 0, errors: {} });
    x.generated += v.generated;
    x.ok += v.ok;
    for (const [e, n] of Object.entries(v.errors)) x.errors[e] = (x.errors[e] ?? 0) + n;
  }
  for (const side of ['model', 'impl'] as const) {
    for (const [k, n] of Object.entries(from.counters[side])) {
      into.counters[side][k] = (into.counters[side][k] ?? 0) + n;
    }
  }
  return into;
}

/**
 * Watches the model's View around each step (harness/reach.ts, scenarios).
 * `before` gets the View as it is before the op: read from it, do not keep
 * it (an incremental model updates it in place).
 */
export interface StepObserver<O, R, V> {
  before(step: number, op: O, view: V): void;
  after(step: number, op: O, result: R, view: V): void;
}

export interface TraceOptions<R, O = OpShape, V = unknown> {
  /** Expected partial results per step (case files). */
  readonly expects?: readonly ({ [k: string]: Json } | undefined)[];
  /** Take a fresh full View every this many steps (incremental systems). Default: max(64, |View| / 16), see above. */
  readonly fullCheckEvery?: number;
  /** Collect tallies here. */
  readonly tallies?: Tallies;
  /** Called after each step (trace printing, HTML reports). */
  readonly onStep?: (step: number, rec: StepRecord<R>) => void;
  /** Sees the model's View before and after each step that passes (scenarios). */
  readonly observer?: StepObserver<O, R, V>;
}

export interface TraceOutcome<R> {
  readonly failure: StepFailure | null;
  readonly results: StepRecord<R>[];
}

function describeError(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/**
 * Run one trace in lockstep. `impl` defaults to `domain.createImpl`; pass a
 * mutant's `create` to run a mutant instead.
 */
export function runTrace<C, O extends OpShape, R extends ResultShape, V, S>(
  domain: Domain<C, O, R, V, S>,
  config: C,
  ops: readonly O[],
  options: TraceOptions<R, O, V> = {},
  createImpl: (c: C) => System<O, R, V, S> = (c) => domain.createImpl(c),
): TraceOutcome<R> {
  const results: StepRecord<R>[] = [];
  const tallies = options.tallies;
  const fixedEvery = options.fullCheckEvery;
  /** Step index (0-based) after which the next full check runs. */
  let nextFull = (fixedEvery ?? MIN_FULL_CHECK_INTERVAL) - 1;
  const resultsAgree = domain.resultsAgree ?? ((a: R, b: R) => deepEqual(a, b));
  const viewsAgree =
    domain.viewsAgree ?? ((a: V, b: V) => (deepEqual(a, b) ? null : `views differ at ${firstDifference(a, b, 'view')}`));

  let model: System<O, R, V, S>;
  let impl: System<O, R, V, S>;
  try {
    model = domain.createModel(config);
    impl = createImpl(config);
  } catch (e) {
    return { failure: { kind: 'crash', step: -1, message: `creating the systems threw ${describeError(e)}` }, results };
  }
  /** Both sides keep live Views: scoped checks per step, full checks periodically. */
  const incremental = model.liveView !== undefined && impl.liveView !== undefined;

  // Each op's and each invariant's tally, looked up once per trace rather than once per step.
  const opTallies = new Map<string, OpTally>();
  const invariants = domain.invariants;
  const invTallies = tallies ? invariants.map((inv) => (tallies.invariants[inv.id] ??= { checks: 0, nonTrivial: 0 })) : null;

  const observer = options.observer;
  /** The model's latest View (live or fresh), for the observer. */
  let modelView: V | undefined;

  const checkSide = (side: 'model' | 'impl', view: V, scope: S | undefined, step: number): StepFailure | null => {
    for (let k = 0; k < invariants.length; k++) {
      const inv = invariants[k]!;
      let msg: string | null;
      try {
        msg = inv.check(view, config, scope);
        if (invTallies) {
          const x = invTallies[k]!;
          x.checks++;
          if (inv.exercised(view, config, scope)) x.nonTrivial++;
        }
      } catch (e) {
        return { kind: 'crash', step, side, invariant: inv.id, message: `invariant ${inv.id} threw ${describeError(e)}` };
      }
      if (msg !== null) return { kind: 'invariant', step, side, invariant: inv.id, message: msg };
    }
    return null;
  };

  const fullCheck = (step: number): StepFailure | null => {
    const pairs: Array<['model' | 'impl', System<O, R, V, S>]> = [
      ['model', model],
      ['impl', impl],
    ];
    const fresh: V[] = [];
    for (const [side, sys] of pairs) {
      let v: V;
      try {
        v = sys.view();
      } catch (e) {
        return { kind: 'crash', step, side, message: `${side} view() threw ${describeError(e)}` };
      }
      if (sys.liveView) {
        const live = sys.liveView();
        if (!deepEqual(live.view, v)) {
          return {
            kind: 'live-view-stale',
            step,
            side,
            message: `the ${side}'s live View differs from a fresh abstraction (a change was not reported): ${firstDifference(live.view, v, 'view')}`,
          };
        }
      }
      const f = checkSide(side, v, undefined, step);
      if (f) return f;
      fresh.push(v);
    }
    modelView = fresh[0];
    const d = viewsAgree(fresh[0]!, fresh[1]!);
    if (d !== null) return { kind: 'view-mismatch', step, message: d };
    if (fixedEvery !== undefined) nextFull = step + fixedEvery;
    else if (step < ops.length - 1 && incremental) {
      const size = jsonSize(fresh[0]) + jsonSize(fresh[1]);
      nextFull = step + Math.max(MIN_FULL_CHECK_INTERVAL, Math.ceil(size / FULL_CHECK_NODES_PER_STEP));
    }
    return null;
  };

  // Anything a system or the domain's glue throws outside `apply` (a live
  // View, a comparison, a cost counter) is a crash at the step it happened,
  // reported like any failure, never an exception out of the harness.
  let at = -1;
  try {
    return runSteps();
  } catch (e) {
    return { failure: { kind: 'crash', step: at, message: `the harness caught ${describeError(e)} at this step (outside apply)` }, results };
  }

  function runSteps(): TraceOutcome<R> {
    for (let i = 0; i < ops.length; i++) {
      at = i;
      const op = ops[i]!;
      let rm: R;
      let ri: R;
      if (observer) {
        try {
          observer.before(i, op, modelView ?? model.view());
        } catch (e) {
          return { failure: { kind: 'crash', step: i, side: 'model', message: `a scenario threw ${describeError(e)}` }, results };
        }
      }
      try {
        rm = model.apply(op);
      } catch (e) {
        return { failure: { kind: 'crash', step: i, side: 'model', message: `model threw ${describeError(e)}` }, results };
      }
      try {
        ri = impl.apply(op);
      } catch (e) {
        results.push({ model: rm, impl: null });
        return { failure: { kind: 'crash', step: i, side: 'impl', message: `impl threw ${describeError(e)}` }, results };
      }
      const rec = { model: rm, impl: ri };
      results.push(rec);
      options.onStep?.(i, rec);
      if (tallies) {
        tallies.steps++;
        let x = opTallies.get(op.op);
        if (x === undefined) {
          x = tallies.ops[op.op] ??= { generated: 0, ok: 0, errors: {} };
          opTallies.set(op.op, x);
        }
        x.generated++;
        if (rm.ok) x.ok++;
        else {
          const code = rm.error ?? 'ERROR';
          x.errors[code] = (x.errors[code] ?? 0) + 1;
        }
      }
      if (!resultsAgree(rm, ri)) {
        return {
          failure: { kind: 'result-mismatch', step: i, message: `results differ: model ${JSON.stringify(rm)} vs impl ${JSON.stringify(ri)}` },
          results,
        };
      }
      const expect = options.expects?.[i];
      if (expect) {
        const miss = partialMatch(expect, rm);
        if (miss !== null) return { failure: { kind: 'expect', step: i, message: `expect not met: ${miss}` }, results };
      }

      const due = i === ops.length - 1 || i >= nextFull;
      if (incremental) {
        const lm = model.liveView!();
        const li = impl.liveView!();
        const f = checkSide('model', lm.view, lm.scope, i) ?? checkSide('impl', li.view, li.scope, i);
        if (f) return { failure: f, results };
        const scope =
          lm.scope === undefined || li.scope === undefined || !domain.mergeScopes
            ? undefined
            : domain.mergeScopes(lm.scope, li.scope);
        const d = viewsAgree(lm.view, li.view, scope);
        if (d !== null) return { failure: { kind: 'view-mismatch', step: i, message: d }, results };
        modelView = lm.view;
      }
      if (!incremental || due) {
        const f = fullCheck(i);
        if (f) return { failure: f, results };
      }
      if (observer) {
        try {
          observer.after(i, op, rm, modelView ?? model.view());
        } catch (e) {
          return { failure: { kind: 'crash', step: i, side: 'model', message: `a scenario threw ${describeError(e)}` }, results };
        }
      }
    }
    if (ops.length === 0) {
      const f = fullCheck(-1);
      if (f) return { failure: f, results };
    }
    if (tallies) {
      for (const [side, sys] of [
        ['model', model],
        ['impl', impl],
      ] as const) {
        const c = sys.counters?.();
        if (c) for (const [k, n] of Object.entries(c)) tallies.counters[side][k] = (tallies.counters[side][k] ?? 0) + n;
      }
    }
    return { failure: null, results };
  }
}
