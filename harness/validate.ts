/**
 * Trace validation: does the spec explain a recorded log?
 *
 * A log is not a case file: it leaves out choices the kernel made (which
 * cached top level was evicted), environment steps nobody logs (a cache line
 * evicted, a translation dropped), and whether a call that timed out took
 * effect. The validator keeps every model state that explains the log so far
 * (the candidates), breadth-first:
 *
 *   for each observed step:
 *     1. close the candidate set under up to `maxHidden` hidden ops
 *        (`Domain.hidden.hiddenOps`), deduplicated by fingerprint;
 *     2. apply the observed op, in every completion of its omitted choice
 *        arguments, to every candidate; keep those whose answer matches the
 *        observed `result` (partially, like a case file's `expect`) and
 *        whose state satisfies every invariant; a `maybe` step also keeps
 *        each candidate as it was (the op did not happen).
 *
 * No candidate left: the trace is invalid at that step, and the closest
 * candidates say what the model would have answered and which rule (the op's
 * clause in the spec page, or an invariant) refuses the observed answer. More
 * candidates than `maxStates`: incomplete. Otherwise valid, with a witness:
 * the trace with every choice and hidden op filled in.
 *
 * Memory grows with the candidate set, not with the trace: a candidate's
 * history is a chain of the steps where something was chosen, shared between
 * candidates, and the witness is written by a second pass over the trace.
 * This is in the spirit of TLA+ trace validation and of P's PObserve.
 */
import type { Domain, Json, OpShape, ResultShape, System } from './domain';
import { deepEqual, firstDifference, partialMatch } from './codec';
import { canonicalJson } from './explore';
import { copyStateInto } from './clone';
import type { TraceStep } from './trace-format';

export interface ValidateOptions {
  /** Hidden ops tried between two observed steps (default 2). */
  readonly maxHidden: number;
  /** `lazy` (default): the fewest hidden ops that explain each step; `exhaustive`: every sequence up to maxHidden. */
  readonly mode?: 'lazy' | 'exhaustive';
  /** Candidates kept at most; past it the verdict is `incomplete`. */
  readonly maxStates: number;
}

export const DEFAULT_MAX_HIDDEN = 2;
export const DEFAULT_MAX_STATES = 10_000;

/** What a candidate did at one step where something was chosen. */
interface ChoiceNode<O> {
  readonly parent: ChoiceNode<O> | null;
  /** Index of the observed step (0-based). */
  readonly step: number;
  readonly hidden: readonly O[];
  /** The completion applied, or null: a `maybe` step that did not happen. */
  readonly op: O | null;
  /** Whether an omitted argument or a `maybe` was decided here. */
  readonly chosen: boolean;
}

interface Candidate<O, R, V, S> {
  readonly sys: System<O & OpShape, R & ResultShape, V, S>;
  /** Hidden ops applied since the last observed step. */
  readonly hidden: readonly O[];
  readonly node: ChoiceNode<O> | null;
}

/** One way a candidate fails to explain a step. */
export interface Rejection {
  /** The hidden ops tried before the step, and the completion of the step. */
  readonly hidden: readonly Json[];
  readonly op: Json;
  /** What the model answered. */
  readonly answer: Json;
  /** The rule that refuses the observed answer: `op <name>` (its clause in the spec page) or `invariant <id>`. */
  readonly rule: string;
  readonly message: string;
}

export interface StepRejection {
  readonly step: number;
  readonly line: number;
  readonly op: string;
  readonly observed: Json | null;
  readonly candidates: number;
  /** Up to three, the closest first (fewest hidden ops). */
  readonly closest: readonly Rejection[];
}

/** Per observed step, what the witness fills in (only where something was chosen). */
export interface WitnessFill<O> {
  readonly hidden: readonly O[];
  readonly op: O | null;
}

export type Verdict = 'valid' | 'invalid' | 'incomplete';

export interface ValidateSummary {
  readonly steps: number;
  readonly peakCandidates: number;
  /** States produced (after hidden ops and observed ops, before deduplication). */
  readonly statesExplored: number;
  readonly hiddenOpsInWitness: number;
  /** Steps where the witness decides an omitted argument or a `maybe`. */
  readonly choicesInWitness: number;
}

