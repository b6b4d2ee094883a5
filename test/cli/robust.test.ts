/**
 * Issue 16: one regression test per numbered defect of the harness and the
 * command line (items 2, 3 and 9 are the domains'), and the "also expected
 * of the CLI" list. Most run `main()` in-process (fast); what needs a real
 * process (signals, pipes, FIFOs, workers) spawns bin/hvspec.js.
 */
import { strict as assert } from 'assert';
import { execFileSync, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DOMAINS } from '../../domains';
import { main } from '../../cli/main';
import { paint, withSink } from '../../cli/io';
import { runTrace } from '../../harness/lockstep';
import { parseJsonStrict, writeFileAtomic } from '../../harness/input';
import { toyDomain } from '../fixtures/toy';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const BIN = path.join(ROOT, 'bin', 'hvspec.js');

function scratch(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'hvspec-robust-'));
}

async function run(argv: string[], cwd: string, tty = false): Promise<{ code: number; out: string; err: string }> {
  const before = process.cwd();
  let out = '';
  let err = '';
  process.chdir(cwd);
  try {
    const code = await withSink({ out: (s) => void (out += s), err: (s) => void (err += s), tty }, () => main(argv));
    return { code, out, err };
  } finally {
    process.chdir(before);
  }
}

function spawnHvspec(args: string[], cwd: string, timeout = 120_000): { code: number | null; stdout: string; stderr: string; ms: number } {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', timeout, env: { ...process.env, NO_COLOR: '1' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - t0 };
}

