import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import * as fc from 'fast-check';
import { shadowPtDomain as d, viewsAgree } from '../../domains/shadow-pt';
import { findDomain } from '../../domains';
import { ShadowPtModel } from '../../model/shadow-pt/model';
import { ShadowPtImpl } from '../../impl/shadow-pt/impl';
import { MUTANTS } from '../../properties/shadow-pt/mutants';
import { planWorld } from '../../properties/shadow-pt/arbitraries';
import {
  INVARIANTS,
  kernelCoherent,
  noDoubleRelease,
  refcountBalance,
  releaseAllOnDestroy,
  shadowSound,
  switcherIntact,
  tablesOwned,
} from '../../spec/shadow-pt/invariants';
import {
  emptyScope,
  emptyView,
  entryFrame,
  mergeScopes,
  resolveConfig,
  SWITCHER_CODE_FLAGS,
  SWITCHER_REGS_FLAGS,
  type Config,
  type Op,
  type Result,
  type View,
} from '../../spec/shadow-pt/types';
import { checkDomain } from '../../harness/check';
import { runMutant } from '../../harness/mutants';
import { runTrace } from '../../harness/lockstep';
import { deepEqual } from '../../harness/codec';
import { loadCaseFile, replayCase } from '../../harness/cases';
import { DOMAINS } from '../../domains';

const P = 1;
const RW = 2;
const U = 4;
const A = 0x20;
const D = 0x40;
const PSE = 0x80;
const K = 0xc0000000;
const UV = 0x08000000;
const TA = 0x1000;
const TB = 0x2000;
const HB = 0x10000;

function cfg(input: object = {}): Config {
  const r = resolveConfig({ pgdirSlots: 2, guestPages: 256, hostCpus: 2, ...input });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.value;
}

type Sys = ShadowPtModel | ShadowPtImpl;
const w = (gpa: number, value: number): Op => ({ op: 'guestWrite', args: { gpa, value } });
const boot: Op[] = [
  { op: 'lguestInit', args: { kernelAddress: K } },
  { op: 'newPagetable', args: { pgtable: TA, victim: 0 } },
];
/** Non-PAE: PGD entry for UV in A -> PTE page gfn 4; kernel PGD in A and B -> gfn 3. */
const userChain = (frame: number, flags: number): Op[] => [w(TA + (UV >>> 22) * 4, 0x4000 | 0x67), w(0x4000, frame * 4096 + flags)];
const kernelChain = (frame: number, flags: number): Op[] => [
  w(TA + (K >>> 22) * 4, 0x3000 | 0x63),
  w(TB + (K >>> 22) * 4, 0x3000 | 0x63),
  w(0x3000, frame * 4096 + flags),
];

function run(sys: Sys, ops: Op[]): Result[] {
  return ops.map((o) => sys.apply(o));
}
function both(c: Config, ops: Op[]): { m: ShadowPtModel; i: ShadowPtImpl; rm: Result[]; ri: Result[] } {
  const m = new ShadowPtModel(c);
  const i = new ShadowPtImpl(c);
  const rm = run(m, ops);
  const ri = run(i, ops);
  assert.deepEqual(ri, rm, 'model and impl results differ');
  assert.ok(deepEqual(m.view(), i.view()), 'model and impl views differ');
  assert.ok(deepEqual(m.liveView().view, m.view()), 'model live view is stale');
  assert.ok(deepEqual(i.liveView().view, i.view()), 'impl live view is stale');
  for (const inv of INVARIANTS) {
    assert.equal(inv.check(m.view(), c), null, `${inv.id} on the model`);
    assert.equal(inv.check(i.view(), c), null, `${inv.id} on the impl`);
  }
  return { m, i, rm, ri };
}

describe('shadow-pt: config', () => {
  it('fills defaults and derives the Switcher address per geometry', () => {
    const a = resolveConfig({});
    assert.ok(a.ok);
    assert.equal(a.ok && a.value.switcherAddr, 0xffc00000);
    assert.equal(a.ok && a.value.pgdirSlots, 4);
    assert.equal(a.ok && a.value.guestPages, 4096);
    const b = resolveConfig({ pae: true });
    assert.equal(b.ok && b.value.switcherAddr, 0xffe00000);
    assert.deepEqual(resolveConfig(d.encodeConfig(cfg())), { ok: true, value: cfg() });
  });
  it('names the path of semantic errors', () => {
    const r = resolveConfig({ readOnlyPages: [1, 9999], guestPages: 64, switcherAddr: 0x1234 });
    assert.equal(r.ok, false);
    const paths = r.ok ? [] : r.errors.map((e) => e.path);
    assert.ok(paths.includes('$.config.readOnlyPages[1]'));
    assert.ok(paths.includes('$.config.switcherAddr'));
    const r2 = resolveConfig({ hostCpus: 256, pae: true });
    assert.ok(!r2.ok && r2.errors[0]!.path === '$.config.hostCpus');
    const r3 = resolveConfig({ hostBase: 2 ** 20 });
    assert.ok(!r3.ok && r3.errors[0]!.path === '$.config.hostBase');
    const r4 = resolveConfig({ bogus: 1 });
    assert.ok(!r4.ok && r4.errors[0]!.path === '$.config.bogus');
    const r5 = resolveConfig({ guestPages: 1 << 20 });
    assert.ok(!r5.ok && r5.errors.some((e) => e.path === '$.config.guestPages'));
  });
  it('is registered', () => {
    assert.ok(findDomain('shadow-pt'));
  });
});

