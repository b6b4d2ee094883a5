import { strict as assert } from 'assert';
import { toyDomain } from '../fixtures/toy';
import * as fc from 'fast-check';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { canonicalJson, explore, restoreInto, snapshotOf } from '../../harness/explore';
import { FpSet, Hasher, hashValue } from '../../harness/fpset';
import { DOMAINS, REGISTRY_MODULE } from '../../domains';
import { copyStateInto } from '../../harness/clone';
import { exploreInWorkers } from '../../harness/explore-parallel';
import type { Domain, OpShape, ResultShape, System } from '../../harness/domain';
import { diffViews, explainTrace, violationsOf } from '../../harness/trace';
import { renderHtml } from '../../harness/html';
import { checkInWorkers, mergeOutcomes } from '../../harness/parallel';
import { checkDomain } from '../../harness/check';
import { deepEqual } from '../../harness/codec';

describe('harness: bounded exploration', () => {
  const config = { pages: 2 };
  const alphabet = toyDomain.exploration!.alphabet(config);

  it('explores the correct impl to the requested depth without violation', async () => {
    const out = await explore(toyDomain, config, alphabet, { depth: 4, maxStates: 100_000 });
    assert.equal(out.violation, null);
    assert.equal(out.stoppedBy, 'depth');
    assert.equal(out.depthCompleted, 4);
    // States are count vectors (a, b) with a + b <= 4: 15 of them.
    assert.equal(out.states, 15);
    assert.ok(out.transitions >= out.states - 1);
  });

  it('finds the shortest counterexample of a mutant', async () => {
    const out = await explore(toyDomain, config, alphabet, { depth: 4, maxStates: 100_000 }, toyDomain.mutants[0]!.create);
    assert.equal(out.stoppedBy, 'violation');
    assert.equal(out.violation!.ops.length, 1);
    assert.equal(out.violation!.ops[0]!.op, 'release');
  });

  it('stops at --max-states and when interrupted', async () => {
    const capped = await explore(toyDomain, config, alphabet, { depth: 10, maxStates: 5 });
    assert.equal(capped.stoppedBy, 'max-states');
    assert.equal(capped.states, 5);
    const stopped = await explore(toyDomain, config, alphabet, { depth: 10, maxStates: 1000, shouldStop: () => true });
    assert.equal(stopped.stoppedBy, 'interrupted');
  });

  it('canonical JSON ignores key order', () => {
    assert.equal(canonicalJson({ b: 1, a: [{ d: 2, c: 3 }] }), canonicalJson({ a: [{ c: 3, d: 2 }], b: 1 }));
  });
});

