import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import * as fc from 'fast-check';
import { checkDomain } from '../../harness/check';
import { runMutant } from '../../harness/mutants';
import { loadCaseFile, replayCase } from '../../harness/cases';
import { runTrace } from '../../harness/lockstep';
import { stage2DirtyDomain as d } from '../../domains/stage2-dirty';
import { findDomain } from '../../domains';
import { DOMAINS } from '../../domains';

const CASES = path.join(__dirname, '..', '..', '..', 'spec', 'cases', 'stage2-dirty');
const caseFiles = fs
  .readdirSync(CASES)
  .filter((f) => f.endsWith('.json'))
  .map((f) => path.join(CASES, f));

describe('stage2-dirty lockstep property', function () {
  this.timeout(300000);

  it('is registered', () => {
    assert.equal(findDomain('stage2-dirty')?.id, 'stage2-dirty');
  });

  it('holds for the implementation at the check budget, and every invariant and op is exercised', () => {
    const out = checkDomain(d, { runs: d.budget.runs, maxOps: d.budget.maxOps, seed: 20141114 });
    assert.equal(out.failure, null, out.failure ? `${out.failure.failure.kind}: ${out.failure.failure.message}` : '');
    assert.equal(out.runsExecuted, d.budget.runs);
    for (const inv of d.invariants) {
      const t = out.tallies.invariants[inv.id];
      assert.ok(t && t.nonTrivial > 0, `${inv.id} never exercised`);
    }
    for (const op of Object.keys(d.opArgs)) assert.ok((out.tallies.ops[op]?.generated ?? 0) > 0, `${op} never generated`);
    let bad = 0;
    for (const t of Object.values(out.tallies.ops)) for (const n of Object.values(t.errors)) bad += n;
    const share = bad / out.tallies.steps;
    assert.ok(share > 0.03 && share < 0.3, `bad-input share ${share}`);
    assert.ok((out.tallies.counters.impl['blocksDissolved'] ?? 0) > 0, 'no block was ever dissolved');
    assert.ok((out.tallies.counters.impl['tablesCollapsed'] ?? 0) > 0, 'blocks never came back after logging');
  });

  it('generated configs use huge-page backing, and traces change memslots and pass partial CLEAR bitmaps', () => {
    let huge = 0;
    let regionOps = 0;
    let partial = 0;
    for (const { config, ops } of fc.sample(d.arbitraries.config().chain((c) => d.arbitraries.ops(c, 40).map((ops) => ({ config: c, ops }))), { seed: 11, numRuns: 80 })) {
      if (config.memslots.some((m) => m.backing !== '4k')) huge++;
      for (const op of ops) {
        if (op.op === 'setUserMemoryRegion') regionOps++;
        if (op.op === 'clearDirtyLog' && op.args.bits !== undefined) partial++;
        if (d.validateOp) assert.deepEqual(d.validateOp(op, config), [], JSON.stringify(op));
      }
    }
    assert.ok(huge > 40, `only ${huge} of 80 configs have a huge-page-backed slot`);
    assert.ok(regionOps > 20, `only ${regionOps} setUserMemoryRegion ops`);
    assert.ok(partial > 10, `only ${partial} clearDirtyLog ops with a bitmap`);
  });

  it('generated configs resolve and generated traces decode', () => {
    for (const { config, ops } of fc.sample(d.arbitraries.config().chain((c) => d.arbitraries.ops(c, 30).map((ops) => ({ config: c, ops }))), { seed: 7, numRuns: 50 })) {
      const r = d.resolveConfig(d.encodeConfig(config));
      assert.ok(r.ok);
      assert.deepEqual(r.ok && r.value, config);
      assert.ok(config.memslots.length >= 1 && config.memslots.every((m) => m.id < config.userMemSlots));
      for (const op of ops) assert.ok(d.opArgs[op.op]!.is(op.args), JSON.stringify(op));
      assert.ok(ops.length <= 30);
    }
  });

  for (const m of d.mutants) {
    it(`kills mutant ${m.id} within the mutant budget`, () => {
      const r = runMutant(d, m.id, { seed: 1 });
      assert.ok(r.killed, `${m.id} survived ${d.mutantBudget.runs} runs`);
      assert.ok(r.caughtBy !== null);
      // Either an expected invariant, or a result/view difference from the model.
      assert.ok(
        m.expectedToViolate.includes(r.caughtBy!) || ['result-mismatch', 'view-mismatch'].includes(r.caughtBy!) || d.invariants.some((i) => i.id === r.caughtBy),
        `${m.id} caught by ${r.caughtBy}`,
      );
    });
  }

  it('each invariant is the first catcher of some mutant', () => {
    const caught = new Set<string>();
    for (const m of d.mutants) {
      const r = runMutant(d, m.id, { seed: 1 });
      if (r.caughtBy) caught.add(r.caughtBy);
    }
    for (const inv of d.invariants) assert.ok(caught.has(inv.id), `${inv.id} caught no mutant`);
  });
});