describe('shadow-pt: model and implementation', () => {
  const c = cfg();
  it('starts linear with the Switcher mapped in slot 0', () => {
    const { m } = both(c, []);
    const v = m.view();
    assert.equal(v.linear, true);
    assert.deepEqual(v.slots['0'], { gpgdir: 0, switcherMapped: true, lastHostCpu: -1 });
    assert.deepEqual(v.sptes[`0:${0xffc00000 / 4096}`], { pfn: HB + 256, flags: SWITCHER_CODE_FLAGS, gpte: -1, from: -1, gen: 0 });
  });
  it('maps read faults read-only and write faults writable, one reference each', () => {
    const { rm, i } = both(c, [
      ...boot,
      ...userChain(0x40, P | U | RW),
      { op: 'pageFault', args: { vaddr: UV, errcode: 4 } },
      { op: 'translate', args: { vaddr: UV } },
      { op: 'pageFault', args: { vaddr: UV + 5, errcode: 6 } },
      { op: 'translate', args: { vaddr: UV } },
      { op: 'hostRefs', args: { gfn: 0x40 } },
    ]);
    assert.deepEqual(rm[5], { ok: true, present: true, pfn: HB + 0x40, writable: false, user: true });
    assert.deepEqual(rm[7], { ok: true, present: true, pfn: HB + 0x40, writable: true, user: true });
    assert.deepEqual(rm[8], { ok: true, refs: 1 });
    // The host wrote the accessed and dirty bits back into the guest PTE.
    const e = i.view().sptes[`0:${UV / 4096}`]!;
    assert.equal(e.gpte, 0x40 * 4096 + (P | U | RW | A | D));
  });
  it('answers the guest\'s own faults with fixed:false', () => {
    const { rm } = both(c, [
      ...boot,
      ...userChain(0x40, P | U),
      { op: 'pageFault', args: { vaddr: UV, errcode: 2 } },
      { op: 'pageFault', args: { vaddr: UV + 0x400000, errcode: 0 } },
      w(0x4000, 0x40 * 4096 + (P | RW)),
      { op: 'pageFault', args: { vaddr: UV, errcode: 4 } },
      w(0x4000, 0),
      { op: 'pageFault', args: { vaddr: UV, errcode: 0 } },
      { op: 'pageFault', args: { vaddr: 0xffc00000, errcode: 0 } },
    ]);
    assert.deepEqual(
      rm.filter((r) => 'fixed' in r),
      [false, false, false, false, false].map((fixed) => ({ ok: true, fixed })),
    );
  });
  it('kills on a bad guest input, then answers DEAD except queries and destroy', () => {
    const { rm, i } = both(c, [
      ...boot,
      ...userChain(0x40, P | U | RW),
      { op: 'pageFault', args: { vaddr: UV, errcode: 4 } },
      w(0x4004, 256 * 4096 + (P | U | RW)),
      { op: 'pageFault', args: { vaddr: UV + 0x1000, errcode: 4 } },
      w(0x4004, 0x41 * 4096 + (P | U | RW)),
      { op: 'pageFault', args: { vaddr: UV + 0x1000, errcode: 4 } },
      { op: 'translate', args: { vaddr: UV } },
      { op: 'hostRefs', args: { gfn: 0x40 } },
      { op: 'hostRefs', args: { gfn: 999 } },
      { op: 'destroy', args: {} },
      { op: 'hostRefs', args: { gfn: 0x40 } },
    ]);
    assert.deepEqual(rm[4], { ok: true, fixed: true });
    assert.ok(!rm[6]!.ok && rm[6]!.error === 'KILLED');
    assert.deepEqual(rm[7], { ok: false, error: 'DEAD' });
    assert.deepEqual(rm[8], { ok: false, error: 'DEAD' });
    assert.deepEqual(rm[9], { ok: true, present: true, pfn: HB + 0x40, writable: false, user: true });
    assert.deepEqual(rm[10], { ok: true, refs: 1 });
    assert.deepEqual(rm[11], { ok: false, error: 'EINVAL' });
    assert.deepEqual(rm[12], { ok: true });
    assert.deepEqual(rm[13], { ok: true, refs: 0 });
    assert.equal(i.view().destroyed, true);
  });
  it('kill reasons name what was bad', () => {
    const cases: [Op[], RegExp][] = [
      [[...boot, w(TA + (UV >>> 22) * 4, 0x4000 | 0x67 | PSE), { op: 'pageFault', args: { vaddr: UV, errcode: 0 } }], /bad page directory entry 0x40e7 .*flags 0xe7/],
      [[...boot, w(TA + (UV >>> 22) * 4, 300 * 4096 + 0x67), { op: 'pageFault', args: { vaddr: UV, errcode: 0 } }], /frame 300 is not below guestPages \(256\)/],
      [[...boot, ...userChain(0x40, P | U | PSE), { op: 'pageFault', args: { vaddr: UV, errcode: 0 } }], /large-page \(PSE\)/],
      [[...boot, { op: 'setPte', args: { pgdir: TA, vaddr: 0xffc00000, gpte: 0 } }], /Switcher pages at vaddr 0xffc00000/],
      [[...boot, { op: 'setPgd', args: { pgdir: TA, idx: 1024 } }], /set pgd 1024\/1024/],
      [[{ op: 'lguestInit', args: { kernelAddress: 0xffc00000 } }], /bad kernel address 0xffc00000/],
      [[{ op: 'setStack', args: { vaddr: 0, pages: 1 } }], /bad stack page 0xffffffff/],
      [[...boot, { op: 'newPagetable', args: { pgtable: 0x1001, victim: 0 } }], /bad pgdir address 0x1001/],
    ];
    for (const [ops, re] of cases) {
      const { rm } = both(c, ops);
      const last = rm[rm.length - 1]!;
      assert.equal(last.ok, false);
      assert.ok(!last.ok && last.error === 'KILLED' && re.test(last.reason), `${JSON.stringify(last)} !~ ${re}`);
    }
  });
  it('reads only what the guest wrote; bad guest writes are answered', () => {
    const { rm } = both(c, [w(3, 1), w(256 * 4096, 1), w(0x1000, 2 ** 32), { op: 'setPmd', args: { pmdp: 0, idx: 0 } }]);
    assert.deepEqual(rm, [
      { ok: false, error: 'EINVAL' },
      { ok: false, error: 'EFAULT' },
      { ok: false, error: 'EINVAL' },
      { ok: false, error: 'EINVAL' },
    ]);
  });
  it('keeps kernel entries coherent across top levels and drops user ones on reuse', () => {
    const c1 = cfg({ pgdirSlots: 1 });
    const { m } = both(c1, [
      ...boot,
      ...kernelChain(0x50, P | RW),
      ...userChain(0x40, P | U | RW),
      { op: 'pageFault', args: { vaddr: K, errcode: 0 } },
      { op: 'pageFault', args: { vaddr: UV, errcode: 4 } },
      { op: 'newPagetable', args: { pgtable: TB, victim: 0 } },
      { op: 'setPte', args: { pgdir: TB, vaddr: K, gpte: 0x51 * 4096 + (P | RW | A) } },
    ]);
    const v = m.view();
    assert.equal(v.sptes[`0:${UV / 4096}`], undefined);
    assert.equal(v.sptes[`0:${K / 4096}`]!.pfn, HB + 0x51);
    assert.equal(v.kernelGens[K / 4096], 1);
  });
  it('maps the Switcher per host CPU and remaps it after setPgd/flushAll', () => {
    const c3 = cfg({ hostCpus: 3 });
    const { m } = both(c3, [
      ...boot,
      { op: 'runOnCpu', args: { cpu: 2 } },
      { op: 'runOnCpu', args: { cpu: 2 } },
      { op: 'runOnCpu', args: { cpu: 0 } },
      { op: 'setPgd', args: { pgdir: TA, idx: 1023 } },
      { op: 'runOnCpu', args: { cpu: 1 } },
      { op: 'flushAll', args: {} },
      { op: 'runOnCpu', args: { cpu: 1 } },
    ]);
    const v = m.view();
    const base = 0xffc00000 / 4096;
    assert.equal(v.sptes[`0:${base + 3}`]!.flags, SWITCHER_REGS_FLAGS);
    assert.equal(v.sptes[`0:${base + 1}`], undefined);
    assert.equal(v.refs[HB + 256], 1);
  });
  it('works the same with PAE, including setPmd and a partial kernel boundary', () => {
    const c2 = cfg({ pae: true });
    const ka = 0xc0200000; // not a PGD boundary: the PMD page under PGD 3 straddles it
    const { m } = both(c2, [
      { op: 'lguestInit', args: { kernelAddress: ka } },
      { op: 'newPagetable', args: { pgtable: TA, victim: 0 } },
      w(TA + 3 * 8, 0x7000 + P),
      w(0x7000, 0x3000 + 0x67),
      w(0x7000 + 8, 0x5000 + 0x67),
      w(0x3000, 0x50 * 4096 + (P | RW)),
      w(0x5000, 0x51 * 4096 + (P | RW)),
      { op: 'pageFault', args: { vaddr: 0xc0000000, errcode: 0 } },
      { op: 'pageFault', args: { vaddr: ka, errcode: 0 } },
      { op: 'flushUser', args: {} },
      { op: 'translate', args: { vaddr: 0xc0000000 } },
      { op: 'translate', args: { vaddr: ka } },
      { op: 'setPmd', args: { pmdp: 0x7000, idx: 0 } },
      { op: 'translate', args: { vaddr: ka } },
    ]);
    const v = m.view();
    assert.equal(v.sptes[`0:${ka / 4096}`], undefined);
    assert.equal(v.sptes[`0:${0xffe00000 / 4096}`]!.pfn, HB + 256);
  });
  it('flushes a straddling PTE page entry by entry (non-PAE)', () => {
    const ka = 0xc0100000;
    const { rm } = both(cfg(), [
      { op: 'lguestInit', args: { kernelAddress: ka } },
      { op: 'newPagetable', args: { pgtable: TA, victim: 0 } },
      w(TA + (K >>> 22) * 4, 0x3000 | 0x67),
      w(0x3000, 0x50 * 4096 + (P | RW)),
      w(0x3000 + 0x100 * 4, 0x51 * 4096 + (P | RW)),
      { op: 'pageFault', args: { vaddr: K, errcode: 0 } },
      { op: 'pageFault', args: { vaddr: ka, errcode: 0 } },
      { op: 'newPagetable', args: { pgtable: TB, victim: 0 } },
      { op: 'newPagetable', args: { pgtable: TA, victim: 1 } },
      { op: 'newPagetable', args: { pgtable: TA, victim: 0 } },
      { op: 'flushUser', args: {} },
    ]);
    assert.equal(rm.filter((r) => !r.ok).length, 0);
  });
  it('repins the stack on a fresh top level and kills when it cannot', () => {
    const { rm } = both(cfg(), [
      ...boot,
      ...kernelChain(0x50, P | RW),
      { op: 'setStack', args: { vaddr: K + 0x1000, pages: 1 } },
      { op: 'pinPage', args: { vaddr: K } },
      { op: 'newPagetable', args: { pgtable: TB, victim: 1 } },
      { op: 'translate', args: { vaddr: K } },
      w(0x3000, 0x50 * 4096 + P),
      { op: 'flushAll', args: {} },
    ]);
    assert.deepEqual(rm[8], { ok: true, present: true, pfn: HB + 0x50, writable: true, user: false });
    assert.ok(!rm[10]!.ok && rm[10]!.error === 'KILLED');
  });
  it('answers EINVAL/EBUSY for arguments the config makes invalid', () => {
    const { rm } = both(cfg(), [
      { op: 'lguestInit', args: { kernelAddress: K + 1 } },
      { op: 'runOnCpu', args: { cpu: 9 } },
      { op: 'newPagetable', args: { pgtable: TA, victim: 9 } },
      { op: 'hostRefs', args: { gfn: 256 } },
      ...boot,
      { op: 'lguestInit', args: { kernelAddress: K } },
    ]);
    assert.deepEqual(
      rm.map((r) => (r.ok ? 'ok' : r.error)),
      ['EINVAL', 'EINVAL', 'EINVAL', 'EINVAL', 'ok', 'ok', 'EBUSY'],
    );
  });
  it('rebuilds the live View when its change log overflows', () => {
    class Small extends ShadowPtImpl {
      constructor(c: Config) {
        super(c);
        this.logLimit = 3;
      }
    }
    const s = new Small(c);
    run(s, [...boot, ...userChain(0x40, P | U | RW), { op: 'pageFault', args: { vaddr: UV, errcode: 4 } }]);
    const lv = s.liveView();
    assert.equal(lv.scope, undefined);
    assert.ok(deepEqual(lv.view, s.view()));
    run(s, [{ op: 'flushUser', args: {} }]);
    assert.ok(deepEqual(s.liveView().view, s.view()));
  });
  it('has a canonical fingerprint and counters', () => {
    const a = new ShadowPtModel(c);
    const b = new ShadowPtModel(c);
    run(a, [...boot, ...userChain(0x40, P | U | RW)]);
    run(b, [...boot, ...userChain(0x40, P | U | RW)]);
    assert.equal(a.fingerprint(), b.fingerprint());
    run(b, [{ op: 'pageFault', args: { vaddr: UV, errcode: 4 } }]);
    assert.notEqual(a.fingerprint(), b.fingerprint());
    assert.equal(typeof a.counters().entriesScanned, 'number');
    assert.equal(typeof new ShadowPtImpl(c).counters().entriesVisited, 'number');
  });
  it('describes ops and lists an exploration alphabet', () => {
    assert.equal(d.describeOp!({ op: 'pageFault', args: { vaddr: 0x1000, errcode: 2 } }), 'pageFault vaddr=0x1000 errcode=2');
    assert.equal(d.describeOp!({ op: 'flushAll', args: {} }), 'flushAll');
    const ex = d.exploration!;
    const r = resolveConfig(ex.config);
    assert.ok(r.ok);
    const alphabet = ex.alphabet(r.ok ? r.value : c);
    assert.ok(alphabet.length >= 10 && alphabet.length <= 30);
    const out = runTrace(d, r.ok ? r.value : c, [...alphabet], { fullCheckEvery: 1 });
    assert.equal(out.failure, null);
  });
});

