import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import * as fc from 'fast-check';
import { checkDomain } from '../../harness/check';
import { loadCaseFile, replayCase } from '../../harness/cases';
import { decode, opCodec } from '../../harness/codec';
import { emptyTallies, runTrace } from '../../harness/lockstep';
import type { System } from '../../harness/domain';
import { prefaultDomain as d } from '../../domains/prefault';
import { encodeConfig, resolveConfig } from '../../spec/prefault/config';
import { INVARIANTS, expectedPreFault } from '../../spec/prefault/invariants';
import { viewsAgree } from '../../spec/prefault/agree';
import {
  GFN_LIMIT,
  PAGE_SIZE,
  ResultC,
  ViewC,
  coveredUpTo,
  mergeScopes,
  reachOf,
  type Leaf,
  type PrefaultConfig,
  type PrefaultOp,
  type PrefaultResult,
  type Scope,
  type View,
} from '../../spec/prefault/types';
import { PrefaultModel } from '../../model/prefault/model';
import { PrefaultMmu } from '../../impl/prefault/mmu';
import { MUTANTS } from '../../properties/prefault/mutants';
import { config as configArb, interestingGfns, ops as opsArb } from '../../properties/prefault/arbitraries';
import { DOMAINS } from '../../domains';

const K = PAGE_SIZE;
const M2 = 2 * 1024 * 1024;

function cfg(input: unknown): PrefaultConfig {
  const r = resolveConfig(input);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.value;
}

type Sys = System<PrefaultOp, PrefaultResult, View, Scope>;

/** Apply ops to a fresh model and impl, asserting they agree at every step; returns both. */
function both(c: PrefaultConfig, ops: PrefaultOp[]): { model: PrefaultModel; impl: PrefaultMmu; results: PrefaultResult[] } {
  const model = new PrefaultModel(c);
  const impl = new PrefaultMmu(c);
  const results: PrefaultResult[] = [];
  for (const op of ops) {
    const a = model.apply(op);
    const b = impl.apply(op);
    assert.deepEqual(b, a, `impl and model disagree on ${JSON.stringify(op)}`);
    results.push(a);
  }
  assert.equal(viewsAgree(model.view(), impl.view()), null);
  return { model, impl, results };
}

function violations(sys: Sys, c: PrefaultConfig): string[] {
  const v = sys.view();
  return INVARIANTS.filter((inv) => inv.check(v, c) !== null).map((inv) => inv.id);
}

const pf = (gpa: number, size: number, flags = 0, signalAfter?: number): PrefaultOp =>
  signalAfter === undefined ? { op: 'preFault', args: { gpa, size, flags } } : { op: 'preFault', args: { gpa, size, flags, signalAfter } };
const populate = (gpa: number, npages: number): PrefaultOp => ({ op: 'populate', args: { gpa, npages } });
const finalize: PrefaultOp = { op: 'finalize', args: {} };
const mappings = (gfn: number, npages: number): PrefaultOp => ({ op: 'mappings', args: { gfn, npages } });

const DEFAULT2M = { vmType: 'default', memslots: [{ id: 0, baseGfn: 0, npages: 2048, backing: '2m' }] };
const SNP = { vmType: 'snp', memslots: [{ id: 0, baseGfn: 0, npages: 2048, backing: '2m' }] };
const TDX = { vmType: 'tdx', memslots: [{ id: 0, baseGfn: 0, npages: 2048, backing: '2m' }] };
const SWP = { vmType: 'sw-protected', privateByDefault: true, memslots: [{ id: 0, baseGfn: 0, npages: 512, backing: '2m' }] };
const umr = (slot: number, baseGfn: number, npages: number, extra: { backing?: Leaf['size']; guestMemfd?: boolean } = {}): PrefaultOp => ({
  op: 'setUserMemoryRegion',
  args: { slot, baseGfn, npages, ...extra },
});
const attr = (gfn: number, npages: number, priv: boolean): PrefaultOp => ({ op: 'setAttributes', args: { gfn, npages, private: priv } });