function oneShortLine(err: string): void {
  const lines = err.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${err.slice(0, 2000)}`);
  assert.ok(Buffer.byteLength(lines[0]!) <= 400, `a ${Buffer.byteLength(lines[0]!)}-byte error line`);
  assert.doesNotMatch(err, /\n\s+at .+:\d+:\d+/);
}

const caseOf = (domain: string, steps: unknown[], extra: object = {}) => ({ format: 'hvspec-case/1', name: 'x', domain, steps, ...extra });

describe('issue 16: robust inputs and command line', function () {
  this.timeout(300_000);
  const dir = scratch();
  const write = (name: string, body: string | Buffer | object): string => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body));
    return f;
  };

  describe('1. ops, fields and domains named after Object.prototype members are unknown, not crashes', () => {
    for (const d of DOMAINS) {
      for (const name of ['toString', 'constructor', '__proto__', 'valueOf', 'hasOwnProperty']) {
        it(`${d.id}: op ${name}`, async () => {
          const f = write(`proto-${d.id}-${name}.json`, `{"format":"hvspec-case/1","name":"x","domain":"${d.id}","steps":[{"op":"${name}","args":{}}]}`);
          const r = await run(['replay', f], dir);
          assert.equal(r.code, 2, r.err);
          assert.match(r.err, new RegExp(`\\$\\.steps\\[0\\]\\.op: unknown op "${name}"`));
        });
      }
    }
    it('a domain, a field and an args key named after prototype members', async () => {
      const f1 = write('proto-domain.json', caseOf('constructor', []));
      assert.match((await run(['replay', f1], dir)).err, /\$\.domain: unknown domain "constructor"/);
      const op = DOMAINS[0]!.use((d) => Object.keys(d.opArgs)[0]!);
      const f2 = write('proto-field.json', `{"format":"hvspec-case/1","name":"x","domain":"${DOMAINS[0]!.id}","steps":[{"op":"${op}","args":{"__proto__":{}}}]}`);
      const r2 = await run(['replay', f2], dir);
      assert.equal(r2.code, 2);
      assert.match(r2.err, /unknown field "__proto__"/);
    });
    it('from .hvspec/failures/: a saved file with such an op is skipped with its path, check still runs', async () => {
      const d = scratch();
      fs.mkdirSync(path.join(d, '.hvspec', 'failures'), { recursive: true });
      fs.writeFileSync(path.join(d, '.hvspec', 'failures', `${DOMAINS[0]!.id}-bad.json`), JSON.stringify(caseOf(DOMAINS[0]!.id, [{ op: 'toString', args: {} }])));
      const r = await run(['check', '--domain', DOMAINS[0]!.id, '--runs', '2', '--seed', '1'], d);
      assert.equal(r.code, 0, r.out + r.err);
      assert.match(r.out, /skipped .*-bad\.json: no longer decodes \(\$\.steps\[0\]\.op: unknown op "toString"/);
    });
    it('commands and options named after prototype members', async () => {
      oneShortLine((await run(['toString'], dir)).err);
      oneShortLine((await run(['help', 'constructor'], dir)).err);
      const r = await run(['check', '--constructor'], dir);
      assert.equal(r.code, 2);
      oneShortLine(r.err);
    });
  });

  describe('4. only regular files of bounded size are read', () => {
    it('/dev/zero, a symlink to /dev/urandom, a FIFO, a directory of no cases, a file over the limit: exit 2 at once', () => {
      const link = path.join(dir, 'urandom.json');
      fs.rmSync(link, { force: true });
      fs.symlinkSync('/dev/urandom', link);
      const fifo = path.join(dir, 'fifo.json');
      fs.rmSync(fifo, { force: true });
      execFileSync('mkfifo', [fifo]);
      const big = path.join(dir, 'big.json');
      fs.closeSync(fs.openSync(big, 'w'));
      fs.truncateSync(big, 33 * 1024 * 1024);
      const empty = fs.mkdtempSync(path.join(dir, 'empty-'));
      for (const [f, re] of [
        ['/dev/zero', /not a regular file \(a character device\)/],
        [link, /not a regular file \(a character device\)/],
        [fifo, /not a regular file \(a FIFO\)/],
        [big, /too large: 34603008 bytes \(the limit is 33554432\)/],
        [empty, /a folder with no \*\.json case files/],
      ] as const) {
        const r = spawnHvspec(['replay', f], dir, 20_000);
        assert.equal(r.code, 2, `${f}: ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, re);
        assert.ok(r.ms < 15_000, `${f} took ${r.ms} ms`);
      }
    });
  });

  describe('5. numeric flags: negative values reach the tool’s own check', () => {
    it('the repro line of a negative run seed runs', async () => {
      const r = await run(['check', '--domain', 'sev-cache', '--seed', '-1640531524', '--runs', '1', '--no-corpus'], dir);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /seed -1640531524: pass/);
      assert.equal((await run(['check', '--domain', 'sev-cache', '--seed=-5', '--runs', '1', '--no-corpus'], dir)).code, 0);
    });
    for (const [flag, value, re] of [
      ['--runs', '-1', /--runs must be between 1 and 10000000, got -1/],
      ['--max-ops', '-7', /--max-ops must be between 1 and 100000, got -7/],
      ['--workers', '-2', /--workers must be between 1 and 64, got -2/],
      ['--time-limit', '-1', /--time-limit takes a number from 0 to/],
      ['--seed', '-99999999999', /--seed must be between -2147483648 and 4294967295/],
      ['--runs', '', /--runs takes a whole number, got ""/],
    ] as const) {
      it(`check ${flag} ${JSON.stringify(value)}`, async () => {
        const r = await run(['check', flag, value], dir);
        assert.equal(r.code, 2);
        assert.match(r.err, re);
        oneShortLine(r.err);
      });
    }
    it('a value missing at the end', async () => {
      const r = await run(['check', '--runs'], dir);
      assert.equal(r.code, 2);
      assert.match(r.err, /--runs needs a value/);
    });
  });

  describe('6. an empty --domain is bad usage', () => {
    for (const cmd of ['check', 'explore', 'mutants', 'schema']) {
      it(`${cmd} --domain ''`, async () => {
        const r = await run([cmd, '--domain', ''], dir);
        assert.equal(r.code, 2, r.out + r.err);
        assert.match(r.err, /--domain needs a domain name \(known: /);
        oneShortLine(r.err);
      });
    }
  });

  describe('7. echoed input is cut to about 100 characters', () => {
    it('a 1 MiB op name, option value, command and field', async () => {
      const long = 'A'.repeat(1024 * 1024);
      const f = write('long-op.json', caseOf(DOMAINS[0]!.id, [{ op: long, args: {} }]));
      const r = await run(['replay', f], dir);
      assert.equal(r.code, 2);
      for (const l of r.err.split('\n')) assert.ok(l.length <= 400, `a ${l.length}-character line`);
      for (const argv of [['check', '--domain', long], ['check', '--runs', long], [long], ['check', `--${long}`], ['replay', '--impl', long, f]]) {
        const x = await run(argv, dir);
        assert.equal(x.code, 2);
        oneShortLine(x.err);
      }
    });
  });

  describe('8. duplicate keys and invalid UTF-8 are refused, naming the path', () => {
    it('a duplicate key at the top and inside a step', async () => {
      const op = DOMAINS[0]!.use((d) => Object.keys(d.opArgs)[0]!);
      const f = write('dup.json', `{"format":"hvspec-case/1","name":"a","name":"b","domain":"${DOMAINS[0]!.id}","steps":[]}`);
      const r = await run(['replay', f], dir);
      assert.equal(r.code, 2);
      assert.match(r.err, /\$\.name: duplicate key "name"/);
      const f2 = write('dup2.json', `{"format":"hvspec-case/1","name":"a","domain":"${DOMAINS[0]!.id}","steps":[{"op":"${op}","args":{},"args":{}}]}`);
      assert.match((await run(['replay', f2], dir)).err, /\$\.steps\[0\]\.args: duplicate key "args"/);
    });
    it('invalid UTF-8 (a lone continuation byte, an overlong form, an encoded surrogate)', async () => {
      for (const bad of [[0x80], [0xc0, 0xaf], [0xed, 0xa0, 0x80]]) {
        const f = write('utf8.json', Buffer.concat([Buffer.from('{"format":"hvspec-case/1","name":"'), Buffer.from(bad), Buffer.from(`","domain":"${DOMAINS[0]!.id}","steps":[]}`)]));
        const r = await run(['replay', f], dir);
        assert.equal(r.code, 2);
        assert.match(r.err, /\$: not valid UTF-8 \(byte 34: 0x/);
      }
    });
    it('the strict parser agrees with JSON.parse on valid JSON, and bounds nesting', () => {
      for (const s of ['{"a":[1,2.5e3,-0,"\\u00e9\\n",true,false,null,{}]}', '[]', '"x"', ' 1 ', '{"__proto__":1}']) {
        const r = parseJsonStrict(s);
        assert.ok(r.ok);
        assert.deepEqual(r.value, JSON.parse(s));
      }
      const proto = parseJsonStrict('{"__proto__":{"polluted":1}}');
      assert.ok(proto.ok && Object.getPrototypeOf(proto.value) === Object.prototype);
      assert.equal(({} as { polluted?: number }).polluted, undefined);
      assert.ok(!parseJsonStrict('['.repeat(300) + ']'.repeat(300)).ok);
      assert.ok(!parseJsonStrict('{"a":1,}').ok && !parseJsonStrict('01').ok && !parseJsonStrict('1e999').ok);
    });
  });

  describe('10. never more workers than runs or cores', () => {
    it('check --workers 64 --runs 2 starts at most 2', () => {
      const r = spawnHvspec(['check', '--domain', 'sev-cache', '--workers', '64', '--runs', '2', '--json', '--no-corpus'], dir);
      assert.equal(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout) as { domains: { [d: string]: { workers: number; runsExecuted: number } } };
      assert.ok(j.domains['sev-cache']!.workers <= Math.min(2, os.availableParallelism()));
      assert.equal(j.domains['sev-cache']!.runsExecuted, 2);
      assert.ok(r.ms < 10_000, `took ${r.ms} ms`);
    });
  });

  describe('11. a closed stdout ends the command quietly', () => {
    for (const args of [['schema', '--stdout'], ['check', '--domain', 'sev-cache', '--runs', '300', '--no-corpus']]) {
      it(`hvspec ${args[0]} with its stdout closed by the reader (as by head)`, async () => {
        const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
        let stderr = '';
        child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
        // The reader goes away before the first write: every write then meets EPIPE.
        child.stdout.destroy();
        const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
        assert.equal(code, 141, stderr);
        assert.equal(stderr, '');
      });
    }
  });

  describe('12. Ctrl-C on check prints what ran, the seed and the command; exit 130', () => {
    for (const workers of ['1', '2']) {
      it(`with --workers ${workers}`, async () => {
        const child = spawn(process.execPath, [BIN, 'check', '--domain', 'sev-cache,shadow-pt', '--runs', '10000000', '--seed', '42', '--workers', workers, '--no-corpus'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
        child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
        await new Promise((r) => setTimeout(r, 2500));
        child.kill('SIGINT');
        const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
        assert.equal(code, 130, stdout + stderr);
        assert.match(stdout, /sev-cache: INCOMPLETE — \d+\/10000000 runs, .*interrupted \(Ctrl-C\)/);
        assert.match(stderr, /interrupted: ran sev-cache \d+\/10000000 runs; not run: shadow-pt/);
        assert.match(stderr, /seed 42; to run this campaign again: hvspec check --domain sev-cache --domain shadow-pt --seed 42 --runs 10000000/);
      });
    }
  });

  describe('13. an incomplete merge does not pass', () => {
    it('a missing shard: verdict incomplete, exit 1', async () => {
      const base = ['check', '--domain', 'sev-cache', '--runs', '9', '--seed', '3', '--json', '--no-corpus'];
      const s1 = write('s1.json', (await run([...base, '--shard', '1/3'], dir)).out);
      const s2 = write('s2.json', (await run([...base, '--shard', '2/3'], dir)).out);
      const r = await run(['merge', s1, s2], dir);
      assert.equal(r.code, 1);
      assert.doesNotMatch(r.out, /\bpass\b/);
      assert.match(r.out, /merged 2 report\(s\): INCOMPLETE/);
      assert.match(r.err, /incomplete: missing shard\(s\) 3\/3/);
      const j = JSON.parse((await run(['merge', '--json', s1, s2], dir)).out) as { verdict: string; complete: boolean };
      assert.equal(j.verdict, 'incomplete');
      assert.equal(j.complete, false);
      const s3 = write('s3.json', (await run([...base, '--shard', '3/3'], dir)).out);
      assert.equal((await run(['merge', s1, s2, s3], dir)).code, 0);
      // A shard stopped early (Ctrl-C: verdict incomplete; --time-limit: interrupted) did not run its slice.
      const cut = JSON.parse(fs.readFileSync(s3, 'utf8')) as { verdict: string; domains: { [d: string]: { verdict: string; interrupted: boolean } } };
      cut.verdict = 'incomplete';
      cut.domains['sev-cache']!.verdict = 'incomplete';
      cut.domains['sev-cache']!.interrupted = true;
      const s3cut = write('s3cut.json', cut);
      const partial = await run(['merge', '--json', s1, s2, s3cut], dir);
      assert.equal(partial.code, 1);
      assert.equal((JSON.parse(partial.out) as { verdict: string }).verdict, 'incomplete');
    });
    it('report keys named __proto__ do not pollute Object.prototype', async () => {
      const rep = `{"seed":1,"verdict":"pass","domains":{"__proto__":{"verdict":"pass","runsPlanned":1,"runsExecuted":1,"elapsedMs":1,"steps":1,"ops":{"__proto__":{"generated":1,"succeeded":1,"failed":{}}},"invariants":{},"counters":{"model":{},"impl":{}}}}}`;
      const r = await run(['merge', '--json', write('proto-report.json', rep)], dir);
      assert.equal(r.code, 0, r.err);
      assert.equal(({} as { generated?: number }).generated, undefined);
      assert.equal(({} as { verdict?: string }).verdict, undefined);
    });
  });

  describe('14. failures are saved atomically: two checks in one folder lose nothing', () => {
    it('two concurrent check runs against a mutant', async () => {
      const d = scratch();
      const mutant = DOMAINS.find((x) => x.id === 'shadow-pt')!.use((x) => x.mutants[0]!.id);
      const one = (seed: string) =>
        new Promise<number | null>((resolve) => {
          const c = spawn(process.execPath, [BIN, 'check', '--domain', 'shadow-pt', '--impl', `mutant:${mutant}`, '--seed', seed, '--runs', '300'], { cwd: d, stdio: 'ignore' });
          c.on('exit', (code) => resolve(code));
        });
      const codes = await Promise.all([one('1'), one('2')]);
      assert.deepEqual(codes, [1, 1]);
      const saved = fs.readdirSync(path.join(d, '.hvspec', 'failures', 'mutants'));
      assert.ok(saved.length >= 1 && saved.every((n) => /^shadow-pt-.*\.json$/.test(n)), saved.join(', '));
      for (const n of saved) JSON.parse(fs.readFileSync(path.join(d, '.hvspec', 'failures', 'mutants', n), 'utf8'));
      JSON.parse(fs.readFileSync(path.join(d, '.hvspec', 'last-check.json'), 'utf8'));
      assert.ok(!fs.readdirSync(path.join(d, '.hvspec')).some((n) => n.endsWith('.tmp')), 'a temporary file was left');
    });
  });

  describe('14. atomic writes never replace what is not a regular file', () => {
    it('/dev/null stays a device; a symlink stays a link and its target is replaced', () => {
      writeFileAtomic('/dev/null', 'x');
      assert.ok(fs.statSync('/dev/null').isCharacterDevice());
      const d = scratch();
      fs.writeFileSync(path.join(d, 'real.json'), 'old');
      fs.symlinkSync(path.join(d, 'real.json'), path.join(d, 'link.json'));
      writeFileAtomic(path.join(d, 'link.json'), 'new');
      assert.ok(fs.lstatSync(path.join(d, 'link.json')).isSymbolicLink());
      assert.equal(fs.readFileSync(path.join(d, 'real.json'), 'utf8'), 'new');
      writeFileAtomic(path.join(d, 'fresh.json'), 'made');
      assert.equal(fs.readFileSync(path.join(d, 'fresh.json'), 'utf8'), 'made');
      assert.deepEqual(fs.readdirSync(d).filter((n) => n.endsWith('.tmp')), []);
    });
  });

  describe('15. a mutant’s counterexample is saved, tagged, and promoted', () => {
    it('check --impl mutant:ID → saved → promote → a case that fails against the mutant only', async () => {
      const d = scratch();
      const mutant = DOMAINS.find((x) => x.id === 'shadow-pt')!.use((x) => x.mutants[0]!.id);
      const r = await run(['check', '--domain', 'shadow-pt', '--impl', `mutant:${mutant}`, '--seed', '1', '--runs', '300'], d);
      assert.equal(r.code, 1);
      const m = /saved: (\S+)/.exec(r.out);
      assert.ok(m, r.out);
      assert.match(m[1]!, new RegExp(`^\\.hvspec/failures/mutants/shadow-pt-${mutant}-[0-9a-f]{12}\\.json$`));
      assert.equal(JSON.parse(fs.readFileSync(path.join(d, m[1]!), 'utf8')).found.mutant, mutant);
      const p = await run(['promote', m[1]!, '--name', 'mutant story', '--out', 'cases', '--json'], d);
      assert.equal(p.code, 0, p.err);
      const promoted = JSON.parse(p.out) as { file: string; mutant: string };
      assert.equal(promoted.mutant, mutant);
      assert.equal((await run(['replay', promoted.file], d)).code, 0);
      assert.equal((await run(['replay', '--impl', `mutant:${mutant}`, promoted.file], d)).code, 1);
      // The impl's corpus replay does not pick it up.
      assert.doesNotMatch((await run(['check', '--domain', 'shadow-pt', '--runs', '1'], d)).out, /replaying/);
    });
  });

  describe('16. expect is checked against the result codec', () => {
    for (const d of DOMAINS) {
      it(`${d.id}: an unknown expect key and a wrongly typed value are invalid (exit 2), not failing`, async () => {
        const op = d.use((x) => Object.keys(x.opArgs)[0]!);
        const file = path.join(ROOT, 'spec', 'cases', d.id, fs.readdirSync(path.join(ROOT, 'spec', 'cases', d.id)).sort()[0]!);
        const c = JSON.parse(fs.readFileSync(file, 'utf8')) as { steps: { op: string; expect?: object }[] };
        c.steps[0]!.expect = { ok: true, refz: 1 };
        let r = await run(['replay', write(`expect-${d.id}.json`, c)], dir);
        assert.equal(r.code, 2, r.out + r.err);
        assert.match(r.err, /\$\.steps\[0\]\.expect\.refz: no result has a field "refz" \(result fields: ok/);
        c.steps[0]!.expect = { ok: 'true' };
        r = await run(['replay', write(`expect-${d.id}.json`, c)], dir);
        assert.equal(r.code, 2);
        assert.match(r.err, /\$\.steps\[0\]\.expect\.ok: expected .*, got "true"/);
        void op;
      });
    }
  });

  describe('17. lockstep: an impl that throws is not recorded with the model’s result', () => {
    it('the step’s impl result is null and the failure names the impl', () => {
      const cfg = toyDomain.resolveConfig({});
      assert.ok(cfg.ok);
      const ops = toyDomain.exploration!.alphabet(cfg.value).slice(0, 1);
      const out = runTrace(toyDomain, cfg.value, ops, {}, (c) => {
        const sys = toyDomain.createImpl(c);
        return {
          view: () => sys.view(),
          apply: () => {
            throw new Error('boom');
          },
        };
      });
      assert.equal(out.failure?.kind, 'crash');
      assert.equal(out.failure?.side, 'impl');
      assert.equal(out.results.length, 1);
      assert.equal(out.results[0]!.impl, null);
      assert.notEqual(out.results[0]!.model, null);
    });
    it('a throw outside apply (a live View, a comparison) is a crash failure, not an exception', () => {
      const cfg = toyDomain.resolveConfig({});
      assert.ok(cfg.ok);
      const ops = toyDomain.exploration!.alphabet(cfg.value).slice(0, 2);
      const out = runTrace(toyDomain, cfg.value, ops, {}, (c) => {
        const sys = toyDomain.createImpl(c);
        return {
          apply: (op) => sys.apply(op),
          view: () => {
            throw new Error('view broke');
          },
        };
      });
      assert.equal(out.failure?.kind, 'crash');
      assert.match(out.failure!.message, /view broke/);
    });
  });

  describe('also expected of the CLI', () => {
    it('--version', async () => {
      const r = await run(['--version'], dir);
      assert.equal(r.code, 0);
      assert.match(r.out, /^hvspec \d+\.\d+\.\d+\n$/);
    });
    it('NO_COLOR turns colour off on a terminal', async () => {
      const saved = process.env['NO_COLOR'];
      try {
        delete process.env['NO_COLOR'];
        let coloured = '';
        await withSink({ out: () => undefined, err: () => undefined, tty: true }, async () => void (coloured = paint('FAIL', 'red')));
        assert.equal(coloured, '\x1b[31mFAIL\x1b[0m');
        process.env['NO_COLOR'] = '1';
        await withSink({ out: () => undefined, err: () => undefined, tty: true }, async () => void (coloured = paint('FAIL', 'red')));
        assert.equal(coloured, 'FAIL');
        const r = await run(['replay', path.join(ROOT, 'spec', 'cases', 'sev-cache')], dir, true);
        assert.doesNotMatch(r.out, /\x1b\[/);
      } finally {
        if (saved === undefined) delete process.env['NO_COLOR'];
        else process.env['NO_COLOR'] = saved;
      }
    });
    it('replay DIR replays the folder’s cases', async () => {
      const r = await run(['replay', path.join(ROOT, 'spec', 'cases', 'sev-cache')], dir);
      assert.equal(r.code, 0, r.err);
      const n = fs.readdirSync(path.join(ROOT, 'spec', 'cases', 'sev-cache')).filter((f) => f.endsWith('.json')).length;
      assert.match(r.out, new RegExp(`${n} passed, 0 failed`));
    });
    it('--json on every command with a report, each with a verdict where it has one', async () => {
      const d = scratch();
      const reports: [string[], string | null][] = [
        [['check', '--domain', 'sev-cache', '--runs', '2', '--json'], 'pass'],
        [['replay', '--json', path.join(ROOT, 'spec', 'cases', 'sev-cache')], 'pass'],
        [['mutants', '--domain', 'sev-cache', '--runs', '50', '--no-explore', '--json'], null],
        [['explore', '--domain', 'sev-cache', '--depth', '1', '--json'], 'pass'],
        [['audit', '--domain', 'sev-cache', '--json'], null],
        [['schema', '--domain', 'sev-cache', '--out', 'schema', '--json'], null],
      ];
      for (const [argv, verdict] of reports) {
        const r = await run(argv, d);
        assert.ok(r.code === 0 || r.code === 1, `${argv.join(' ')}: ${r.err}`);
        const j = JSON.parse(r.out) as { verdict?: string };
        if (verdict !== null) assert.equal(j.verdict, verdict, argv.join(' '));
      }
    });
    it('an interrupted explore does not exit 0', () => {
      const child = spawnSync(process.execPath, ['-e', `
        const { main } = require(${JSON.stringify(path.join(ROOT, 'dist', 'cli', 'main.js'))});
        setTimeout(() => process.emit('SIGINT', 'SIGINT'), 300);
        main(['explore', '--domain', 'shadow-pt', '--depth', '30', '--max-states', '100000000']).then((c) => { process.exitCode = c; });
      `], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
      assert.equal(child.status, 130, child.stdout + child.stderr);
      assert.match(child.stdout, /INCOMPLETE/);
    });
  });
});
