/**
 * CONTRIBUTING.md cannot rot: every code block marked
 * `<!-- example: examples/contributing/<file>[#region] -->` must equal that
 * file (or region) verbatim, every `<!-- output: ... -->` block must equal
 * what the command prints today, and each of the four worked examples is run
 * here the way the guide says it works.
 */
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import Ajv from 'ajv';
import type { Json } from '../../harness/domain';
import { someDomain } from '../../harness/domain';
import { checkDomain } from '../../harness/check';
import { decodeCase, replayCase } from '../../harness/cases';
import { saveCounterexample } from '../../harness/corpus';
import { runTrace } from '../../harness/lockstep';
import { runMutant } from '../../harness/mutants';
import { explainTrace } from '../../harness/trace';
import { shadowPtDomain } from '../../domains/shadow-pt';
import { MUTANTS } from '../../properties/shadow-pt/mutants';
import { INVARIANTS } from '../../spec/shadow-pt/invariants';
import { emptyView, spteKey, type Config, type View } from '../../spec/shadow-pt/types';
import { clearAllForgetsSwitcher, currentHasSwitcher } from '../../examples/contributing/invariant';
import { setPgdKeepsLastCpu } from '../../examples/contributing/mutant';
import { toyTakeMany, toyTakeManyDomain } from '../../examples/contributing/add-op';
import { DOMAINS } from '../../domains';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const BIN = path.join(ROOT, 'bin', 'hvspec.js');
const EXAMPLES = path.join(ROOT, 'examples', 'contributing');
const GUIDE = path.join(ROOT, 'CONTRIBUTING.md');

function hvspec(args: string[], cwd: string): { code: number; out: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0' }, timeout: 300_000 });
  return { code: r.status ?? -1, out: (r.stdout ?? '') + (r.stderr ?? '') };
}

function scratch(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'hvspec-contrib-'));
}

interface Block {
  readonly kind: 'example' | 'output';
  readonly ref: string;
  readonly line: number;
  readonly body: string;
}

/** Every fenced block preceded by an `<!-- example: ... -->` or `<!-- output: ... -->` line. */
function markedBlocks(text: string): Block[] {
  const lines = text.split('\n');
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^<!--\s*(example|output):\s*(\S+)\s*-->\s*$/.exec(lines[i]!);
    if (!m) continue;
    const open = lines[i + 1];
    assert.ok(open !== undefined && /^```/.test(open), `CONTRIBUTING.md:${i + 1}: a ${m[1]} marker must sit on the line before a fenced code block`);
    const body: string[] = [];
    let j = i + 2;
    for (; j < lines.length && !/^```\s*$/.test(lines[j]!); j++) body.push(lines[j]!);
    assert.ok(j < lines.length, `CONTRIBUTING.md:${i + 2}: unterminated code block`);
    out.push({ kind: m[1] as 'example' | 'output', ref: m[2]!, line: i + 1, body: body.join('\n') });
    i = j;
  }
  return out;
}

/** The text of `file` or of its `// #region name` ... `// #endregion` (JSON files: the whole file). */
function exampleText(ref: string): string {
  const [file, region] = ref.split('#') as [string, string | undefined];
  const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
  if (region === undefined) return text;
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.trim() === `// #region ${region}`);
  assert.ok(start >= 0, `${file} has no region "${region}"`);
  const end = lines.findIndex((l, k) => k > start && l.trim() === '// #endregion');
  assert.ok(end > start, `${file}: region "${region}" is not closed`);
  return lines.slice(start + 1, end).join('\n');
}