describe('shadow-pt: invariants reject hand-built bad Views', () => {
  const c = cfg();
  const sw = 0xffc00000 / 4096;
  function good(): View {
    const v = emptyView();
    v.linear = false;
    v.kernelAddress = K;
    v.slots['0'] = { gpgdir: TA, switcherMapped: true, lastHostCpu: -1 };
    v.sptes[`0:${sw}`] = { pfn: HB + 256, flags: SWITCHER_CODE_FLAGS, gpte: -1, from: -1, gen: 0 };
    v.sptes[`0:${UV / 4096}`] = { pfn: HB + 0x40, flags: P | U | A, gpte: 0x40 * 4096 + (P | U | RW | A), from: TA, gen: 0 };
    v.refs[HB + 256] = 1;
    v.refs[HB + 0x40] = 1;
    v.mapcount[HB + 256] = 1;
    v.mapcount[HB + 0x40] = 1;
    v.tables['0:g1023'] = 1;
    v.tables[`0:g${UV >>> 22}`] = 2;
    v.tablePages['1'] = '0:g1023';
    v.tablePages['2'] = `0:g${UV >>> 22}`;
    v.told[`${TA}:${UV / 4096}`] = 0x40 * 4096 + (P | U | RW | A);
    return v;
  }
  it('accept a good View', () => {
    for (const inv of INVARIANTS) {
      assert.equal(inv.check(good(), c), null, inv.id);
      assert.equal(typeof inv.exercised(good(), c), 'boolean');
    }
  });
  const bad: [string, (v: View) => void, typeof refcountBalance][] = [
    ['refcount-balance', (v) => (v.refs[HB + 0x40] = 2), refcountBalance],
    ['refcount-balance (mapcount)', (v) => (v.mapcount[HB + 0x40] = 3), refcountBalance],
    ['refcount-balance (orphan mapcount)', (v) => (v.mapcount[HB + 0x77] = 1), refcountBalance],
    ['no-double-release', (v) => (v.underflows[HB + 0x40] = 1), noDoubleRelease],
    ['no-double-release (below base)', (v) => (v.refs[HB + 0x41] = -1), noDoubleRelease],
    ['release-all-on-destroy', (v) => (v.destroyed = true), releaseAllOnDestroy],
    ['shadow-sound (writable clean)', (v) => (v.sptes[`0:${UV / 4096}`]!.flags |= RW), shadowSound],
    ['shadow-sound (wrong frame)', (v) => (v.sptes[`0:${UV / 4096}`]!.pfn += 1), shadowSound],
    ['shadow-sound (frame beyond)', (v) => ((v.sptes[`0:${UV / 4096}`]!.gpte = 256 * 4096 + 0x27), (v.sptes[`0:${UV / 4096}`]!.pfn = HB + 256)), shadowSound],
    ['shadow-sound (other top level)', (v) => (v.sptes[`0:${UV / 4096}`]!.from = TB), shadowSound],
    ['shadow-sound (not present gpte)', (v) => (v.sptes[`0:${UV / 4096}`]!.gpte = 0x40 * 4096), shadowSound],
    ['shadow-sound (pse)', (v) => (v.sptes[`0:${UV / 4096}`]!.gpte |= PSE), shadowSound],
    ['shadow-sound (no guest pte)', (v) => (v.sptes[`0:${UV / 4096}`]!.gpte = -1), shadowSound],
    ['shadow-sound (user right)', (v) => (v.sptes[`0:${UV / 4096}`]!.gpte &= ~U), shadowSound],
    ['shadow-sound (uncached slot)', (v) => (v.sptes[`3:${UV / 4096}`] = { ...v.sptes[`0:${UV / 4096}`]! }), shadowSound],
    ['shadow-sound (stale: told another value)', (v) => (v.told[`${TA}:${UV / 4096}`] = 0x41 * 4096 + (P | U)), shadowSound],
    ['shadow-sound (never told)', (v) => delete v.told[`${TA}:${UV / 4096}`], shadowSound],
    ['shadow-sound (present bit)', (v) => (v.sptes[`0:${UV / 4096}`]!.flags &= ~P), shadowSound],
    ['kernel-coherent', (v) => (v.kernelGens[UV / 4096] = 1), kernelCoherent],
    ['switcher-intact (code gone)', (v) => delete v.sptes[`0:${sw}`], switcherIntact],
    ['switcher-intact (code writable)', (v) => (v.sptes[`0:${sw}`]!.flags |= RW), switcherIntact],
    ['switcher-intact (guest maps over)', (v) => (v.sptes[`0:${sw + 1}`] = { pfn: HB + 0x40, flags: P | RW, gpte: 0x40 * 4096 + 3, from: TA, gen: 0 }), switcherIntact],
    ['switcher-intact (beyond pages)', (v) => (v.sptes[`0:${sw + 100}`] = { pfn: HB + 256, flags: SWITCHER_CODE_FLAGS, gpte: -1, from: -1, gen: 0 }), switcherIntact],
    ['switcher-intact (cpu pages missing)', (v) => (v.slots['0']!.lastHostCpu = 1), switcherIntact],
    [
      'switcher-intact (other cpu mapped)',
      (v) => {
        v.slots['0']!.lastHostCpu = 0;
        v.sptes[`0:${sw + 1}`] = { pfn: HB + 261, flags: SWITCHER_REGS_FLAGS, gpte: -1, from: -1, gen: 0 };
        v.sptes[`0:${sw + 2}`] = { pfn: HB + 258, flags: 0x61, gpte: -1, from: -1, gen: 0 };
        v.sptes[`0:${sw + 3}`] = { pfn: HB + 261, flags: SWITCHER_REGS_FLAGS, gpte: -1, from: -1, gen: 0 };
      },
      switcherIntact,
    ],
    ['tables-owned (shared)', (v) => (v.tables['0:g5'] = 2), tablesOwned],
    ['tables-owned (freed)', (v) => delete v.tablePages['2'], tablesOwned],
    ['tables-owned (leaked)', (v) => (v.tablePages['9'] = '0:g7'), tablesOwned],
    ['tables-owned (uncached slot)', (v) => ((v.tables['2:g7'] = 9), (v.tablePages['9'] = '2:g7')), tablesOwned],
    ['tables-owned (entry without table)', (v) => (delete v.tables[`0:g${UV >>> 22}`], delete v.tablePages['2']), tablesOwned],
    ['tables-owned (orphan mid-level)', (v) => ((v.tables['0:g7:m1'] = 9), (v.tablePages['9'] = '0:g7:m1')), tablesOwned],
  ];
  for (const [name, spoil, inv] of bad) {
    it(`${name}: check names the problem and the check counts as exercised`, () => {
      const v = good();
      spoil(v);
      const msg = inv.check(v, c);
      assert.equal(typeof msg, 'string', `${inv.id} accepted the bad View`);
      assert.ok(msg!.length > 20);
      assert.equal(inv.exercised(v, c), true);
    });
  }
  it('scoped checks see a violation in their scope and nothing outside it', () => {
    const v = good();
    v.refs[HB + 0x40] = 2;
    v.underflows[HB + 0x40] = 1;
    v.sptes[`0:${UV / 4096}`]!.flags |= RW;
    v.kernelGens[UV / 4096] = 1;
    delete v.sptes[`0:${sw}`];
    v.tablePages['9'] = '0:g7';
    const s = emptyScope();
    for (const inv of INVARIANTS) assert.equal(inv.check(v, c, s), null, inv.id);
    const hit = mergeScopes(s, { entries: [`0:${UV / 4096}`, `0:${sw}`], pfns: [HB + 0x40], owners: ['0:g7'], pages: [9], slots: [0], vpages: [UV / 4096] });
    for (const inv of [refcountBalance, noDoubleRelease, shadowSound, kernelCoherent, switcherIntact, tablesOwned]) {
      assert.equal(typeof inv.check(v, c, hit), 'string', inv.id);
      assert.equal(typeof inv.exercised(v, c, hit), 'boolean');
    }
  });
  it('viewsAgree compares the scope only when given one', () => {
    const a = good();
    const b = good();
    b.sptes[`0:${UV / 4096}`]!.pfn = 1;
    assert.equal(viewsAgree(a, a), null);
    assert.match(viewsAgree(a, b)!, /sptes/);
    assert.equal(viewsAgree(a, b, emptyScope()), null);
    assert.match(viewsAgree(a, b, { ...emptyScope(), entries: [`0:${UV / 4096}`] })!, /sptes/);
    b.current = 1;
    assert.match(viewsAgree(a, b, emptyScope())!, /current/);
  });
});