describe('harness: traces explained and the HTML page', () => {
  it('diffs views as added, removed and changed leaves', () => {
    assert.deepEqual(diffViews({ a: 1, b: { c: 2 } }, { a: 2, d: [1, 2] }), ['~ a: 1 -> 2', '+ d = [1,2]', '- b.c (was 2)']);
  });

  it('explains every step and collects every violation of a mutant trace', () => {
    const steps = explainTrace(toyDomain, { pages: 1 }, [{ op: 'take', args: { page: 0 } }, { op: 'release', args: { page: 0 } }, { op: 'release', args: { page: 0 } }], toyDomain.mutants[0]!.create);
    assert.deepEqual(steps[0]!.changes, ['~ refs: [0] -> [1]']);
    assert.deepEqual(steps[2]!.violated.map((v) => v.id), ['non-negative']);
    const v = violationsOf(steps, deepEqual);
    assert.ok(v.has('non-negative') && v.has('result-mismatch'));
  });

  it('renders a self-contained page with the kill matrix', () => {
    const html = renderHtml({
      generatedAt: 'now',
      seed: 1,
      domains: [
        {
          id: 'toy',
          title: 'toy',
          summary: 's',
          runs: 1,
          steps: 2,
          invariants: [{ id: 'non-negative', title: 't', statement: 'st', source: 'src', checks: 10, nonTrivial: 0 }],
          mutants: [{ id: 'release-unchecked', title: 'm', source: 'src', killed: true, caughtBy: 'non-negative', violates: ['non-negative'], shrunkLength: 1 }],
          ops: { take: { generated: 3, ok: 2, errors: { EINVAL: 1 } } },
          traces: [{ title: 'tr', origin: 'o', config: {}, failure: 'f <b>', steps: [{ n: 1, op: 'take page=0', model: '{}', impl: '{}', changes: ['+ a = 1'], implChanges: null, violated: [], failing: true }] }],
        },
      ],
    });
    assert.match(html, /<table class="matrix" data-domain="toy">/);
    assert.match(html, /class="cell first"/);
    assert.match(html, /weakly exercised/);
    assert.match(html, /f &lt;b&gt;/);
    assert.doesNotMatch(html, /<script|https?:\/\/(?!json-schema)/);
  });

  it('merges slices of one campaign into the totals of the whole', () => {
    const whole = checkDomain(toyDomain, { runs: 30, maxOps: 20, seed: 8 });
    const parts = [0, 1, 2].map((i) => checkDomain(toyDomain, { runs: 30, maxOps: 20, seed: 8, shard: { index: i, count: 3 } }));
    const merged = mergeOutcomes(parts, 0);
    assert.equal(merged.runsExecuted, whole.runsExecuted);
    assert.deepEqual(merged.tallies.ops, whole.tallies.ops);
    assert.deepEqual(merged.tallies.invariants, whole.tallies.invariants);
  });

  it('keeps the lowest failing run when slices fail', () => {
    const whole = checkDomain(toyDomain, { runs: 30, maxOps: 20, seed: 8, mutant: 'release-unchecked' });
    const parts = [0, 1].map((i) => checkDomain(toyDomain, { runs: 30, maxOps: 20, seed: 8, mutant: 'release-unchecked', shard: { index: i, count: 2 } }));
    assert.equal(mergeOutcomes(parts, 0).failure!.run, whole.failure!.run);
  });

  it('worker processes: a mutant found in a worker is the single process\'s counterexample, with progress', async function () {
    this.timeout(20000);
    const opts = { runs: 40, maxOps: 30, seed: 1, mutant: 'set-pgd-off-by-one' };
    const { DOMAINS } = await import('../../domains');
    const shadow = DOMAINS.find((d) => d.id === 'shadow-pt')!;
    const whole = shadow.use((d) => checkDomain(d, opts));
    assert.ok(whole.failure, 'the mutant is caught in one process');
    const seen: number[] = [];
    const two = await checkInWorkers(REGISTRY_MODULE, 'shadow-pt', { ...opts, onProgress: (done) => seen.push(done) }, 2);
    assert.equal(two.failure!.run, whole.failure!.run);
    assert.equal(two.failure!.failure.kind, whole.failure!.failure.kind);
    assert.ok(seen.length > 0, 'progress arrives from the workers');
  });

  it('worker processes: an error in a worker rejects with its message', async function () {
    this.timeout(20000);
    await assert.rejects(checkInWorkers(REGISTRY_MODULE, 'no-such-domain', { runs: 4, maxOps: 5, seed: 1 }, 2), /unknown domain no-such-domain/);
  });
});

