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

/** Runs that reached each scenario, and runs per swarm subset. */
export interface ReachTally {
  /** scenario id -> runs that reached it at least once. */
  scenarios: { [id: string]: number };
  /** swarm subset label -> runs drawn with it ('all' for runs without a subset). */
  swarm: { [subset: string]: number };
}

export function emptyReach(): ReachTally {
  return { scenarios: {}, swarm: {} };
}

export function mergeReach(into: ReachTally, from: ReachTally | undefined): ReachTally {
  if (!from) return into;
  for (const [k, n] of Object.entries(from.scenarios)) into.scenarios[k] = (into.scenarios[k] ?? 0) + n;
  for (const [k, n] of Object.entries(from.swarm)) into.swarm[k] = (into.swarm[k] ?? 0) + n;
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
