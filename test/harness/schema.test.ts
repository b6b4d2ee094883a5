/**
 * Editor support: the JSON Schemas generated from the codecs accept every
 * shipped case file, reject malformed ones, and the committed copies under
 * schema/ are up to date (regenerate with `npx hvspec schema`).
 */
import { strict as assert } from 'assert';
import Ajv from 'ajv';
import * as fs from 'fs';
import * as path from 'path';
import { DOMAINS } from '../../domains';
import { caseSchema } from '../../harness/schema';
import { traceSchema } from '../../harness/trace-format';

const ROOT = path.resolve(__dirname, '..', '..', '..');

describe('schema: JSON Schemas of case files', () => {
  for (const some of DOMAINS) {
    describe(some.id, () => {
      const schema = some.use((d) => caseSchema(d));
      const ajv = new Ajv({ strict: false, allErrors: true });
      const validate = ajv.compile(schema);

      it('the committed schema is current', () => {
        const file = path.join(ROOT, 'schema', `${some.id}.schema.json`);
        assert.ok(fs.existsSync(file), `missing ${file}: run npx hvspec schema`);
        assert.deepEqual(JSON.parse(fs.readFileSync(file, 'utf8')), schema, `${file} is stale: run npx hvspec schema`);
      });

      const dir = path.join(ROOT, 'spec', 'cases', some.id);
      const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.json')) : [];
      it('has shipped case files', () => assert.ok(files.length > 0));
      for (const f of files) {
        it(`accepts ${f}`, () => {
          const c = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
          assert.ok(validate(c), `${f}: ${ajv.errorsText(validate.errors)}`);
        });
      }

      it('the committed trace-line schema is current, and the worked example trace passes it line by line', () => {
        const tschema = some.use((d) => traceSchema(d));
        const file = path.join(ROOT, 'schema', `${some.id}.trace.schema.json`);
        assert.deepEqual(JSON.parse(fs.readFileSync(file, 'utf8')), tschema, `${file} is stale: run npx hvspec schema`);
        const line = new Ajv({ strict: false, allErrors: true }).compile(tschema);
        const example = path.join(ROOT, 'examples', 'traces', `${some.id}.ndjson`);
        const lines = fs.readFileSync(example, 'utf8').trim().split('\n');
        assert.ok(lines.length > 1);
        for (const [i, l] of lines.entries()) assert.ok(line(JSON.parse(l)), `${example}:${i + 1}: ${new Ajv().errorsText(line.errors)}`);
        assert.ok(!line({ op: 'no-such-op' }));
        assert.ok(!line({ ...JSON.parse(lines[1]!), colour: 'red' }));
      });

      it('rejects an unknown op, an unknown field and a wrong argument type', () => {
        const base = { format: 'hvspec-case/1', name: 'n', domain: some.id, steps: [] as unknown[] };
        assert.ok(validate(base));
        assert.ok(!validate({ ...base, steps: [{ op: 'no-such-op', args: {} }] }));
        assert.ok(!validate({ ...base, colour: 'red' }));
        const [op, argsCodec] = some.use((d) => Object.entries(d.opArgs).find(([, c]) => c.name.includes(':'))!);
        void argsCodec;
        assert.ok(!validate({ ...base, steps: [{ op, args: { __bogus__: 'x' } }] }));
      });
    });
  }
});