describe('stage2-dirty case files', () => {
  it('there are at least 12', () => {
    assert.ok(caseFiles.length >= 12, String(caseFiles.length));
  });

  for (const f of caseFiles) {
    it(`replays ${path.basename(f)}`, () => {
      const c = loadCaseFile(f, DOMAINS);
      assert.ok(c.ok, c.ok ? '' : c.errors.map((e) => `${e.path}: ${e.message}`).join('\n'));
      if (!c.ok) return;
      const out = replayCase(c.value);
      assert.equal(out.failure, null, out.failure?.message);
    });
  }

  it('every mutant fails at least one case', () => {
    for (const m of d.mutants) {
      let failed = 0;
      for (const f of caseFiles) {
        const c = loadCaseFile(f, DOMAINS);
        if (c.ok && replayCase(c.value, { mutant: m.id }).failure) failed++;
      }
      assert.ok(failed > 0, `${m.id} passes every case`);
    }
  });

  it('a bad case is rejected with paths', () => {
    const bad = path.join(require('os').tmpdir(), 'stage2-dirty-bad-case.json');
    fs.writeFileSync(
      bad,
      JSON.stringify({
        format: 'hvspec-case/1',
        name: 'bad',
        domain: 'stage2-dirty',
        config: { memslots: [{ id: 0, baseGfn: 0, npages: 8 }, { id: 1, baseGfn: 4, npages: 8 }] },
        steps: [
          { op: 'guestWrite', args: { gfn: -1 } },
          { op: 'clearDirtyLog', args: { slot: 0 } },
          { op: 'clearDirtyLog', args: { slot: 0, first: 0, num: 8, bits: [3, 1] } },
          { op: 'setUserMemoryRegion', args: { slot: 1, baseGfn: 0, npages: 2 ** 25 } },
        ],
      }),
    );
    const c = loadCaseFile(bad, DOMAINS);
    assert.equal(c.ok, false);
    if (c.ok) return;
    const paths = c.errors.map((e) => e.path);
    assert.ok(paths.includes('$.config.memslots[1].baseGfn'), paths.join(' '));
    assert.ok(paths.includes('$.steps[0].args.gfn'), paths.join(' '));
    assert.ok(paths.some((p) => p.startsWith('$.steps[1].args')), paths.join(' '));
    // The config is bad here, so validateOp is not consulted; the same steps with a good config:
    const good = path.join(require('os').tmpdir(), 'stage2-dirty-bad-bits.json');
    fs.writeFileSync(
      good,
      JSON.stringify({
        format: 'hvspec-case/1',
        name: 'bad bits',
        domain: 'stage2-dirty',
        config: { memslots: [{ id: 0, baseGfn: 0, npages: 8 }], blockPages: 8 },
        steps: [
          { op: 'clearDirtyLog', args: { slot: 0, first: 0, num: 8, bits: [3, 1] } },
          { op: 'setUserMemoryRegion', args: { slot: 1, baseGfn: 0, npages: 2 ** 25 } },
        ],
      }),
    );
    const g = loadCaseFile(good, DOMAINS);
    assert.equal(g.ok, false);
    if (g.ok) return;
    const gp = g.errors.map((e) => e.path);
    assert.ok(gp.includes('$.steps[0].args.bits[1]'), gp.join(' '));
    assert.ok(gp.includes('$.steps[1].args.npages'), gp.join(' '));
  });

  it('an empty trace checks the initial state', () => {
    const r = d.resolveConfig({});
    assert.ok(r.ok);
    if (r.ok) assert.equal(runTrace(d, r.value, []).failure, null);
  });
});
