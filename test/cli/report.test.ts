/**
 * `hvspec report --html`: the page is rendered by headless Chromium
 * (Debian's chromium package) and what it shows is checked: the invariant
 * table, the kill matrix with a cell per invariant and mutant, the charts,
 * the counterexample traces. CI installs chromium (.ci/run); on a machine
 * without it the rendering test says so and is skipped, never in CI.
 */
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DOMAINS } from '../../domains';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const BIN = path.join(ROOT, 'bin', 'hvspec.js');
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p));
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];

describe('report --html rendered in headless Chromium', function () {
  this.timeout(600_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hvspec-report-'));
  const page = path.join(dir, 'report.html');

  before(() => {
    const r = spawnSync(process.execPath, [BIN, 'report', '--html', page, '--runs', '20'], { cwd: dir, encoding: 'utf8', timeout: 600_000 });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /wrote .*report\.html/);
  });

  it('writes a self-contained page (nothing fetched at view time)', () => {
    const html = fs.readFileSync(page, 'utf8');
    assert.doesNotMatch(html, /<(script|link|img|iframe)\b[^>]*\b(src|href)=/i);
    assert.doesNotMatch(html, /url\(/);
    for (const d of DOMAINS) assert.match(html, new RegExp(`<table class="matrix" data-domain="${d.id}">`));
  });

  it('shows the invariant table, the kill matrix, the charts and the traces', function () {
    if (!CHROMIUM) {
      if (process.env['CI']) assert.fail('chromium is not installed: CI must install Debian chromium (see .ci/run)');
      // Say why, where mocha's summary would only count a "pending" test.
      console.log('      skipped: chromium is not installed (/usr/bin/chromium or /usr/bin/chromium-browser); `apt-get install chromium` to run the rendering check (CI installs it, see .ci/run)');
      this.skip();
    }
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'hvspec-chromium-'));
    const dom = spawnSync(CHROMIUM!, [...FLAGS, `--user-data-dir=${profile}`, '--dump-dom', `file://${page}`], { encoding: 'utf8', timeout: 120_000, maxBuffer: 256 * 1024 * 1024 });
    assert.equal(dom.status, 0, dom.stderr);
    const text = dom.stdout;
    for (const some of DOMAINS) {
      const { invariants, mutants } = some.use((d) => ({ invariants: d.invariants.map((i) => i.id), mutants: d.mutants.map((m) => m.id) }));
      const section = new RegExp(`<table class="matrix" data-domain="${some.id}">([\\s\\S]*?)</table>`).exec(text);
      assert.ok(section, `${some.id}: no kill matrix in the rendered page`);
      const m = section[1]!;
      for (const id of invariants) assert.match(m, new RegExp(`<code>${id}</code>`), `${some.id}: matrix row ${id}`);
      for (const id of mutants) assert.match(m, new RegExp(`<div>${id}</div>`), `${some.id}: matrix column ${id}`);
      // Every mutant is killed and caught first somewhere: one filled cell per column.
      assert.equal((m.match(/class="cell first"/g) ?? []).length, mutants.length, `${some.id}: one first-catch per mutant`);
      assert.equal((m.match(/class="cell killed"/g) ?? []).length, mutants.length, `${some.id}: every mutant killed`);
    }
    assert.match(text, /<svg class="chart" role="img" aria-label="op frequencies"/);
    assert.match(text, /<table class="steps">/);
    assert.match(text, /<tr class="failing">/);
    // And it paints: a screenshot of a non-trivial size.
    const shot = path.join(dir, 'report.png');
    const s = spawnSync(CHROMIUM!, [...FLAGS, `--user-data-dir=${profile}`, `--screenshot=${shot}`, '--window-size=1400,2000', `file://${page}`], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(s.status, 0, s.stderr);
    assert.ok(fs.statSync(shot).size > 20_000, 'the screenshot is (nearly) empty');
  });
});
