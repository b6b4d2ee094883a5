import * as fs from 'fs';
import * as path from 'path';
import type { Domain, Json, OpShape, ResultShape } from '../harness/domain';
import { checkDomain, type CheckOptions, type CheckOutcome } from '../harness/check';
import { checkInWorkers } from '../harness/parallel';
import { loadCaseFile, replayCase } from '../harness/cases';
import { listCorpus, saveCounterexample } from '../harness/corpus';
import { formatCounterexample, formatFailure, formatTallies, formatTrace, talliesJson } from '../harness/format';
import { emptyTallies, mergeTallies, type Tallies } from '../harness/lockstep';
import { formatReach, reachJson, unreachedScenarios } from '../harness/reach';
import { domainsOption, implOption, intOption, numberOption, parse, Progress, seedOption, shardOption } from './args';

export const CHECK_HELP = `usage: hvspec check [--domain D] [--runs N] [--seed S] [--max-ops K] [--time-limit T]
                    [--impl impl|mutant:ID] [--workers N] [--shard I/N] [--path P]
                    [--no-corpus] [--require-scenarios] [--json]

Replays the saved failure corpus (.hvspec/failures/), then runs the lockstep
property of each domain: random configurations and traces, model and impl
side by side, every invariant checked on both after every op. A failure is
shrunk, printed as a numbered trace and saved as a case file.

  --domain D       only this domain (repeatable, or a comma list); default all
  --runs N         runs per domain (default: the domain's budget)
  --seed S         campaign seed (default: random, printed); run k uses seed S + k*0x9e3779b9
  --max-ops K      longest trace (default: the domain's budget)
  --time-limit T   stop starting runs after T seconds (per command)
  --impl X         impl (default) or mutant:ID to run against a known-bug mutant
  --shard I/N      run only the I-th of N disjoint slices of the runs (merge with hvspec merge)
  --workers N      spread the runs over N worker processes (same runs, verdict and totals)
  --path P         fast-check path of a counterexample (with --runs 1)
  --no-corpus      do not replay or save the failure corpus
  --require-scenarios  fail (exit 1) when a domain's named scenario was reached by no run
  --json           one JSON report on stdout

exit: 0 all hold, 1 counterexample, 2 bad usage`;

export interface DomainCheckReport {
  [k: string]: Json;
}

export function lastCheckFile(): string {
  return path.join(process.cwd(), '.hvspec', 'last-check.json');
}

