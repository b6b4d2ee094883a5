/**
 * Reach: what a campaign's random runs got to.
 *
 * Random testing finds a bug only if some run produces the input that
 * triggers it, so the harness measures reach instead of trusting it:
 *
 *   - **Named scenarios** (Quint's witnesses, P's scenarios): each domain
 *     declares the hazards its spec page tells as predicates over (View
 *     before, op, result, View after). `check` reports how many runs reached
 *     each, and `--require-scenarios` fails a campaign that missed one.
 *   - **Error coverage**: each domain declares, per op, the errors its page
 *     documents; the report lists the ones no run answered.
 *   - **Swarm subsets** (harness/swarm.ts): how many runs drew which subset.
 *
 * Scenarios are watched on the model only and only in the run as generated
 * (not in shrink attempts), so a campaign pays for them once per step.
 */
import type { Domain, Json, OpShape, ResultShape } from './domain';
import type { StepObserver, Tallies } from './lockstep';

/**
 * A named scenario. `before` is called with the model's View before the op
 * (read what you need from it: the View may be updated in place by the op)
 * and answers the test to run on the op's result and the View after, or
 * `null` when this step cannot reach the scenario (most ops: keep it cheap).
 */
export interface Scenario<C, O extends OpShape, R, V> {
  /** kebab-case, says what happens: `block-dissolved-while-logging`. */
  readonly id: string;
  readonly title: string;
  /** The hazard on the spec page (section) and its upstream source. */
  readonly source: string;
  before(view: V, op: O, config: C): ((result: R, after: V) => boolean) | null;
}

/**
 * What one argument of one op took over a campaign's generated traces:
 * numbers by range, anything else by whether it ever differed.
 */
export interface ArgTally {
  /** Smallest and largest number seen (null: not a number). */
  min: number | null;
  max: number | null;
  /** The first value seen (JSON), to tell whether it ever varied. */
  first: string;
  varied: boolean;
  /** Whether 0 was ever drawn (numbers): the first edge of every range. */
  zero: boolean;
}

/** Runs that reached each scenario, runs per swarm subset, and argument ranges. */
export interface ReachTally {
  /** scenario id -> runs that reached it at least once. */
  scenarios: { [id: string]: number };
  /** swarm subset label -> runs drawn with it ('all' for runs without a subset). */
  swarm: { [subset: string]: number };
  /** op -> argument -> what it took. */
  args: { [op: string]: { [arg: string]: ArgTally } };
  /** op -> the arguments of one generated instance (to ask the codec whether 0 is valid). */
  argSamples: { [op: string]: { readonly [arg: string]: unknown } };
}

export function emptyReach(): ReachTally {
  return { scenarios: {}, swarm: {}, args: {}, argSamples: {} };
}

function mergeArg(into: ArgTally | undefined, from: ArgTally): ArgTally {
  if (!into) return { ...from };
  into.min = from.min === null ? into.min : into.min === null ? from.min : Math.min(into.min, from.min);
  into.max = from.max === null ? into.max : into.max === null ? from.max : Math.max(into.max, from.max);
  into.varied ||= from.varied || from.first !== into.first;
  into.zero ||= from.zero;
  return into;
}

/** Add a generated trace's arguments to the tally. */
export function recordArgs(into: ReachTally, ops: readonly OpShape[]): void {
  for (const op of ops) {
    const perOp = (into.args[op.op] ??= {});
    into.argSamples[op.op] ??= op.args;
    for (const key in op.args) {
      const v = op.args[key];
      const num = typeof v === 'number' ? v : null;
      const first = num !== null ? String(num) : JSON.stringify(v) ?? 'undefined';
      const x = perOp[key];
      if (x === undefined) perOp[key] = { min: num, max: num, first, varied: false, zero: num === 0 };
      else {
        if (num !== null) {
          if (x.min === null || num < x.min) x.min = num;
          if (x.max === null || num > x.max) x.max = num;
          if (num === 0) x.zero = true;
        }
        if (!x.varied && first !== x.first) x.varied = true;
      }
    }
  }
}

