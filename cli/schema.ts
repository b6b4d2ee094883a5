import { io } from './io';
import * as fs from 'fs';
import * as path from 'path';
import { caseSchema } from '../harness/schema';
import { traceSchema } from '../harness/trace-format';
import { domainsOption, parse } from './args';
import { writeFileAtomic } from '../harness/input';

export const SCHEMA_HELP = `usage: hvspec schema [--domain D] [--out DIR] [--stdout] [--json]

Writes a JSON Schema per domain, generated from the codecs (ops and their
argument types included), to DIR/<domain>.schema.json (default DIR: schema/),
and the schema of one line of a recorded trace (hvspec-trace/1, NDJSON) to
DIR/<domain>.trace.schema.json.
A case file may name it in "$schema" so that an editor validates and
completes it as it is typed, e.g. in spec/cases/<domain>/:
  "$schema": "../../../schema/<domain>.schema.json"

  --domain D   only this domain (repeatable); default all
  --out DIR    where to write (default schema/)
  --stdout     print the schema(s) instead of writing files
  --json       print the list of files written as JSON

exit: 0, or 2 on bad usage`;

export async function schemaCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { domain: { type: 'string', multiple: true }, out: { type: 'string' }, stdout: { type: 'boolean' }, json: { type: 'boolean' } }, false);
  if (values.help) {
    io.out(SCHEMA_HELP + '\n');
    return 0;
  }
  const dir = values.out ?? 'schema';
  const written: string[] = [];
  for (const some of domainsOption(values.domain)) {
    const schemas: [string, unknown][] = [
      [`${some.id}.schema.json`, some.use((d) => caseSchema(d))],
      [`${some.id}.trace.schema.json`, some.use((d) => traceSchema(d))],
    ];
    for (const [name, schema] of schemas) {
      const text = JSON.stringify(schema, null, 2) + '\n';
      if (values.stdout) {
        io.out(text);
        continue;
      }
      fs.mkdirSync(dir, { recursive: true });
      const file = path.join(dir, name);
      writeFileAtomic(file, text);
      written.push(file);
      if (!values.json) io.out(`wrote ${file}\n`);
    }
  }
  if (values.json && !values.stdout) io.out(JSON.stringify({ written }, null, 2) + '\n');
  return 0;
}