function describe(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/**
 * The incremental validator: feed it decoded steps in order (`step`), then
 * ask for the verdict (`finish`). It never reads a file.
 */
export class TraceValidator<C, O extends OpShape, R extends ResultShape, V, S> {
  private candidates: Candidate<O, R, V, S>[];
  private steps = 0;
  private peak = 1;
  private explored = 0;
  private rejection: StepRejection | null = null;
  private incompleteAt: { step: number; line: number; candidates: number } | null = null;
  private readonly hiddenOps: ((c: C, v: V) => readonly O[]) | undefined;
  private readonly mode: 'lazy' | 'exhaustive';

  constructor(
    private readonly domain: Domain<C, O, R, V, S>,
    private readonly config: C,
    private readonly options: ValidateOptions,
  ) {
    const sys = domain.createModel(config);
    this.candidates = [{ sys, hidden: [], node: null }];
    const h = domain.hidden?.hiddenOps;
    this.hiddenOps = h && options.maxHidden > 0 ? h.bind(domain.hidden) : undefined;
    this.mode = options.mode ?? 'lazy';
    const bad = this.invariantFailure(sys, true);
    if (bad) {
      this.rejection = { step: -1, line: 1, op: '(initial state)', observed: null, candidates: 1, closest: [{ hidden: [], op: null, answer: null, ...bad }] };
    }
  }

  /** The verdict so far: `null` while the trace is still explained. */
  get failed(): 'invalid' | 'incomplete' | null {
    return this.rejection ? 'invalid' : this.incompleteAt ? 'incomplete' : null;
  }

  private viewOf(sys: System<O, R, V, S>): V {
    return sys.liveView ? sys.liveView().view : sys.view();
  }

  /** The first invariant the system's state breaks, or null. Scoped when the system keeps a live View. */
  private invariantFailure(sys: System<O, R, V, S>, full = false): { rule: string; message: string } | null {
    let view: V;
    let scope: S | undefined;
    if (sys.liveView && !full) {
      const live = sys.liveView();
      view = live.view;
      scope = live.scope;
    } else view = sys.view();
    for (const inv of this.domain.invariants) {
      let msg: string | null;
      try {
        msg = inv.check(view, this.config, scope);
      } catch (e) {
        msg = `threw ${describe(e)}`;
      }
      if (msg !== null) return { rule: `invariant ${inv.id}`, message: msg };
    }
    return null;
  }

  /** A copy of a candidate's system: through its own snapshot/restore where it has them, else the generic copy. */
  private copy(sys: System<O, R, V, S>): System<O, R, V, S> {
    const fresh = this.domain.createModel(this.config);
    if (sys.snapshot && fresh.restore) {
      fresh.restore(sys.snapshot());
      return fresh;
    }
    return copyStateInto(fresh, sys);
  }

  private fingerprint(sys: System<O, R, V, S>): string {
    return sys.fingerprint ? sys.fingerprint() : canonicalJson(sys.view());
  }

  /** Deduplicate by fingerprint, keeping the first (fewest hidden ops) of each state. */
  private dedupe(list: Candidate<O, R, V, S>[], seen?: Set<string>): Candidate<O, R, V, S>[] {
    if (list.length <= 1 && !seen) return list;
    const keep: Candidate<O, R, V, S>[] = [];
    const fps = seen ?? new Set<string>();
    for (const c of list) {
      const fp = this.fingerprint(c.sys);
      if (fps.has(fp)) continue;
      fps.add(fp);
      keep.push(c);
    }
    return keep;
  }

  /** The states one more hidden op away from `frontier`, not seen before. */
  private expand(frontier: Candidate<O, R, V, S>[], seen: Set<string>): Candidate<O, R, V, S>[] {
    const next: Candidate<O, R, V, S>[] = [];
    for (const c of frontier) {
      for (const h of this.hiddenOps!(this.config, this.viewOf(c.sys))) {
        const sys = this.copy(c.sys);
        this.explored++;
        let r: R;
        try {
          r = sys.apply(h);
        } catch {
          continue;
        }
        if (!r.ok) continue; // the environment step could not happen in this state
        if (this.invariantFailure(sys)) continue; // a hidden step never explains a trace by breaking the spec
        next.push({ sys, hidden: [...c.hidden, h], node: c.node });
      }
    }
    return this.dedupe(next, seen);
  }

  /**
   * Feed the next observed step. Returns the verdict so far (`null`: still explained).
   *
   * Exhaustive mode tries the observed op after every sequence of up to
   * `maxHidden` hidden ops. Lazy mode stops at the fewest hidden ops that
   * explain this step; it can miss an explanation that needed an unnecessary-
   * looking hidden op earlier, so a lazy "invalid" is confirmed by an
   * exhaustive run (`validate-file.ts`), while a lazy "valid" stands: its
   * witness is an explanation.
   */
  step(s: TraceStep<O>): 'invalid' | 'incomplete' | null {
    if (this.failed) return this.failed;
    const index = this.steps++;
    const next: Candidate<O, R, V, S>[] = [];
    const rejections: Rejection[] = [];
    const hidden = this.hiddenOps !== undefined;
    const seen = hidden ? new Set<string>() : undefined;
    let frontier = this.dedupe(this.candidates, seen);
    let tried = frontier.length;
    // A level's systems may be taken over by the observed op only when no level is expanded from them.
    this.tryObserved(s, index, frontier, !hidden, next, rejections);
    for (let k = 0; hidden && k < this.options.maxHidden && frontier.length > 0; k++) {
      if (this.mode === 'lazy' && next.length > 0) break;
      frontier = this.expand(frontier, seen!);
      tried += frontier.length;
      if (tried > this.options.maxStates) {
        this.incompleteAt = { step: index, line: s.line, candidates: tried };
        return 'incomplete';
      }
      this.tryObserved(s, index, frontier, k === this.options.maxHidden - 1, next, rejections);
    }
    if (next.length === 0) {
      rejections.sort((a, b) => a.hidden.length - b.hidden.length);
      this.rejection = {
        step: index,
        line: s.line,
        op: s.op,
        observed: s.result ?? null,
        candidates: tried,
        closest: uniqueAnswers(rejections).slice(0, 3),
      };
      return 'invalid';
    }
    this.candidates = next.length > 1 ? this.dedupe(next) : next;
    if (this.candidates.length > this.peak) this.peak = this.candidates.length;
    if (this.candidates.length > this.options.maxStates) {
      this.incompleteAt = { step: index, line: s.line, candidates: this.candidates.length };
      return 'incomplete';
    }
    return null;
  }

  /**
   * Apply the observed op (each completion) to each candidate of `pool`;
   * survivors go to `next`, refusals to `rejections`. With `takeOver`, the
   * last use of a candidate's system may mutate it instead of a copy.
   */
  private tryObserved(
    s: TraceStep<O>,
    index: number,
    pool: Candidate<O, R, V, S>[],
    takeOver: boolean,
    next: Candidate<O, R, V, S>[],
    rejections: Rejection[],
  ): void {
    for (const c of pool) {
      // A history records only steps where something was decided: the rest of the
      // witness is the trace itself, so memory follows the choices, not the length.
      const record = c.hidden.length > 0 || s.chosen || s.maybe;
      for (let k = 0; k < s.completions.length; k++) {
        const op = s.completions[k]!;
        const sys = takeOver && k === s.completions.length - 1 && !s.maybe ? c.sys : this.copy(c.sys);
        this.explored++;
        let answer: R;
        try {
          answer = sys.apply(op);
        } catch (e) {
          rejections.push({ hidden: c.hidden as unknown as Json[], op: op as unknown as Json, answer: null, rule: `op ${s.op}`, message: `the model threw ${describe(e)}` });
          continue;
        }
        const miss = s.result ? partialMatch(s.result, answer) : null;
        const bad = miss !== null ? { rule: `op ${s.op}`, message: `the model answers ${miss}` } : this.invariantFailure(sys);
        if (bad) {
          rejections.push({ hidden: c.hidden as unknown as Json[], op: op as unknown as Json, answer: answer as unknown as Json, ...bad });
          continue;
        }
        const node = record ? { parent: c.node, step: index, hidden: c.hidden, op, chosen: s.chosen || s.maybe } : c.node;
        next.push({ sys, hidden: [], node });
      }
      if (s.maybe) {
        const sys = takeOver ? c.sys : this.copy(c.sys);
        next.push({ sys, hidden: [], node: { parent: c.node, step: index, hidden: c.hidden, op: null, chosen: true } });
      }
    }
  }

  /** After the last step: a full invariant check on every candidate, then the verdict. */
  finish(): {
    verdict: Verdict;
    summary: ValidateSummary;
    rejection: StepRejection | null;
    incomplete: { step: number; line: number; candidates: number } | null;
    witness: Map<number, WitnessFill<O>> | null;
  } {
    let witness: Map<number, WitnessFill<O>> | null = null;
    let choices = 0;
    if (!this.failed) {
      const ok = this.candidates.filter((c) => this.invariantFailure(c.sys, true) === null);
      if (ok.length === 0) {
        const bad = this.invariantFailure(this.candidates[0]!.sys, true)!;
        this.rejection = { step: this.steps - 1, line: 0, op: '(end of trace)', observed: null, candidates: this.candidates.length, closest: [{ hidden: [], op: null, answer: null, ...bad }] };
      } else {
        witness = new Map();
        for (let n = ok[0]!.node; n !== null; n = n.parent) {
          witness.set(n.step, { hidden: n.hidden, op: n.op });
          if (n.chosen) choices++;
        }
      }
    }
    let hiddenOps = 0;
    if (witness) for (const f of witness.values()) hiddenOps += f.hidden.length;
    return {
      verdict: this.rejection ? 'invalid' : this.incompleteAt ? 'incomplete' : 'valid',
      summary: { steps: this.steps, peakCandidates: this.peak, statesExplored: this.explored, hiddenOpsInWitness: hiddenOps, choicesInWitness: choices },
      rejection: this.rejection,
      incomplete: this.incompleteAt,
      witness,
    };
  }
}

/** One rejection per distinct (rule, answer). */
function uniqueAnswers(rs: Rejection[]): Rejection[] {
  const out: Rejection[] = [];
  for (const r of rs) if (!out.some((o) => o.rule === r.rule && deepEqual(o.answer, r.answer))) out.push(r);
  return out;
}

/** One-line explanation of where an observed answer and the model's differ (for reports). */
export function answerDifference(observed: Json, answer: Json): string {
  return firstDifference(answer, observed, 'result') ?? 'no difference';
}
