import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { toy, toyDomain, type ToyOp } from '../fixtures/toy';
import { checkDomain, runSeed } from '../../harness/check';
import { decodeCase, caseObject } from '../../harness/cases';
import { runTrace, emptyTallies } from '../../harness/lockstep';
import { runMutant } from '../../harness/mutants';
import { formatCounterexample, formatTallies, talliesJson } from '../../harness/format';
import { saveCounterexample, listCorpus } from '../../harness/corpus';
import { decode, deepEqual, firstDifference, intRange, opCodec, partialMatch, strict } from '../../harness/codec';
import * as t from 'io-ts';

const good = {
  format: 'hvspec-case/1',
  name: 'take then release',
  domain: 'toy',
  config: { pages: 2 },
  steps: [
    { op: 'take', args: { page: 1 } },
    { op: 'count', args: { page: 1 }, expect: { ok: true, refs: 1 } },
    { op: 'release', args: { page: 1 } },
    { op: 'release', args: { page: 1 }, expect: { ok: false, error: 'ENOENT' } },
  ],
};

function errorsOf(input: unknown): { path: string; message: string }[] {
  const r = decodeCase(input, 'x.json', [toy]);
  assert.equal(r.ok, false, 'expected the case to be rejected');
  return r.ok ? [] : r.errors;
}

describe('harness: case files', () => {
  it('decodes a good case and replays it', () => {
    const r = decodeCase(good, 'x.json', [toy]);
    assert.ok(r.ok);
    const out = r.value.use((d, c) => runTrace(d, c.config, c.ops, { expects: c.expects }));
    assert.equal(out.failure, null);
  });

  it('rejects an unknown domain with its path', () => {
    const e = errorsOf({ ...good, domain: 'nope' });
    assert.equal(e[0]!.path, '$.domain');
    assert.match(e[0]!.message, /unknown domain "nope".*toy/);
  });

  it('rejects an unknown op, naming the known ones', () => {
    const e = errorsOf({ ...good, steps: [{ op: 'grab', args: { page: 0 } }] });
    assert.equal(e[0]!.path, '$.steps[0].op');
    assert.match(e[0]!.message, /unknown op "grab".*take/);
  });

  it('rejects a wrong argument type at the argument path', () => {
    const e = errorsOf({ ...good, steps: [{ op: 'take', args: { page: 'zero' } }] });
    assert.equal(e[0]!.path, '$.steps[0].args.page');
    assert.match(e[0]!.message, /expected integer in \[0, 63\], got "zero"/);
  });

  it('rejects a missing field', () => {
    const e = errorsOf({ ...good, steps: [{ op: 'take', args: {} }] });
    assert.equal(e[0]!.path, '$.steps[0].args.page');
    assert.match(e[0]!.message, /missing field "page"/);
    const e2 = errorsOf({ format: 'hvspec-case/1', domain: 'toy', steps: [] });
    assert.equal(e2[0]!.path, '$.name');
  });

  it('rejects an unknown extra field anywhere', () => {
    assert.equal(errorsOf({ ...good, colour: 'red' })[0]!.path, '$.colour');
    assert.equal(errorsOf({ ...good, steps: [{ op: 'take', args: { page: 0, size: 2 } }] })[0]!.path, '$.steps[0].args.size');
    assert.equal(errorsOf({ ...good, steps: [{ op: 'take', args: { page: 0 }, expected: {} }] })[0]!.path, '$.steps[0].expected');
    assert.equal(errorsOf({ ...good, config: { pages: 2, cpus: 4 } })[0]!.path, '$.config.cpus');
  });

  it('rejects a wrong format and a non-object expect', () => {
    assert.equal(errorsOf({ ...good, format: 'hvspec-case/2' })[0]!.path, '$.format');
    assert.equal(errorsOf({ ...good, steps: [{ op: 'take', args: { page: 0 }, expect: 3 }] })[0]!.path, '$.steps[0].expect');
  });

  it('reports semantic op errors from validateOp at the step path', () => {
    const e = errorsOf({ ...good, config: { pages: 1 }, steps: [{ op: 'take', args: { page: 3 } }] });
    assert.equal(e[0]!.path, '$.steps[0].args.page');
    assert.match(e[0]!.message, /beyond the configured 1 pages/);
  });

  it('collects every error, not only the first', () => {
    const e = errorsOf({ ...good, steps: [{ op: 'take', args: {} }, { op: 'nope' }] });
    assert.deepEqual(e.map((x) => x.path), ['$.steps[0].args.page', '$.steps[1].op']);
  });

  it('fails a case whose expect is not met', () => {
    const bad = { ...good, steps: [{ op: 'count', args: { page: 0 }, expect: { refs: 2 } }] };
    const r = decodeCase(bad, 'x.json', [toy]);
    assert.ok(r.ok);
    const out = r.value.use((d, c) => runTrace(d, c.config, c.ops, { expects: c.expects }));
    assert.equal(out.failure?.kind, 'expect');
    assert.match(out.failure!.message, /refs: expected 2, got 0/);
  });

  it('builds case objects that decode again', () => {
    const obj = caseObject({ name: 'n', domain: 'toy', source: 's', config: { pages: 2 }, ops: [{ op: 'take', args: { page: 1 } }], expects: [{ ok: true }] });
    assert.ok(decodeCase(obj, 'y.json', [toy]).ok);
  });
});

