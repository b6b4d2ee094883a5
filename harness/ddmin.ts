/**
 * Delta debugging after fast-check's shrink (Zeller and Hildebrandt,
 * "Simplifying and Isolating Failure-Inducing Input", TSE 2002).
 *
 * fast-check shrinks the intents a generator drew, not the ops they became,
 * so a shrunk trace often keeps ops that a scenario burst or a prologue put
 * there (a trace twice the shortest one bounded exploration finds, with
 * repeated identical ops). This pass works on the ops themselves:
 *
 *   1. drop ops: chunks of halving size (ddmin's complements), then single
 *      ops from the end, while the same failure persists;
 *   2. simplify arguments: each integer argument towards its edges (0, 1,
 *      and the value with its low bits cleared at 64-, 512- and 4096-step
 *      alignment), keeping a change only if the failure persists.
 *
 * "The same failure": same kind and, for an invariant, the same invariant,
 * so a reduction cannot trade the bug for another one. Every candidate op
 * must decode with its codec and pass `validateOp`. At most `budget`
 * replays in all.
 */
import type { Domain, OpShape, ResultShape, System } from './domain';
import { runTrace, type StepFailure } from './lockstep';

export interface DdminOutcome<O> {
  readonly ops: O[];
  readonly evaluations: number;
}

/** Evaluations a counterexample may spend (the goal). */
export const DDMIN_BUDGET = 500;

function sameFailure(a: StepFailure, b: StepFailure): boolean {
  return a.kind === b.kind && a.invariant === b.invariant;
}

export function ddmin<C, O extends OpShape, R extends ResultShape, V, S>(
  domain: Domain<C, O, R, V, S>,
  config: C,
  ops: readonly O[],
  failure: StepFailure,
  create: (c: C) => System<O, R, V, S>,
  budget: number = DDMIN_BUDGET,
): DdminOutcome<O> {
  let evaluations = 0;
  /** The failing prefix of `cand` when it still fails the same way, else null. */
  const fails = (cand: readonly O[]): O[] | null => {
    if (evaluations >= budget) return null;
    evaluations++;
    const out = runTrace(domain, config, cand, {}, create);
    if (out.failure === null || !sameFailure(out.failure, failure)) return null;
    return cand.slice(0, out.failure.step >= 0 ? out.failure.step + 1 : cand.length);
  };

  let best = [...ops];
  // 1a. ddmin: remove chunks (complements) at doubling granularity.
  let n = 2;
  while (best.length >= 2 && evaluations < budget) {
    const size = Math.ceil(best.length / n);
    let reduced = false;
    for (let start = 0; start < best.length && evaluations < budget; start += size) {
      const cand = [...best.slice(0, start), ...best.slice(start + size)];
      const r = fails(cand);
      if (r !== null) {
        best = r;
        n = Math.max(n - 1, 2);
        reduced = true;
        break;
      }
    }
    if (!reduced) {
      if (size <= 1) break;
      n = Math.min(n * 2, best.length);
    }
  }
  // 1b. single ops from the end (the failing op last: it is rarely droppable).
  for (let i = best.length - 1; i >= 0 && evaluations < budget; i--) {
    if (i >= best.length) continue;
    const r = fails([...best.slice(0, i), ...best.slice(i + 1)]);
    if (r !== null) best = r;
  }
  // 2. arguments towards their edges.
  const codecOk = (op: O): boolean => {
    const codec = domain.opArgs[op.op];
    if (codec !== undefined && !codec.is(op.args)) return false;
    return !domain.validateOp || domain.validateOp(op, config).length === 0;
  };
  for (let i = 0; i < best.length && evaluations < budget; i++) {
    for (const key of Object.keys(best[i]!.args)) {
      const v = best[i]!.args[key];
      if (typeof v !== 'number' || !Number.isInteger(v) || v === 0) continue;
      const tries = [0, 1, v - (v % 4096), v - (v % 512), v - (v % 64)].filter((x, k, a) => x >= 0 && x < v && a.indexOf(x) === k);
      for (const x of tries) {
        if (evaluations >= budget) break;
        const op = { ...best[i]!, args: { ...best[i]!.args, [key]: x } } as O;
        if (!codecOk(op)) continue;
        const cand = [...best];
        cand[i] = op;
        const r = fails(cand);
        if (r !== null) {
          best = r;
          break;
        }
      }
      if (i >= best.length) break;
    }
  }
  return { ops: best, evaluations };
}