describe('shadow-pt: mutants are caught by their invariants in isolation', () => {
  const c = cfg();
  const mutant = (id: string) => MUTANTS.find((m) => m.id === id)!.create(c);
  it('kernel-pte-current-only leaves a stale kernel entry (kernel-coherent)', () => {
    const s = mutant('kernel-pte-current-only');
    run(s as ShadowPtImpl, [
      ...boot,
      ...kernelChain(0x50, P | RW),
      { op: 'pageFault', args: { vaddr: K, errcode: 0 } },
      { op: 'newPagetable', args: { pgtable: TB, victim: 1 } },
      { op: 'setPte', args: { pgdir: TB, vaddr: K, gpte: 0x51 * 4096 + (P | RW | A) } },
    ]);
    assert.match(kernelCoherent.check(s.view(), c)!, /stale kernel entry/);
  });
  it('reuse-keeps-user leaves another process\'s user entry (shadow-sound)', () => {
    const s = mutant('reuse-keeps-user');
    run(s as ShadowPtImpl, [
      ...boot,
      ...userChain(0x40, P | U | RW),
      { op: 'pageFault', args: { vaddr: UV, errcode: 4 } },
      { op: 'newPagetable', args: { pgtable: TB, victim: 0 } },
    ]);
    assert.match(shadowSound.check(s.view(), c)!, /read from top level 0x1000 but the slot now shadows 0x2000/);
  });
  it('set-pgd-off-by-one drops the next slot\'s first entry', () => {
    const s = mutant('set-pgd-off-by-one');
    const r = run(s as ShadowPtImpl, [
      ...boot,
      w(TB, 0x4000 | 0x67),
      w(0x4000, 0x40 * 4096 + (P | RW)),
      { op: 'newPagetable', args: { pgtable: TB, victim: 1 } },
      { op: 'pageFault', args: { vaddr: 0, errcode: 0 } },
      { op: 'setPgd', args: { pgdir: TA, idx: 1024 } },
      { op: 'translate', args: { vaddr: 0 } },
    ]);
    assert.deepEqual(r[r.length - 1], { ok: true, present: false });
    for (const inv of INVARIANTS) assert.equal(inv.check(s.view(), c), null);
  });
  it('the model and impl agree that a not-present eager setPte takes nothing', () => {
    const ops: Op[] = [...boot, ...userChain(0x40, P | U | RW), { op: 'pageFault', args: { vaddr: UV, errcode: 4 } }, { op: 'setPte', args: { pgdir: TA, vaddr: UV + 0x1000, gpte: 0x45 * 4096 + (A | D) } }];
    const s = mutant('eager-not-present-leaks');
    run(s as ShadowPtImpl, ops);
    assert.match(refcountBalance.check(s.view(), c)!, /holds 1 reference/);
    both(c, ops);
  });
});

