/**
 * The fast property subset that drives StrykerJS (`npm run mutation`): for
 * every domain, a short lockstep campaign and every shipped case replayed.
 * It is also part of `npm test`, so it must stay quick.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { DOMAINS } from '../../domains';
import { checkDomain } from '../../harness/check';
import { loadCaseFile, replayCase } from '../../harness/cases';
import { formatFailure } from '../../harness/format';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const RUNS = Number(process.env['HVSPEC_SUBSET_RUNS'] ?? 60);

describe('mutation subset', function () {
  this.timeout(600_000);
  for (const some of DOMAINS) {
    describe(some.id, () => {
      it(`holds for ${RUNS} runs`, () => {
        const out = some.use((d) => checkDomain(d, { runs: RUNS, maxOps: d.budget.maxOps, seed: 20261124 }));
        assert.equal(out.failure, null, out.failure ? formatFailure(out.failure.failure) : '');
      });
      const dir = path.join(ROOT, 'spec', 'cases', some.id);
      const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort() : [];
      it(`replays its ${files.length} cases`, () => {
        for (const f of files) {
          const c = loadCaseFile(path.join(dir, f), DOMAINS);
          assert.ok(c.ok, `${f} does not decode`);
          const r = replayCase(c.value);
          assert.equal(r.failure, null, `${f}: ${r.failure ? formatFailure(r.failure) : ''}`);
        }
      });
    });
  }
});
