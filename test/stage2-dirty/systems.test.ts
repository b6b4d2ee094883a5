import { strict as assert } from 'assert';
import type { System } from '../../harness/domain';
import { resolveConfig } from '../../spec/stage2-dirty/config';
import type { Config, Op, Result, View } from '../../spec/stage2-dirty/types';
import { createModel } from '../../model/stage2-dirty/model';
import { Stage2DirtyImpl, S2_PTE_S2AP_W, S2_PTE_TABLE, S2_PTE_VALID, createImpl } from '../../impl/stage2-dirty/impl';
import { invariants } from '../../spec/stage2-dirty/invariants';
import { stage2DirtyDomain } from '../../domains/stage2-dirty';

function cfg(input: unknown): Config {
  const r = resolveConfig(input);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.value;
}

const small = cfg({ memslots: [{ id: 0, baseGfn: 0, npages: 32, backing: 'thp' }], blockPages: 8 });

type Sys = System<Op, Result, View>;
const EINVAL_R = { ok: false, error: 'EINVAL' };
const both = (c: Config): Array<[string, Sys]> => [
  ['model', createModel(c)],
  ['impl', createImpl(c)],
];

const W = (gfn: number, value?: number): Op => ({ op: 'guestWrite', args: value === undefined ? { gfn } : { gfn, value } });
const R = (gfn: number): Op => ({ op: 'guestRead', args: { gfn } });
const on = (slot: number): Op => ({ op: 'enableDirtyLog', args: { slot } });
const off = (slot: number): Op => ({ op: 'disableDirtyLog', args: { slot } });
const get = (slot: number): Op => ({ op: 'getDirtyLog', args: { slot } });
const map = (gfn: number): Op => ({ op: 'mappingOf', args: { gfn } });

function holdAll(c: Config, v: View, who: string): void {
  for (const inv of invariants) assert.equal(inv.check(v, c), null, `${who}: ${inv.id}`);
}

/** Impl with its internals reachable for white-box checks. */
class Probe extends Stage2DirtyImpl {
  tableCountOf(level: number): number[] {
    const out: number[] = [];
    for (let t = 0; t < this.tables.length; t++) if (this.tableLevel[t] === level && this.tableFreed[t] === 0) out.push(this.tableCount[t]!);
    return out;
  }
  l2DescLo(gfn: number): number {
    this.stage2Walk(gfn);
    const l2 = this.stage2GetPmd(gfn);
    return this.tables[l2]![2 * this.l2Index(gfn)]!;
  }
  bitmapOf(id: number): Uint32Array | null {
    return this.slotsById.get(id)!.dirtyBitmap;
  }
  tlbSize(): number {
    return this.tlbPages.size + this.tlbBlocks.size;
  }
  freeTwice(tid: number): void {
    this.freeTablePage(tid);
    this.freeTablePage(tid);
  }
  access(gfn: number, write: boolean): Result {
    return this.guestAccess(gfn, write, 1);
  }
}

