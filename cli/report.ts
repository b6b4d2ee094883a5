import { io } from './io';
import type { Domain, Json, OpShape, ResultShape } from '../harness/domain';
import { checkDomain, implFactory } from '../harness/check';
import { deepEqual } from '../harness/codec';
import { loadCaseFile } from '../harness/cases';
import { listCorpus } from '../harness/corpus';
import { describeOp } from '../harness/format';
import { renderHtml, type ReportDomain, type ReportTrace } from '../harness/html';
import { runMutant } from '../harness/mutants';
import { explainTrace, violationsOf } from '../harness/trace';
import { domainsOption, intOption, parse, Progress, seedOption, UsageError } from './args';
import { clipText, writeFileAtomic } from '../harness/input';
import { DOMAINS } from '../domains';

export const REPORT_HELP = `usage: hvspec report --html FILE [--domain D] [--runs N] [--seed S] [--json]

Writes one self-contained HTML page (no network at view time): per domain,
the invariant table with coverage, the invariant x mutant kill matrix, op
and error-code frequencies as charts, and every counterexample (saved
failures, and each mutant's shrunk trace) with the state change each step
made. It runs a campaign of N runs (default 100) and every mutant.

  --html FILE   where to write the page (required)
  --domain D    only this domain (repeatable); default all
  --runs N      runs of the campaign behind the frequencies (default 100)
  --seed S      seed (default 1)
  --json        print { file, domains, counterexamples } as JSON

exit: 0 written, 2 bad usage`;

function traceOf<C, O extends OpShape, R extends ResultShape, V, S>(
  d: Domain<C, O, R, V, S>,
  config: C,
  configInput: Json,
  ops: readonly O[],
  title: string,
  origin: string,
  failure: string,
  failingStep: number,
  mutant?: string,
): ReportTrace {
  const steps = explainTrace(d, config, ops, implFactory(d, mutant));
  return {
    title,
    origin,
    config: configInput,
    failure,
    steps: steps.map((s) => ({
      n: s.index + 1,
      op: describeOp(d, s.op),
      model: JSON.stringify(s.model),
      impl: JSON.stringify(s.impl),
      changes: s.changes,
      implChanges: s.implChanges,
      violated: s.violated.map((v) => v.id),
      failing: s.index === failingStep,
    })),
  };
}

function domainReport<C, O extends OpShape, R extends ResultShape, V, S>(d: Domain<C, O, R, V, S>, runs: number, seed: number, progress: Progress): ReportDomain {
  progress.update(`${d.id}: campaign`);
  const outcome = checkDomain(d, { runs, maxOps: d.budget.maxOps, seed });
  const agree = d.resultsAgree ?? ((a: R, b: R) => deepEqual(a, b));
  const traces: ReportTrace[] = [];
  if (outcome.failure) {
    const cx = outcome.failure;
    traces.push(traceOf(d, cx.config, cx.configInput, cx.ops, `found now by seed ${cx.seed}`, 'this report’s campaign', cx.failure.message, cx.failure.step));
  }
  for (const file of listCorpus([d.id])) {
    const loaded = loadCaseFile(file, DOMAINS);
    if (!loaded.ok) continue;
    loaded.value.use((dd, c) => {
      if (dd.id !== d.id) return;
      const f = c.envelope.found?.failure as { message?: string; step?: number } | undefined;
      traces.push(traceOf(d, c.config as unknown as C, d.encodeConfig(c.config as unknown as C), c.ops as unknown as O[], c.name, `saved failure ${file}`, f?.message ?? '', f?.step ?? -1));
    });
  }
  const mutants = d.mutants.map((m) => {
    progress.update(`${d.id}: mutant ${m.id}`);
    const r = runMutant(d, m.id, { seed });
    let violates: string[] = [];
    if (r.counterexample) {
      const cx = r.counterexample;
      const explained = explainTrace(d, cx.config, cx.ops, implFactory(d, m.id));
      violates = [...violationsOf(explained, agree)];
      traces.push(traceOf(d, cx.config, cx.configInput, cx.ops, `mutant ${m.id}: ${m.title}`, `shrunk counterexample against mutant ${m.id} (${m.source})`, cx.failure.message, cx.failure.step, m.id));
    }
    return { id: m.id, title: m.title, source: m.source, killed: r.killed, caughtBy: r.caughtBy, violates, shrunkLength: r.shrunkLength };
  });
  progress.done();
  return {
    id: d.id,
    title: d.title,
    summary: d.summary,
    runs: outcome.runsExecuted,
    steps: outcome.tallies.steps,
    invariants: d.invariants.map((inv) => ({
      id: inv.id,
      title: inv.title,
      statement: inv.statement,
      source: inv.source,
      checks: outcome.tallies.invariants[inv.id]?.checks ?? 0,
      nonTrivial: outcome.tallies.invariants[inv.id]?.nonTrivial ?? 0,
    })),
    mutants,
    ops: outcome.tallies.ops,
    traces,
  };
}

export async function reportCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { html: { type: 'string' }, domain: { type: 'string', multiple: true }, runs: { type: 'string' }, seed: { type: 'string' }, json: { type: 'boolean' } }, false);
  if (values.help) {
    io.out(REPORT_HELP + '\n');
    return 0;
  }
  if (values.html === undefined || values.html === '') throw new UsageError('report needs --html FILE');
  const domains = domainsOption(values.domain);
  const runs = intOption('runs', values.runs, 1, 1_000_000) ?? 100;
  const seed = seedOption(values.seed) ?? 1;
  const progress = new Progress();
  const data = { generatedAt: new Date().toISOString(), seed, domains: domains.map((some) => some.use((d) => domainReport(d, runs, seed, progress))) };
  try {
    writeFileAtomic(values.html, renderHtml(data));
  } catch (e) {
    throw new UsageError(`cannot write ${clipText(values.html)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const traces = data.domains.reduce((n, d) => n + d.traces.length, 0);
  if (values.json) io.out(JSON.stringify({ file: values.html, domains: domains.map((d) => d.id), counterexamples: traces }, null, 2) + '\n');
  else io.out(`wrote ${values.html} (${domains.length} domain${domains.length === 1 ? '' : 's'}, ${traces} counterexamples)\n`);
  return 0;
}