export async function checkCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      domain: { type: 'string', multiple: true },
      runs: { type: 'string' },
      seed: { type: 'string' },
      'max-ops': { type: 'string' },
      'time-limit': { type: 'string' },
      impl: { type: 'string' },
      shard: { type: 'string' },
      path: { type: 'string' },
      workers: { type: 'string' },
      'no-corpus': { type: 'boolean' },
      'require-scenarios': { type: 'boolean' },
      json: { type: 'boolean' },
    },
    false,
  );
  if (values.help) {
    process.stdout.write(CHECK_HELP + '\n');
    return 0;
  }
  const domains = domainsOption(values.domain);
  const runs = intOption('runs', values.runs, 1, 10_000_000);
  const maxOps = intOption('max-ops', values['max-ops'], 1, 100_000);
  const timeLimit = numberOption('time-limit', values['time-limit'], 0);
  const mutant = implOption(values.impl);
  const shard = shardOption(values.shard);
  const workers = intOption('workers', values.workers, 1, 64) ?? 1;
  const seed = seedOption(values.seed) ?? (Date.now() ^ (process.pid << 16)) | 0;
  const json = values.json === true;
  const requireScenarios = values['require-scenarios'] === true;
  let unreached = false;
  const useCorpus = values['no-corpus'] !== true && mutant === undefined;
  if (mutant !== undefined) {
    for (const d of domains) {
      if (!d.use((x) => x.mutants.some((m) => m.id === mutant))) {
        const known = d.use((x) => x.mutants.map((m) => m.id).join(', '));
        process.stderr.write(`hvspec check: unknown mutant ${JSON.stringify(mutant)} for ${d.id} (known: ${known})\n`);
        return 2;
      }
    }
  }
  const out = (s: string) => {
    if (!json) process.stdout.write(s + '\n');
  };
  const started = Date.now();
  let failed = false;
  const report: { [k: string]: Json } = { seed, domains: {} as { [k: string]: Json } };
  const domainReports = report['domains'] as { [k: string]: Json };

  // 1. The corpus first.
  const corpusReport: Json[] = [];
  if (useCorpus) {
    const files = listCorpus(domains.map((d) => d.id));
    if (files.length > 0) out(`replaying ${files.length} saved failure${files.length === 1 ? '' : 's'} from .hvspec/failures/`);
    for (const f of files) {
      const loaded = loadCaseFile(f);
      if (!loaded.ok) {
        out(`  skipped ${f}: no longer decodes (${loaded.errors[0]?.path}: ${loaded.errors[0]?.message})`);
        corpusReport.push({ file: f, status: 'invalid' });
        continue;
      }
      const r = replayCase(loaded.value);
      if (r.failure) {
        failed = true;
        corpusReport.push({ file: f, status: 'fails', failure: r.failure as unknown as Json });
        out(`  FAIL ${f}`);
        out(
          loaded.value.use((d, c) =>
            formatTrace(d, c.ops.slice(0, r.failure!.step + 1), r.results as never, r.failure),
          ),
        );
        out('  ' + formatFailure(r.failure));
      } else {
        corpusReport.push({ file: f, status: 'passes' });
        out(`  pass ${f} (fixed since it was saved)`);
      }
    }
    report['corpus'] = corpusReport;
  }
  if (failed) {
    out('a saved failure still fails: fix it (or delete the file) before searching for new ones');
    if (json) process.stdout.write(JSON.stringify({ ...report, verdict: 'fail' }, null, 2) + '\n');
    return 1;
  }

  // 2. The property, domain by domain.
  const totals: Tallies = emptyTallies();
  const progress = new Progress(!json && process.stderr.isTTY === true);
  for (const some of domains) {
    const remaining = timeLimit === undefined ? undefined : Math.max(0, timeLimit * 1000 - (Date.now() - started));
    const result = await some.use(async <C, O extends OpShape, R extends ResultShape, V, S>(d: Domain<C, O, R, V, S>) => {
      const budgetRuns = runs ?? d.budget.runs;
      const options: CheckOptions = {
        runs: budgetRuns,
        maxOps: maxOps ?? d.budget.maxOps,
        seed,
        ...(mutant !== undefined ? { mutant } : {}),
        ...(remaining !== undefined ? { timeLimitMs: remaining } : {}),
        ...(shard ? { shard } : {}),
        ...(values.path !== undefined ? { path: values.path } : {}),
        onProgress: (done, total) => progress.update(`${d.id}: run ${done}/${total}`),
      };
      const outcome: CheckOutcome<C, O, R> =
        workers > 1 ? ((await checkInWorkers(d.id, options, workers)) as unknown as CheckOutcome<C, O, R>) : checkDomain(d, options);
      progress.done();
      mergeTallies(totals, outcome.tallies);
      const rate = outcome.elapsedMs > 0 ? Math.round((outcome.tallies.steps / outcome.elapsedMs) * 1000) : 0;
      const head = `${d.id}: ${outcome.failure ? 'FAILED' : 'ok'} — ${outcome.runsExecuted}/${outcome.runsPlanned} runs, ${outcome.tallies.steps} ops in ${(outcome.elapsedMs / 1000).toFixed(2)}s (${rate} ops/s)${outcome.interrupted ? ', stopped by --time-limit' : ''}${shard ? `, shard ${shard.index + 1}/${shard.count}` : ''}${workers > 1 ? `, ${workers} workers` : ''}${mutant ? `, against mutant ${mutant}` : ''}`;
      out(head);
      out(formatTallies(outcome.tallies));
      if (d.costReport) for (const line of d.costReport(outcome.tallies.counters.model, outcome.tallies.counters.impl)) out(`    ${line}`);
      for (const line of formatReach(d, outcome.tallies, outcome.reach, outcome.runsExecuted)) out(line);
      const missed = requireScenarios && outcome.failure === null ? unreachedScenarios(d, outcome.reach) : [];
      if (missed.length > 0) {
        unreached = true;
        const msg = `${d.id}: --require-scenarios: ${missed.length} scenario${missed.length === 1 ? '' : 's'} reached by no run: ${missed.join(', ')}`;
        if (json) process.stderr.write(`hvspec check: ${msg}\n`);
        else out(msg);
      }
      let saved: string | null = null;
      if (outcome.failure) {
        if (useCorpus) saved = saveCounterexample(d, outcome.failure);
        out(formatCounterexample(d, outcome.failure, saved));
      }
      const entry: { [k: string]: Json } = {
        verdict: outcome.failure ? 'fail' : 'pass',
        runsPlanned: outcome.runsPlanned,
        runsExecuted: outcome.runsExecuted,
        elapsedMs: outcome.elapsedMs,
        interrupted: outcome.interrupted,
        ...talliesJson(outcome.tallies) as { [k: string]: Json },
        ...reachJson(d, outcome.tallies, outcome.reach),
        ...(missed.length > 0 ? { unreachedScenarios: missed } : {}),
      };
      if (outcome.failure) {
        const cx = outcome.failure;
        entry['counterexample'] = {
          seed: cx.seed,
          run: cx.run,
          path: cx.path,
          config: cx.configInput,
          ops: cx.ops as unknown as Json,
          failure: cx.failure as unknown as Json,
          results: cx.results as unknown as Json,
          originalLength: cx.originalLength,
          saved,
        };
      }
      return { failed: outcome.failure !== null, entry };
    });
    domainReports[some.id] = result.entry;
    if (result.failed) failed = true;
  }
  if (unreached) failed = true;
  report['verdict'] = failed ? 'fail' : 'pass';
  report['runs'] = runs ?? null;
  report['maxOps'] = maxOps ?? null;
  if (shard) report['shard'] = `${shard.index + 1}/${shard.count}`;
  report['elapsedMs'] = Date.now() - started;
  try {
    fs.mkdirSync(path.dirname(lastCheckFile()), { recursive: true });
    fs.writeFileSync(lastCheckFile(), JSON.stringify(report, null, 2) + '\n');
  } catch {
    // Recording coverage is a convenience; a read-only tree still checks.
  }
  if (json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  else out(`seed ${seed}: ${failed ? (unreached && !Object.values(domainReports).some((r) => (r as { verdict?: Json }).verdict === 'fail') ? 'invariants hold, but a required scenario was not reached' : 'counterexample found') : 'all invariants hold'} (${((Date.now() - started) / 1000).toFixed(1)}s)`);
  return failed ? 1 : 0;
}