describe('harness: lockstep and campaigns', () => {
  it('passes the correct impl', () => {
    const out = checkDomain(toyDomain, { runs: 30, maxOps: 20, seed: 42 });
    assert.equal(out.failure, null);
    assert.equal(out.runsExecuted, 30);
    assert.ok(out.tallies.steps > 0);
    assert.ok(out.tallies.invariants['non-negative']!.checks > 0);
  });

  it('kills the mutant and shrinks to a short trace', () => {
    const r = runMutant(toyDomain, 'release-unchecked', { seed: 7 });
    assert.ok(r.killed);
    // The smallest failing trace is a single release of a page without references.
    assert.equal(r.shrunkLength, 1);
    assert.equal(r.counterexample!.ops[0]!.op, 'release');
    assert.equal(r.caughtBy, 'result-mismatch');
  });

  it('is reproducible from the seed, and run k is run 0 of seed runSeed(S, k)', () => {
    const a = checkDomain(toyDomain, { runs: 20, maxOps: 20, seed: 99, mutant: 'release-unchecked' });
    const b = checkDomain(toyDomain, { runs: 20, maxOps: 20, seed: 99, mutant: 'release-unchecked' });
    assert.ok(a.failure && b.failure);
    assert.deepEqual(a.failure.ops, b.failure.ops);
    assert.equal(a.failure.seed, runSeed(99, a.failure.run));
    const again = checkDomain(toyDomain, { runs: 1, maxOps: 20, seed: a.failure.seed, mutant: 'release-unchecked' });
    assert.deepEqual(again.failure?.ops, a.failure.ops);
  });

  it('splits a campaign into shards whose totals add up', () => {
    const whole = checkDomain(toyDomain, { runs: 40, maxOps: 20, seed: 5 });
    const s1 = checkDomain(toyDomain, { runs: 40, maxOps: 20, seed: 5, shard: { index: 0, count: 2 } });
    const s2 = checkDomain(toyDomain, { runs: 40, maxOps: 20, seed: 5, shard: { index: 1, count: 2 } });
    assert.equal(s1.runsExecuted + s2.runsExecuted, whole.runsExecuted);
    assert.equal(s1.tallies.steps + s2.tallies.steps, whole.tallies.steps);
  });

  it('flags an invariant whose premise is never reached as weakly exercised', () => {
    const out = checkDomain(toyDomain, { runs: 30, maxOps: 20, seed: 3 });
    const j = talliesJson(out.tallies) as { invariants: { [k: string]: { weaklyExercised: boolean } } };
    assert.equal(j.invariants['bounded-by-1000']!.weaklyExercised, true);
    assert.equal(j.invariants['non-negative']!.weaklyExercised, false);
    assert.match(formatTallies(out.tallies), /bounded-by-1000 .*WEAKLY EXERCISED/);
  });

  it('reports an invariant violation on a hand-built trace against a mutant', () => {
    const ops: ToyOp[] = [{ op: 'release', args: { page: 0 } }];
    const out = runTrace(toyDomain, { pages: 1 }, ops, { tallies: emptyTallies() }, toyDomain.mutants[0]!.create);
    assert.equal(out.failure?.kind, 'result-mismatch');
  });

  it('prints a counterexample with the trace, the failing step and the reproduction', () => {
    const r = runMutant(toyDomain, 'release-unchecked', { seed: 7 });
    const text = formatCounterexample(toyDomain, r.counterexample!, '.hvspec/failures/toy-x.json');
    assert.match(text, />> 1\. release page=0/);
    assert.match(text, /model: \{"ok":false,"error":"ENOENT"\}/);
    assert.match(text, /impl: +\{"ok":true\}/);
    assert.match(text, /reproduce: hvspec check --domain toy --seed -?\d+ --runs 1 --impl mutant:release-unchecked/);
  });

  it('saves counterexamples as case files that replay', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hvspec-'));
    const r = runMutant(toyDomain, 'release-unchecked', { seed: 7 });
    const file = saveCounterexample(toyDomain, r.counterexample!, dir);
    // A mutant's counterexample is kept apart, tagged with the mutant: the impl's corpus replay does not see it.
    assert.equal(path.dirname(path.resolve(file)), path.join(dir, 'mutants'));
    assert.match(path.basename(file), /^toy-release-unchecked-[0-9a-f]{12}\.json$/);
    assert.deepEqual(listCorpus(['toy'], dir), []);
    assert.deepEqual(listCorpus(['toy'], path.join(dir, 'mutants')).map((f) => path.basename(f)), [path.basename(file)]);
    assert.equal(JSON.parse(fs.readFileSync(path.resolve(file), 'utf8')).found.mutant, 'release-unchecked');
    const { mutant: _m, ...asImpl } = r.counterexample!;
    const implFile = saveCounterexample(toyDomain, asImpl, dir);
    assert.deepEqual(listCorpus(['toy'], dir).map((f) => path.basename(f)), [path.basename(implFile)]);
    const loaded = decodeCase(JSON.parse(fs.readFileSync(path.resolve(file), 'utf8')), file, [toy]);
    assert.ok(loaded.ok);
  });
});

