import { strict as assert } from 'assert';
import { resolveConfig } from '../../spec/stage2-dirty/config';
import { firstMissing, invariants, leafAt, sortedHas } from '../../spec/stage2-dirty/invariants';
import type { Config, View } from '../../spec/stage2-dirty/types';

const cfgR = resolveConfig({
  memslots: [
    { id: 0, baseGfn: 0, npages: 32, backing: 'thp' },
    { id: 1, baseGfn: 32, npages: 16, backing: '4k' },
  ],
  blockPages: 8,
});
if (!cfgR.ok) throw new Error('bad test config');
const config: Config = cfgR.value;

/** A consistent View: slot 0 logged, page 3 written and dirty (and kept by the last CLEAR), a read-only block at 16, a table page. */
function good(): View {
  return {
    slots: [
      { id: 0, baseGfn: 0, npages: 32, readonly: false, logging: true, dirty: [3], written: [3], initial: [], kept: [3] },
      { id: 1, baseGfn: 32, npages: 16, readonly: false, logging: false, dirty: [], written: [], initial: [], kept: [] },
    ],
    mappings: [
      { gfn: 3, pfn: 3, writable: true, size: '4k' },
      { gfn: 16, pfn: 16, writable: false, size: '2m' },
      { gfn: 33, pfn: 41, writable: true, size: '4k' },
    ],
    tlb: [
      { gfn: 3, npages: 1, pfn: 3, writable: true },
      { gfn: 16, npages: 8, pfn: 16, writable: false },
    ],
    tables: [
      { id: 0, level: 1, baseGfn: 0, count: 2, valid: 1, refs: 0, free: false, freedTwice: false },
      { id: 1, level: 2, baseGfn: 0, count: 3, valid: 2, refs: 1, free: false, freedTwice: false },
      { id: 2, level: 3, baseGfn: 0, count: 2, valid: 1, refs: 1, free: false, freedTwice: false },
      { id: 3, level: 3, baseGfn: 8, count: 0, valid: 0, refs: 0, free: true, freedTwice: false },
    ],
    memory: [{ gfn: 3, expected: 7, host: 7, mapped: 7 }],
    blocksWhileLogging: 0,
  };
}

const byId = (id: string) => {
  const inv = invariants.find((i) => i.id === id);
  if (!inv) throw new Error(id);
  return inv;
};

function violates(id: string, v: View, word: string): void {
  const inv = byId(id);
  const msg = inv.check(v, config);
  assert.ok(msg !== null, `${id} should reject this View`);
  assert.ok(msg.includes(word), `${id}: "${msg}" should mention ${word}`);
  assert.ok(!msg.includes('\n'));
  assert.equal(inv.exercised(v, config), true, `${id} should count this View as exercised`);
}

