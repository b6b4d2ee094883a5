import { io } from './io';
import type { Json } from '../harness/domain';
import { loadCaseFile, replayCase, type SomeCase } from '../harness/cases';
import { formatFailure, formatTrace } from '../harness/format';
import { implOption, parse, UsageError } from './args';

export const REPLAY_HELP = `usage: hvspec replay [--impl impl|mutant:ID] [--json] FILE...

Replays case files in lockstep: every step's model and impl results must
agree, every "expect" must match, every invariant must hold after every
step. All files are decoded first: if any is malformed, nothing runs.

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
  const mutant = implOption(values.impl);
  const json = values.json === true;

  const cases: SomeCase[] = [];
  let invalid = false;
  for (const file of positionals) {
    const r = loadCaseFile(file);
    if (!r.ok) {
      invalid = true;
      io.err(`${file}: invalid case file\n`);
      for (const e of r.errors) io.err(`  ${e.path}: ${e.message}\n`);
      continue;
    }
    cases.push(r.value);
  }
  if (invalid) return 2;
  if (mutant !== undefined) {
    for (const c of cases) {
      const known = c.use((d) => d.mutants.map((m) => m.id));
      if (!known.includes(mutant)) {
        io.err(`hvspec replay: ${c.file}: domain ${c.domainId} has no mutant ${JSON.stringify(mutant)} (known: ${known.join(', ')})\n`);
        return 2;
      }
    }
  }

  let failed = 0;
  const report: Json[] = [];
  for (const c of cases) {
    const r = replayCase(c, mutant !== undefined ? { mutant } : {});
    report.push({ file: c.file, name: c.name, domain: c.domainId, steps: r.steps, pass: r.failure === null, failure: r.failure as unknown as Json });
    if (r.failure === null) {
      if (!json) io.out(`pass  ${c.file}  (${c.name}, ${r.steps} steps)\n`);
      continue;
    }
    failed++;
    if (!json) {
      io.out(`FAIL  ${c.file}  (${c.name})\n`);
      const trace = c.use((d, lc) => formatTrace(d, lc.ops.slice(0, Math.max(0, r.failure!.step + 1)), r.results as never, r.failure));
      io.out(trace.replace(/^/gm, '    ') + '\n');
      io.out(`    ${formatFailure(r.failure)}\n`);
    }
  }
  if (json) io.out(JSON.stringify({ cases: report, passed: cases.length - failed, failed }, null, 2) + '\n');
  else io.out(`${cases.length - failed} passed, ${failed} failed${mutant ? ` (against mutant ${mutant})` : ''}\n`);
  return failed > 0 ? 1 : 0;
}
