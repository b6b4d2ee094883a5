/**
 * `npm run spec-tables`: rewrite the generated invariant table of every
 * domain's spec page from its `invariants.ts` (see harness/spec-table.ts).
 */
import * as fs from 'fs';
import * as path from 'path';
import { DOMAINS } from '../domains';
import { invariantTable, withTable } from '../harness/spec-table';

const root = path.resolve(__dirname, '..', '..');
let failed = false;
for (const some of DOMAINS) {
  const file = path.join(root, 'spec', some.id, 'README.md');
  const page = fs.readFileSync(file, 'utf8');
  const next = withTable(page, some.use((d) => invariantTable(d)));
  if (next === null) {
    process.stderr.write(`${path.relative(root, file)}: no invariant-table markers\n`);
    failed = true;
    continue;
  }
  if (next !== page) fs.writeFileSync(file, next);
  process.stdout.write(`${path.relative(root, file)}: ${next === page ? 'up to date' : 'table rewritten'}\n`);
}
process.exitCode = failed ? 2 : 0;