describe('stage2-dirty invariants on hand-built Views', () => {
  it('all hold on a consistent View, and are exercised by it', () => {
    for (const inv of invariants) {
      assert.equal(inv.check(good(), config), null, inv.id);
      assert.equal(inv.exercised(good(), config), true, inv.id);
      assert.ok(inv.statement.length > 20 && inv.source.length > 10 && inv.title.length > 5);
    }
    assert.equal(invariants.length, 8);
  });

  it('none is exercised by an empty View', () => {
    const v: View = { slots: [], mappings: [], tlb: [], tables: [], memory: [], blocksWhileLogging: 0 };
    for (const inv of invariants) {
      assert.equal(inv.check(v, config), null, inv.id);
      assert.equal(inv.exercised(v, config), false, inv.id);
    }
  });

  it('dirty-complete: a logged write whose bit is clear', () => {
    const v = good();
    v.slots[0]!.written = [3, 5];
    violates('dirty-complete', v, 'gfn 5');
    const w = good();
    w.slots[0]!.initial = [9];
    violates('dirty-complete', w, 'gfn 9');
  });

  it('dirty-exact: a dirty bit for a page never written', () => {
    const v = good();
    v.slots[0]!.dirty = [3, 4];
    violates('dirty-exact', v, 'gfn 4');
    const w = good();
    w.slots[0]!.dirty = [3, 4];
    w.slots[0]!.initial = [4];
    assert.equal(byId('dirty-exact').check(w, config), null);
  });

  it('writable-implies-dirty: writable clean page, writable block, writable TLB entries', () => {
    const a = good();
    a.mappings[0] = { gfn: 3, pfn: 3, writable: true, size: '4k' };
    a.slots[0]!.dirty = [];
    a.slots[0]!.written = [];
    a.tlb = [];
    violates('writable-implies-dirty', a, 'gfn 3');
    const b = good();
    b.mappings[1] = { gfn: 16, pfn: 16, writable: true, size: '2m' };
    violates('writable-implies-dirty', b, 'block');
    const c = good();
    c.tlb[1] = { gfn: 16, npages: 8, pfn: 16, writable: true };
    violates('writable-implies-dirty', c, 'TLB');
    const d = good();
    d.tlb.push({ gfn: 4, npages: 1, pfn: 4, writable: true });
    violates('writable-implies-dirty', d, 'gfn 4');
  });

  it('no-block-while-logging: writable block over a logged page, block installed while logging', () => {
    const a = good();
    a.mappings[1] = { gfn: 16, pfn: 16, writable: true, size: '2m' };
    violates('no-block-while-logging', a, 'gfn 16');
    const b = good();
    b.blocksWhileLogging = 2;
    const msg = byId('no-block-while-logging').check(b, config);
    assert.ok(msg?.includes('2 block'));
    assert.equal(byId('no-block-while-logging').exercised(good(), config), true);
  });

  it('clear-keeps-unpassed-bits: a bit the last CLEAR was not given is gone', () => {
    const v = good();
    v.slots[0]!.kept = [3, 6];
    violates('clear-keeps-unpassed-bits', v, 'gfn 6');
    const w = good();
    w.slots[0]!.kept = [];
    assert.equal(byId('clear-keeps-unpassed-bits').exercised(w, config), false);
  });

  it('with INITIALLY_SET a writable block over logged pages is allowed while every bit under it is set', () => {
    const lazy: Config = { ...config, manualProtect: true, initiallySet: true };
    const v = good();
    v.mappings[1] = { gfn: 16, pfn: 16, writable: true, size: '2m' };
    v.tlb[1] = { gfn: 16, npages: 8, pfn: 16, writable: true };
    v.slots[0]!.dirty = [3, 16, 17, 18, 19, 20, 21, 22, 23];
    v.slots[0]!.initial = [16, 17, 18, 19, 20, 21, 22, 23];
    for (const id of ['no-block-while-logging', 'writable-implies-dirty', 'dirty-exact']) assert.equal(byId(id).check(v, lazy), null, id);
    // Without INITIALLY_SET the same View is wrong.
    assert.ok(byId('no-block-while-logging').check(v, config)?.includes('writable block'));
    // And once one page under the block was cleared, it is wrong with INITIALLY_SET too.
    v.slots[0]!.dirty = v.slots[0]!.dirty.filter((g) => g !== 18);
    v.slots[0]!.initial = v.slots[0]!.initial.filter((g) => g !== 18);
    assert.ok(byId('no-block-while-logging').check(v, lazy)?.includes('gfn 18'));
    v.mappings[1] = { gfn: 16, pfn: 16, writable: false, size: '2m' };
    assert.ok(byId('writable-implies-dirty').check(v, lazy)?.includes('TLB'));
  });

  it('a logged read-only slot is not a logging one for the block rules (memslot_is_logging)', () => {
    const v = good();
    v.slots[0]!.readonly = true;
    v.mappings[1] = { gfn: 16, pfn: 16, writable: true, size: '2m' };
    assert.equal(byId('no-block-while-logging').check(v, config), null);
  });

  it('tlb-coherent: stale, wrong-frame and over-permissive TLB entries', () => {
    const a = good();
    a.tlb.push({ gfn: 5, npages: 1, pfn: 5, writable: false });
    violates('tlb-coherent', a, 'gfn 5');
    const b = good();
    b.tlb[0] = { gfn: 3, npages: 1, pfn: 4, writable: false };
    violates('tlb-coherent', b, 'frame');
    const c = good();
    c.tlb.push({ gfn: 18, npages: 1, pfn: 18, writable: true });
    violates('tlb-coherent', c, 'read-only');
  });

  it('table-counts: wrong count, lost page, shared page, use after free, double free', () => {
    const a = good();
    a.tables[1]!.count = 4;
    violates('table-counts', a, 'count 4');
    const b = good();
    b.tables[2]!.refs = 0;
    violates('table-counts', b, 'lost');
    const c = good();
    c.tables[2]!.refs = 2;
    violates('table-counts', c, 'referenced by 2');
    const d = good();
    d.tables[3]!.refs = 1;
    violates('table-counts', d, 'free but');
    const e = good();
    e.tables[3]!.freedTwice = true;
    violates('table-counts', e, 'twice');
  });

  it('memory-intact: host frame or mapping lost the last write', () => {
    const a = good();
    a.memory[0] = { gfn: 3, expected: 7, host: 0, mapped: 0 };
    violates('memory-intact', a, 'gfn 3');
    const b = good();
    b.memory[0] = { gfn: 3, expected: 7, host: 7, mapped: 9 };
    violates('memory-intact', b, 'mapping');
  });

  it('helpers: sorted membership and leaf lookup', () => {
    assert.equal(sortedHas([1, 4, 9], 4), true);
    assert.equal(sortedHas([1, 4, 9], 5), false);
    assert.equal(sortedHas([], 5), false);
    assert.equal(firstMissing([1, 3, 5], [1, 5], [3]), -1);
    assert.equal(firstMissing([1, 3, 5], [1, 5]), 3);
    assert.equal(firstMissing([], [1]), -1);
    assert.equal(firstMissing([7], []), 7);
    const m = good().mappings;
    assert.equal(leafAt(m, 20, config)?.gfn, 16);
    assert.equal(leafAt(m, 24, config), undefined);
    assert.equal(leafAt(m, 2, config), undefined);
  });
});
