/**
 * `hvspec validate`: recorded traces checked against the spec. Parses, calls
 * the harness (`harness/validate-file.ts`), renders.
 */
import type { Json } from '../harness/domain';
import { DOMAINS } from '../domains';
import { TraceInputError, validateTraceFile, type ValidateReport } from '../harness/validate-file';
import { DEFAULT_MAX_HIDDEN, DEFAULT_MAX_STATES } from '../harness/validate';
import { intOption, parse, Progress, UsageError } from './args';
import { io } from './io';

/** Exit code of a search that hit its bound before a verdict (shared with explore's incomplete). */
export const EXIT_INCOMPLETE = 3;

export const VALIDATE_HELP = `usage: hvspec validate [--max-hidden K] [--max-states N] [--exhaustive] [--out DIR] [--no-witness] [--json] TRACE...

Checks recorded traces (hvspec-trace/1, NDJSON: a header line, then one
{ "op", "args", "result"?, "maybe"? } per observed op) against the spec. A trace
may omit the choice arguments its domain declares, and environment steps
nobody logs (hidden ops) may happen between any two observed ones; the model's
states that explain the trace so far are searched breadth-first.

  --max-hidden K   hidden ops tried between two observed steps (default ${DEFAULT_MAX_HIDDEN})
  --max-states N   candidate states kept at most (default ${DEFAULT_MAX_STATES})
  --exhaustive     try every sequence of up to K hidden ops at every step; the
                   default tries the fewest that explain each step, and
                   confirms an "invalid" with an exhaustive search
  --out DIR        where witnesses are written (default .hvspec/witness)
  --no-witness     do not write witnesses
  --json           one JSON report on stdout

A valid trace gets a witness: the trace with every choice and hidden op filled
in, as a case file that hvspec replay passes.

exit: 0 every trace valid, 1 a trace invalid, 2 bad usage or a trace that does
not decode (file:line, JSON path), ${EXIT_INCOMPLETE} incomplete (the bound was reached first)`;

export async function validateCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      'max-hidden': { type: 'string' },
      'max-states': { type: 'string' },
      exhaustive: { type: 'boolean' },
      out: { type: 'string' },
      'no-witness': { type: 'boolean' },
      json: { type: 'boolean' },
    },
    true,
  );
  if (values.help) {
    io.out(VALIDATE_HELP + '\n');
    return 0;
  }
  if (positionals.length === 0) throw new UsageError('validate needs at least one trace file (see hvspec validate --help)');
  const maxHidden = intOption('max-hidden', values['max-hidden'], 0, 8) ?? DEFAULT_MAX_HIDDEN;
  const maxStates = intOption('max-states', values['max-states'], 1, 10_000_000) ?? DEFAULT_MAX_STATES;
  const witnessDir = values['no-witness'] ? undefined : (values.out ?? '.hvspec/witness');
  const json = values.json === true;

  let stop = false;
  const onSigint = () => {
    stop = true;
  };
  process.on('SIGINT', onSigint);
  const reports: ValidateReport[] = [];
  try {
    for (const file of positionals) {
      const progress = new Progress();
      try {
        reports.push(
          await validateTraceFile(DOMAINS, file, {
            maxHidden,
            maxStates,
            mode: values.exhaustive ? 'exhaustive' : 'lazy',
            ...(witnessDir !== undefined ? { witnessDir } : {}),
            shouldStop: () => stop,
            onProgress: (lines) => progress.update(`validate ${file}: ${lines} lines`),
          }),
        );
      } catch (e) {
        if (e instanceof TraceInputError) {
          progress.done();
          io.err(`hvspec validate: ${e.message}\n`);
          return 2;
        }
        throw e;
      }
      progress.done();
      if (stop) break;
    }
  } finally {
    process.off('SIGINT', onSigint);
  }
  if (json) io.out(JSON.stringify({ traces: reports as unknown as Json[] }, null, 2) + '\n');
  else for (const r of reports) io.out(render(r));
  if (stop) return 130;
  if (reports.some((r) => r.verdict === 'invalid')) return 1;
  if (reports.some((r) => r.verdict === 'incomplete')) return EXIT_INCOMPLETE;
  return 0;
}

function render(r: ValidateReport): string {
  const s = r.summary;
  const rate = r.elapsedMs > 0 ? `, ${Math.round((s.steps * 1000) / r.elapsedMs).toLocaleString('en-US')} lines/s` : '';
  const stats = `${s.steps} steps, peak ${s.peakCandidates} candidate${s.peakCandidates === 1 ? '' : 's'}, ${s.statesExplored} states tried${rate}`;
  const out: string[] = [];
  if (r.verdict === 'valid') {
    out.push(`valid  ${r.file}  (${r.domain}: ${stats})`);
    out.push(`  witness fills in ${s.hiddenOpsInWitness} hidden op${s.hiddenOpsInWitness === 1 ? '' : 's'} and ${s.choicesInWitness} choice${s.choicesInWitness === 1 ? '' : 's'} (omitted arguments, maybe steps)`);
    if (r.witness) out.push(`  witness: ${r.witness}   (hvspec replay ${r.witness})`);
  } else if (r.verdict === 'invalid') {
    const j = r.rejection!;
    out.push(`INVALID  ${r.file}  (${r.domain}: ${stats}${r.search === 'exhaustive' ? '; confirmed by exhaustive search' : ''})`);
    out.push(`  line ${j.line} (step ${j.step + 1}, ${j.op}) is explained by none of ${j.candidates} candidate state${j.candidates === 1 ? '' : 's'}; observed ${JSON.stringify(j.observed)}`);
    for (const c of j.closest) {
      const before = c.hidden.length > 0 ? ` after hidden ${c.hidden.map((h) => JSON.stringify(h)).join(', ')}` : '';
      out.push(`  - the model${before} answers ${JSON.stringify(c.answer)}: refused by ${c.rule}: ${c.message}`);
    }
  } else if (r.verdict === 'incomplete') {
    const i = r.incomplete!;
    out.push(`INCOMPLETE  ${r.file}  (${r.domain}: ${stats})`);
    out.push(`  line ${i.line}: ${i.candidates} candidate states exceed --max-states; no verdict (raise --max-states or lower --max-hidden)`);
  } else {
    out.push(`interrupted  ${r.file}  after ${s.steps} steps (${stats})`);
  }
  return out.join('\n') + '\n';
}
