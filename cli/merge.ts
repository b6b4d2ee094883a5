import { io } from './io';
import * as fs from 'fs';
import type { Json } from '../harness/domain';
import { decodeReport, mergeReports, type CheckReportJson } from '../harness/merge';
import { parse, UsageError } from './args';

export const MERGE_HELP = `usage: hvspec merge [--json] REPORT.json...

Combines the JSON reports of check shards (hvspec check --shard I/N --json)
into one: runs, ops, invariant checks and cost counters add up; the verdict
fails if any shard failed; the counterexample is the one of the lowest
failing run. Warns when a shard is missing.

  --json   print the merged report as JSON (default: a summary)

exit: 0 merged verdict passes, 1 it fails, 2 bad usage or unreadable reports`;

export async function mergeCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean' } }, true);
  if (values.help) {
    io.out(MERGE_HELP + '\n');
    return 0;
  }
  if (positionals.length === 0) throw new UsageError('merge needs at least one report file');
  const reports: { file: string; report: CheckReportJson }[] = [];
  let bad = false;
  for (const file of positionals) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      io.err(`${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `not valid JSON: ${(e as Error).message}`}\n`);
      bad = true;
      continue;
    }
    const r = decodeReport(parsed, file);
    if (!r.ok) {
      bad = true;
      io.err(`${file}: not a check --json report\n${r.errors.map((e) => `  ${e.path}: ${e.message}`).join('\n')}\n`);
      continue;
    }
    reports.push({ file, report: r.value });
  }
  if (bad) return 2;
  const merged = mergeReports(reports);
  if (!merged.ok) {
    for (const e of merged.errors) io.err(`hvspec merge: ${e.message}\n`);
    return 2;
  }
  const m = merged.value as { verdict: string; seed: number; missingShards: string[]; domains: { [d: string]: { [k: string]: Json } } };
  if (values.json) io.out(JSON.stringify(m, null, 2) + '\n');
  else {
    for (const [id, d] of Object.entries(m.domains)) {
      io.out(`${id}: ${d['verdict']} — ${d['runsExecuted']}/${d['runsPlanned']} runs, ${d['steps']} ops\n`);
    }
    io.out(`seed ${m.seed}: merged ${reports.length} report(s): ${m.verdict}\n`);
  }
  if (m.missingShards.length > 0) io.err(`hvspec merge: warning: missing shard(s) ${m.missingShards.join(', ')}\n`);
  return m.verdict === 'pass' ? 0 : 1;
}
