/**
 * Merging `check --json` reports of shards (`--shard I/N`) into one: the
 * runs of the shards are disjoint slices of one campaign, so counts add up
 * and the counterexample is the one of the lowest failing run index.
 *
 * A merge that lacks a shard, or holds a shard that was interrupted, has not
 * checked the campaign: its verdict is `incomplete`, never `pass` (a failure
 * found in the shards present is still `fail`). Every table here is keyed by
 * names read from the reports, so they are null-prototype objects: a key
 * "__proto__" or "constructor" is a plain key.
 */
import * as t from 'io-ts';
import type { InputError, Json, Resolved } from './domain';
import { decode } from './codec';

const Count = t.number;
const OpTallyJson = t.type({ generated: Count, succeeded: Count, failed: t.record(t.string, Count) });
const InvTallyJson = t.type({ checks: Count, nonTrivial: Count });
const DomainReportJson = t.intersection([
  t.type({
    verdict: t.keyof({ pass: null, fail: null, incomplete: null }),
    runsPlanned: Count,
    runsExecuted: Count,
    elapsedMs: Count,
    steps: Count,
    ops: t.record(t.string, OpTallyJson),
    invariants: t.record(t.string, InvTallyJson),
    counters: t.type({ model: t.record(t.string, Count), impl: t.record(t.string, Count) }),
  }),
  t.partial({
    interrupted: t.boolean,
    counterexample: t.UnknownRecord,
    /** Named scenarios (harness/reach.ts): runs per scenario add up across shards. */
    scenarios: t.array(t.type({ id: t.string, title: t.string, reached: Count })),
    swarm: t.record(t.string, Count),
  }),
]);
export const CheckReportJson = t.intersection([
  t.type({ seed: t.number, verdict: t.keyof({ pass: null, fail: null, incomplete: null }), domains: t.record(t.string, DomainReportJson) }),
  t.partial({ shard: t.string, runs: t.union([t.number, t.null]), maxOps: t.union([t.number, t.null]) }),
]);
export type CheckReportJson = t.TypeOf<typeof CheckReportJson>;

export function decodeReport(input: unknown, file: string): Resolved<CheckReportJson> {
  const r = decode(CheckReportJson, input);
  if (!r.ok) return { ok: false, errors: r.errors.map((e) => ({ path: e.path, message: `${file}: ${e.message}` })) };
  return r;
}