describe('prefault', () => {
  describe('config', () => {
    it('fills the defaults of the domain page', () => {
      const c = cfg({});
      assert.equal(c.vmType, 'default');
      assert.deepEqual(c.memslots, [{ id: 0, baseGfn: 0, npages: 262144, backing: '2m', guestMemfd: false }]);
      assert.equal(cfg({ vmType: 'snp' }).memslots[0]!.guestMemfd, true);
      assert.equal(c.privateByDefault, false);
      assert.equal(cfg({ vmType: 'snp' }).privateByDefault, true);
      assert.equal(cfg({ vmType: 'tdx' }).privateByDefault, true);
      assert.equal(cfg({ vmType: 'sw-protected' }).privateByDefault, false);
      assert.equal(cfg({ memslots: [{ id: 1, baseGfn: 5, npages: 3 }] }).memslots[0]!.backing, '2m');
    });
    it('sorts memslots and round-trips through encodeConfig', () => {
      const c = cfg({ memslots: [{ id: 1, baseGfn: 100, npages: 3, backing: '4k' }, { id: 0, baseGfn: 0, npages: 10, backing: '1g' }] });
      assert.deepEqual(c.memslots.map((s) => s.id), [0, 1]);
      assert.deepEqual(cfg(encodeConfig(c)), c);
    });
    it('reports semantic errors with their JSON paths', () => {
      const bad = resolveConfig({
        vmType: 'default',
        privateByDefault: true,
        memslots: [
          { id: 0, baseGfn: 0, npages: 10 },
          { id: 0, baseGfn: 5, npages: 10 },
          { id: 2, baseGfn: GFN_LIMIT - 1, npages: 2 },
          { id: 3, baseGfn: 100, npages: 0 },
        ],
      });
      assert.ok(!bad.ok);
      const paths = bad.errors.map((e) => e.path);
      assert.ok(paths.includes('$.config.memslots[1].id'));
      assert.ok(paths.includes('$.config.memslots[1].baseGfn'));
      assert.ok(paths.includes('$.config.memslots[2].npages'));
      assert.ok(paths.includes('$.config.memslots[3].npages'));
      assert.ok(paths.includes('$.config.privateByDefault'));
      const empty = resolveConfig({ memslots: [] });
      assert.ok(!empty.ok && empty.errors[0]!.path === '$.config.memslots');
      const typo = resolveConfig({ vmtype: 'snp' });
      assert.ok(!typo.ok && typo.errors[0]!.path === '$.config.vmtype');
      const wrong = resolveConfig({ memslots: [{ id: 0, baseGfn: 0, npages: 1, backing: '3m' }] });
      assert.ok(!wrong.ok && wrong.errors[0]!.path === '$.config.memslots[0].backing');
      const many = resolveConfig({ memslots: Array.from({ length: 33 }, (_, i) => ({ id: i, baseGfn: i, npages: 1 })) });
      assert.ok(!many.ok);
    });
    it('refuses configs beyond the documented size bounds at decode time, with a JSON path (regression: RangeError, OOM)', () => {
      const at = (input: unknown): string[] => {
        const r = resolveConfig(input);
        assert.ok(!r.ok, 'should be refused');
        return r.errors.map((e) => `${e.path}: ${e.message}`);
      };
      // A memslot of 2^36 pages used to throw "creating the systems threw RangeError".
      assert.match(at({ memslots: [{ id: 0, baseGfn: 0, npages: 2 ** 36 }] }).join('\n'), /memslots\[0\]\.npages: .*KVM_MEM_MAX_NR_PAGES/);
      // 32 slots of 2^31 - 1 pages used to allocate gigabytes: now each is within KVM_MEM_MAX_NR_PAGES, the sum is over the budget.
      const big = Array.from({ length: 32 }, (_, i) => ({ id: i, baseGfn: i * 2 ** 31, npages: 2 ** 31 - 1 }));
      assert.match(at({ memslots: big }).join('\n'), /\$\.config\.memslots: .*budget of 2\^22 pages/);
      assert.match(at({ memslots: [{ id: 40, baseGfn: 0, npages: 1 }] }).join('\n'), /memslots\[0\]\.id: .*bound of 31/);
      // The budget itself is fine, and the systems are built sparsely (no per-page arrays).
      const full = cfg({ memslots: [{ id: 0, baseGfn: 0, npages: 2 ** 21 }, { id: 1, baseGfn: 2 ** 30, npages: 2 ** 21, backing: '1g' }] });
      const { results } = both(full, [pf(0, K), pf(2 ** 30 * K, K), mappings(2 ** 30, 1)]);
      assert.deepEqual(results[2], { ok: true, leaves: [{ gfn: 2 ** 30, size: '1g' }] });
    });
  });

  describe('codecs', () => {
    it('decodes every op and rejects unknown fields and out-of-range numbers', () => {
      const step = opCodec(d.opArgs);
      for (const op of d.exploration!.alphabet(cfg(d.exploration!.config))) assert.ok(decode(step, op).ok, JSON.stringify(op));
      assert.ok(!decode(step, { op: 'preFault', args: { gpa: 0, size: 1, flags: 0, extra: 1 } }).ok);
      assert.ok(!decode(step, { op: 'preFault', args: { gpa: 2 ** 64, size: 1, flags: 0 } }).ok);
      assert.ok(!decode(step, { op: 'preFault', args: { gpa: -1, size: 1, flags: 0 } }).ok);
      assert.ok(decode(step, { op: 'preFault', args: { gpa: 2 ** 64 - K, size: K, flags: 0 } }).ok);
    });
    it('accepts the results and Views both sides produce', () => {
      const c = cfg(SNP);
      const { model, results } = both(c, [populate(0, 2), pf(0, K), finalize, pf(0, M2), mappings(0, 600), { op: 'measurement', args: {} }, populate(1, 1)]);
      for (const r of results) assert.ok(ResultC.is(r), JSON.stringify(r));
      assert.ok(ViewC.is(model.view()));
    });
    it('describes ops', () => {
      assert.equal(d.describeOp!(pf(M2, K, 1, 2)), 'preFault gpa=0x200000 size=0x1000 flags=1 signalAfter=2');
      assert.equal(d.describeOp!(populate(K, 3)), 'populate gpa=0x1000 npages=3');
      assert.equal(d.describeOp!({ op: 'guestAccess', args: { gfn: 16, write: true } }), 'guestAccess gfn=0x10 write');
      assert.equal(d.describeOp!({ op: 'setAttributes', args: { gfn: 1, npages: 2, private: false } }), 'setAttributes gfn=0x1 npages=2 shared');
      assert.equal(d.describeOp!({ op: 'zap', args: { gfn: 1, npages: 2 } }), 'zap gfn=0x1 npages=2');
      assert.equal(d.describeOp!(finalize), 'finalize');
      assert.equal(d.describeOp!(umr(3, 16, 0)), 'setUserMemoryRegion slot=3 delete');
      assert.equal(d.describeOp!(umr(3, 16, 2, { backing: '4k', guestMemfd: true })), 'setUserMemoryRegion slot=3 gfn=0x10 npages=2 backing=4k guest_memfd');
      assert.match(d.costReport!({ pageSteps: 1024 }, { leavesInstalled: 2, pagesCovered: 1024, chunks: 2 }).join('\n'), /512\.0 pages per leaf/);
      assert.match(d.costReport!({}, {}).join('\n'), /0 leaf installs/);
    });
  });

  describe('KVM_PRE_FAULT_MEMORY argument checks (kvm_vcpu_pre_fault_memory)', () => {
    const c = cfg(DEFAULT2M);
    const cases: Array<[string, PrefaultOp, string]> = [
      ['flags', pf(0, K, 1), 'EINVAL'],
      ['unaligned gpa', pf(1, K), 'EINVAL'],
      ['unaligned size', pf(0, K + 1), 'EINVAL'],
      ['zero size', pf(0, 0), 'EINVAL'],
      ['overflow', pf(2 ** 64 - K, 2 * K), 'EINVAL'],
      ['wrap to exactly 2^64', pf(2 ** 63, 2 ** 63), 'EINVAL'],
      ['outside memslots', pf(2048 * K, K), 'ENOENT'],
      ['beyond the GFN space', pf(GFN_LIMIT * K, K), 'ENOENT'],
      ['signal before the first chunk', pf(0, K, 0, 0), 'EINTR'],
    ];
    for (const [what, op, errno] of cases) {
      it(`${what}: ${errno}, range kept`, () => {
        const { results } = both(c, [op]);
        const a = op.args as { gpa: number; size: number };
        assert.deepEqual(results[0], { ok: false, error: errno, gpa: a.gpa, size: a.size });
      });
    }
    it('a range ending just below 2^64 is not an overflow, one ending at 2^64 is', () => {
      const { results } = both(c, [pf(2 ** 64 - 2 * K, K), pf(2 ** 64 - K, K)]);
      assert.deepEqual(results[0], { ok: false, error: 'ENOENT', gpa: 2 ** 64 - 2 * K, size: K });
      // gpa + size == 2^64 wraps to 0: `range->gpa + range->size <= range->gpa`
      assert.deepEqual(results[1], { ok: false, error: 'EINVAL', gpa: 2 ** 64 - K, size: K });
    });
  });

  describe('leaf choice and progress', () => {
    it('shared memory: the host mapping caps the leaf on every VM type; private memory: 4 KiB (guest_memfd max_order 0)', () => {
      for (const vmType of ['default', 'sw-protected', 'snp', 'tdx']) {
        const c = cfg({ vmType, privateByDefault: false, memslots: [{ id: 0, baseGfn: 262144, npages: 262144, backing: '1g' }] });
        const pre = vmType === 'snp' || vmType === 'tdx' ? [finalize] : [];
        const { results } = both(c, [...pre, pf(262144 * K, K), mappings(262144, 1)]);
        assert.deepEqual(results[results.length - 1], { ok: true, leaves: [{ gfn: 262144, size: '1g' }] }, vmType);
      }
      for (const vmType of ['sw-protected', 'snp', 'tdx']) {
        const c = cfg({ vmType, privateByDefault: true, memslots: [{ id: 0, baseGfn: 262144, npages: 262144, backing: '1g' }] });
        const pre = vmType === 'snp' || vmType === 'tdx' ? [finalize] : [];
        const { results } = both(c, [...pre, pf(262144 * K, 2 * K), mappings(262144, 4)]);
        assert.deepEqual(results[results.length - 2], { ok: true, gpa: (262144 + 2) * K, size: 0 }, vmType);
        assert.deepEqual(results[results.length - 1], { ok: true, leaves: [{ gfn: 262144, size: '4k' }, { gfn: 262145, size: '4k' }] }, vmType);
      }
    });
    it('a private gpa outside guest_memfd memslots is EFAULT, a shared one ENOENT (kvm_handle_noslot_fault)', () => {
      const c = cfg({ ...SWP, memslots: [{ id: 0, baseGfn: 0, npages: 512, backing: '2m' }, { id: 1, baseGfn: 1024, npages: 8, guestMemfd: false }] });
      const { results } = both(c, [
        pf(510 * K, 4 * K),
        pf(512 * K, K),
        pf(1024 * K, K),
        attr(512, 1, false),
        pf(512 * K, K),
        { op: 'guestAccess', args: { gfn: 600, write: false } },
        attr(1024, 1, false),
        pf(1024 * K, 2 * K),
      ]);
      assert.deepEqual(results[0], { ok: true, gpa: 512 * K, size: 2 * K }); // stops at the private no-slot page; the next call reports it
      assert.deepEqual(results[1], { ok: false, error: 'EFAULT', gpa: 512 * K, size: K });
      assert.deepEqual(results[2], { ok: false, error: 'EFAULT', gpa: 1024 * K, size: K }); // private in a slot without guest_memfd
      assert.deepEqual(results[4], { ok: false, error: 'ENOENT', gpa: 512 * K, size: K });
      assert.equal(results[5]!.error, 'EFAULT');
      assert.deepEqual(results[7], { ok: true, gpa: 1025 * K, size: K });
    });
    it('advances by min(size, leafEnd - gpa) per chunk', () => {
      const c = cfg(DEFAULT2M);
      const { results } = both(c, [pf(511 * K, 3 * K), pf(1000 * K, 4 * M2)]);
      assert.deepEqual(results[0], { ok: true, gpa: 514 * K, size: 0 });
      // 1000 -> 1024 (end of its 2m leaf), 1024 -> 1536, 1536 -> 2048, then no memslot: success with the rest
      assert.deepEqual(results[1], { ok: true, gpa: 2048 * K, size: (1000 + 2048 - 2048) * K });
    });
    it('a signal after n chunks ends the call with the remaining range', () => {
      const c = cfg(DEFAULT2M);
      const { results } = both(c, [pf(0, 4 * M2, 0, 2)]);
      assert.deepEqual(results[0], { ok: true, gpa: 2 * M2, size: 2 * M2 });
    });
    it('a larger leaf replaces smaller ones it covers, measurement untouched', () => {
      const c = cfg({ ...SWP, privateByDefault: false });
      const { results, model } = both(c, [attr(5, 1, true), { op: 'guestAccess', args: { gfn: 3, write: false } }, attr(5, 1, false), pf(0, K), mappings(0, 512)]);
      assert.deepEqual(results[4], { ok: true, leaves: [{ gfn: 0, size: '2m' }] });
      assert.deepEqual(model.view().measurement, []);
    });
    it('setAttributes zaps the range and splits a block into 4k leaves', () => {
      const c = cfg({ ...SNP, vmType: 'sw-protected' });
      const { results } = both(c, [
        pf(0, M2),
        { op: 'setAttributes', args: { gfn: 10, npages: 1, private: true } },
        mappings(0, 512),
        pf(0, 12 * K),
        mappings(9, 3),
        { op: 'setAttributes', args: { gfn: 0, npages: 0, private: true } },
        { op: 'setAttributes', args: { gfn: GFN_LIMIT - 1, npages: 2, private: true } },
      ]);
      assert.deepEqual(results[2], { ok: true, leaves: [] });
      assert.deepEqual(results[4], { ok: true, leaves: [{ gfn: 9, size: '4k' }, { gfn: 10, size: '4k' }, { gfn: 11, size: '4k' }] });
      assert.equal(results[5]!.error, 'EINVAL');
      assert.equal(results[6]!.error, 'EINVAL');
    });
    it('guest accesses: MMIO outside memslots, no change on mapped pages, EINVAL before finalize', () => {
      const { results } = both(cfg(DEFAULT2M), [
        { op: 'guestAccess', args: { gfn: 5000, write: false } },
        { op: 'guestAccess', args: { gfn: GFN_LIMIT + 3, write: false } },
        { op: 'guestAccess', args: { gfn: 7, write: true } },
        { op: 'guestAccess', args: { gfn: 8, write: false } },
        mappings(0, 2048),
      ]);
      assert.deepEqual(results.slice(0, 4).map((r) => r.error ?? 'ok'), ['MMIO', 'MMIO', 'ok', 'ok']);
      assert.deepEqual(results[4], { ok: true, leaves: [{ gfn: 0, size: '2m' }] });
      const tdx = both(cfg({ ...SNP, vmType: 'tdx' }), [{ op: 'guestAccess', args: { gfn: 7, write: true } }]);
      assert.equal(tdx.results[0]!.error, 'EINVAL');
    });
    it('a default VM has no memory attributes: KVM_SET_MEMORY_ATTRIBUTES is ENOTTY (live kernel)', () => {
      const { results } = both(cfg(DEFAULT2M), [attr(0, 1, false), attr(0, 1, true)]);
      assert.deepEqual(results.map((r) => r.error), ['ENOTTY', 'ENOTTY']);
    });
    it('queries validate their range', () => {
      const { results } = both(cfg(DEFAULT2M), [mappings(0, 0), { op: 'zap', args: { gfn: GFN_LIMIT, npages: 1 } }]);
      assert.equal(results[0]!.error, 'EINVAL');
      assert.equal(results[1]!.error, 'EINVAL');
    });
  });

  describe('populate and finalize', () => {
    it('SNP: adds without mapping, stops at an added page with partial success, EIO before the first page', () => {
      const c = cfg(SNP);
      const { results, model } = both(c, [populate(10 * K, 1), populate(8 * K, 4), populate(10 * K, 2), { op: 'measurement', args: {} }]);
      assert.deepEqual(results[0], { ok: true, gpa: 11 * K, npages: 0 });
      assert.deepEqual(results[1], { ok: true, gpa: 10 * K, npages: 2 }); // kvm_gmem_populate: "ret && !i ? ret : i"
      assert.deepEqual(results[2], { ok: false, error: 'EIO', gpa: 10 * K, npages: 2 }); // snp_launch_update: count < 0 -> EIO
      assert.deepEqual(results[3], { ok: true, pages: [10, 8, 9] });
      assert.deepEqual(model.view().leaves, []); // sev_gmem_post_populate installs no NPT entry
    });
    it('SNP: the request is cut at the slot end; a first page outside a guest_memfd slot is EINVAL; npages 0 and after finalize EIO', () => {
      const { results } = both(cfg(SNP), [populate(2046 * K, 5), populate(2048 * K, 1), populate(0, 0), attr(5, 1, false), populate(5 * K, 1), finalize, populate(100 * K, 1)]);
      assert.deepEqual(results[0], { ok: true, gpa: 2048 * K, npages: 3 });
      assert.deepEqual(results[1], { ok: false, error: 'EINVAL', gpa: 2048 * K, npages: 1 });
      assert.deepEqual(results[2], { ok: false, error: 'EIO', gpa: 0, npages: 0 });
      assert.deepEqual(results[4], { ok: false, error: 'EIO', gpa: 5 * K, npages: 1 }); // shared page: EINVAL inside, EIO out
      assert.deepEqual(results[6], { ok: false, error: 'EIO', gpa: 100 * K, npages: 1 });
      const noGmem = both(cfg({ vmType: 'snp', memslots: [{ id: 0, baseGfn: 0, npages: 16, guestMemfd: false }] }), [populate(0, 1)]);
      assert.deepEqual(noGmem.results[0], { ok: false, error: 'EINVAL', gpa: 0, npages: 1 });
    });
    it('TDX: adds and maps at 4 KiB page by page; the first failure is returned with the range at the failing page', () => {
      const c = cfg(TDX);
      const { results, model } = both(c, [populate(10 * K, 1), populate(8 * K, 4), attr(20, 1, false), populate(19 * K, 3), populate(2047 * K, 2), populate(0, 0), finalize, populate(30 * K, 1)]);
      assert.deepEqual(results[0], { ok: true, gpa: 11 * K, npages: 0 });
      assert.deepEqual(results[1], { ok: false, error: 'EIO', gpa: 10 * K, npages: 2 });
      assert.deepEqual(results[3], { ok: false, error: 'EINVAL', gpa: 20 * K, npages: 2 });
      assert.deepEqual(results[4], { ok: false, error: 'EINVAL', gpa: 2048 * K, npages: 1 });
      assert.deepEqual(results[5], { ok: false, error: 'EINVAL', gpa: 0, npages: 0 });
      assert.deepEqual(results[7], { ok: false, error: 'EINVAL', gpa: 30 * K, npages: 1 });
      assert.deepEqual(model.view().measurement, [10, 8, 9, 19, 2047]);
      assert.deepEqual(model.view().leaves.map((l) => `${l.gfn}:${l.size}`), ['8:4k', '9:4k', '10:4k', '19:4k', '2047:4k']);
    });
    it('is only for SNP and TDX; finalize only once', () => {
      assert.equal(both(cfg(DEFAULT2M), [populate(0, 1)]).results[0]!.error, 'EINVAL');
      assert.equal(both(cfg({ ...SNP, vmType: 'sw-protected' }), [populate(0, 1)]).results[0]!.error, 'EINVAL');
      assert.equal(both(cfg(SNP), [finalize, finalize]).results[1]!.error, 'EINVAL');
      assert.equal(both(cfg(SNP), [populate(GFN_LIMIT * K, 1)]).results[0]!.error, 'EINVAL');
      assert.equal(both(cfg(SNP), [populate(1, 1)]).results[0]!.error, 'EINVAL');
    });
  });

  describe('memslots (KVM_SET_USER_MEMORY_REGION2, kvm_set_memory_region)', () => {
    it('create, overlap EEXIST, resize EINVAL, move, no-op, delete, delete again EINVAL', () => {
      const c = cfg(DEFAULT2M);
      const { results, model } = both(c, [
        pf(0, M2),
        umr(1, 2048, 512),
        umr(2, 2000, 100),
        umr(1, 2048, 513),
        umr(1, 2048, 512, { backing: '4k' }),
        umr(1, 4096, 512),
        umr(1, 100, 512),
        umr(1, 4096, 512),
        umr(0, 0, 0),
        umr(0, 0, 0),
        pf(0, K),
        mappings(0, 8192),
      ]);
      assert.deepEqual(results.slice(1, 11).map((r) => r.error ?? 'ok'), ['ok', 'EEXIST', 'EINVAL', 'EINVAL', 'ok', 'EEXIST', 'ok', 'ok', 'EINVAL', 'ENOENT']);
      assert.deepEqual(results[11], { ok: true, leaves: [] }); // the deleted slot's leaf went with it
      assert.deepEqual(model.view().memslots.map((s) => [s.id, s.baseGfn]), [[1, 4096]]);
    });
    it('slot ids from KVM_USER_MEM_SLOTS up, sizes beyond KVM_MEM_MAX_NR_PAGES or the GFN space: EINVAL; the memory budget: ENOMEM', () => {
      const { results } = both(cfg(DEFAULT2M), [umr(32764, 4096, 1), umr(65539, 4096, 1), umr(5, 4096, 2 ** 31), umr(5, GFN_LIMIT - 1, 2), umr(5, 2 ** 30, 2 ** 24)]);
      assert.deepEqual(results.map((r) => r.error), ['EINVAL', 'EINVAL', 'EINVAL', 'EINVAL', 'ENOMEM']);
      assert.deepEqual(d.validateOp!(umr(100, 0, 1), cfg(DEFAULT2M)).map((e) => e.path), ['$.args.slot']);
      assert.deepEqual(d.validateOp!(umr(31, 0, 1), cfg(DEFAULT2M)), []);
    });
    it('guest_memfd slots are immutable: any change but deletion is EINVAL', () => {
      const { results } = both(cfg(SWP), [umr(0, 4096, 512, { guestMemfd: true }), umr(0, 4096, 512), umr(0, 0, 512), umr(1, 4096, 4, { guestMemfd: true }), umr(1, 4096, 4, { guestMemfd: true })]);
      assert.deepEqual(results.map((r) => r.error ?? 'ok'), ['EINVAL', 'EINVAL', 'EINVAL', 'ok', 'EINVAL']);
    });
    it('a pre-fault over a deleted range: ENOENT (shared) or EFAULT (private); re-created, it maps again', () => {
      const { results } = both(cfg({ ...SWP, memslots: [{ id: 10, baseGfn: 512, npages: 513 }] }), [
        attr(1024, 1, false),
        umr(10, 0, 0),
        pf(512 * K, K),
        pf(1024 * K, K),
        umr(10, 512, 513, { guestMemfd: true }),
        pf(512 * K, 513 * K),
      ]);
      assert.deepEqual(results[2], { ok: false, error: 'EFAULT', gpa: 512 * K, size: K });
      assert.deepEqual(results[3], { ok: false, error: 'ENOENT', gpa: 1024 * K, size: K });
      assert.deepEqual(results[5], { ok: true, gpa: 1025 * K, size: 0 });
    });
  });

  describe('implementation internals', () => {
    it('installs whole leaves and frees lower tables a huge leaf replaces', () => {
      const c = cfg({ vmType: 'default', memslots: [{ id: 0, baseGfn: 0, npages: 262144 * 2, backing: '1g' }] });
      const impl = new PrefaultMmu(c);
      impl.apply({ op: 'setAttributes', args: { gfn: 5, npages: 1, private: false } });
      impl.apply({ op: 'guestAccess', args: { gfn: 3, write: false } });
      impl.apply(pf(0, 2 * 1024 * 1024 * 1024));
      const n = impl.counters();
      assert.equal(n['leavesInstalled'], 2);
      assert.equal(n['pagesCovered'], 2 * 262144);
      assert.equal(impl.view().leaves.length, 2);
      impl.apply({ op: 'zap', args: { gfn: 0, npages: 262144 * 2 } });
      assert.equal(impl.view().leaves.length, 0);
      assert.equal(impl.counters()['tablesInUse'], 1);
    });
    it('the live View tracks a fresh abstraction and reports the changed range', () => {
      const c = cfg({ vmType: 'tdx', memslots: [{ id: 0, baseGfn: 100, npages: 3000, backing: '2m' }] });
      const sys: Sys[] = [new PrefaultModel(c), new PrefaultMmu(c)];
      for (const s of sys) {
        s.apply(populate(600 * K, 3));
        const lv = s.liveView!();
        assert.deepEqual(lv.scope, { start: 600, end: 603 });
        s.apply(finalize);
        assert.deepEqual(s.liveView!().scope, { start: 0, end: 0 });
        s.apply(pf(100 * K, 3000 * K));
        s.apply({ op: 'zap', args: { gfn: 1100, npages: 2 } });
        s.apply({ op: 'setAttributes', args: { gfn: 2000, npages: 3, private: false } });
        s.apply(umr(1, 4000, 16, { backing: '4k' }));
        s.apply(pf(4000 * K, 16 * K));
        s.apply(umr(1, 5000, 16, { backing: '4k' }));
        assert.deepEqual(s.liveView!().view, s.view());
        assert.equal(s.fingerprint!(), sys[0]!.fingerprint!());
      }
      assert.ok(sys[0]!.counters!()['pageSteps']! > sys[1]!.counters!()['leavesInstalled']!);
    });
    it('scopes merge and reach widens to the largest leaf', () => {
      assert.deepEqual(mergeScopes({ start: 0, end: 0 }, { start: 3, end: 4 }), { start: 3, end: 4 });
      assert.deepEqual(mergeScopes({ start: 3, end: 4 }, { start: 0, end: 0 }), { start: 3, end: 4 });
      assert.deepEqual(mergeScopes({ start: 3, end: 4 }, { start: 10, end: 12 }), { start: 3, end: 12 });
      assert.deepEqual(reachOf(513, 2, 2), [512, 1024]);
      assert.deepEqual(reachOf(GFN_LIMIT + 5, 2, 2), [GFN_LIMIT, GFN_LIMIT]);
      assert.deepEqual(coveredUpTo([], 0, 4), { gfn: 0, count: 0 });
    });
  });

  describe('invariants catch hand-built bad Views', () => {
    const snp = cfg(SNP);
    const tdx = cfg(TDX);
    const dflt = cfg({
      vmType: 'sw-protected',
      memslots: [{ id: 0, baseGfn: 0, npages: 1000, backing: '2m' }, { id: 1, baseGfn: 1024, npages: 1024, backing: '4k' }, { id: 2, baseGfn: 4096, npages: 8, guestMemfd: false }],
    });
    const attrs = [{ gfn: 0, npages: GFN_LIMIT, private: true }];
    const shared = [{ gfn: 0, npages: GFN_LIMIT, private: false }];
    const base = (over: Partial<View>): View => ({ finalized: false, leaves: [], memslots: [], attributes: attrs, measurement: [], last: null, ...over });
    const leaf = (gfn: number, size: Leaf['size'], priv = true): Leaf => ({ gfn, size, private: priv });
    const inv = (id: string) => INVARIANTS.find((i) => i.id === id)!;
    /** The invariants read the memslots from the View: a hand-built View without any gets the config's. */
    const slotted = (v: View, c: PrefaultConfig): View => (v.memslots.length > 0 ? v : { ...v, memslots: [...c.memslots] });
    const bad = (id: string, v: View, c: PrefaultConfig): void => {
      const msg = inv(id).check(slotted(v, c), c);
      assert.ok(msg !== null, `${id} should reject the View`);
      assert.ok(/gfn|leaf|page|preFault|measured|guest|populate|memslot/.test(msg), msg);
      assert.ok(inv(id).exercised(slotted(v, c), c), `${id} should count as exercised`);
    };
    const good = (id: string, v: View, c: PrefaultConfig): void => assert.equal(inv(id).check(slotted(v, c), c), null);
    const popLast = (gpa: number, npages: number, ok: boolean, error: string | null, resGpa: number, resNpages: number, measuredBefore = 0) => ({
      op: 'populate',
      measuredBefore,
      gfn: gpa / K,
      request: null,
      result: null,
      before: [],
      populate: { gpa, npages, ok, error, resGpa, resNpages },
    });

    it('exact-range', () => {
      bad('exact-range', base({ leaves: [leaf(0, '4k')], measurement: [0] }), snp); // SNP maps nothing before LAUNCH_FINISH
      bad('exact-range', base({ leaves: [leaf(0, '2m')], measurement: [0] }), tdx);
      bad('exact-range', base({ leaves: [leaf(7, '4k')], measurement: [0] }), tdx);
      const last = popLast(0, 2, true, null, 2 * K, 0);
      bad('exact-range', base({ leaves: [leaf(0, '4k')], measurement: [0, 1], last }), tdx); // added but unmapped
      good('exact-range', base({ leaves: [leaf(0, '4k'), leaf(1, '4k')], measurement: [0, 1], last }), tdx);
      good('exact-range', base({ leaves: [leaf(0, '2m')], finalized: true }), tdx);
      good('exact-range', base({ measurement: [0, 1], last }), snp);
      bad('exact-range', base({ measurement: [0, 1], last: popLast(0, 3, true, null, 1 * K, 2) }), snp); // added 2, reports 1
      bad('exact-range', base({ measurement: [0], last: popLast(0, 2, false, 'EEXIST', 0, 2) }), snp); // error but added
      bad('exact-range', base({ measurement: [], last: popLast(0, 2, false, 'EEXIST', 0, 2) }), snp); // EEXIST must be EIO
      bad('exact-range', base({ measurement: [0], last: popLast(0, 2, true, null, 3 * K, 0) }), snp); // moved the end
    });
    it('measure-once', () => {
      bad('measure-once', base({ measurement: [3, 4, 3] }), snp);
      const lastPf = { op: 'preFault', measuredBefore: 1, gfn: null, request: null, result: null, before: [], populate: null };
      bad('measure-once', base({ measurement: [3, 4], last: lastPf }), snp);
      bad('measure-once', base({ measurement: [3], last: { ...lastPf, measuredBefore: 2 } }), snp);
      const lastPop = { op: 'populate', measuredBefore: 1, gfn: 5, request: null, result: null, before: [], populate: null };
      bad('measure-once', base({ measurement: [3, 5, 7], last: lastPop }), snp);
      good('measure-once', base({ measurement: [3, 5, 6], last: lastPop }), snp);
    });
    it('leaf-sound', () => {
      bad('leaf-sound', base({ leaves: [leaf(1, '2m', false)], attributes: shared }), dflt);
      bad('leaf-sound', base({ leaves: [leaf(0, '1g', false)], attributes: shared }), snp);
      bad('leaf-sound', base({ leaves: [leaf(512, '2m', false)], attributes: shared }), dflt); // crosses slot 0's end at 1000
      bad('leaf-sound', base({ leaves: [leaf(1536, '2m', false)], attributes: shared }), dflt); // 4k backing
      bad('leaf-sound', base({ leaves: [leaf(1010, '4k')] }), dflt); // no memslot
      bad('leaf-sound', base({ leaves: [leaf(0, '2m', false)], attributes: [{ gfn: 0, npages: 5, private: true }, { gfn: 5, npages: GFN_LIMIT - 5, private: false }] }), dflt);
      bad('leaf-sound', base({ leaves: [leaf(0, '4k')], attributes: [] }), dflt);
      bad('leaf-sound', base({ leaves: [leaf(0, '2m')] }), tdx); // a huge private leaf
      bad('leaf-sound', base({ leaves: [leaf(4096, '4k')] }), dflt); // private memory from a slot without guest_memfd
      good('leaf-sound', base({ leaves: [leaf(0, '2m', false), leaf(1024, '4k', false)], attributes: shared }), dflt);
      good('leaf-sound', base({ leaves: [leaf(0, '4k'), leaf(1024, '4k')] }), dflt);
    });
    it('progress-exact', () => {
      const c = cfg(DEFAULT2M);
      const mk = (res: { ok: boolean; error: string | null; gpa: number; size: number }, leaves: Leaf[], signalAfter: number | null = null): View =>
        base({
          finalized: true,
          leaves,
          attributes: shared,
          last: { op: 'preFault', measuredBefore: 0, gfn: null, request: { gpa: 511 * K, size: 3 * K, flags: 0, signalAfter }, result: res, before: [], populate: null },
        });
      const two = [leaf(0, '2m', false), leaf(512, '2m', false)];
      good('progress-exact', mk({ ok: true, error: null, gpa: 514 * K, size: 0 }, two), c);
      bad('progress-exact', mk({ ok: true, error: null, gpa: 1024 * K, size: 0 }, two), c); // moved the end
      bad('progress-exact', mk({ ok: true, error: null, gpa: 1024 * K, size: -510 * K }, two), c); // whole huge leaf counted
      bad('progress-exact', mk({ ok: true, error: null, gpa: 514 * K, size: 0 }, [leaf(0, '2m', false)]), c); // processed but unmapped
      bad('progress-exact', mk({ ok: false, error: 'ENOENT', gpa: 512 * K, size: 2 * K }, two), c); // error moved the range
      bad('progress-exact', mk({ ok: false, error: 'ENOENT', gpa: 511 * K, size: 3 * K }, two), c); // chunks were mapped: must succeed
      bad('progress-exact', mk({ ok: true, error: null, gpa: 511 * K, size: 3 * K }, two), c); // success without progress
      bad('progress-exact', mk({ ok: true, error: null, gpa: 514 * K - 1, size: 1 }, two), c); // unaligned
      bad('progress-exact', mk({ ok: true, error: null, gpa: 514 * K, size: 0 }, two, 1), c); // signal after one chunk
      good('progress-exact', mk({ ok: true, error: null, gpa: 512 * K, size: 2 * K }, two, 1), c);
      bad('progress-exact', mk({ ok: false, error: 'ENOENT', gpa: 511 * K, size: 3 * K }, []), c); // stopped at a mappable page
      bad('progress-exact', mk({ ok: true, error: null, gpa: 512 * K, size: 2 * K }, [leaf(0, '2m', false)]), c); // stopped early
      const gap = cfg({ vmType: 'sw-protected', memslots: [{ id: 0, baseGfn: 0, npages: 512 }] });
      const atGap = (error: string, priv: boolean): View =>
        base({
          finalized: true,
          attributes: [{ gfn: 0, npages: GFN_LIMIT, private: priv }],
          last: { op: 'preFault', measuredBefore: 0, gfn: null, request: { gpa: 600 * K, size: K, flags: 0, signalAfter: null }, result: { ok: false, error, gpa: 600 * K, size: K }, before: [], populate: null },
        });
      good('progress-exact', atGap('EFAULT', true), gap);
      bad('progress-exact', atGap('ENOENT', true), gap); // private no-slot: EFAULT
      good('progress-exact', atGap('ENOENT', false), gap);
      assert.equal(expectedPreFault(base({}), c), null);
    });
    it('idempotent', () => {
      const c = cfg(DEFAULT2M);
      const a = [{ gfn: 0, npages: 2048, private: false }];
      const lastPf = (before: Leaf[], ok = true) => ({
        op: 'preFault',
        measuredBefore: 0,
        gfn: null,
        request: { gpa: 0, size: 2 * K, flags: 0, signalAfter: null },
        result: ok ? { ok: true, error: null, gpa: 2 * K, size: 0 } : { ok: false, error: 'ENOENT', gpa: 0, size: 2 * K },
        before,
        populate: null,
      });
      bad('idempotent', base({ attributes: a, leaves: [], last: lastPf([leaf(0, '4k', false)]) }), c); // unmapped
      bad('idempotent', base({ attributes: a, leaves: [leaf(0, '4k', false)], last: lastPf([leaf(0, '2m', false)]) }), c); // shrunk
      bad('idempotent', base({ attributes: a, leaves: [leaf(0, '2m', true)], last: lastPf([leaf(0, '2m', false)]) }), c); // private flip
      bad('idempotent', base({ attributes: a, leaves: [leaf(0, '2m', false)], last: lastPf([leaf(0, '2m', false)], false) }), c); // mapped but failed
      const ga = { op: 'guestAccess', measuredBefore: 0, gfn: 3, request: null, result: null, before: [leaf(3, '4k', false)], populate: null };
      bad('idempotent', base({ attributes: a, leaves: [leaf(0, '2m', false)], last: ga }), c); // a guest access to a mapped page remapped it
      good('idempotent', base({ attributes: a, leaves: [leaf(0, '2m', false)], last: lastPf([leaf(0, '4k', false), leaf(1, '4k', false)]) }), c);
      good('idempotent', base({ attributes: a, leaves: [leaf(3, '4k', false)], last: ga }), c);
      const gaNew = { ...ga, before: [], result: { ok: true, error: null, gpa: 3 * K, size: K } };
      bad('idempotent', base({ attributes: a, leaves: [], last: gaNew }), c); // succeeded, left unmapped
      good('idempotent', base({ attributes: a, leaves: [leaf(0, '2m', false)], last: gaNew }), c);
    });
    it('memslots-sound', () => {
      const s = (id: number, baseGfn: number, npages: number) => ({ id, baseGfn, npages, backing: '2m' as const, guestMemfd: false });
      bad('memslots-sound', base({ memslots: [s(0, 0, 10), s(1, 5, 10)] }), snp);
      bad('memslots-sound', base({ memslots: [s(0, 0, 10), s(0, 20, 10)] }), snp);
      bad('memslots-sound', base({ memslots: [s(32764, 0, 10)] }), snp);
      bad('memslots-sound', base({ memslots: [s(0, 0, 2 ** 31)] }), snp);
      bad('memslots-sound', base({ memslots: [s(0, GFN_LIMIT - 1, 2)] }), snp);
      good('memslots-sound', base({ memslots: [s(0, 0, 10), s(1, 10, 10)] }), snp);
      assert.equal(inv('memslots-sound').check(base({ memslots: [s(0, 0, 10), s(1, 5, 10)] }), snp, { start: 0, end: 1 }), null); // scoped, not after setUserMemoryRegion
    });
    it('no-alias', () => {
      bad('no-alias', base({ leaves: [leaf(0, '2m'), leaf(5, '4k')] }), snp);
      bad('no-alias', base({ leaves: [leaf(5, '4k'), leaf(0, '4k')] }), snp);
      good('no-alias', base({ leaves: [leaf(0, '2m'), leaf(512, '4k')] }), snp);
    });
    it('scoped checks look only at the changed range', () => {
      const v = base({ leaves: [leaf(0, '2m'), leaf(5, '4k'), leaf(4096, '4k')] });
      assert.equal(inv('no-alias').check(v, snp, { start: 4096, end: 4097 }), null);
      assert.notEqual(inv('no-alias').check(v, snp, { start: 0, end: 1 }), null);
      assert.equal(inv('leaf-sound').check(v, snp, { start: 0, end: 0 }), null);
      assert.equal(inv('leaf-sound').exercised(v, snp, { start: 0, end: 0 }), false);
    });
  });

  describe('views agree', () => {
    it('names the first difference', () => {
      const c = cfg(TDX);
      const m = new PrefaultModel(c);
      m.apply(populate(0, 2));
      const v = m.view();
      assert.match(viewsAgree(v, { ...v, memslots: [] })!, /memslots/);
      assert.match(viewsAgree(v, { ...v, last: { ...v.last!, populate: null } })!, /populate/);
      assert.match(viewsAgree(v, { ...v, last: { ...v.last!, populate: { ...v.last!.populate!, resGpa: 1 } } })!, /populate/);
      assert.equal(viewsAgree(v, v), null);
      assert.match(viewsAgree(v, { ...v, finalized: true })!, /finalized/);
      assert.match(viewsAgree(v, { ...v, measurement: [0] })!, /measurements/);
      assert.match(viewsAgree(v, { ...v, attributes: [] })!, /attribute/);
      assert.match(viewsAgree(v, { ...v, attributes: [{ ...v.attributes[0]!, private: false }] })!, /attribute/);
      assert.match(viewsAgree(v, { ...v, leaves: [v.leaves[0]!] })!, /leaf|leaves/);
      assert.match(viewsAgree(v, { ...v, leaves: [v.leaves[1]!, v.leaves[0]!] })!, /leaf/);
      assert.match(viewsAgree(v, { ...v, leaves: [] }, { start: 0, end: 1 })!, /leaves in gfn/);
      assert.equal(viewsAgree(v, { ...v, leaves: [] }, { start: 5, end: 5 }), null);
      assert.match(viewsAgree(v, { ...v, last: null })!, /last op/);
      assert.match(viewsAgree(v, { ...v, last: { ...v.last!, op: 'zap' } })!, /last op/);
      m.apply(pf(0, K));
      const w = m.view();
      assert.match(viewsAgree(w, { ...w, last: { ...w.last!, request: null } })!, /request/);
      assert.match(viewsAgree(w, { ...w, last: { ...w.last!, request: { ...w.last!.request!, size: 1 } } })!, /request/);
      assert.match(viewsAgree(w, { ...w, last: { ...w.last!, result: null } })!, /result/);
      assert.match(viewsAgree(w, { ...w, last: { ...w.last!, result: { ...w.last!.result!, gpa: 1 } } })!, /result/);
      assert.match(viewsAgree(w, { ...w, last: { ...w.last!, before: [leaf0()] } })!, /before/);
    });
  });

  describe('mutants', () => {
    it('each mutant violates its expected invariant on a targeted trace', () => {
      const traces: Record<string, [unknown, PrefaultOp[]]> = {
        'rfc-level-before-finalize': [TDX, [populate(512 * K, 513)]],
        'huge-leaf-crosses-slot': [{ vmType: 'default', memslots: [{ id: 0, baseGfn: 1, npages: 1023, backing: '2m' }] }, [pf(5 * K, K)]],
        'mixed-attrs-huge-leaf': [
          { vmType: 'sw-protected', memslots: [{ id: 0, baseGfn: 0, npages: 1024, backing: '2m' }] },
          [{ op: 'setAttributes', args: { gfn: 9, npages: 1, private: true } }, pf(0, K)],
        ],
        'populate-remeasures': [SNP, [populate(0, 1), populate(0, 1)]],
        'progress-whole-leaf': [DEFAULT2M, [pf(0, K)]],
        'prefault-before-finalize': [SNP, [pf(0, K)]],
        'prefault-splits-huge': [DEFAULT2M, [pf(0, K), pf(5 * K, K)]],
        'prefault-keeps-small-leaves': [
          { vmType: 'sw-protected', memslots: [{ id: 0, baseGfn: 0, npages: 1024, backing: '2m' }] },
          [
            { op: 'setAttributes', args: { gfn: 5, npages: 1, private: true } },
            { op: 'guestAccess', args: { gfn: 3, write: false } },
            { op: 'setAttributes', args: { gfn: 5, npages: 1, private: false } },
            pf(0, 2 * K),
            { op: 'guestAccess', args: { gfn: 7, write: false } },
          ],
        ],
        'huge-private-leaf': [SWP, [pf(0, K)]],
        'snp-populate-maps': [SNP, [populate(0, 1)]],
        'private-noslot-enoent': [SWP, [pf(512 * K, K)]],
        'snp-populate-passthrough': [SNP, [populate(0, 1), populate(0, 1)]],
        'tdx-populate-keeps-range': [TDX, [populate(K, 1), populate(0, 3)]],
        'memslot-keeps-leaves': [DEFAULT2M, [pf(0, K), umr(0, 0, 0)]],
        'memslot-overlap-accepted': [DEFAULT2M, [umr(1, 100, 8)]],
      };
      for (const m of MUTANTS) {
        const [input, ops] = traces[m.id]!;
        const c = cfg(input);
        const sys = m.create(c);
        const seen = new Set<string>();
        for (const op of ops) {
          sys.apply(op);
          for (const id of violations(sys, c)) seen.add(id);
        }
        for (const id of m.expectedToViolate) assert.ok(seen.has(id), `${m.id} should violate ${id}; saw ${[...seen].join(', ') || 'nothing'}`);
        // ... while the real implementation violates nothing on the same trace.
        const impl = new PrefaultMmu(c);
        for (const op of ops) {
          impl.apply(op);
          assert.deepEqual(violations(impl, c), []);
        }
      }
    });
    for (const m of MUTANTS) {
      it(`the lockstep property kills ${m.id} within the mutant budget`, function () {
        this.timeout(120000);
        const out = checkDomain(d, { runs: d.mutantBudget.runs, maxOps: d.mutantBudget.maxOps, seed: 4242, mutant: m.id });
        assert.ok(out.failure !== null, `${m.id} survived ${out.runsExecuted} runs`);
      });
    }
  });

  describe('lockstep property', () => {
    it('model and implementation agree on random traces, every invariant holds and is exercised', function () {
      this.timeout(300000);
      const out = checkDomain(d, { runs: 250, maxOps: 40, seed: 20261124 });
      assert.equal(out.failure, null, out.failure ? `${out.failure.failure.message} after ${out.failure.ops.map((o) => d.describeOp!(o)).join('; ')}` : '');
      for (const inv of INVARIANTS) assert.ok(out.tallies.invariants[inv.id]!.nonTrivial > 0, `${inv.id} never exercised`);
      for (const op of Object.keys(d.opArgs)) assert.ok(out.tallies.ops[op]!.generated > 0, `${op} never generated`);
    });
    it('generators reach the hazards: bad input about one op in ten, both sides of finalize, 2 MiB leaves', () => {
      const samples = fc.sample(configArb().chain((c) => opsArb(c, 40).map((ops) => ({ c, ops }))), { seed: 99, numRuns: 200 });
      let total = 0;
      let bad = 0;
      let huge = 0;
      let prefaultBeforeFinalize = 0;
      for (const { c, ops } of samples) {
        const tallies = emptyTallies();
        const out = runTrace(d, c, ops, { tallies });
        assert.equal(out.failure, null);
        total += ops.length;
        out.results.forEach((r, k) => {
          if (ops[k]!.op === 'preFault' && (r.model.error === 'EINVAL' || r.model.error === 'ENOENT')) bad++;
        });
        const impl = new PrefaultMmu(c);
        ops.forEach((o) => impl.apply(o));
        huge += impl.view().leaves.filter((l) => l.size !== '4k').length > 0 ? 1 : 0;
        prefaultBeforeFinalize += out.results.filter((r) => r.model.error === 'EOPNOTSUPP').length > 0 ? 1 : 0;
        assert.ok(interestingGfns(c).length > 0);
      }
      assert.ok(bad / total > 0.03 && bad / total < 0.25, `bad-input share ${bad / total}`);
      assert.ok(huge > 20, `runs with huge leaves: ${huge}`);
      assert.ok(prefaultBeforeFinalize > 5);
    });
  });

  describe('case files', () => {
    const dir = path.join(__dirname, '..', '..', '..', 'spec', 'cases', 'prefault');
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));
    it('has at least 12 case files', () => assert.ok(files.length >= 12));
    for (const f of files) {
      it(`replays ${f}`, () => {
        const loaded = loadCaseFile(path.join(dir, f), DOMAINS);
        assert.ok(loaded.ok, loaded.ok ? '' : JSON.stringify(loaded.errors));
        const out = replayCase(loaded.value, { tallies: emptyTallies() });
        assert.equal(out.failure, null, out.failure?.message);
      });
    }
  });

  describe('long traces', () => {
    /**
     * Regression: a 100,000-step case took over 30 s. The per-op work must not
     * grow with the trace: a block of ops repeated 4 times as often costs about
     * 4 times the work (model page steps, impl chunks, ghost-record leaves,
     * live-View scope), with the View's size the same after each block.
     */
    it('a repeated block of ops costs linear work', () => {
      const c = cfg({ vmType: 'sw-protected', memslots: [{ id: 0, baseGfn: 0, npages: 262144, backing: '2m' }, { id: 1, baseGfn: 262144, npages: 4096, backing: '4k' }] });
      const block: PrefaultOp[] = [
        pf(0, 8 * M2),
        { op: 'guestAccess', args: { gfn: 262144 + 7, write: true } },
        attr(100, 1, true),
        pf(0, M2),
        attr(100, 1, false),
        pf(262144 * K, 64 * K),
        umr(2, 300000, 16, { backing: '4k', guestMemfd: true }),
        pf(300000 * K, 16 * K),
        umr(2, 0, 0),
        { op: 'zap', args: { gfn: 0, npages: 262144 + 4096 } },
        mappings(0, 1024),
      ];
      const work = (reps: number): { total: number; leaves: number } => {
        const sys = [new PrefaultModel(c), new PrefaultMmu(c)] as const;
        let ghost = 0;
        let scope = 0;
        for (let r = 0; r < reps; r++) {
          for (const op of block) {
            for (const s of sys) s.apply(op);
            const lv = sys[1].liveView();
            ghost += lv.view.last!.before.length;
            scope += lv.scope.end - lv.scope.start;
            sys[0].liveView();
          }
        }
        const m = sys[0].counters();
        const i = sys[1].counters();
        return { total: m['pageSteps']! + i['chunks']! + i['leavesInstalled']! + ghost + scope / 512, leaves: sys[1].view().leaves.length };
      };
      const small = work(50);
      const large = work(200);
      const ratio = large.total / small.total;
      assert.ok(ratio > 3.6 && ratio < 4.4, `work ratio ${ratio} for 4x the ops`);
      assert.equal(large.leaves, small.leaves);
    });
  });

  describe('exploration', () => {
    it('offers a small config and an alphabet whose ops all decode', () => {
      const c = cfg(d.exploration!.config);
      const alpha = d.exploration!.alphabet(c);
      assert.ok(alpha.length >= 10 && alpha.length <= 30);
      const m = new PrefaultModel(c);
      const f0 = m.fingerprint();
      m.apply(mappings(0, 1));
      assert.equal(m.fingerprint(), f0);
      m.apply(alpha[0]!);
      assert.notEqual(m.fingerprint(), f0);
    });
  });
});

function leaf0(): Leaf {
  return { gfn: 77, size: '4k', private: true };
}
