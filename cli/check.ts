import { io, verdictWord } from './io';
import * as fs from 'fs';
import * as path from 'path';
import type { Domain, Json, OpShape, ResultShape } from '../harness/domain';
import { checkDomainAsync, type CheckOptions, type CheckOutcome } from '../harness/check';
import { checkInWorkers, effectiveWorkers } from '../harness/parallel';
import { errorLines, writeFileAtomic } from '../harness/input';
import { loadCaseFile, replayCase } from '../harness/cases';
import { listCorpus, saveCounterexample } from '../harness/corpus';
import { formatCounterexample, formatFailure, formatTallies, formatTrace, talliesJson } from '../harness/format';
import { emptyTallies, mergeTallies, type Tallies } from '../harness/lockstep';
import { formatReach, reachJson, unreachedScenarios } from '../harness/reach';
import { domainsOption, implOption, intOption, numberOption, parse, Progress, seedOption, shardOption, UsageError } from './args';
import { clip } from '../harness/input';
import { DOMAINS, REGISTRY_MODULE } from '../domains';

export const CHECK_HELP = `usage: hvspec check [--domain D] [--runs N] [--seed S] [--max-ops K] [--time-limit T]
                    [--impl impl|mutant:ID] [--workers N] [--shard I/N] [--path P]
                    [--no-corpus] [--require-scenarios] [--json]

Replays the saved failure corpus (.hvspec/failures/), then runs the lockstep
property of each domain: random configurations and traces, model and impl
side by side, every invariant checked on both after every op. A failure is
shrunk, printed as a numbered trace and saved as a case file.

  --domain D       only this domain (repeatable, or a comma list); default all
  --runs N         runs per domain (default: the domain's budget)
  --seed S         campaign seed, any 32-bit integer (default: random, printed);
                   run k uses seed S + k*0x9e3779b9
  --max-ops K      longest trace (default: the domain's budget)
  --time-limit T   stop starting runs after T seconds (per command)
  --impl X         impl (default) or mutant:ID to run against a known-bug mutant; its
                   counterexample is saved under .hvspec/failures/mutants/ (promote works)
  --shard I/N      run only the I-th of N disjoint slices of the runs (merge with hvspec merge)
  --workers N      spread the runs over N worker processes (same runs, verdict and totals);
                   never more processes than runs or cores
  --path P         fast-check path of a counterexample (with --runs 1)
  --no-corpus      do not replay or save the failure corpus
  --require-scenarios  fail (exit 1) when a domain's named scenario was reached by no run
  --json           one JSON report on stdout

Ctrl-C stops after the current run and prints what ran, the seed and the
command that runs the same campaign again.

exit: 0 pass, 1 counterexample, 2 bad usage, 130 interrupted`;

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
    io.out(CHECK_HELP + '\n');
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
  if (values.path !== undefined && !/^\d{1,9}(:\d{1,9}){0,9999}$/.test(values.path)) {
    throw new UsageError(`--path takes a fast-check path such as 0:1:3 (printed with a counterexample), got ${clip(values.path)}`);
  }
  // The corpus is replayed against the impl only; a mutant's counterexample is still saved (tagged, under mutants/).
  const saveFailures = values['no-corpus'] !== true;
  const useCorpus = saveFailures && mutant === undefined;
  if (mutant !== undefined) {
    for (const d of domains) {
      if (!d.use((x) => x.mutants.some((m) => m.id === mutant))) {
        const known = d.use((x) => x.mutants.map((m) => m.id).join(', '));
        io.err(`hvspec check: unknown mutant ${clip(mutant)} for ${d.id} (known: ${known})\n`);
        return 2;
      }
    }
  }
  const out = (s: string) => {
    if (!json) io.out(s + '\n');
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
      const loaded = loadCaseFile(f, DOMAINS);
      if (!loaded.ok) {
        out(`  skipped ${f}: no longer decodes (${errorLines(loaded.errors, 1)[0]!.trim()})`);
        corpusReport.push({ file: f, verdict: 'invalid' });
        continue;
      }
      const r = replayCase(loaded.value);
      if (r.failure) {
        failed = true;
        corpusReport.push({ file: f, verdict: 'fail', failure: r.failure as unknown as Json });
        out(`  ${verdictWord('fail')} ${f}`);
        out(
          loaded.value.use((d, c) =>
            formatTrace(d, c.ops.slice(0, r.failure!.step + 1), r.results as never, r.failure),
          ),
        );
        out('  ' + formatFailure(r.failure));
      } else {
        corpusReport.push({ file: f, verdict: 'pass' });
        out(`  ${verdictWord('pass')} ${f} (fixed since it was saved)`);
      }
    }
    report['corpus'] = corpusReport;
  }
  if (failed) {
    out('a saved failure still fails: fix it (or delete the file) before searching for new ones');
    if (json) io.out(JSON.stringify({ ...report, verdict: 'fail' }, null, 2) + '\n');
    return 1;
  }

  // 2. The property, domain by domain. Ctrl-C stops after the current run (a second one ends at once).
  let stopRequested = false;
  const onSigint = () => {
    if (stopRequested) process.exit(130);
    stopRequested = true;
  };
  process.on('SIGINT', onSigint);
  const totals: Tallies = emptyTallies();
  const progress = new Progress(!json && process.stderr.isTTY === true);
  const ran: string[] = [];
  try {
    for (const some of domains) {
      if (stopRequested) break;
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
          shouldStop: () => stopRequested,
        };
        const myRuns = shard ? Math.ceil((budgetRuns - shard.index) / shard.count) : budgetRuns;
        const procs = effectiveWorkers(workers, myRuns);
        const outcome: CheckOutcome<C, O, R> =
          procs > 1 ? ((await checkInWorkers(REGISTRY_MODULE, d.id, options, procs)) as unknown as CheckOutcome<C, O, R>) : await checkDomainAsync(d, options);
        progress.done();
        mergeTallies(totals, outcome.tallies);
        const rate = outcome.elapsedMs > 0 ? Math.round((outcome.tallies.steps / outcome.elapsedMs) * 1000) : 0;
        const signalled = outcome.interruptedBy === 'signal';
        const verdict = outcome.failure ? 'fail' : signalled ? 'incomplete' : 'pass';
        const stopped = signalled ? ', interrupted (Ctrl-C)' : outcome.interrupted ? ', stopped by --time-limit' : '';
        const head = `${d.id}: ${verdictWord(verdict)} — ${outcome.runsExecuted}/${outcome.runsPlanned} runs, ${outcome.tallies.steps} ops in ${(outcome.elapsedMs / 1000).toFixed(2)}s (${rate} ops/s)${stopped}${shard ? `, shard ${shard.index + 1}/${shard.count}` : ''}${procs > 1 ? `, ${procs} workers` : ''}${mutant ? `, against mutant ${mutant}` : ''}`;
        out(head);
        ran.push(`${d.id} ${outcome.runsExecuted}/${outcome.runsPlanned} runs`);
        out(formatTallies(outcome.tallies));
        if (d.costReport) for (const line of d.costReport(outcome.tallies.counters.model, outcome.tallies.counters.impl)) out(`    ${line}`);
        for (const line of formatReach(d, outcome.tallies, outcome.reach, outcome.runsExecuted)) out(line);
        const missed = requireScenarios && outcome.failure === null && !signalled ? unreachedScenarios(d, outcome.reach) : [];
        if (missed.length > 0) {
          unreached = true;
          const msg = `${d.id}: --require-scenarios: ${missed.length} scenario${missed.length === 1 ? '' : 's'} reached by no run: ${missed.join(', ')}`;
          if (json) io.err(`hvspec check: ${msg}\n`);
          else out(msg);
        }
        let saved: string | null = null;
        if (outcome.failure) {
          if (saveFailures) saved = saveCounterexample(d, outcome.failure);
          out(formatCounterexample(d, outcome.failure, saved));
        }
        const entry: { [k: string]: Json } = {
          verdict,
          runsPlanned: outcome.runsPlanned,
          runsExecuted: outcome.runsExecuted,
          elapsedMs: outcome.elapsedMs,
          interrupted: outcome.interrupted,
          ...(outcome.interruptedBy ? { interruptedBy: outcome.interruptedBy } : {}),
          workers: procs,
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
            ...(cx.mutant ? { mutant: cx.mutant } : {}),
            saved,
          };
        }
        return { failed: outcome.failure !== null, entry };
      });
      domainReports[some.id] = result.entry;
      if (result.failed) failed = true;
    }
  } finally {
    process.off('SIGINT', onSigint);
  }
  report['runs'] = runs ?? null;
  report['maxOps'] = maxOps ?? null;
  if (shard) report['shard'] = `${shard.index + 1}/${shard.count}`;
  if (stopRequested && !failed) {
    // Interrupted: what ran, the seed, and the command that runs this campaign again.
    const notRun = domains.filter((d) => !(d.id in domainReports)).map((d) => d.id);
    const again = [
      'hvspec check',
      ...domains.map((d) => `--domain ${d.id}`),
      `--seed ${seed}`,
      ...(runs !== undefined ? [`--runs ${runs}`] : []),
      ...(maxOps !== undefined ? [`--max-ops ${maxOps}`] : []),
      ...(mutant !== undefined ? [`--impl mutant:${mutant}`] : []),
      ...(shard ? [`--shard ${shard.index + 1}/${shard.count}`] : []),
      ...(workers > 1 ? [`--workers ${workers}`] : []),
    ].join(' ');
    report['verdict'] = 'incomplete';
    report['interrupted'] = true;
    report['notRun'] = notRun;
    report['reproduce'] = again;
    report['elapsedMs'] = Date.now() - started;
    if (json) io.out(JSON.stringify(report, null, 2) + '\n');
    io.err(`interrupted: ran ${ran.length > 0 ? ran.join(', ') : 'nothing yet'}${notRun.length > 0 ? `; not run: ${notRun.join(', ')}` : ''}\n`);
    io.err(`seed ${seed}; to run this campaign again: ${again}\n`);
    return 130;
  }
  const counterexample = failed;
  if (unreached) failed = true;
  report['verdict'] = failed ? 'fail' : 'pass';
  report['elapsedMs'] = Date.now() - started;
  try {
    fs.mkdirSync(path.dirname(lastCheckFile()), { recursive: true });
    writeFileAtomic(lastCheckFile(), JSON.stringify(report, null, 2) + '\n');
  } catch {
    // Recording coverage is a convenience; a read-only tree still checks.
  }
  if (json) io.out(JSON.stringify(report, null, 2) + '\n');
  else out(`seed ${seed}: ${verdictWord(failed ? 'fail' : 'pass')}: ${counterexample ? 'counterexample found' : unreached ? 'invariants hold, but a required scenario was not reached' : 'all invariants hold'} (${((Date.now() - started) / 1000).toFixed(1)}s)`);
  return failed ? 1 : 0;
}
