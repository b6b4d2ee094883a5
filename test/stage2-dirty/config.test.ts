import { strict as assert } from 'assert';
import { blockEligible, clearRangeValid, encodeConfig, hostBases, resolveConfig, slotIndexById, slotIndexOf, validateOp } from '../../spec/stage2-dirty/config';
import type { Config, Op } from '../../spec/stage2-dirty/types';

function ok(input: unknown): Config {
  const r = resolveConfig(input);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.value;
}

function errs(input: unknown): string[] {
  const r = resolveConfig(input);
  assert.equal(r.ok, false);
  return r.ok ? [] : r.errors.map((e) => `${e.path}: ${e.message}`);
}

describe('stage2-dirty config', () => {
  it('fills the defaults of the domain page: one 1024-page THP slot, 512-page blocks', () => {
    const c = ok({});
    assert.deepEqual(c, {
      memslots: [{ id: 0, baseGfn: 0, npages: 1024, backing: 'thp', readonly: false }],
      blockPages: 512,
      manualProtect: false,
      initiallySet: false,
      userMemSlots: 32767,
    });
    assert.deepEqual(ok(undefined), c);
    assert.deepEqual(ok(encodeConfig(c)), c);
  });

  it('fills memslot defaults (thp, writable)', () => {
    const c = ok({ memslots: [{ id: 4, baseGfn: 10, npages: 3 }], blockPages: 8 });
    assert.deepEqual(c.memslots[0], { id: 4, baseGfn: 10, npages: 3, backing: 'thp', readonly: false });
  });

  it('reports type errors at their JSON path', () => {
    const e = errs({ memslots: [{ id: 0, baseGfn: -1, npages: 0, backing: '1g' }], bogus: 1 });
    assert.ok(e.some((s) => s.startsWith('$.config.memslots[0].baseGfn')), e.join('\n'));
    assert.ok(e.some((s) => s.startsWith('$.config.memslots[0].npages')), e.join('\n'));
    assert.ok(e.some((s) => s.startsWith('$.config.memslots[0].backing')), e.join('\n'));
    assert.ok(e.some((s) => s.startsWith('$.config.bogus') && s.includes('unknown field')), e.join('\n'));
  });

  it('reports semantic errors: overlaps, duplicate ids, block size, initiallySet without manualProtect, IPA range, root size', () => {
    const e = errs({
      memslots: [
        { id: 0, baseGfn: 0, npages: 16 },
        { id: 0, baseGfn: 8, npages: 16 },
        { id: 2, baseGfn: 2 ** 36 - 1, npages: 2 },
      ],
      blockPages: 12,
      initiallySet: true,
    });
    const has = (p: string, word: string) => assert.ok(e.some((s) => s.startsWith(p) && s.includes(word)), `${p} ${word}\n${e.join('\n')}`);
    has('$.config.memslots[1].id', 'already used');
    has('$.config.memslots[1].baseGfn', 'overlaps');
    has('$.config.memslots[2].npages', 'IPA');
    has('$.config.blockPages', 'power of two');
    has('$.config.initiallySet', 'manualProtect');
    const r = errs({ memslots: [{ id: 0, baseGfn: 2 ** 30, npages: 1 }], blockPages: 2 });
    assert.ok(r[0]!.startsWith('$.config.memslots') && r[0]!.includes('root'), r.join('\n'));
  });

  it('lays slots out in host memory congruent to their gfn modulo the block size', () => {
    const c = ok({
      memslots: [
        { id: 0, baseGfn: 3, npages: 10 },
        { id: 1, baseGfn: 21, npages: 5 },
      ],
      blockPages: 8,
    });
    const b = hostBases(c);
    assert.equal(b[0]! % 8, 3);
    assert.equal(b[1]! % 8, 21 % 8);
    assert.ok(b[1]! >= b[0]! + 10);
    assert.equal(slotIndexOf(c, 12), 0);
    assert.equal(slotIndexOf(c, 13), -1);
    assert.equal(slotIndexById(c, 1), 1);
    assert.equal(slotIndexById(c, 9), -1);
  });

  it('allows a block only for huge-page backing and a whole aligned block inside the slot', () => {
    const m = { baseGfn: 3, npages: 21, backing: 'thp' as const, hostBase: 11 };
    assert.equal(blockEligible(m, 3, 8), false); // block 0..7 starts before the slot
    assert.equal(blockEligible(m, 9, 8), true); // 8..15
    assert.equal(blockEligible(m, 17, 8), true); // 16..23, page 23 is the slot's last
    assert.equal(blockEligible({ ...m, npages: 20 }, 17, 8), false);
    assert.equal(blockEligible({ ...m, backing: '4k' }, 9, 8), false);
    // A moved slot whose guest and host offsets in a block no longer agree (fault_supports_stage2_huge_mapping).
    assert.equal(blockEligible({ ...m, hostBase: 12 }, 9, 8), false);
  });

  it('takes the KVM_USER_MEM_SLOTS of the host and refuses a slot id at or above it', () => {
    assert.equal(ok({ userMemSlots: 32764 }).userMemSlots, 32764);
    const e = errs({ userMemSlots: 4, memslots: [{ id: 4, baseGfn: 0, npages: 8 }] });
    assert.ok(e[0]!.startsWith('$.config.memslots[0].id') && e[0]!.includes('userMemSlots'), e.join('\n'));
    assert.ok(errs({ userMemSlots: 0 })[0]!.startsWith('$.config.userMemSlots'));
  });

  it('validateOp refuses unsorted or out-of-range CLEAR bits and regions beyond what is modelled', () => {
    const c = ok({ blockPages: 8 });
    const v = (op: Op) => validateOp(op, c).map((e) => e.path);
    assert.deepEqual(v({ op: 'clearDirtyLog', args: { slot: 0, first: 0, num: 64, bits: [1, 5, 63] } }), []);
    assert.deepEqual(v({ op: 'clearDirtyLog', args: { slot: 0, first: 0, num: 64, bits: [5, 1] } }), ['$.args.bits[1]']);
    assert.deepEqual(v({ op: 'clearDirtyLog', args: { slot: 0, first: 0, num: 64, bits: [64] } }), ['$.args.bits[0]']);
    assert.deepEqual(v({ op: 'setUserMemoryRegion', args: { slot: 1, baseGfn: 0, npages: 2 ** 25 } }), ['$.args.npages']);
    assert.deepEqual(v({ op: 'setUserMemoryRegion', args: { slot: 1, baseGfn: 2 ** 30, npages: 8 } }), ['$.args.baseGfn']);
    // Answered by the page, so not refused: more than KVM_MEM_MAX_NR_PAGES (EINVAL), beyond the IPA (EFAULT).
    assert.deepEqual(v({ op: 'setUserMemoryRegion', args: { slot: 1, baseGfn: 0, npages: 2 ** 31 } }), []);
    assert.deepEqual(v({ op: 'setUserMemoryRegion', args: { slot: 1, baseGfn: 2 ** 36, npages: 8 } }), []);
  });

  it('applies the KVM_CLEAR_DIRTY_LOG 64-page rule', () => {
    assert.equal(clearRangeValid(200, 0, 64), true);
    assert.equal(clearRangeValid(200, 128, 72), true); // ends at the slot end
    assert.equal(clearRangeValid(200, 128, 70), false);
    assert.equal(clearRangeValid(200, 1, 63), false);
    assert.equal(clearRangeValid(200, 256, 0), false);
    assert.equal(clearRangeValid(200, 192, 9), false);
    assert.equal(clearRangeValid(200, 0, 0), true);
  });
});
