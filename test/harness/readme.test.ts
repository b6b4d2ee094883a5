/** The case file shown in the README decodes and replays, so the README cannot drift from the format. */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { decodeCase, replayCase } from '../../harness/cases';
import { formatFailure } from '../../harness/format';
import { DOMAINS } from '../../domains';

const ROOT = path.resolve(__dirname, '..', '..', '..');

describe('README', () => {
  it('shows a case file that decodes and replays', () => {
    const text = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const m = /```json\n(\{\n {2}"format": "hvspec-case\/1"[\s\S]*?)\n```/.exec(text);
    assert.ok(m, 'no case file in the README');
    const c = decodeCase(JSON.parse(m[1]!), 'README.md', DOMAINS);
    assert.ok(c.ok, c.ok ? '' : JSON.stringify(c.errors));
    const r = replayCase(c.value);
    assert.equal(r.failure, null, r.failure ? formatFailure(r.failure) : '');
  });

  it('opens with the two set-up commands', () => {
    const text = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const first = /```sh\n([\s\S]*?)```/.exec(text)![1]!.trim().split('\n');
    assert.equal(first.length, 2);
    assert.match(first[0]!, /^npm ci && npx hvspec check\b/);
    assert.match(first[1]!, /^npm test\b/);
  });
});