/**
 * Arguments that never varied, and numeric ones that never took 0 where the
 * op's codec accepts 0 (ids that start at 1 are not flagged), as `op.arg`.
 */
export function flaggedArgs<C, O extends OpShape, R extends ResultShape, V, S>(
  domain: Domain<C, O, R, V, S>,
  reach: ReachTally | undefined,
): { neverVaried: string[]; neverZero: string[] } {
  const neverVaried: string[] = [];
  const neverZero: string[] = [];
  for (const [op, args] of Object.entries(reach?.args ?? {})) {
    for (const [arg, x] of Object.entries(args)) {
      if (!x.varied) neverVaried.push(`${op}.${arg}`);
      const sample = reach?.argSamples[op];
      const zeroValid = sample !== undefined && domain.opArgs[op]?.is({ ...sample, [arg]: 0 }) === true;
      if (x.min !== null && !x.zero && zeroValid) neverZero.push(`${op}.${arg}`);
    }
  }
  return { neverVaried, neverZero };
}

export function mergeReach(into: ReachTally, from: ReachTally | undefined): ReachTally {
  if (!from) return into;
  for (const [k, n] of Object.entries(from.scenarios)) into.scenarios[k] = (into.scenarios[k] ?? 0) + n;
  for (const [k, n] of Object.entries(from.swarm)) into.swarm[k] = (into.swarm[k] ?? 0) + n;
  for (const [op, a] of Object.entries(from.argSamples ?? {})) into.argSamples[op] ??= a;
  for (const [op, args] of Object.entries(from.args ?? {})) {
    const perOp = (into.args[op] ??= {});
    for (const [arg, x] of Object.entries(args)) perOp[arg] = mergeArg(perOp[arg], x);
  }
  return into;
}

/** Watches one run: which scenarios it reached. */
export class ScenarioWatch<C, O extends OpShape, R, V> implements StepObserver<O, R, V> {
  readonly reached = new Set<string>();
  private pending: Array<[string, (result: R, after: V) => boolean]> = [];
  constructor(
    private readonly scenarios: readonly Scenario<C, O, R, V>[],
    private readonly config: C,
  ) {}
  before(_step: number, op: O, view: V): void {
    this.pending.length = 0;
    // Once every scenario was reached in this run there is nothing left to watch.
    if (this.reached.size === this.scenarios.length) return;
    for (const s of this.scenarios) {
      if (this.reached.has(s.id)) continue;
      const test = s.before(view, op, this.config);
      if (test !== null) this.pending.push([s.id, test]);
    }
  }
  after(_step: number, _op: O, result: R, view: V): void {
    for (const [id, test] of this.pending) if (test(result, view)) this.reached.add(id);
    this.pending.length = 0;
  }
  /** Whether the observer needs Views at all (a domain without scenarios: no). */
  get active(): boolean {
    return this.scenarios.length > 0;
  }
}

/** Add one run's reach to a tally. */
export function recordRun(into: ReachTally, scenarioIds: readonly string[], reached: ReadonlySet<string>, swarmLabel: string): void {
  for (const id of scenarioIds) {
    into.scenarios[id] ??= 0;
    if (reached.has(id)) into.scenarios[id]!++;
  }
  into.swarm[swarmLabel] = (into.swarm[swarmLabel] ?? 0) + 1;
}

export interface ScenarioReport {
  readonly id: string;
  readonly title: string;
  readonly reached: number;
}

export function scenarioReport<C, O extends OpShape, R extends ResultShape, V, S>(
  domain: Domain<C, O, R, V, S>,
  reach: ReachTally | undefined,
): ScenarioReport[] {
  return (domain.scenarios ?? []).map((s) => ({ id: s.id, title: s.title, reached: reach?.scenarios[s.id] ?? 0 }));
}