describe('harness: exploration by snapshots and hashed fingerprints', () => {
  it('a 64-bit fingerprint set: add, has, growth, no false duplicates', () => {
    const s = new FpSet(4);
    const h = new Hasher();
    for (let i = 0; i < 5000; i++) {
      h.reset();
      h.num(i);
      assert.equal(s.add(h.hi(), h.lo()), true, `state ${i} is new`);
    }
    assert.equal(s.size, 5000);
    h.reset();
    h.num(1234);
    assert.equal(s.add(h.hi(), h.lo()), false);
    assert.equal(s.has(h.hi(), h.lo()), true);
    assert.equal(s.add(0, 0), true, 'the all-zero hash is a value like any other');
    assert.equal(s.has(0, 0), true);
  });

  it('hashes Views canonically: key order does not matter, values do', () => {
    const hv = (v: unknown): string => {
      const h = new Hasher();
      hashValue(h, v);
      return `${h.hi()}:${h.lo()}`;
    };
    assert.equal(hv({ b: 1, a: { d: 2, c: [3, 4] } }), hv({ a: { c: [3, 4], d: 2 }, b: 1 }));
    assert.notEqual(hv({ a: [3, 4] }), hv({ a: [4, 3] }));
    assert.notEqual(hv({ a: 1, b: 2 }), hv({ a: 2, b: 1 }));
    assert.notEqual(hv({ a: 1 }), hv({ a: '1' }));
    assert.notEqual(hv(new Map([[1, 2]])), hv(new Map([[2, 1]])));
    assert.equal(hv(new Set([1, 2])), hv(new Set([2, 1])));
  });

  it('stopping at --max-states or a time limit is incomplete, never complete', async () => {
    const config = { pages: 2 };
    const alphabet = toyDomain.exploration!.alphabet(config);
    const capped = await explore(toyDomain, config, alphabet, { depth: 10, maxStates: 5 });
    assert.equal(capped.verdict, 'incomplete');
    const timed = await explore(toyDomain, config, alphabet, { depth: 10, maxStates: 1e6, timeLimitMs: 0 });
    assert.equal(timed.stoppedBy, 'time-limit');
    assert.equal(timed.verdict, 'incomplete');
    const done = await explore(toyDomain, config, alphabet, { depth: 3, maxStates: 1e6 });
    assert.equal(done.verdict, 'complete');
    assert.ok(done.collisionProbability > 0 && done.collisionProbability < 1e-15);
    assert.ok(done.bytesPerState > 0);
  });

  /** The reference: the old explorer, replaying every path from fresh systems, deduplicating by full text. */
  function replayCount<C, O extends OpShape, R extends ResultShape, V, S>(d: Domain<C, O, R, V, S>, config: C, alphabet: readonly O[], depth: number): number {
    const fp = (x: System<O, R, V, S>): string => (x.fingerprint ? x.fingerprint() : canonicalJson(x.view()));
    const seen = new Set<string>();
    const m0 = d.createModel(config);
    const i0 = d.createImpl(config);
    seen.add(fp(m0) + '\u0000' + fp(i0));
    let frontier: number[][] = [[]];
    for (let k = 0; k < depth; k++) {
      const next: number[][] = [];
      for (const path of frontier) {
        for (let a = 0; a < alphabet.length; a++) {
          const m = d.createModel(config);
          const i = d.createImpl(config);
          for (const x of [...path, a]) {
            m.apply(alphabet[x]!);
            i.apply(alphabet[x]!);
          }
          const f = fp(m) + '\u0000' + fp(i);
          if (seen.has(f)) continue;
          seen.add(f);
          next.push([...path, a]);
        }
      }
      frontier = next;
    }
    return seen.size;
  }

  for (const some of DOMAINS) {
    it(`${some.id}: snapshots reach exactly the states path replay reaches (hashed and exact)`, async function () {
      this.timeout(120000);
      await some.use(async (d) => {
        const r = d.resolveConfig(d.exploration!.config);
        assert.ok(r.ok);
        const config = r.value;
        const alphabet = d.exploration!.alphabet(config);
        const depth = 3;
        const hashed = await explore(d, config, alphabet, { depth, maxStates: 1e6 });
        const exact = await explore(d, config, alphabet, { depth, maxStates: 1e6, exact: true });
        assert.equal(hashed.verdict, 'complete');
        assert.equal(hashed.states, exact.states);
        assert.equal(hashed.transitions, exact.transitions);
        assert.equal(hashed.states, replayCount(d, config, alphabet, depth));
      });
    });

    it(`${some.id}: model and impl survive a snapshot-restore-and-continue round trip`, () => {
      some.use((d) => {
        fc.assert(
          fc.property(
            d.arbitraries.config().chain((c) => fc.tuple(fc.constant(c), d.arbitraries.ops(c, 30), fc.nat(30))),
            ([config, ops, cut]) => {
              for (const create of [d.createModel, d.createImpl]) {
                const a = create(config);
                const k = Math.min(cut, ops.length);
                for (const op of ops.slice(0, k)) a.apply(op);
                const snap = snapshotOf(a);
                const b = create(config);
                // Restore into a system in another state: nothing of its own may survive.
                for (const op of ops.slice(k)) b.apply(op);
                restoreInto(b, snap);
                for (const op of ops.slice(k)) assert.deepEqual(b.apply(op), a.apply(op));
                assert.deepEqual(b.view(), a.view());
                // The snapshot is not consumed: restoring again gives the cut state.
                const c2 = create(config);
                restoreInto(c2, snap);
                const fresh = create(config);
                for (const op of ops.slice(0, k)) fresh.apply(op);
                assert.deepEqual(c2.view(), fresh.view());
              }
            },
          ),
          { numRuns: 25, seed: 11 },
        );
      });
    });
  }
});

