/**
 * Each rule stated once: every spec page's invariant table is the one
 * generated from the domain's invariants.ts (`npm run spec-tables`).
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { DOMAINS } from '../../domains';
import { invariantTable, withTable } from '../../harness/spec-table';
import { toyDomain } from '../fixtures/toy';

const ROOT = path.resolve(__dirname, '..', '..', '..');

describe('docs: spec pages carry the invariant table generated from code', () => {
  for (const some of DOMAINS) {
    it(`spec/${some.id}/README.md: the table is current (else: npm run spec-tables)`, () => {
      const page = fs.readFileSync(path.join(ROOT, 'spec', some.id, 'README.md'), 'utf8');
      const table = some.use((d) => invariantTable(d));
      const next = withTable(page, table);
      assert.notEqual(next, null, 'the page has no invariant-table markers');
      assert.equal(next, page, 'the invariant table differs from invariants.ts: run npm run spec-tables');
      for (const id of some.use((d) => d.invariants.map((i) => i.id))) assert.ok(page.includes(`\`${id}\``));
    });
  }

  it('a stale table is detected (an edited statement)', () => {
    const table = invariantTable(toyDomain);
    const page = `# toy\n\n${table}\n`;
    assert.equal(withTable(page, table), page);
    const edited = page.replace('Every page holds zero or more references.', 'Every page holds one reference.');
    assert.notEqual(withTable(edited, table), edited);
    assert.equal(withTable('# no markers', table), null);
  });
});