/** Documented errors (domain.errors) that no run answered: `op: ERR`. */
export function unreachedErrors<C, O extends OpShape, R extends ResultShape, V, S>(
  domain: Domain<C, O, R, V, S>,
  tallies: Tallies,
): { op: string; error: string }[] {
  const out: { op: string; error: string }[] = [];
  for (const [op, errs] of Object.entries(domain.errors ?? {})) {
    for (const e of errs) if (!(tallies.ops[op]?.errors[e] ?? 0)) out.push({ op, error: e });
  }
  return out;
}

/** The reach part of `check`'s text report. */
export function formatReach<C, O extends OpShape, R extends ResultShape, V, S>(
  domain: Domain<C, O, R, V, S>,
  tallies: Tallies,
  reach: ReachTally | undefined,
  runs: number,
): string[] {
  const lines: string[] = [];
  const sc = scenarioReport(domain, reach);
  if (sc.length > 0) {
    lines.push('  scenarios (runs that reached each):');
    const w = Math.max(...sc.map((s) => s.id.length));
    for (const s of sc) lines.push(`    ${s.id.padEnd(w)}  ${String(s.reached).padStart(6)}/${runs}${s.reached === 0 ? '  NOT REACHED' : ''}  ${s.title}`);
  }
  if (domain.errors) {
    const missing = unreachedErrors(domain, tallies);
    lines.push(missing.length === 0 ? '  errors: every documented error was answered' : `  errors never answered: ${missing.map((m) => `${m.op} ${m.error}`).join(', ')}`);
  }
  const flagged = flaggedArgs(domain, reach);
  if (flagged.neverVaried.length > 0) lines.push(`  arguments that never varied: ${flagged.neverVaried.join(', ')}`);
  if (flagged.neverZero.length > 0) lines.push(`  numeric arguments never 0: ${flagged.neverZero.join(', ')}`);
  if (reach && Object.keys(reach.swarm).length > 1) {
    const parts = Object.entries(reach.swarm).sort((a, b) => b[1] - a[1]);
    const all = reach.swarm['all'] ?? 0;
    lines.push(`  swarm: ${runs - all} of ${runs} runs drew an op subset (${parts.length - (all > 0 ? 1 : 0)} distinct)`);
  }
  return lines;
}

/** The reach part of `check --json`. */
export function reachJson<C, O extends OpShape, R extends ResultShape, V, S>(
  domain: Domain<C, O, R, V, S>,
  tallies: Tallies,
  reach: ReachTally | undefined,
): { [k: string]: Json } {
  const out: { [k: string]: Json } = {
    scenarios: scenarioReport(domain, reach).map((s) => ({ id: s.id, title: s.title, reached: s.reached })),
  };
  if (domain.errors) {
    const documented: { [op: string]: Json } = {};
    for (const [op, errs] of Object.entries(domain.errors)) documented[op] = [...errs];
    out['errors'] = { documented, unreached: unreachedErrors(domain, tallies).map((m) => `${m.op} ${m.error}`) };
  }
  out['swarm'] = { ...(reach?.swarm ?? {}) };
  const args: { [op: string]: Json } = {};
  for (const [op, perOp] of Object.entries(reach?.args ?? {})) {
    const o: { [arg: string]: Json } = {};
    for (const [arg, x] of Object.entries(perOp)) o[arg] = x.min === null ? { varied: x.varied } : { min: x.min, max: x.max, varied: x.varied, zero: x.zero };
    args[op] = o;
  }
  const flagged = flaggedArgs(domain, reach);
  out['args'] = { reached: args, neverVaried: flagged.neverVaried, neverZero: flagged.neverZero };
  return out;
}

/** Scenario ids a campaign did not reach (for --require-scenarios). */
export function unreachedScenarios<C, O extends OpShape, R extends ResultShape, V, S>(
  domain: Domain<C, O, R, V, S>,
  reach: ReachTally | undefined,
): string[] {
  return scenarioReport(domain, reach)
    .filter((s) => s.reached === 0)
    .map((s) => s.id);
}
