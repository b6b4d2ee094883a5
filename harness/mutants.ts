/**
 * Mutant campaigns: the lockstep property against each known-bug mutant.
 * A mutant is killed when the property finds a counterexample within the
 * domain's mutant budget.
 */
import type { Domain, OpShape, ResultShape } from './domain';
import { checkDomain, type Counterexample } from './check';

export interface MutantResult<C, O, R> {
  readonly domain: string;
  readonly mutant: string;
  readonly title: string;
  readonly source: string;
  readonly expected: readonly string[];
  readonly killed: boolean;
  readonly runsToKill: number | null;
  readonly elapsedMs: number;
  readonly shrunkLength: number | null;
  /** The invariant id that caught it, or the failure kind (result-mismatch ...). */
  readonly caughtBy: string | null;
  readonly counterexample: Counterexample<C, O, R> | null;
}

export function runMutant<C, O extends OpShape, R extends ResultShape, V, S>(
  d: Domain<C, O, R, V, S>,
  mutantId: string,
  options: { seed: number; runs?: number; maxOps?: number },
): MutantResult<C, O, R> {
  const m = d.mutants.find((x) => x.id === mutantId);
  if (!m) throw new Error(`unknown mutant ${mutantId}`);
  const out = checkDomain(d, {
    runs: options.runs ?? d.mutantBudget.runs,
    maxOps: options.maxOps ?? d.mutantBudget.maxOps,
    seed: options.seed,
    mutant: mutantId,
  });
  const cx = out.failure;
  return {
    domain: d.id,
    mutant: m.id,
    title: m.title,
    source: m.source,
    expected: m.expectedToViolate,
    killed: cx !== null,
    runsToKill: cx ? cx.run + 1 : null,
    elapsedMs: out.elapsedMs,
    shrunkLength: cx ? cx.ops.length : null,
    caughtBy: cx ? (cx.failure.invariant ?? cx.failure.kind) : null,
    counterexample: cx,
  };
}