describe('harness: the generic copy keeps typed arrays that share a buffer shared', () => {
  it('copies the buffer once and rebuilds both views on the copy', () => {
    class Sys {
      readonly buf = new ArrayBuffer(16);
      readonly whole = new Uint32Array(this.buf);
      readonly tail = new Uint32Array(this.buf, 8, 2);
    }
    const a = new Sys();
    a.tail[0] = 7;
    const b = copyStateInto(new Sys(), a);
    assert.equal(b.whole[2], 7);
    b.tail[1] = 9;
    assert.equal(b.whole[3], 9, 'a write through one view shows in the other');
    assert.equal(a.whole[3], 0, 'the original is untouched');
  });
});

describe('harness: parallel exploration (explore --workers)', () => {
  for (const id of ['sev-cache', 'stage2-dirty']) {
    it(`${id}: two workers reach the same states and transitions as one process`, async function () {
      this.timeout(120000);
      const some = DOMAINS.find((x) => x.id === id)!;
      await some.use(async (d) => {
        const r = d.resolveConfig(d.exploration!.config);
        assert.ok(r.ok);
        const alphabet = d.exploration!.alphabet(r.value);
        const one = await explore(d, r.value, alphabet, { depth: 3, maxStates: 1e6 });
        const two = await exploreInWorkers(d, r.value, alphabet, { registry: REGISTRY_MODULE, depth: 3, maxStates: 1e6 }, 2);
        assert.equal(two.verdict, 'complete');
        assert.equal(two.states, one.states);
        assert.equal(two.transitions, one.transitions);
        const cappedOne = await explore(d, r.value, alphabet, { depth: 5, maxStates: 50 });
        const cappedTwo = await exploreInWorkers(d, r.value, alphabet, { registry: REGISTRY_MODULE, depth: 5, maxStates: 50 }, 2);
        assert.equal(cappedTwo.verdict, 'incomplete');
        assert.equal(cappedTwo.states, cappedOne.states);
      });
    });
  }

  it('finds a mutant\'s shortest trace, as long as one process\'s', async function () {
    this.timeout(120000);
    const some = DOMAINS.find((x) => x.id === 'sev-cache')!;
    await some.use(async (d) => {
      const r = d.resolveConfig(d.exploration!.config);
      assert.ok(r.ok);
      const alphabet = d.exploration!.alphabet(r.value);
      const m = d.mutants.find((x) => x.id === 'register-without-clflush')!;
      const one = await explore(d, r.value, alphabet, { depth: 6, maxStates: 1e6 }, m.create);
      const two = await exploreInWorkers(d, r.value, alphabet, { registry: REGISTRY_MODULE, depth: 6, maxStates: 1e6, mutant: m.id }, 2, m.create);
      assert.equal(one.verdict, 'violation');
      assert.equal(two.verdict, 'violation');
      assert.equal(two.violation!.ops.length, one.violation!.ops.length);
    });
  });
});

describe('hvspec explore: the verdict in text, --json and the exit code', () => {
  const bin = path.join(__dirname, '..', '..', '..', 'bin', 'hvspec.js');
  const run = (args: string[]) => spawnSync(process.execPath, [bin, 'explore', ...args], { encoding: 'utf8', cwd: os.tmpdir() });

  it('complete: exit 0; stopped at --max-states: incomplete, exit 3', function () {
    this.timeout(60000);
    const done = run(['--domain', 'sev-cache', '--depth', '2']);
    assert.equal(done.status, 0, done.stderr);
    assert.match(done.stdout, /verdict: complete/);
    const capped = run(['--domain', 'sev-cache', '--depth', '6', '--max-states', '20', '--json']);
    assert.equal(capped.status, 3, capped.stderr);
    const report = JSON.parse(capped.stdout) as { verdict: string; stoppedBy: string; bytesPerState: number };
    assert.equal(report.verdict, 'incomplete');
    assert.equal(report.stoppedBy, 'max-states');
    const text = run(['--domain', 'sev-cache', '--depth', '6', '--max-states', '20']);
    assert.equal(text.status, 3);
    assert.match(text.stdout, /INCOMPLETE/);
    const two = run(['--domain', 'sev-cache', '--depth', '3', '--workers', '2', '--json']);
    assert.equal(two.status, 0, two.stderr);
    assert.equal((JSON.parse(two.stdout) as { states: number }).states, (JSON.parse(run(['--domain', 'sev-cache', '--depth', '3', '--json']).stdout) as { states: number }).states);
    const bad = run(['--domain', 'sev-cache', '--workers', '2', '--exact']);
    assert.equal(bad.status, 2);
  });
});