describe('harness: codecs', () => {
  it('strict objects accept optional fields and reject unknown ones', () => {
    const c = strict({ a: intRange(0, 3) }, { b: t.string });
    assert.ok(decode(c, { a: 1 }).ok);
    assert.ok(decode(c, { a: 1, b: 'x' }).ok);
    assert.ok(!decode(c, { a: 1, c: 1 }).ok);
    assert.ok(!decode(c, []).ok);
    assert.ok(c.is({ a: 1 }) && !c.is({ a: 9 }) && !c.is({ a: 1, z: 1 }));
  });
  it('op codecs check the name first', () => {
    const oc = opCodec({ a: strict({}) });
    const r = decode(oc, { op: 'b' });
    assert.ok(!r.ok && /unknown op "b"/.test(r.errors[0]!.message));
    assert.ok(!decode(oc, 'a').ok);
    assert.ok(oc.is({ op: 'a', args: {} }));
  });
  it('deep equality, partial match and first difference', () => {
    assert.ok(deepEqual({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] }));
    assert.ok(!deepEqual({ a: [1] }, { a: [2] }));
    assert.ok(deepEqual({ a: 1, b: undefined }, { a: 1 }));
    assert.equal(partialMatch({ ok: true }, { ok: true, x: 1 }), null);
    assert.match(partialMatch({ ok: true }, { ok: false })!, /ok: expected true, got false/);
    assert.equal(firstDifference({ a: { b: [1, 2] } }, { a: { b: [1, 3] } }), '$.a.b[1]: 2 vs 3');
  });
});

