import { strict as assert } from 'assert';
import { toyDomain } from '../fixtures/toy';
import { canonicalJson, explore } from '../../harness/explore';
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
    const two = await checkInWorkers('shadow-pt', { ...opts, onProgress: (done) => seen.push(done) }, 2);
    assert.equal(two.failure!.run, whole.failure!.run);
    assert.equal(two.failure!.failure.kind, whole.failure!.failure.kind);
    assert.ok(seen.length > 0, 'progress arrives from the workers');
  });

  it('worker processes: an error in a worker rejects with its message', async function () {
    this.timeout(20000);
    await assert.rejects(checkInWorkers('no-such-domain', { runs: 4, maxOps: 5, seed: 1 }, 2), /unknown domain no-such-domain/);
  });
});