describe('shadow-pt: issue 12 — stale copies, ignored setPte, re-pinning', () => {
  const c = cfg();
  const mutant = (id: string) => MUTANTS.find((m) => m.id === id)!;
  /** Top level 0 at gpa 0: its user PGD entry -> PTE page gfn 4. */
  const chain0 = (frame: number, flags: number): Op[] => [w((UV >>> 22) * 4, 0x4000 | 0x67), w(0x4000, frame * 4096 + flags)];
  const dupTrace: Op[] = [
    { op: 'lguestInit', args: { kernelAddress: K } },
    { op: 'newPagetable', args: { pgtable: 0, victim: 1 } },
    ...chain0(0x40, P | U | RW),
    { op: 'pageFault', args: { vaddr: UV, errcode: 4 } },
    { op: 'setPte', args: { pgdir: 0, vaddr: UV, gpte: 0x41 * 4096 + (P | U | RW) } },
  ];
  it('leaving the linear mapping onto top level 0 reuses slot 0 whatever the victim: no second copy', () => {
    const { m, rm } = both(c, dupTrace);
    assert.ok(rm.every((r) => r.ok));
    const v = m.view();
    assert.deepEqual(Object.keys(v.slots), ['0']);
    assert.equal(v.current, 0);
    // The setPte (not accessed: not eager) reached the entry the guest runs on and dropped it.
    assert.equal(v.sptes[`0:${UV / 4096}`], undefined);
    assert.equal(v.told[`0:${UV / 4096}`], 0x41 * 4096 + (P | U | RW));
  });
  it('the seed\'s duplicate (linear-exit-duplicates-top-level) leaves a stale user entry that shadow-sound names', () => {
    const s = mutant('linear-exit-duplicates-top-level').create(c);
    run(s as ShadowPtImpl, dupTrace);
    const v = s.view();
    assert.equal(v.slots['0']!.gpgdir, 0);
    assert.equal(v.slots['1']!.gpgdir, 0);
    assert.equal(v.current, 1);
    assert.match(shadowSound.check(v, c)!, /slot 1 still maps guest PTE 0x40027.*is 0x41007: a stale entry/);
    // The scoped check sees it from the setPte's told key alone.
    assert.notEqual(shadowSound.check(v, c, { ...emptyScope(), told: [`0:${UV / 4096}`] }), null);
  });
  it('set-pte-ignored is caught by an invariant before any model comparison (user: shadow-sound, kernel: kernel-coherent)', () => {
    const user: Op[] = [...boot, ...userChain(0x40, P | U | RW), { op: 'pageFault', args: { vaddr: UV, errcode: 4 } }, { op: 'setPte', args: { pgdir: TA, vaddr: UV, gpte: 0x41 * 4096 + (P | U | RW | A) } }];
    const m = mutant('set-pte-ignored');
    const a = runTrace(d, c, user, {}, (cc) => m.create(cc));
    assert.equal(a.failure?.kind, 'invariant', JSON.stringify(a.failure));
    assert.equal(a.failure?.invariant, 'shadow-sound');
    assert.equal(a.failure?.side, 'impl');
    assert.equal(a.failure?.step, user.length - 1);
    const kernel: Op[] = [...boot, ...kernelChain(0x50, P | RW), { op: 'pageFault', args: { vaddr: K, errcode: 0 } }, { op: 'setPte', args: { pgdir: TA, vaddr: K, gpte: 0x51 * 4096 + (P | RW | A) } }];
    const b = runTrace(d, c, kernel, {}, (cc) => m.create(cc));
    assert.equal(b.failure?.kind, 'invariant', JSON.stringify(b.failure));
    assert.equal(b.failure?.invariant, 'kernel-coherent');
    // The same traces pass on the real implementation.
    assert.equal(runTrace(d, c, user).failure, null);
    assert.equal(runTrace(d, c, kernel).failure, null);
  });
  it('shadow-sound rejects a user entry whose top level never told the host anything', () => {
    const { i } = both(c, [...boot, ...userChain(0x40, P | U | RW), { op: 'pageFault', args: { vaddr: UV, errcode: 4 } }]);
    const v = i.view();
    assert.equal(shadowSound.check(v, c), null);
    delete v.told[`${TA}:${UV / 4096}`];
    assert.match(shadowSound.check(v, c)!, /never told or showed the host/);
  });
  it('flushAll re-pins the stack in the current top level only; switching to another cached one does not pin it', () => {
    const stackEnd = K + 0x2000;
    const ops: Op[] = [
      ...boot,
      ...kernelChain(0x50, P | RW | A | D),
      w(0x3000 + 4, 0x51 * 4096 + (P | RW | A | D)),
      { op: 'newPagetable', args: { pgtable: TB, victim: 1 } },
      { op: 'newPagetable', args: { pgtable: TA, victim: 1 } },
      { op: 'setStack', args: { vaddr: stackEnd, pages: 1 } },
      { op: 'translate', args: { vaddr: K + 0x1000 } },
      { op: 'flushAll', args: {} },
      { op: 'translate', args: { vaddr: K + 0x1000 } },
      { op: 'newPagetable', args: { pgtable: TB, victim: 0 } },
      { op: 'translate', args: { vaddr: K + 0x1000 } },
    ];
    const { rm } = both(c, ops);
    const hb = HB + 0x51;
    assert.deepEqual(rm[ops.length - 5], { ok: true, present: true, pfn: hb, writable: true, user: false });
    assert.deepEqual(rm[ops.length - 3], { ok: true, present: true, pfn: hb, writable: true, user: false });
    assert.deepEqual(rm[ops.length - 1], { ok: true, present: false });
  });
});