describe('harness: incremental checking (liveView)', () => {
  // A toy pair keeping a live View. `forgetReset` makes both live Views miss
  // `reset` (an unreported change in plumbing both sides share, so the live
  // Views still agree with each other); `padding` makes the View large.
  type LiveView = { refs: number[]; padding: number[] };
  class Live {
    private readonly refs: number[];
    private readonly padding: number[];
    views = 0;
    constructor(pages: number, pad: number, private readonly forgetReset: boolean) {
      this.refs = new Array<number>(pages).fill(0);
      this.padding = new Array<number>(pad).fill(0);
      this.live = { refs: [...this.refs], padding: [...this.padding] };
    }
    /** Patched op by op, as a real live View is. */
    private readonly live: LiveView;
    apply(op: ToyOp): { ok: true } {
      if (op.op === 'take') {
        this.refs[op.args.page]!++;
        this.live.refs[op.args.page]!++;
      }
      if (op.op === 'reset') {
        this.refs.fill(0);
        if (!this.forgetReset) this.live.refs.fill(0);
      }
      return { ok: true };
    }
    view(): LiveView {
      this.views++;
      return { refs: [...this.refs], padding: [...this.padding] };
    }
    liveView(): { view: LiveView; scope: undefined } {
      return { view: this.live, scope: undefined };
    }
  }
  const domainWith = (pad: number, forgetReset: boolean, made: Live[]) =>
    ({
      ...toyDomain,
      invariants: [],
      createModel: (c: { pages: number }) => {
        const s = new Live(c.pages, pad, forgetReset);
        made.push(s);
        return s;
      },
      createImpl: (c: { pages: number }) => {
        const s = new Live(c.pages, pad, forgetReset);
        made.push(s);
        return s;
      },
    }) as unknown as typeof toyDomain;
  const takes = (n: number): ToyOp[] => Array.from({ length: n }, (_, i) => ({ op: 'take', args: { page: i % 2 } }));

  it('an unreported change is caught as live-view-stale at the next full check', () => {
    const ops: ToyOp[] = [...takes(3), { op: 'reset', args: {} }, ...takes(100)];
    const out = runTrace(domainWith(0, true, []), { pages: 2 }, ops);
    assert.equal(out.failure?.kind, 'live-view-stale');
    assert.equal(out.failure?.side, 'model');
    assert.match(out.failure?.message ?? '', /live View differs from a fresh abstraction/);
    assert.equal(out.failure?.step, 63, 'the first periodic full check');
    const every = runTrace(domainWith(0, true, []), { pages: 2 }, ops, { fullCheckEvery: 1 });
    assert.equal(every.failure?.step, 3, 'checked at every step, caught where it happened');
    const end = runTrace(domainWith(0, true, []), { pages: 2 }, ops.slice(0, 10));
    assert.equal(end.failure?.step, 9, 'and always at the end of the trace');
    assert.equal(runTrace(domainWith(0, false, []), { pages: 2 }, ops).failure, null);
  });

  it('full checks run every max(64, |View| / 16) steps', () => {
    const small: Live[] = [];
    assert.equal(runTrace(domainWith(0, false, small), { pages: 2 }, takes(300)).failure, null);
    // Steps 63, 127, 191, 255 and the last.
    assert.deepEqual(small.map((s) => s.views), [5, 5]);
    const big: Live[] = [];
    assert.equal(runTrace(domainWith(5000, false, big), { pages: 2 }, takes(700)).failure, null);
    // Two fresh Views of 1 + (1 + 2) + (1 + 5000) nodes: 10,010 nodes, a full check every 626 steps: 63, 689, 699.
    assert.deepEqual(big.map((s) => s.views), [3, 3]);
  });
});
