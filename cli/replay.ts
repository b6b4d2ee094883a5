import { io, verdictWord } from './io';
import type { Json } from '../harness/domain';
import { loadCaseFile, replayCase, type SomeCase } from '../harness/cases';
import { formatFailure, formatTrace } from '../harness/format';
import * as fs from 'fs';
import * as path from 'path';
import { implOption, parse, UsageError } from './args';
import { clip, clipText, errorLines } from '../harness/input';
import { DOMAINS } from '../domains';

export const REPLAY_HELP = `usage: hvspec replay [--impl impl|mutant:ID] [--json] FILE|DIR...

Replays case files in lockstep: every step's model and impl results must
agree, every "expect" must match, every invariant must hold after every
step. All files are decoded first: if any is malformed, nothing runs.
A DIR stands for the *.json files under it (sorted, subfolders included).
Only regular files of at most 32 MiB are read; JSON with a duplicate key or
invalid UTF-8 is refused.

  --impl X   impl (default) or mutant:ID to replay against a known-bug mutant
  --json     one JSON report on stdout

exit: 0 all pass, 1 a case fails, 2 an invalid case file or bad usage`;

export async function replayCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { impl: { type: 'string' }, json: { type: 'boolean' } }, true);
  if (values.help) {
    io.out(REPLAY_HELP + '\n');
    return 0;
  }
  if (positionals.length === 0) throw new UsageError('replay needs at least one case file (see hvspec replay --help)');
  const files: string[] = [];
  for (const p of positionals) {
    const found = caseFilesUnder(p);
    if (found === null) files.push(p);
    else if (found.length === 0) throw new UsageError(`${clipText(p)}: a folder with no *.json case files`);
    else files.push(...found);
  }
  const mutant = implOption(values.impl);
  const json = values.json === true;

  const cases: SomeCase[] = [];
  let invalid = false;
  const invalidReport: Json[] = [];
  // At most about 20 lines of errors in all, however many files are invalid (--json has them all).
  let budget = 20;
  let unshown = 0;
  for (const file of files) {
    const r = loadCaseFile(file, DOMAINS);
    if (!r.ok) {
      invalid = true;
      if (budget >= 2) {
        const lines = errorLines(r.errors, budget - 1);
        io.err(`${clipText(file)}: invalid case file\n`);
        for (const line of lines) io.err(`${line}\n`);
        budget -= 1 + lines.length;
      } else unshown++;
      invalidReport.push({ file, errors: r.errors.slice(0, 100).map((e) => ({ path: e.path, message: e.message })) });
      continue;
    }
    cases.push(r.value);
  }
  if (invalid) {
    if (unshown > 0) io.err(`... and ${unshown} more invalid case file${unshown === 1 ? '' : 's'}\n`);
    if (json) io.out(JSON.stringify({ verdict: 'invalid', invalid: invalidReport }, null, 2) + '\n');
    return 2;
  }
  if (mutant !== undefined) {
    for (const c of cases) {
      const known = c.use((d) => d.mutants.map((m) => m.id));
      if (!known.includes(mutant)) {
        io.err(`hvspec replay: ${clipText(c.file)}: domain ${c.domainId} has no mutant ${clip(mutant)} (known: ${known.join(', ')})\n`);
        return 2;
      }
    }
  }

  let failed = 0;
  const report: Json[] = [];
  for (const c of cases) {
    const r = replayCase(c, mutant !== undefined ? { mutant } : {});
    report.push({ file: c.file, name: c.name, domain: c.domainId, steps: r.steps, verdict: r.failure === null ? 'pass' : 'fail', pass: r.failure === null, failure: r.failure as unknown as Json });
    if (r.failure === null) {
      if (!json) io.out(`${verdictWord('pass')}  ${c.file}  (${c.name}, ${r.steps} steps)\n`);
      continue;
    }
    failed++;
    if (!json) {
      io.out(`${verdictWord('fail')}  ${c.file}  (${c.name})\n`);
      const trace = c.use((d, lc) => formatTrace(d, lc.ops.slice(0, Math.max(0, r.failure!.step + 1)), r.results as never, r.failure));
      io.out(trace.replace(/^/gm, '    ') + '\n');
      io.out(`    ${formatFailure(r.failure)}\n`);
    }
  }
  if (json) io.out(JSON.stringify({ verdict: failed > 0 ? 'fail' : 'pass', cases: report, passed: cases.length - failed, failed }, null, 2) + '\n');
  else io.out(`${cases.length - failed} passed, ${failed} failed${mutant ? ` (against mutant ${mutant})` : ''}\n`);
  return failed > 0 ? 1 : 0;
}

/** Most case files one DIR argument expands to. */
const MAX_DIR_FILES = 10_000;

/**
 * The *.json files under `p` when it is a folder (sorted, subfolders
 * included, hidden ones skipped), or `null` when it is not a folder (then it
 * is read as a file, and its own errors say what it is).
 */
export function caseFilesUnder(p: string): string[] | null {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch {
    return null;
  }
  if (!st.isDirectory()) return null;
  const out: string[] = [];
  const walk = (dir: string, depth: number) => {
    if (depth > 16 || out.length > MAX_DIR_FILES) return;
    let names: string[];
    try {
      names = fs.readdirSync(dir).sort();
    } catch (e) {
      throw new UsageError(`${clipText(dir)}: cannot list (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    for (const n of names) {
      if (n.startsWith('.')) continue;
      const full = path.join(dir, n);
      let s: fs.Stats;
      try {
        s = fs.statSync(full);
      } catch {
        continue;
      }
      if (s.isDirectory()) walk(full, depth + 1);
      else if (n.endsWith('.json')) out.push(full);
    }
  };
  walk(p, 0);
  if (out.length > MAX_DIR_FILES) throw new UsageError(`${clipText(p)}: more than ${MAX_DIR_FILES} case files`);
  return out;
}