function regionsOf(file: string): string[] {
  const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
  return [...text.matchAll(/^\s*\/\/ #region (\S+)\s*$/gm)].map((m) => m[1]!);
}

/** The invalid case the guide shows: the example case with two mistakes. */
function brokenCase(): { [k: string]: Json } {
  const c = JSON.parse(fs.readFileSync(path.join(EXAMPLES, 'case.json'), 'utf8')) as { [k: string]: Json };
  const steps = c['steps'] as { args: { [k: string]: Json } }[];
  steps[4]!.args['vaddr'] = '0x8000000';
  steps[6]!.args['pfn'] = 1;
  return c;
}

describe('CONTRIBUTING.md', function () {
  this.timeout(600_000);
  const guide = fs.readFileSync(GUIDE, 'utf8');
  const blocks = markedBlocks(guide);

  /** The lines of an `<!-- output: name -->` block, without its `$ command` line. */
  const shownOutput = (name: string): string[] => {
    const shown = blocks.find((b) => b.kind === 'output' && b.ref === name);
    assert.ok(shown, `no <!-- output: ${name} --> block in CONTRIBUTING.md`);
    return shown.body
      .split('\n')
      .filter((l) => !l.startsWith('$ '))
      .map((l) => l.replace(/\s+$/, ''))
      .filter((l) => l !== '');
  };

  describe('code blocks equal the example files', () => {
    it('there are marked blocks, one per example file at least', () => {
      const files = fs.readdirSync(EXAMPLES).map((f) => `examples/contributing/${f}`);
      for (const f of files) {
        assert.ok(
          blocks.some((b) => b.kind === 'example' && b.ref.split('#')[0] === f),
          `${f} is never shown in CONTRIBUTING.md`,
        );
        for (const r of regionsOf(f)) {
          assert.ok(blocks.some((b) => b.ref === `${f}#${r}`), `region ${f}#${r} is never shown in CONTRIBUTING.md`);
        }
      }
    });
    for (const b of blocks.filter((x) => x.kind === 'example')) {
      it(`${b.ref} (CONTRIBUTING.md:${b.line})`, () => {
        assert.equal(b.body.trim(), exampleText(b.ref).trim(), `CONTRIBUTING.md:${b.line} differs from ${b.ref}`);
      });
    }
  });

  describe('example 1: a case file', () => {
    const file = path.join(EXAMPLES, 'case.json');

    it('replays and passes with `hvspec replay`', () => {
      const r = hvspec(['replay', 'examples/contributing/case.json'], ROOT);
      assert.equal(r.code, 0, r.out);
      assert.deepEqual(r.out.trim().split('\n'), shownOutput('replay-case'));
    });

    it('its $schema names the generated schema, and the case validates against it', () => {
      const c = JSON.parse(fs.readFileSync(file, 'utf8')) as { $schema: string };
      assert.equal(c.$schema, '../../schema/shadow-pt.schema.json');
      const schemaFile = path.resolve(path.dirname(file), c.$schema);
      assert.ok(fs.existsSync(schemaFile), `${schemaFile} does not exist (run npx hvspec schema)`);
      const ajv = new Ajv({ strict: false, allErrors: true });
      const validate = ajv.compile(JSON.parse(fs.readFileSync(schemaFile, 'utf8')));
      assert.ok(validate(c), ajv.errorsText(validate.errors));
    });

    it('its expects are checked: claiming the user fault is fixed fails at that step', () => {
      const c = JSON.parse(fs.readFileSync(file, 'utf8')) as { steps: { expect?: { [k: string]: Json } }[] };
      assert.ok(c.steps.filter((s) => s.expect !== undefined).length >= 6, 'the case should pin its results down');
      const ok = decodeCase(c, file, DOMAINS);
      assert.ok(ok.ok);
      assert.equal(replayCase(ok.value).failure, null);
      c.steps[4]!.expect = { ok: true, fixed: true };
      const wrong = decodeCase(c, file, DOMAINS);
      assert.ok(wrong.ok);
      const f = replayCase(wrong.value).failure;
      assert.equal(f?.kind, 'expect');
      assert.equal(f?.step, 4);
    });

    it('an invalid case exits 2 with the JSON path of each error, as the guide shows', () => {
      const dir = scratch();
      fs.writeFileSync(path.join(dir, 'bad-case.json'), JSON.stringify(brokenCase(), null, 2));
      const r = hvspec(['replay', 'bad-case.json'], dir);
      assert.equal(r.code, 2, r.out);
      assert.deepEqual(r.out.trim().split('\n'), shownOutput('invalid-case'));
    });

    it('`hvspec promote` turns a saved failure into a case that replays', () => {
      const dir = scratch();
      const cx = checkDomain(shadowPtDomain, { ...shadowPtDomain.mutantBudget, seed: 1, mutant: 'release-keeps-ref' }).failure;
      assert.ok(cx, 'release-keeps-ref should be killed');
      const saved = saveCounterexample(shadowPtDomain, cx, path.join(dir, '.hvspec', 'failures'));
      const failure = path.relative(dir, path.resolve(saved));
      const p = hvspec(['promote', failure, '--name', 'release puts back the reference', '--out', 'cases'], dir);
      assert.equal(p.code, 0, p.out);
      const promoted = path.join('cases', 'release-puts-back-the-reference.json');
      assert.ok(fs.existsSync(path.join(dir, promoted)), p.out);
      assert.equal(hvspec(['replay', promoted], dir).code, 0);
      const bad = hvspec(['replay', '--impl', 'mutant:release-keeps-ref', promoted], dir);
      assert.equal(bad.code, 1, bad.out);
    });
  });

  describe('example 2: an invariant and the mutant that shows it can fail', () => {
    const extended = { ...shadowPtDomain, invariants: [...shadowPtDomain.invariants, currentHasSwitcher], mutants: [clearAllForgetsSwitcher] };

    it('is new: not among the seven', () => {
      assert.equal(INVARIANTS.length, 7);
      assert.ok(!INVARIANTS.some((i) => i.id === currentHasSwitcher.id));
      assert.ok(!MUTANTS.some((m) => m.id === clearAllForgetsSwitcher.id));
    });

    it('(a) holds on model and impl: checkDomain(extended, 150 runs) passes, and is exercised', () => {
      const out = checkDomain(extended, { runs: 150, maxOps: shadowPtDomain.budget.maxOps, seed: 20261124 });
      assert.equal(out.failure, null, JSON.stringify(out.failure?.failure));
      assert.equal(out.runsExecuted, 150);
      const t = out.tallies.invariants[currentHasSwitcher.id]!;
      assert.ok(t.checks > 0 && t.nonTrivial / t.checks >= 0.01, `weakly exercised: ${JSON.stringify(t)}`);
    });

    it('(b) the mutant is killed, and the new invariant is what catches it', () => {
      const r = runMutant(extended, clearAllForgetsSwitcher.id, { seed: 1 });
      assert.ok(r.killed, 'clear-all-forgets-switcher survived');
      const cx = r.counterexample!;
      // Whatever fired first in lockstep, the new invariant is violated on the impl along the shrunk trace.
      const steps = explainTrace(extended, cx.config, cx.ops, clearAllForgetsSwitcher.create);
      const hit = steps.find((s) => s.violated.some((v) => v.id === currentHasSwitcher.id));
      assert.ok(hit, `current-has-switcher never violated along ${JSON.stringify(cx.ops)}`);
      assert.ok(['flushAll', 'setPmd'].includes(hit.op.op), `violated first after ${hit.op.op}`);
      assert.equal(r.caughtBy, currentHasSwitcher.id);
      assert.ok(r.runsToKill! <= shadowPtDomain.mutantBudget.runs);
      assert.deepEqual(cx.ops.map((o) => o.op), ['flushAll']);
      // ... and the real impl passes the same trace.
      assert.equal(runTrace(extended, cx.config, cx.ops).failure, null);
    });

    it('without the new invariant the lockstep still kills it, but only as a view mismatch', () => {
      const plain = { ...shadowPtDomain, mutants: [clearAllForgetsSwitcher] };
      const r = runMutant(plain, clearAllForgetsSwitcher.id, { seed: 1 });
      assert.ok(r.killed);
      assert.equal(r.caughtBy, 'view-mismatch');
    });

    it('(c) a hand-built bad View makes check answer a sentence (and exercised is true)', () => {
      const c: Config = { pae: false, pgdirSlots: 2, guestPages: 256, hostBase: 0x10000, readOnlyPages: [], hostCpus: 1, switcherAddr: 0xffc00000 };
      const good: View = emptyView();
      good.slots[0] = { gpgdir: 0x1000, switcherMapped: true, lastHostCpu: -1 };
      good.sptes[spteKey(0, 0xffc00)] = { pfn: 0x10000 + 256, flags: 0x161, gpte: -1, from: -1, gen: 0 };
      assert.equal(currentHasSwitcher.check(good, c), null);
      const bad: View = { ...good, slots: { 0: { gpgdir: 0x1000, switcherMapped: false, lastHostCpu: -1 } } };
      assert.match(currentHasSwitcher.check(bad, c) ?? '', /current slot 0 \(shadowing 0x1000\) is not marked as having the Switcher mapped/);
      assert.ok(currentHasSwitcher.exercised(bad, c));
      const scope = { entries: [], pfns: [], owners: [], pages: [], slots: [0], vpages: [] };
      assert.notEqual(currentHasSwitcher.check(bad, c, scope), null, 'the scoped check must catch it too');
      assert.ok(currentHasSwitcher.exercised(bad, c, scope));
      const gone: View = { ...good, current: 1 };
      assert.match(currentHasSwitcher.check(gone, c) ?? '', /current slot 1 is not a cached top level/);
      const noCode: View = { ...good, sptes: {} };
      assert.match(currentHasSwitcher.check(noCode, c) ?? '', /no Switcher code page at 0xffc00000/);
      assert.equal(currentHasSwitcher.check({ ...bad, dead: true }, c), null, 'a dead guest runs nowhere');
    });
  });

  describe('example 3: an operation (takeMany on the toy domain)', () => {
    it('the extended domain passes its property, and the new op is generated', () => {
      const out = checkDomain(toyTakeManyDomain, { ...toyTakeManyDomain.budget, seed: 1 });
      assert.equal(out.failure, null, JSON.stringify(out.failure?.failure));
      assert.ok((out.tallies.ops['takeMany']?.ok ?? 0) > 0, JSON.stringify(out.tallies.ops));
    });

    it('its mutant (takeMany takes one) is killed', () => {
      const r = runMutant(toyTakeManyDomain, 'take-many-takes-one', { seed: 1 });
      assert.ok(r.killed);
      assert.equal(r.caughtBy, 'view-mismatch');
    });

    it('a case using takeMany decodes against the extended domain and replays', () => {
      const file = path.join(EXAMPLES, 'take-many.case.json');
      const obj: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
      const loaded = decodeCase(obj, file, [toyTakeMany]);
      assert.ok(loaded.ok, JSON.stringify(!loaded.ok && loaded.errors));
      const out = replayCase(loaded.value);
      assert.equal(out.failure, null, JSON.stringify(out.failure));
      assert.equal(out.steps, 5);
      // Against the mutant the expects catch it at once.
      assert.notEqual(replayCase(loaded.value, { mutant: 'take-many-takes-one' }).failure, null);
      // Without the extended domain in the list the case's domain is unknown; with it, bad arguments name their path.
      assert.equal(decodeCase(obj, file, [someDomain({ ...toyTakeManyDomain, id: 'other' })]).ok, false);
      const bad = JSON.parse(JSON.stringify(obj)) as { steps: { args: { [k: string]: Json } }[] };
      bad.steps[0]!.args['n'] = 0;
      const r = decodeCase(bad, file, [toyTakeMany]);
      assert.ok(!r.ok);
      assert.equal(r.errors[0]!.path, '$.steps[0].args.n');
    });
  });

  describe('example 4: a known-bug mutant with its source', () => {
    const extended = { ...shadowPtDomain, mutants: [setPgdKeepsLastCpu] };

    it('is not one of the existing mutants', () => {
      assert.equal(MUTANTS.length, 15);
      assert.ok(!MUTANTS.some((m) => m.id === setPgdKeepsLastCpu.id));
    });

    it('is killed within the mutant budget, by the invariant it names', () => {
      const r = runMutant(extended, setPgdKeepsLastCpu.id, { seed: 1 }); // `hvspec mutants` uses seed 1 by default
      assert.ok(r.killed, 'set-pgd-keeps-last-cpu survived');
      assert.ok(r.runsToKill! <= shadowPtDomain.mutantBudget.runs);
      assert.equal(r.caughtBy, 'switcher-intact');
      assert.deepEqual(setPgdKeepsLastCpu.expectedToViolate, ['switcher-intact']);
      const ops = r.counterexample!.ops.map((o) => o.op);
      assert.deepEqual(ops, ['runOnCpu', 'setPgd'], 'CONTRIBUTING.md quotes this trace');
      assert.equal(runTrace(extended, r.counterexample!.config, r.counterexample!.ops).failure, null, 'the real impl passes the same trace');
    });
  });
});
