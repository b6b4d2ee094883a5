/**
 * The command line, spawned for real (`bin/hvspec.js`), in a scratch working
 * directory so that the corpus and recorded reports do not touch the tree.
 */
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DOMAINS } from '../../domains';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const BIN = path.join(ROOT, 'bin', 'hvspec.js');

function hvspec(args: string[], cwd: string): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0' }, timeout: 300_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function scratch(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'hvspec-cli-'));
}

function noStack(s: string): void {
  assert.doesNotMatch(s, /\n\s+at .+\(.+:\d+:\d+\)/, `a stack trace reached the user:\n${s}`);
}

describe('cli', function () {
  this.timeout(300_000);
  const cwd = scratch();
  const first = DOMAINS[0]!;
  const firstOp = first.use((d) => Object.keys(d.opArgs)[0]!);

  describe('usage errors: one line, exit 2, no stack trace', () => {
    const cases: [string, string[], RegExp][] = [
      ['no command', [], /usage: hvspec <command>/],
      ['unknown command', ['frobnicate'], /unknown command "frobnicate"/],
      ['unknown domain', ['check', '--domain', 'nope'], /unknown domain "nope" \(known: /],
      ['bad number', ['check', '--runs', 'lots'], /--runs takes a whole number, got "lots"/],
      ['zero runs', ['check', '--runs', '0'], /--runs must be between 1 and/],
      ['unknown option', ['check', '--colour'], /unknown option --colour \(see --help\)/],
      ['bad --impl', ['replay', '--impl', 'fast', 'x.json'], /--impl takes "impl" or "mutant:ID"/],
      ['unknown mutant', ['check', '--domain', first.id, '--impl', 'mutant:nope'], /unknown mutant "nope"/],
      ['replay without files', ['replay'], /needs at least one case file/],
      ['missing file', ['replay', 'no-such-case.json'], /no-such-case.json: invalid case file\n {2}\$: no such file/],
      ['bad shard', ['check', '--shard', '3/2'], /--shard I\/N needs 1 <= I <= N/],
      ['bad format', ['audit', '--format', 'pdf'], /--format takes text, markdown or json/],
      ['explore without domain', ['explore'], /explore needs --domain D/],
      ['report without file', ['report'], /report needs --html FILE/],
      ['promote without name', ['promote', 'x.json'], /promote needs --name NAME/],
    ];
    for (const [what, args, re] of cases) {
      it(what, () => {
        const r = hvspec(args, cwd);
        assert.equal(r.code, 2, `exit code for ${args.join(' ')}: ${r.stdout}${r.stderr}`);
        assert.match(r.stdout + r.stderr, re);
        noStack(r.stderr);
      });
    }
  });

  describe('--help for every command', () => {
    for (const cmd of ['check', 'replay', 'audit', 'mutants', 'explore', 'merge', 'schema', 'promote', 'report']) {
      it(cmd, () => {
        const r = hvspec([cmd, '--help'], cwd);
        assert.equal(r.code, 0);
        assert.match(r.stdout, new RegExp(`^usage: hvspec ${cmd}`));
        assert.match(r.stdout, /exit/);
      });
    }
  });

  describe('malformed case files are rejected before anything runs, with JSON paths', () => {
    const good = () => ({ format: 'hvspec-case/1', name: 'x', domain: first.id, steps: [] as unknown[] });
    const bad: [string, string | object, RegExp][] = [
      ['bad JSON', '{ "format": ', /\$\.format: not valid JSON: unexpected end of input at line 1 column 13/],
      ['unknown domain', { ...good(), domain: 'nope' }, /\$\.domain: unknown domain "nope"/],
      ['unknown op', { ...good(), steps: [{ op: 'nope', args: {} }] }, /\$\.steps\[0\]\.op: unknown op "nope" \(expected one of: /],
      ['wrong argument type', { ...good(), steps: [{ op: firstOp, args: { __bogus: 1 } }] }, /\$\.steps\[0\]\.args/],
      ['missing field', { format: 'hvspec-case/1', domain: first.id, steps: [] }, /\$\.name: missing field "name"/],
      ['unknown extra field', { ...good(), extra: true }, /\$\.extra: unknown field "extra"/],
      ['bad config field', { ...good(), config: { __nope__: 1 } }, /\$\.config\.__nope__: unknown field/],
    ];
    for (const [what, body, re] of bad) {
      it(what, () => {
        const dir = scratch();
        const file = path.join(dir, 'case.json');
        fs.writeFileSync(file, typeof body === 'string' ? body : JSON.stringify(body));
        const goodFile = path.join(dir, 'good.json');
        fs.writeFileSync(goodFile, JSON.stringify(good()));
        const r = hvspec(['replay', goodFile, file], dir);
        assert.equal(r.code, 2, r.stdout + r.stderr);
        assert.match(r.stderr, re);
        // Nothing ran: not even the good file.
        assert.doesNotMatch(r.stdout, /pass/);
        noStack(r.stderr);
      });
    }
  });

  it('replay: an empty case passes with exit 0; a failing expect exits 1', () => {
    const dir = scratch();
    const ok = path.join(dir, 'ok.json');
    fs.writeFileSync(ok, JSON.stringify({ format: 'hvspec-case/1', name: 'empty', domain: first.id, steps: [] }));
    const r = hvspec(['replay', ok], dir);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /1 passed, 0 failed/);
  });

  it('check on every domain: exit 0, tallies and --json with vacuity figures', () => {
    const r = hvspec(['check', '--runs', '10', '--seed', '7', '--json'], cwd);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const j = JSON.parse(r.stdout) as { verdict: string; seed: number; domains: { [d: string]: { runsExecuted: number; invariants: { [k: string]: { checks: number; nonTrivial: number; weaklyExercised: boolean } }; ops: object } } };
    assert.equal(j.verdict, 'pass');
    assert.equal(j.seed, 7);
    for (const some of DOMAINS) {
      const d = j.domains[some.id]!;
      assert.equal(d.runsExecuted, 10);
      for (const inv of some.use((x) => x.invariants)) {
        const v = d.invariants[inv.id]!;
        assert.ok(v.checks > 0, `${some.id}/${inv.id} was never checked`);
        assert.equal(typeof v.weaklyExercised, 'boolean');
      }
      assert.ok(Object.keys(d.ops).length > 0);
    }
  });

  it('check against a mutant finds, prints and reproduces a counterexample (exit 1)', () => {
    const mutant = first.use((d) => d.mutants[0]!.id);
    const r = hvspec(['check', '--domain', first.id, '--impl', `mutant:${mutant}`, '--seed', '1', '--runs', '300'], cwd);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /counterexample for .* \(mutant .*\): \d+ ops/);
    assert.match(r.stdout, />> +\d+\. /);
    const m = /reproduce: hvspec check --domain (\S+) --seed (-?\d+) --runs 1 --impl (\S+)/.exec(r.stdout);
    assert.ok(m, 'no reproduction line');
    const again = hvspec(['check', '--domain', m[1]!, '--seed', m[2]!, '--runs', '1', '--impl', m[3]!], cwd);
    assert.equal(again.code, 1);
  });

  it('workers and shards: same verdict and totals as one run with the same seed', () => {
    const args = ['check', '--domain', first.id, '--runs', '40', '--seed', '11', '--json', '--no-corpus'];
    const one = JSON.parse(hvspec(args, cwd).stdout);
    const two = JSON.parse(hvspec([...args, '--workers', '2'], cwd).stdout);
    const dir = scratch();
    const s1 = path.join(dir, 's1.json');
    const s2 = path.join(dir, 's2.json');
    fs.writeFileSync(s1, hvspec([...args, '--shard', '1/2'], cwd).stdout);
    fs.writeFileSync(s2, hvspec([...args, '--shard', '2/2'], cwd).stdout);
    const merged = hvspec(['merge', '--json', s1, s2], cwd);
    assert.equal(merged.code, 0, merged.stderr);
    const m = JSON.parse(merged.stdout);
    for (const other of [two.domains[first.id], m.domains[first.id]]) {
      const base = one.domains[first.id];
      assert.equal(other.verdict, base.verdict);
      assert.equal(other.runsExecuted, base.runsExecuted);
      assert.equal(other.steps, base.steps);
      assert.deepEqual(other.ops, base.ops);
      assert.deepEqual(
        Object.fromEntries(Object.entries(other.invariants as { [k: string]: { checks: number } }).map(([k, v]) => [k, v.checks])),
        Object.fromEntries(Object.entries(base.invariants as { [k: string]: { checks: number } }).map(([k, v]) => [k, v.checks])),
      );
    }
    const dup = hvspec(['merge', s1, s1], cwd);
    assert.equal(dup.code, 2);
    assert.match(dup.stderr, /shard 1\/2 appears twice/);
  });

  it('explore reports its figures', () => {
    const d = DOMAINS.find((x) => x.use((y) => y.exploration !== undefined)) ?? first;
    const r = hvspec(['explore', '--domain', d.id, '--depth', '2', '--json'], cwd);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const j = JSON.parse(r.stdout);
    assert.ok(j.states > 1 && j.transitions >= j.states - 1);
    assert.equal(j.depthCompleted, 2);
    assert.ok(typeof j.statesPerSecond === 'number' && typeof j.peakHeapMiB === 'number');
  });

  it('mutants, then audit --format markdown lists every invariant with its source and killing mutants', () => {
    const m = hvspec(['mutants', '--json', '--no-explore'], cwd);
    assert.equal(m.code, 0, m.stdout + m.stderr);
    const kills = JSON.parse(m.stdout) as { survived: number; mutants: { domain: string; mutant: string; caughtBy: string }[] };
    assert.equal(kills.survived, 0);
    const r = hvspec(['audit', '--format', 'markdown'], cwd);
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout.split('\n').filter((l) => l.startsWith('| '));
    for (const some of DOMAINS) {
      for (const inv of some.use((d) => d.invariants)) {
        const row = rows.find((l) => l.startsWith(`| ${some.id} | \`${inv.id}\` |`));
        assert.ok(row, `no audit row for ${some.id}/${inv.id}`);
        assert.ok(row.includes(inv.source.replace(/\|/g, '\\|').replace(/\n/g, ' ')), `${inv.id}: source missing`);
        for (const k of kills.mutants.filter((x) => x.domain === some.id && x.caughtBy === inv.id)) {
          assert.ok(row.includes(`\`${k.mutant}\``), `${inv.id}: killing mutant ${k.mutant} missing`);
        }
      }
    }
    // Every invariant is shown to fail somewhere: by a mutant (here) or a hand-built bad View (unit tests).
    const j = JSON.parse(hvspec(['audit', '--format', 'json'], cwd).stdout) as { invariants: { id: string; cases: string[] }[] };
    assert.equal(j.invariants.length, DOMAINS.reduce((n, d) => n + d.use((x) => x.invariants.length), 0));
  });

  it('schema writes one schema per domain', () => {
    const dir = scratch();
    const r = hvspec(['schema', '--out', dir], cwd);
    assert.equal(r.code, 0, r.stderr);
    for (const d of DOMAINS) assert.ok(fs.existsSync(path.join(dir, `${d.id}.schema.json`)));
  });
});
