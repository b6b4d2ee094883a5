import { io } from './io';
import * as fs from 'fs';
import * as path from 'path';
import type { Json } from '../harness/domain';
import { caseObject, loadCaseFile } from '../harness/cases';
import { parse, UsageError } from './args';
import { clipText, errorLines, writeFileAtomic } from '../harness/input';
import { DOMAINS } from '../domains';

export const PROMOTE_HELP = `usage: hvspec promote FAILURE.json --name NAME [--out DIR] [--force] [--json]

Turns a saved counterexample (.hvspec/failures/*.json) into a named case
file under spec/cases/<domain>/, with an "expect" on every step taken from
the reference model's results: the bug becomes a permanent regression test.
The new case fails until the implementation is fixed. A counterexample
found against a mutant (.hvspec/failures/mutants/) becomes a case that
passes on the impl and fails against that mutant.

  --name NAME   what the case shows (required); the file is named after it
  --out DIR     write there instead of spec/cases/<domain>/
  --force       overwrite an existing file
  --json        print { file, steps, domain, mutant } as JSON

exit: 0 written, 2 bad usage or an invalid failure file`;

export function slug(name: string): string {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 60);
}

export async function promoteCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { name: { type: 'string' }, out: { type: 'string' }, force: { type: 'boolean' }, json: { type: 'boolean' } }, true);
  if (values.help) {
    io.out(PROMOTE_HELP + '\n');
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('promote takes exactly one failure file');
  if (values.name === undefined || values.name.trim() === '' || slug(values.name) === '') throw new UsageError('promote needs --name NAME (letters or digits)');
  const file = positionals[0]!;
  const loaded = loadCaseFile(file, DOMAINS);
  if (!loaded.ok) {
    io.err(`${clipText(file)}: invalid case file\n${errorLines(loaded.errors).join('\n')}\n`);
    return 2;
  }
  const name = values.name.trim();
  const { body, domainId, mutant } = loaded.value.use((d, c) => {
    const model = d.createModel(c.config);
    const expects = c.ops.map((op) => model.apply(op) as unknown as Json);
    const found = c.envelope.found;
    const source = `promoted from ${path.basename(file)}${found ? ` (found by seed ${found.seed}${found.mutant ? ` against mutant ${found.mutant}` : ''}: ${String((found.failure as { message?: string }).message ?? '')})` : ''}`;
    return {
      domainId: d.id,
      mutant: found?.mutant,
      body: caseObject({ name, domain: d.id, source, config: d.encodeConfig(c.config), ops: c.ops, expects }),
    };
  });
  const dir = values.out ?? path.join('spec', 'cases', domainId);
  const target = path.join(dir, `${slug(name)}.json`);
  if (fs.existsSync(target) && !values.force) throw new UsageError(`${clipText(target)} exists (use --force to overwrite, or another --name)`);
  fs.mkdirSync(dir, { recursive: true });
  writeFileAtomic(target, JSON.stringify({ $schema: path.relative(dir, path.join('schema', `${domainId}.schema.json`)), ...body }, null, 2) + '\n');
  const steps = (body['steps'] as Json[]).length;
  if (values.json) io.out(JSON.stringify({ file: target, domain: domainId, steps, mutant: mutant ?? null }, null, 2) + '\n');
  else {
    io.out(`wrote ${target} (${steps} steps, expects from the model); replay it with: hvspec replay ${target}\n`);
    if (mutant !== undefined) io.out(`found against mutant ${mutant}: it fails there (hvspec replay --impl mutant:${mutant} ${target})\n`);
  }
  return 0;
}