describe('shadow-pt: lockstep properties', () => {
  it('model and implementation agree on generated traces (both geometries)', () => {
    const out = checkDomain(d, { runs: 150, maxOps: 100, seed: 20261124 });
    assert.equal(out.failure, null, out.failure ? JSON.stringify(out.failure.failure) : '');
    assert.ok(out.tallies.steps > 5000);
    for (const inv of INVARIANTS) assert.ok(out.tallies.invariants[inv.id]!.nonTrivial > 0, `${inv.id} never exercised`);
    for (const op of Object.keys(d.opArgs)) assert.ok(out.tallies.ops[op], `${op} never generated`);
  });
  it('generates valid traces most of the time, with about one bad op in ten', () => {
    const samples = fc.sample(d.arbitraries.config().chain((c) => d.arbitraries.ops(c, 100).map((ops) => ({ c, ops }))), { seed: 3, numRuns: 60 });
    let ok = 0;
    let bad = 0;
    let all = 0;
    for (const s of samples) {
      const m = d.createModel(s.c);
      for (const o of s.ops) {
        const r = m.apply(o);
        all++;
        if (r.ok) ok++;
        else if (r.error !== 'DEAD') bad++;
      }
    }
    assert.ok(ok / all > 0.6, `only ${ok}/${all} ok`);
    assert.ok(bad / all > 0.02 && bad / all < 0.2, `bad ${bad}/${all}`);
  });
  it('plans a world whose table pages lie below its data frames', () => {
    const wd = planWorld(cfg({ pae: true, pgdirSlots: 4 }));
    assert.ok(wd.dataBase > wd.pgdirs[wd.pgdirs.length - 1]! / 4096);
    assert.ok(entryFrame(wd.frameOf(0, UV) * 4096) >= wd.dataBase);
  });
});

