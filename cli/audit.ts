import { io } from './io';
import { auditJson, auditMarkdown, auditText, buildAudit } from '../harness/audit';
import { domainsOption, parse, UsageError } from './args';
import { clip } from '../harness/input';

export const AUDIT_HELP = `usage: hvspec audit [--domain D] [--format text|markdown|json] [--json] [--fresh]

Lists every invariant: id, domain, statement, source citation, the mutants
it catches, the case files that exercise it non-trivially, and its coverage
in the last recorded hvspec check. Mutant kills come from the last
hvspec mutants run when it covered every mutant, else they are run now.

  --domain D     only this domain (repeatable); default all
  --format F     text (default), markdown (pastes into a pull request) or json
  --json         the same as --format json
  --fresh        run the mutants now even if a recorded result exists (seed 1)

exit: 0, or 2 on bad usage`;

export async function auditCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { domain: { type: 'string', multiple: true }, format: { type: 'string' }, json: { type: 'boolean' }, fresh: { type: 'boolean' } }, false);
  if (values.help) {
    io.out(AUDIT_HELP + '\n');
    return 0;
  }
  if (values.json && values.format !== undefined && values.format !== 'json') throw new UsageError('--json and --format ' + clip(values.format) + ' disagree');
  const format = values.json ? 'json' : values.format ?? 'text';
  if (!['text', 'markdown', 'json'].includes(format)) throw new UsageError(`--format takes text, markdown or json, got ${clip(format)}`);
  const report = buildAudit(domainsOption(values.domain), { fresh: values.fresh === true });
  const text = format === 'json' ? JSON.stringify(auditJson(report), null, 2) : format === 'markdown' ? auditMarkdown(report) : auditText(report);
  io.out(text + '\n');
  return 0;
}
