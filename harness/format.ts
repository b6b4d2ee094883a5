/**
 * Human-readable reports: counterexample traces, tallies, cost counters.
 * Pure string building; the CLI prints.
 */
import type { Domain, Json, OpShape, ResultShape } from './domain';
import type { Counterexample } from './check';
import type { StepFailure, StepRecord, Tallies } from './lockstep';

export function describeOp<C, O extends OpShape, R extends ResultShape, V, S>(d: Domain<C, O, R, V, S>, op: O): string {
  if (d.describeOp) return d.describeOp(op);
  const args = Object.entries(op.args)
    .map(([k, v]) => `${k}=${typeof v === 'number' && Number.isInteger(v) && Math.abs(v) >= 4096 ? '0x' + v.toString(16) : JSON.stringify(v)}`)
    .join(' ');
  return args ? `${op.op} ${args}` : op.op;
}

function compact(r: unknown): string {
  const s = JSON.stringify(r);
  return s === undefined ? 'undefined' : s;
}

const KIND_TEXT: { [k in StepFailure['kind']]: string } = {
  'result-mismatch': 'model and impl results differ',
  invariant: 'invariant violated',
  'view-mismatch': 'model and impl states differ',
  expect: 'expected result not met',
  'live-view-stale': 'live view out of date',
  crash: 'exception',
};

/** A numbered trace, the failing step marked, model vs impl results side by side. */
export function formatTrace<C, O extends OpShape, R extends ResultShape, V, S>(
  d: Domain<C, O, R, V, S>,
  ops: readonly O[],
  results: readonly StepRecord<R>[],
  failure: StepFailure | null,
): string {
  const lines: string[] = [];
  const width = String(ops.length).length;
  ops.forEach((op, i) => {
    const mark = failure && failure.step === i ? '>>' : '  ';
    const n = String(i + 1).padStart(width);
    const rec = results[i];
    let res = '';
    if (rec) {
      const m = compact(rec.model);
      const im = rec.impl === null ? '(threw; see below)' : compact(rec.impl);
      res = m === im ? `  -> ${m}` : `\n${' '.repeat(width + 6)}model: ${m}\n${' '.repeat(width + 6)}impl:  ${im}`;
    }
    lines.push(`${mark} ${n}. ${describeOp(d, op)}${res}`);
  });
  return lines.join('\n');
}

export function formatFailure(f: StepFailure): string {
  const where = f.step >= 0 ? `step ${f.step + 1}` : 'at creation';
  const who = f.side ? ` (${f.side})` : '';
  const inv = f.invariant ? ` ${f.invariant}` : '';
  return `${KIND_TEXT[f.kind]}${inv}${who} at ${where}: ${f.message}`;
}

export function formatCounterexample<C, O extends OpShape, R extends ResultShape, V, S>(
  d: Domain<C, O, R, V, S>,
  cx: Counterexample<C, O, R>,
  savedAt: string | null,
): string {
  const inv = cx.failure.invariant ? d.invariants.find((i) => i.id === cx.failure.invariant) : undefined;
  const out: string[] = [];
  out.push(`counterexample for ${d.id}${cx.mutant ? ` (mutant ${cx.mutant})` : ''}: ${cx.ops.length} ops (shrunk from ${cx.originalLength} in ${cx.shrinks} steps)`);
  out.push(`config: ${JSON.stringify(cx.configInput)}`);
  out.push(formatTrace(d, cx.ops, cx.results, cx.failure));
  out.push(formatFailure(cx.failure));
  if (inv) {
    out.push(`  ${inv.id} — ${inv.title}: ${inv.statement}`);
    out.push(`  source: ${inv.source}`);
  }
  out.push(`reproduce: hvspec check --domain ${d.id} --seed ${cx.seed} --runs 1${cx.mutant ? ` --impl mutant:${cx.mutant}` : ''}   (fast-check path ${JSON.stringify(cx.path)})`);
  if (savedAt) out.push(`saved: ${savedAt}   (replay: hvspec replay${cx.mutant ? ` --impl mutant:${cx.mutant}` : ''} ${savedAt}; make it a case: hvspec promote ${savedAt} --name NAME)`);
  return out.join('\n');
}

/** Per-op and per-invariant tallies, and cost counters side by side. */
export function formatTallies(t: Tallies, weakThreshold = 0.01): string {
  const out: string[] = [];
  const ops = Object.entries(t.ops).sort((a, b) => b[1].generated - a[1].generated);
  if (ops.length > 0) {
    out.push('  ops                      generated       ok  errors');
    for (const [op, v] of ops) {
      const errs = Object.entries(v.errors)
        .sort((a, b) => b[1] - a[1])
        .map(([e, n]) => `${e}:${n}`)
        .join(' ');
      out.push(`    ${op.padEnd(22)} ${String(v.generated).padStart(9)} ${String(v.ok).padStart(8)}  ${errs}`);
    }
  }
  const invs = Object.entries(t.invariants);
  if (invs.length > 0) {
    out.push('  invariants                  checks  non-trivial');
    for (const [id, v] of invs) {
      const frac = v.checks === 0 ? 0 : v.nonTrivial / v.checks;
      const weak = frac < weakThreshold ? '  WEAKLY EXERCISED' : '';
      out.push(`    ${id.padEnd(24)} ${String(v.checks).padStart(9)} ${String(v.nonTrivial).padStart(9)} (${(frac * 100).toFixed(1)}%)${weak}`);
    }
  }
  const keys = [...new Set([...Object.keys(t.counters.model), ...Object.keys(t.counters.impl)])];
  if (keys.length > 0) {
    out.push('  cost counters                    model        impl');
    for (const k of keys) {
      out.push(`    ${k.padEnd(26)} ${String(t.counters.model[k] ?? '-').padStart(9)} ${String(t.counters.impl[k] ?? '-').padStart(11)}`);
    }
  }
  return out.join('\n');
}

/** Tallies as JSON (for --json). */
export function talliesJson(t: Tallies, weakThreshold = 0.01): Json {
  const invariants: { [k: string]: Json } = {};
  for (const [id, v] of Object.entries(t.invariants)) {
    const frac = v.checks === 0 ? 0 : v.nonTrivial / v.checks;
    invariants[id] = { checks: v.checks, nonTrivial: v.nonTrivial, nonTrivialFraction: frac, weaklyExercised: frac < weakThreshold };
  }
  const ops: { [k: string]: Json } = {};
  for (const [op, v] of Object.entries(t.ops)) ops[op] = { generated: v.generated, succeeded: v.ok, failed: v.errors };
  return { steps: t.steps, ops, invariants, counters: t.counters };
}
