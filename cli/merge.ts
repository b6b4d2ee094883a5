import { io, verdictWord, type Verdict } from './io';
import type { Json } from '../harness/domain';
import { decodeReport, mergeReports, type CheckReportJson } from '../harness/merge';
import { parse, UsageError } from './args';
import { clipText, errorLines, loadJsonFile } from '../harness/input';

export const MERGE_HELP = `usage: hvspec merge [--json] REPORT.json...

Combines the JSON reports of check shards (hvspec check --shard I/N --json)
into one: runs, ops, invariant checks and cost counters add up; the verdict
fails if any shard failed; the counterexample is the one of the lowest
failing run. A merge with a missing shard, or a shard that was stopped
early, is incomplete: it does not pass.

  --json   print the merged report as JSON (default: a summary)

exit: 0 pass, 1 fail or incomplete (a shard missing or stopped early),
      2 bad usage or unreadable reports`;

export async function mergeCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean' } }, true);
  if (values.help) {
    io.out(MERGE_HELP + '\n');
    return 0;
  }
  if (positionals.length === 0) throw new UsageError('merge needs at least one report file');
  const reports: { file: string; report: CheckReportJson }[] = [];
  let bad = false;
  // At most about 20 lines of errors in all.
  let budget = 20;
  const say = (lines: string[]) => {
    for (const l of lines) if (budget-- > 0) io.err(`${l}\n`);
  };
  for (const file of positionals) {
    const parsed = loadJsonFile(file);
    if (!parsed.ok) {
      say([`${clipText(file)}: ${errorLines(parsed.errors, 1)[0]!.trim()}`]);
      bad = true;
      continue;
    }
    const r = decodeReport(parsed.value, clipText(file));
    if (!r.ok) {
      bad = true;
      say([`${clipText(file)}: not a check --json report`, ...errorLines(r.errors, 5)]);
      continue;
    }
    reports.push({ file, report: r.value });
  }
  if (bad) {
    if (budget < 0) io.err(`... and ${-budget} more lines of errors\n`);
    return 2;
  }
  const merged = mergeReports(reports);
  if (!merged.ok) {
    for (const e of merged.errors.slice(0, 5)) io.err(`hvspec merge: ${clipText(e.message, 300)}\n`);
    return 2;
  }
  const m = merged.value as { verdict: Verdict; seed: number; missingShards: string[]; domains: { [d: string]: { [k: string]: Json } } };
  if (values.json) io.out(JSON.stringify(m, null, 2) + '\n');
  else {
    for (const [id, d] of Object.entries(m.domains)) {
      io.out(`${clipText(id, 60)}: ${verdictWord(d['verdict'] as Verdict)} — ${d['runsExecuted']}/${d['runsPlanned']} runs, ${d['steps']} ops\n`);
    }
    io.out(`seed ${m.seed}: merged ${reports.length} report(s): ${verdictWord(m.verdict)}\n`);
  }
  if (m.missingShards.length > 0) {
    const list = m.missingShards.length > 10 ? `${m.missingShards.slice(0, 10).join(', ')} and ${m.missingShards.length - 10} more` : m.missingShards.join(', ');
    io.err(`hvspec merge: incomplete: missing shard(s) ${list}\n`);
  }
  return m.verdict === 'pass' ? 0 : 1;
}