describe('shadow-pt: mutants', () => {
  for (const m of MUTANTS) {
    it(`${m.id} is killed within the mutant budget`, () => {
      const r = runMutant(d, m.id, { seed: 42 });
      assert.ok(r.killed, `${m.id} survived`);
    });
  }
});

describe('shadow-pt: case files', () => {
  const dir = path.join(__dirname, '..', '..', '..', 'spec', 'cases', 'shadow-pt');
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));
  it('has at least 12, covering every op and every kill reason', () => {
    assert.ok(files.length >= 12);
    const ops = new Set<string>();
    const reasons = new Set<string>();
    for (const f of files) {
      const j = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as { steps: { op: string; expect?: { reason?: string } }[] };
      for (const s of j.steps) {
        ops.add(s.op);
        if (s.expect?.reason) reasons.add(s.expect.reason.replace(/0x[0-9a-f]+|\d+/g, 'N'));
      }
    }
    for (const op of Object.keys(d.opArgs)) assert.ok(ops.has(op), `no case uses ${op}`);
    assert.ok(reasons.size >= 11, [...reasons].join('; '));
  });
  it('every mutant fails at least one case file', () => {
    const loaded = files.map((f) => loadCaseFile(path.join(dir, f), DOMAINS));
    for (const m of MUTANTS) {
      const caught = loaded.some((l) => l.ok && replayCase(l.value, { mutant: m.id }).failure !== null);
      assert.ok(caught, `no case file catches ${m.id}`);
    }
  });
  for (const f of files) {
    it(`replays ${f}`, () => {
      const l = loadCaseFile(path.join(dir, f), DOMAINS);
      assert.ok(l.ok, l.ok ? '' : JSON.stringify(l.errors));
      if (!l.ok) return;
      const r = replayCase(l.value);
      assert.equal(r.failure, null, JSON.stringify(r.failure));
    });
  }
});