export function mergeReports(reports: readonly { file: string; report: CheckReportJson }[]): Resolved<{ [k: string]: Json }> {
  const errors: InputError[] = [];
  const seeds = new Set(reports.map((r) => r.report.seed));
  if (seeds.size > 1) errors.push({ path: '$.seed', message: `reports come from different seeds (${[...seeds].join(', ')}): they are not slices of one campaign` });
  const shards = reports.map((r) => r.report.shard ?? '1/1');
  for (const sh of shards) {
    const m = /^(\d{1,7})\/(\d{1,7})$/.exec(sh);
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 1_000_000 || Number(m[1]) < 1 || Number(m[1]) > Number(m[2])) {
      return { ok: false, errors: [{ path: '$.shard', message: `shard ${JSON.stringify(sh.slice(0, 40))} is not I/N with 1 <= I <= N <= 1000000` }] };
    }
  }
  const counts = new Set(shards.map((s) => s.split('/')[1]));
  if (counts.size > 1) errors.push({ path: '$.shard', message: `reports split the campaign differently (${shards.join(', ')})` });
  const dup = shards.find((s, i) => shards.indexOf(s) !== i);
  if (dup) errors.push({ path: '$.shard', message: `shard ${dup} appears twice` });
  if (errors.length > 0) return { ok: false, errors };
  const n = Number([...counts][0] ?? 1);
  const missing: string[] = [];
  for (let i = 1; i <= n; i++) if (!shards.includes(`${i}/${n}`)) missing.push(`${i}/${n}`);

  const table = <T>(): { [k: string]: T } => Object.create(null) as { [k: string]: T };
  const domains = table<{ [k: string]: Json }>();
  let interrupted = false;
  for (const { report } of reports) {
    for (const [id, dr] of Object.entries(report.domains)) {
      const m = (domains[id] ??= { verdict: 'pass', runsPlanned: 0, runsExecuted: 0, elapsedMs: 0, steps: 0, ops: table(), invariants: table(), counters: { model: table(), impl: table() } }) as {
        [k: string]: Json;
      } & { ops: { [k: string]: { generated: number; succeeded: number; failed: { [e: string]: number } } }; invariants: { [k: string]: { checks: number; nonTrivial: number } }; counters: { model: { [k: string]: number }; impl: { [k: string]: number } } };
      m['runsPlanned'] = (m['runsPlanned'] as number) + dr.runsPlanned;
      m['runsExecuted'] = (m['runsExecuted'] as number) + dr.runsExecuted;
      m['elapsedMs'] = Math.max(m['elapsedMs'] as number, dr.elapsedMs);
      m['steps'] = (m['steps'] as number) + dr.steps;
      if (dr.verdict === 'fail') m['verdict'] = 'fail';
      else if ((dr.verdict === 'incomplete' || dr.interrupted === true) && m['verdict'] !== 'fail') {
        // A shard stopped early (Ctrl-C or --time-limit) did not run its slice.
        m['verdict'] = 'incomplete';
        interrupted = true;
      }
      for (const [op, v] of Object.entries(dr.ops)) {
        const x = (m.ops[op] ??= { generated: 0, succeeded: 0, failed: table() });
        x.generated += v.generated;
        x.succeeded += v.succeeded;
        for (const [e, c] of Object.entries(v.failed)) x.failed[e] = (x.failed[e] ?? 0) + c;
      }
      for (const [inv, v] of Object.entries(dr.invariants)) {
        const x = (m.invariants[inv] ??= { checks: 0, nonTrivial: 0 });
        x.checks += v.checks;
        x.nonTrivial += v.nonTrivial;
      }
      for (const side of ['model', 'impl'] as const) {
        for (const [k, c] of Object.entries(dr.counters[side])) m.counters[side][k] = (m.counters[side][k] ?? 0) + c;
      }
      if (dr.scenarios) {
        const have = ((m['scenarios'] as { id: string; title: string; reached: number }[] | undefined) ??= dr.scenarios.map((x) => ({ ...x, reached: 0 })));
        for (const x of dr.scenarios) {
          const y = have.find((h) => h.id === x.id);
          if (y) y.reached += x.reached;
          else have.push({ ...x });
        }
      }
      if (dr.swarm) {
        const sw = ((m['swarm'] as { [k: string]: number } | undefined) ??= {});
        for (const [k, c] of Object.entries(dr.swarm)) sw[k] = (sw[k] ?? 0) + c;
      }
      const cx = dr.counterexample as { run?: number } | undefined;
      const have = m['counterexample'] as { run?: number } | undefined;
      if (cx && (have === undefined || (cx.run ?? Infinity) < (have.run ?? Infinity))) m['counterexample'] = cx as Json;
    }
  }
  for (const m of Object.values(domains)) {
    const invs = m['invariants'] as { [k: string]: { checks: number; nonTrivial: number } };
    const out = table<Json>();
    for (const [id, v] of Object.entries(invs)) {
      const frac = v.checks === 0 ? 0 : v.nonTrivial / v.checks;
      out[id] = { checks: v.checks, nonTrivial: v.nonTrivial, nonTrivialFraction: frac, weaklyExercised: frac < 0.01 };
    }
    m['invariants'] = out;
  }
  const anyFail = Object.values(domains).some((d) => d['verdict'] === 'fail') || reports.some((r) => r.report.verdict === 'fail');
  const complete = missing.length === 0 && !interrupted;
  if (!complete) for (const m of Object.values(domains)) if (m['verdict'] === 'pass') m['verdict'] = 'incomplete';
  const verdict = anyFail ? 'fail' : complete ? 'pass' : 'incomplete';
  return {
    ok: true,
    value: { seed: reports[0]!.report.seed, verdict, shards: shards as Json, missingShards: missing, complete, domains },
  };
}