describe('stage2-dirty model and implementation', () => {
  it('map a block before logging, dissolve it on the first logged write, log at page granularity', () => {
    for (const [who, s] of both(small)) {
      assert.deepEqual(s.apply(W(3, 30)), { ok: true }, who);
      assert.deepEqual(s.apply(map(7)), { ok: true, mapped: true, size: '2m', writable: true }, who);
      s.apply(on(0));
      assert.deepEqual(s.apply(map(7)), { ok: true, mapped: true, size: '2m', writable: false }, who);
      assert.deepEqual(s.apply(R(6)), { ok: true, value: 0 }, who);
      s.apply(W(4, 40));
      assert.deepEqual(s.apply(map(4)), { ok: true, mapped: true, size: '4k', writable: true }, who);
      assert.deepEqual(s.apply(map(6)), { ok: true, mapped: false }, who);
      assert.deepEqual(s.apply(get(0)), { ok: true, dirty: [4] }, who);
      assert.deepEqual(s.apply(R(3)), { ok: true, value: 30 }, who);
      holdAll(small, s.view(), who);
    }
  });

  it('the implementation counts table pages the kernel way through dissolve and collapse', () => {
    const p = new Probe(small);
    p.apply(W(3, 1));
    assert.deepEqual(p.tableCountOf(2), [2]); // one block
    assert.equal(p.l2DescLo(3) & (S2_PTE_VALID | S2_PTE_TABLE), S2_PTE_VALID);
    p.apply(on(0));
    p.apply(W(4, 2));
    assert.deepEqual(p.tableCountOf(2), [2]); // block entry gone, table entry in its place
    assert.deepEqual(p.tableCountOf(3), [2]); // one page
    assert.equal(p.l2DescLo(4) & (S2_PTE_VALID | S2_PTE_TABLE), S2_PTE_VALID | S2_PTE_TABLE);
    p.apply(off(0));
    p.apply(W(5, 3)); // blocks again: the page table is unmapped and freed
    assert.deepEqual(p.tableCountOf(3), []);
    assert.deepEqual(p.tableCountOf(2), [2]);
    assert.notEqual(p.l2DescLo(5) & S2_PTE_S2AP_W, 0);
    holdAll(small, p.view(), 'impl');
    const c = p.counters();
    assert.equal(c['blocksDissolved'], 1);
    assert.equal(c['tablesCollapsed'], 1);
    assert.ok(c['faults']! >= 3 && c['tlbFlushAll']! >= 1 && c['tablePagesAllocated']! >= 3);
  });

  it('unmaps free empty tables; a double free is visible to table-counts', () => {
    const p = new Probe(small);
    p.apply(on(0));
    p.apply(W(1, 1));
    p.apply(W(9, 2));
    p.apply({ op: 'unmapRange', args: { gfn: 0, npages: 32 } });
    assert.deepEqual(p.tableCountOf(3), []);
    assert.deepEqual(p.tableCountOf(2), []);
    holdAll(small, p.view(), 'impl');
    assert.deepEqual(p.apply({ op: 'unmapRange', args: { gfn: 0, npages: 0 } }), { ok: true });
    const q = new Probe(small);
    q.apply(W(1, 1));
    q.freeTwice(1);
    const msg = invariants.find((i) => i.id === 'table-counts')!.check(q.view(), small);
    assert.ok(msg !== null && msg.includes('twice'), String(msg));
  });

  it('the bitmap is 32-bit words in whole 64-page pairs, fetched word by word', () => {
    const c = cfg({ memslots: [{ id: 2, baseGfn: 100, npages: 70, backing: '4k' }], blockPages: 8 });
    const p = new Probe(c);
    p.apply(on(2));
    assert.equal(p.bitmapOf(2)!.length, 4);
    for (const g of [100, 131, 132, 163, 164, 169]) p.apply(W(g));
    assert.deepEqual(p.apply(get(2)), { ok: true, dirty: [100, 131, 132, 163, 164, 169] });
    assert.deepEqual([...p.bitmapOf(2)!], [0, 0, 0, 0]);
    p.apply(off(2));
    assert.equal(p.bitmapOf(2), null);
  });

  it('initiallySet sets exactly the slot pages', () => {
    const c = cfg({ memslots: [{ id: 0, baseGfn: 0, npages: 37, backing: '4k' }], blockPages: 8, manualProtect: true, initiallySet: true });
    for (const [who, s] of both(c)) {
      s.apply(on(0));
      const r = s.apply(get(0));
      assert.ok('dirty' in r && r.dirty.length === 37 && r.dirty[36] === 36, who);
      holdAll(c, s.view(), who);
    }
  });

  it('frames above 2^20 use the descriptor high word', () => {
    const c = cfg({
      memslots: [
        { id: 0, baseGfn: 0, npages: 2 ** 21, backing: '4k' },
        { id: 1, baseGfn: 2 ** 21 + 512, npages: 1024, backing: 'hugetlb' },
      ],
      blockPages: 512,
    });
    for (const [who, s] of both(c)) {
      s.apply(W(2 ** 21 + 700, 5));
      s.apply(W(2 ** 21 - 1, 6));
      assert.deepEqual(s.apply(R(2 ** 21 + 700)), { ok: true, value: 5 }, who);
      assert.deepEqual(s.apply(R(2 ** 21 - 1)), { ok: true, value: 6 }, who);
      const v = s.view();
      assert.ok(v.mappings.some((m) => m.size === '2m' && m.pfn >= 2 ** 21), who);
      holdAll(c, v, who);
    }
  });

  it('answers bad input with errors, never throws', () => {
    for (const [who, s] of both(small)) {
      assert.deepEqual(s.apply(R(99)), { ok: false, error: 'MMIO' }, who);
      assert.deepEqual(s.apply(map(99)), { ok: false, error: 'EINVAL' }, who);
      assert.deepEqual(s.apply(on(3)), { ok: false, error: 'EINVAL' }, who);
      assert.deepEqual(s.apply(off(3)), { ok: false, error: 'EINVAL' }, who);
      // A free id below KVM_USER_MEM_SLOTS is ENOENT, one at or above it EINVAL (kvm_get_dirty_log_protect).
      assert.deepEqual(s.apply(get(3)), { ok: false, error: 'ENOENT' }, who);
      assert.deepEqual(s.apply(get(32767)), { ok: false, error: 'EINVAL' }, who);
      assert.deepEqual(s.apply(get(0)), { ok: false, error: 'ENOENT' }, who);
      assert.deepEqual(s.apply({ op: 'clearDirtyLog', args: { slot: 3, first: 0, num: 0 } }), { ok: false, error: 'ENOENT' }, who);
      assert.deepEqual(s.apply({ op: 'clearDirtyLog', args: { slot: 3, first: 1, num: 0 } }), { ok: false, error: 'EINVAL' }, who);
      assert.deepEqual(s.apply({ op: 'clearDirtyLog', args: { slot: 40000, first: 0, num: 0 } }), { ok: false, error: 'EINVAL' }, who);
      assert.deepEqual(s.apply({ op: 'clearDirtyLog', args: { slot: 0, first: 0, num: 0 } }), { ok: false, error: 'ENOENT' }, who);
      s.apply(on(0));
      assert.deepEqual(s.apply({ op: 'clearDirtyLog', args: { slot: 0, first: 0, num: 5 } }), { ok: false, error: 'EINVAL' }, who);
      assert.deepEqual(s.apply({ op: 'tlbEvict', args: { gfn: 5 } }), { ok: true }, who);
      assert.deepEqual(s.apply({ op: 'unmapRange', args: { gfn: 2 ** 40, npages: Number.MAX_SAFE_INTEGER - 2 ** 40 } }), { ok: true }, who);
    }
  });

  const region = (slot: number, baseGfn: number, npages: number, more: Partial<{ logDirty: boolean; readonly: boolean; backing: 'thp' | '4k' | 'hugetlb' }> = {}): Op => ({
    op: 'setUserMemoryRegion',
    args: { slot, baseGfn, npages, ...more },
  });

  it('KVM_SET_USER_MEMORY_REGION: errnos in upstream order (as observed on the live kernel)', () => {
    const c = cfg({ memslots: [{ id: 0, baseGfn: 0, npages: 32, backing: 'thp' }], blockPages: 8, userMemSlots: 10 });
    for (const [who, s] of both(c)) {
      const e = (op: Op) => s.apply(op);
      assert.deepEqual(e(region(10, 100, 8)), EINVAL_R, who); // id at the limit
      assert.deepEqual(e(region(3, 100, 2 ** 31)), EINVAL_R, who); // more than KVM_MEM_MAX_NR_PAGES
      assert.deepEqual(e(region(3, 0, 0)), EINVAL_R, who); // delete a free id
      assert.deepEqual(e(region(0, 0, 33)), EINVAL_R, who); // resize
      assert.deepEqual(e(region(0, 0, 32, { readonly: true })), EINVAL_R, who); // KVM_MEM_READONLY flipped
      assert.deepEqual(e(region(0, 0, 32, { backing: '4k' })), EINVAL_R, who); // other host memory
      assert.deepEqual(e(region(0, 0, 33, { readonly: true })), EINVAL_R, who);
      assert.deepEqual(e(region(3, 24, 16)), { ok: false, error: 'EEXIST' }, who); // overlap
      assert.deepEqual(e(region(3, 2 ** 36 - 4, 8)), { ok: false, error: 'EFAULT' }, who); // beyond the IPA
      assert.deepEqual(e(region(3, 32, 16, { readonly: true, logDirty: true })), { ok: true }, who); // RO + logging accepted
      assert.deepEqual(e(region(0, 0, 32)), { ok: true }, who); // nothing to change
      assert.deepEqual(e(region(3, 0, 0)), { ok: true }, who); // delete
      assert.deepEqual(e(get(3)), { ok: false, error: 'ENOENT' }, who);
      holdAll(c, s.view(), who);
    }
  });

  it('a moved slot keeps its memory and its bitmap; a deleted one loses both', () => {
    const c = cfg({ memslots: [{ id: 0, baseGfn: 0, npages: 32, backing: 'thp' }], blockPages: 8, manualProtect: true });
    for (const [who, s] of both(c)) {
      s.apply(W(9, 90));
      s.apply(on(0));
      s.apply(W(3, 30));
      assert.deepEqual(s.apply(region(0, 64, 32, { logDirty: true })), { ok: true }, who);
      assert.deepEqual(s.apply(map(9)), { ok: false, error: 'EINVAL' }, who);
      assert.deepEqual(s.apply(get(0)), { ok: true, dirty: [67] }, who);
      assert.deepEqual(s.apply(R(73)), { ok: true, value: 90 }, who);
      assert.deepEqual(s.apply(R(67)), { ok: true, value: 30 }, who);
      holdAll(c, s.view(), who);
      assert.deepEqual(s.apply(region(0, 0, 0)), { ok: true }, who);
      assert.deepEqual(s.apply(R(67)), { ok: false, error: 'MMIO' }, who);
      assert.deepEqual(s.apply(region(5, 64, 32)), { ok: true }, who);
      assert.deepEqual(s.apply(R(67)), { ok: true, value: 0 }, who); // fresh host memory
      assert.equal(s.view().mappings.every((m) => m.gfn >= 64), true, who);
      holdAll(c, s.view(), who);
    }
  });

  it('CLEAR with a user bitmap clears and re-protects only the pages passed and set', () => {
    const c = cfg({ memslots: [{ id: 0, baseGfn: 0, npages: 100, backing: '4k' }], blockPages: 8, manualProtect: true });
    for (const [who, s] of both(c)) {
      s.apply(on(0));
      s.apply(W(1));
      s.apply(W(2));
      assert.deepEqual(s.apply(get(0)), { ok: true, dirty: [1, 2] }, who);
      s.apply(W(5)); // dirtied between the GET and the CLEAR
      assert.deepEqual(s.apply({ op: 'clearDirtyLog', args: { slot: 0, first: 0, num: 100, bits: [1, 2, 7] } }), { ok: true }, who);
      assert.deepEqual(s.view().slots[0]!.kept, [5], who);
      assert.deepEqual(s.apply(map(1)), { ok: true, mapped: true, size: '4k', writable: false }, who);
      assert.deepEqual(s.apply(map(5)), { ok: true, mapped: true, size: '4k', writable: true }, who);
      assert.deepEqual(s.apply(get(0)), { ok: true, dirty: [5] }, who);
      assert.deepEqual(s.view().slots[0]!.kept, [], who);
      holdAll(c, s.view(), who);
    }
  });

  it('INITIALLY_SET: enabling does not write-protect; each CLEAR protects what it clears (arm64)', () => {
    const c = cfg({ memslots: [{ id: 0, baseGfn: 0, npages: 64, backing: 'thp' }], blockPages: 8, manualProtect: true, initiallySet: true });
    for (const [who, s] of both(c)) {
      s.apply(W(3, 1));
      s.apply(on(0));
      assert.deepEqual(s.apply(map(3)), { ok: true, mapped: true, size: '2m', writable: true }, who);
      assert.deepEqual(s.apply(W(4, 2)), { ok: true }, who); // through the writable block: no fault, bit already set
      holdAll(c, s.view(), who);
      assert.deepEqual(s.apply({ op: 'clearDirtyLog', args: { slot: 0, first: 0, num: 64, bits: [4] } }), { ok: true }, who);
      assert.deepEqual(s.apply(map(3)), { ok: true, mapped: true, size: '2m', writable: false }, who);
      s.apply(W(4, 3));
      assert.deepEqual(s.apply(map(4)), { ok: true, mapped: true, size: '4k', writable: true }, who);
      holdAll(c, s.view(), who);
    }
  });

  it('a logged read-only slot: writes exit, nothing is marked, read faults may map blocks', () => {
    const c = cfg({ memslots: [{ id: 0, baseGfn: 0, npages: 16, backing: 'thp', readonly: true }], blockPages: 8 });
    for (const [who, s] of both(c)) {
      assert.deepEqual(s.apply(on(0)), { ok: true }, who);
      assert.deepEqual(s.apply(W(3)), { ok: false, error: 'MMIO' }, who);
      assert.deepEqual(s.apply(R(3)), { ok: true, value: 0 }, who);
      assert.deepEqual(s.apply(map(3)), { ok: true, mapped: true, size: '2m', writable: false }, who);
      assert.deepEqual(s.apply(get(0)), { ok: true, dirty: [] }, who);
      assert.equal(s.view().blocksWhileLogging, 0, who);
      holdAll(c, s.view(), who);
    }
  });

  it('a clear of a range larger than the ghost set, and writes without a value', () => {
    const c = cfg({ memslots: [{ id: 0, baseGfn: 0, npages: 200, backing: '4k' }], blockPages: 8, manualProtect: true });
    for (const [who, s] of both(c)) {
      s.apply(on(0));
      s.apply(W(150));
      assert.deepEqual(s.apply({ op: 'clearDirtyLog', args: { slot: 0, first: 0, num: 200 } }), { ok: true }, who);
      assert.deepEqual(s.apply(get(0)), { ok: true, dirty: [] }, who);
      assert.deepEqual(s.apply(R(150)), { ok: true, value: 0 }, who);
      holdAll(c, s.view(), who);
    }
  });

  it('the TLB is flushed when logging starts and refilled by accesses', () => {
    const p = new Probe(small);
    p.apply(W(2, 1));
    p.apply(R(20));
    assert.equal(p.tlbSize(), 2);
    p.apply(on(0));
    assert.equal(p.tlbSize(), 0);
    assert.deepEqual(p.access(40, false), { ok: false, error: 'MMIO' });
  });

  it('the model fingerprint is canonical', () => {
    const a = createModel(small);
    const b = createModel(small);
    for (const s of [a, b]) {
      s.apply(W(3, 1));
      s.apply(on(0));
      s.apply(W(4, 2));
    }
    b.apply(map(4));
    assert.equal(a.fingerprint(), b.fingerprint());
    b.apply({ op: 'tlbEvict', args: { gfn: 4 } });
    assert.notEqual(a.fingerprint(), b.fingerprint()); // a cached translation is state
    a.apply({ op: 'tlbEvict', args: { gfn: 4 } });
    assert.equal(a.fingerprint(), b.fingerprint());
    b.apply(W(5, 2));
    assert.notEqual(a.fingerprint(), b.fingerprint());
    assert.deepEqual(a.counters(), { faults: 2 });
  });

  it('the exploration alphabet runs in lockstep from the exploration config', () => {
    const d = stage2DirtyDomain;
    const r = d.resolveConfig(d.exploration!.config);
    assert.ok(r.ok);
    if (!r.ok) return;
    const ops = d.exploration!.alphabet(r.value);
    assert.ok(ops.length >= 10 && ops.length <= 30);
    const m = d.createModel(r.value);
    const i = d.createImpl(r.value);
    for (const op of [...ops, ...ops]) assert.deepEqual(i.apply(op), m.apply(op), JSON.stringify(op));
    assert.equal(d.viewsAgree!(m.view(), i.view()), null);
    assert.equal(d.describeOp!(ops[2]!), 'guestWrite gfn=5 value=1');
  });

  it('viewsAgree names the first observable difference', () => {
    const d = stage2DirtyDomain;
    const m = d.createModel(small);
    const i = d.createImpl(small);
    m.apply(W(3, 1));
    assert.match(d.viewsAgree!(m.view(), i.view()) ?? '', /mappings|memory/);
    i.apply(W(3, 1));
    assert.equal(d.viewsAgree!(m.view(), i.view()), null);
    m.apply(on(0));
    assert.match(d.viewsAgree!(m.view(), i.view()) ?? '', /slots/);
    const v = i.view();
    assert.match(d.viewsAgree!(v, { ...v, memory: [] }) ?? '', /memory/);
    assert.match(d.viewsAgree!(v, { ...v, blocksWhileLogging: 1 }) ?? '', /blocksWhileLogging/);
  });
});
