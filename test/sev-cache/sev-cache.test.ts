import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { sevCacheDomain as d, sevResultsAgree, sevViewsAgree } from '../../domains/sev-cache';
import { DOMAINS } from '../../domains/index';
import { checkDomain } from '../../harness/check';
import { runMutant } from '../../harness/mutants';
import { runTrace } from '../../harness/lockstep';
import { loadCaseFile, replayCase } from '../../harness/cases';
import { createModel } from '../../model/sev-cache/model';
import { createImpl, SevCacheImpl } from '../../impl/sev-cache/sev';
import { Bitmap } from '../../impl/sev-cache/cpumask';
import { MinimumTracker } from '../../spec/sev-cache/cost';
import { mergeScopes } from '../../spec/sev-cache/live';
import {
  INVARIANTS,
  asidInRange,
  asidReuseClean,
  guestIntegrity,
  hostIntegrity,
  noStaleC1Dirty,
  writebackCovers,
} from '../../spec/sev-cache/invariants';
import { DEFAULT_CONFIG, asidRange, ciphertext, resolveConfig, validateOp, type Config, type SevOp, type SevView } from '../../spec/sev-cache/types';
import { intent, resolve } from '../../properties/sev-cache/arbitraries';
import * as fc from 'fast-check';
import { spawnSync } from 'child_process';
import * as os from 'os';

const cfg = (over: Partial<Config> = {}): Config => ({ ...DEFAULT_CONFIG, ...over });

/** The commit message's story: guest dirties a line on CPU 0, region released, host writes from CPU 1, stale line evicted. */
const STORY: SevOp[] = [
  { op: 'createVm', args: { vm: 1, type: 'sev' } },
  { op: 'registerRegion', args: { vm: 1, page: 0, npages: 1 } },
  { op: 'guestWrite', args: { vm: 1, cpu: 0, page: 0, line: 0, value: 7 } },
  { op: 'unregisterRegion', args: { vm: 1, page: 0, npages: 1 } },
  { op: 'hostWrite', args: { cpu: 1, page: 0, line: 0, value: 42 } },
  { op: 'evict', args: { cpu: 1, page: 0, line: 0, key: 0 } },
  { op: 'evict', args: { cpu: 0, page: 0, line: 0, key: 1 } },
  { op: 'hostRead', args: { cpu: 2, page: 0, line: 0 } },
];

function zero(): Record<string, number> {
  return { releases: 0 };
}

function emptyView(): SevView {
  return { vms: [], asids: [], pages: [], guestLines: [], written: [], firmware: { dfFlushes: 0, lastDfFlushMissingWbinvd: [] } };
}

describe('sev-cache', () => {
  describe('config', () => {
    it('fills defaults', () => {
      const r = resolveConfig({});
      assert.ok(r.ok);
      if (r.ok) assert.deepEqual(r.value, DEFAULT_CONFIG);
      const u = resolveConfig(undefined);
      assert.ok(u.ok);
    });
    it('reports out-of-range fields at their path', () => {
      const r = resolveConfig({ cpus: 65, asids: 0 });
      assert.ok(!r.ok);
      if (!r.ok) assert.deepEqual(r.errors.map((e) => e.path), ['$.config.cpus', '$.config.asids']);
    });
    it('rejects unknown fields and wrong types', () => {
      const r = resolveConfig({ cpu: 2, vmPageFlush: 'sometimes' });
      assert.ok(!r.ok);
      if (!r.ok) {
        const paths = r.errors.map((e) => e.path);
        assert.ok(paths.includes('$.config.cpu'));
        assert.ok(paths.includes('$.config.vmPageFlush'));
      }
    });
    it('round-trips through encodeConfig', () => {
      const c = cfg({ cpus: 3, smeCoherent: true, vmPageFlush: 'faults' });
      const r = d.resolveConfig(d.encodeConfig(c));
      assert.ok(r.ok);
      if (r.ok) assert.deepEqual(r.value, c);
    });
    it('keeps the single ASID range by default and splits it at minSevAsid', () => {
      assert.deepEqual(asidRange(cfg({ asids: 4 }), 'sev-es'), { lo: 1, hi: 4 });
      assert.deepEqual(asidRange(cfg({ asids: 4 }), 'sev'), { lo: 1, hi: 4 });
      const split = cfg({ asids: 4, minSevAsid: 3 });
      assert.deepEqual(asidRange(split, 'sev'), { lo: 3, hi: 4 });
      assert.deepEqual(asidRange(split, 'snp'), { lo: 1, hi: 2 });
      const r = d.resolveConfig(d.encodeConfig(split));
      assert.ok(r.ok);
      if (r.ok) assert.deepEqual(r.value, split);
      assert.ok(!('minSevAsid' in (d.encodeConfig(cfg()) as object)));
      assert.equal(cfg().haveRunMask, 'upstream');
    });
    it('is registered', () => {
      assert.ok(DOMAINS.some((x) => x.id === 'sev-cache'));
    });
  });

  describe('bounded input (robustness)', () => {
    const ROOT = path.join(__dirname, '..', '..', '..');
    const writeCase = (steps: unknown[], config: unknown = {}): string => {
      const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sev-bounds-')), 'case.json');
      fs.writeFileSync(f, JSON.stringify({ format: 'hvspec-case/1', name: 'bounds', domain: 'sev-cache', source: 'test', config, steps }));
      return f;
    };
    it('a VM id of 2^32 is a decode error at its JSON path, not a crash in the model', () => {
      const loaded = loadCaseFile(writeCase([{ op: 'createVm', args: { vm: 2 ** 32, type: 'sev' } }]), DOMAINS);
      assert.ok(!loaded.ok);
      if (!loaded.ok) assert.deepEqual(loaded.errors.map((e) => e.path), ['$.steps[0].args.vm']);
    });
    it('every number an op takes is bounded: VM ids, pages, counts, CPUs, lines, keys, values', () => {
      const steps = [
        { op: 'createVm', args: { vm: 0x80000000, type: 'sev' } },
        { op: 'registerRegion', args: { vm: 1, page: 4097, npages: 2 ** 40 } },
        { op: 'guestWrite', args: { vm: 1, cpu: 65, page: 0, line: 65, value: 2 ** 31 } },
        { op: 'evict', args: { cpu: 0, page: 0, line: 0, key: 1024 } },
        { op: 'memoryReclaimed', args: { vm: 1, page: 2 ** 53, npages: 1 } },
        { op: 'launchWrite', args: { vm: 1, cpu: 0, page: 0, line: 0, value: -(2 ** 31) - 1 } },
      ];
      const loaded = loadCaseFile(writeCase(steps), DOMAINS);
      assert.ok(!loaded.ok);
      if (!loaded.ok) {
        assert.deepEqual(loaded.errors.map((e) => e.path), [
          '$.steps[0].args.vm',
          '$.steps[1].args.page',
          '$.steps[1].args.npages',
          '$.steps[2].args.cpu',
          '$.steps[2].args.line',
          '$.steps[2].args.value',
          '$.steps[3].args.key',
          '$.steps[4].args.page',
          '$.steps[5].args.value',
        ]);
      }
    });
    it('the largest accepted VM id works in both systems', () => {
      const out = runTrace(d, cfg(), [
        { op: 'createVm', args: { vm: 0x7fffffff, type: 'sev' } },
        { op: 'registerRegion', args: { vm: 0x7fffffff, page: 0, npages: 1 } },
        { op: 'guestWrite', args: { vm: 0x7fffffff, cpu: 0, page: 0, line: 0, value: 0x7fffffff } },
        { op: 'guestRead', args: { vm: 0x7fffffff, cpu: 1, page: 0, line: 0 } },
        { op: 'destroyVm', args: { vm: 0x7fffffff } },
      ], { expects: [{ ok: true, asid: 1 }, { ok: true }, { ok: true }, { ok: true, value: 0x7fffffff }, { ok: true }] });
      assert.equal(out.failure, null, out.failure?.message);
    });
    it('the CLI answers a case with vm 2^32 with one line per error and exit 2, no stack trace', () => {
      const f = writeCase([{ op: 'createVm', args: { vm: 2 ** 32, type: 'sev' } }], { asids: 2, minSevAsid: 4 });
      const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'hvspec.js'), 'replay', f], { cwd: ROOT, encoding: 'utf8' });
      assert.equal(r.status, 2, r.stdout + r.stderr);
      const text = r.stdout + r.stderr;
      assert.match(text, /\$\.steps\[0\]\.args\.vm: expected VM id/);
      assert.match(text, /\$\.config\.minSevAsid: minSevAsid must be in \[1, asids \+ 1 = 3\], got 4/);
      assert.doesNotMatch(text, /\n\s+at /);
    });
  });

  describe('validateOp', () => {
    it('flags CPUs, lines, host pages and keys out of range', () => {
      const c = cfg({ cpus: 2, pages: 2, linesPerPage: 1, asids: 1 });
      assert.equal(validateOp({ op: 'guestWrite', args: { vm: 1, cpu: 2, page: 0, line: 1, value: 0 } }, c).length, 2);
      assert.equal(validateOp({ op: 'hostRead', args: { cpu: 0, page: 2, line: 0 } }, c).length, 1);
      assert.equal(validateOp({ op: 'evict', args: { cpu: 0, page: 0, line: 0, key: 2 } }, c)[0]!.path, '$.args.key');
      assert.equal(validateOp({ op: 'guestRead', args: { vm: 1, cpu: 0, page: 9, line: 0 } }, c).length, 0);
    });
    it('both systems answer EINVAL rather than throw on out-of-range input', () => {
      const c = cfg({ cpus: 2, pages: 2, linesPerPage: 1, asids: 1 });
      const bad: SevOp[] = [
        { op: 'createVm', args: { vm: 1, type: 'sev' } },
        { op: 'guestWrite', args: { vm: 1, cpu: 5, page: 0, line: 0, value: 1 } },
        { op: 'hostWrite', args: { cpu: 0, page: 5, line: 0, value: 1 } },
        { op: 'hostRead', args: { cpu: 0, page: 0, line: 3 } },
        { op: 'evict', args: { cpu: 0, page: 0, line: 0, key: 9 } },
        { op: 'registerRegion', args: { vm: 1, page: 1, npages: 3 } },
      ];
      for (const sys of [createModel(c), createImpl(c)]) {
        const rs = bad.map((op) => sys.apply(op));
        assert.deepEqual(rs.slice(1).map((r) => r.error), ['EINVAL', 'EINVAL', 'EINVAL', 'EINVAL', 'EINVAL']);
      }
    });
  });

  describe('model and impl', () => {
    for (const [name, create] of [
      ['model', createModel],
      ['impl', createImpl],
    ] as const) {
      it(`${name}: the commit message story leaves the host's data intact`, () => {
        for (const wbnoinvd of [true, false]) {
          const sys = create(cfg({ wbnoinvd }));
          const rs = STORY.map((op) => sys.apply(op));
          assert.deepEqual(rs[0], { ok: true, asid: 1 });
          assert.deepEqual(rs[7], { ok: true, value: 42 });
          for (const inv of INVARIANTS) assert.equal(inv.check(sys.view(), cfg()), null, inv.id);
        }
      });
      it(`${name}: recycles ASIDs, then EBUSY`, () => {
        const sys = create(cfg({ asids: 1, smeCoherent: true }));
        assert.deepEqual(sys.apply({ op: 'createVm', args: { vm: 1, type: 'snp' } }), { ok: true, asid: 1 });
        assert.deepEqual(sys.apply({ op: 'createVm', args: { vm: 2, type: 'sev' } }), { ok: false, error: 'EBUSY' });
        sys.apply({ op: 'registerRegion', args: { vm: 1, page: 0, npages: 1 } });
        sys.apply({ op: 'guestWrite', args: { vm: 1, cpu: 2, page: 0, line: 0, value: 3 } });
        assert.deepEqual(sys.apply({ op: 'destroyVm', args: { vm: 1 } }), { ok: true });
        assert.deepEqual(sys.view().asids, [{ asid: 1, state: 'reclaim', snp: true }]);
        assert.deepEqual(sys.apply({ op: 'createVm', args: { vm: 2, type: 'sev' } }), { ok: true, asid: 1 });
        const v = sys.view();
        assert.equal(v.firmware.dfFlushes, 1);
        assert.deepEqual(v.firmware.lastDfFlushMissingWbinvd, []);
        assert.deepEqual(v.guestLines, []);
        assert.equal(v.vms[0]!.fresh, true);
        assert.equal(sys.counters!()['recycles'], 1);
      });
      it(`${name}: a guest read of a line it did not write is unspecified in the model only`, () => {
        const sys = create(cfg());
        sys.apply({ op: 'createVm', args: { vm: 1, type: 'sev' } });
        sys.apply({ op: 'registerRegion', args: { vm: 1, page: 0, npages: 1 } });
        const r = sys.apply({ op: 'guestRead', args: { vm: 1, cpu: 0, page: 0, line: 0 } });
        assert.equal(r.ok, true);
        if (name === 'model') assert.equal(r.value, 'unspecified');
        else assert.equal(r.value, ciphertext(0, 0, 1));
        assert.equal(sys.view().vms[0]!.fresh, false);
      });
      it(`${name}: unregister needs an exact region; overlapping registrations pin again`, () => {
        const sys = create(cfg());
        sys.apply({ op: 'createVm', args: { vm: 1, type: 'sev' } });
        assert.deepEqual(sys.apply({ op: 'registerRegion', args: { vm: 1, page: 0, npages: 3 } }), { ok: true });
        assert.deepEqual(sys.apply({ op: 'registerRegion', args: { vm: 1, page: 2, npages: 2 } }), { ok: true });
        assert.deepEqual(sys.apply({ op: 'unregisterRegion', args: { vm: 1, page: 0, npages: 2 } }), { ok: false, error: 'EINVAL' });
        assert.deepEqual(sys.apply({ op: 'unregisterRegion', args: { vm: 1, page: 0, npages: 3 } }), { ok: true });
        // Page 2 is still pinned by the second region.
        assert.deepEqual(sys.view().pages, [{ page: 2, vm: 1 }, { page: 3, vm: 1 }]);
        sys.apply({ op: 'createVm', args: { vm: 2, type: 'sev' } });
        assert.deepEqual(sys.apply({ op: 'registerRegion', args: { vm: 2, page: 1, npages: 2 } }), { ok: false, error: 'EINVAL' });
      });
      it(`${name}: ASIDs come from the type's range and recycle per range`, () => {
        const sys = create(cfg({ asids: 3, minSevAsid: 2 }));
        assert.deepEqual(sys.apply({ op: 'createVm', args: { vm: 1, type: 'sev-es' } }), { ok: true, asid: 1 });
        assert.deepEqual(sys.apply({ op: 'createVm', args: { vm: 2, type: 'sev-es' } }), { ok: false, error: 'EBUSY' });
        assert.deepEqual(sys.apply({ op: 'createVm', args: { vm: 2, type: 'sev' } }), { ok: true, asid: 2 });
        sys.apply({ op: 'destroyVm', args: { vm: 2 } });
        assert.deepEqual(sys.apply({ op: 'createVm', args: { vm: 3, type: 'sev-es' } }), { ok: false, error: 'EBUSY' });
        assert.equal(sys.counters!()['recycles'], 0, 'no flush when the range has nothing to reclaim');
        sys.apply({ op: 'destroyVm', args: { vm: 1 } });
        assert.deepEqual(sys.apply({ op: 'createVm', args: { vm: 3, type: 'sev-es' } }), { ok: true, asid: 1 });
        assert.equal(sys.counters!()['recycles'], 1);
        // The flush freed the SEV range's reclaimed ASID too.
        assert.deepEqual(sys.view().asids, [{ asid: 1, state: 'active', snp: false }]);
        const none = create(cfg({ asids: 2, minSevAsid: 3 }));
        assert.deepEqual(none.apply({ op: 'createVm', args: { vm: 1, type: 'sev' } }), { ok: false, error: 'ENOTTY' });
      });
      it(`${name}: flushEncryptedPage is EINVAL for plain SEV`, () => {
        const sys = create(cfg());
        sys.apply({ op: 'createVm', args: { vm: 1, type: 'sev' } });
        sys.apply({ op: 'registerRegion', args: { vm: 1, page: 0, npages: 1 } });
        assert.deepEqual(sys.apply({ op: 'flushEncryptedPage', args: { vm: 1, page: 0 } }), { ok: false, error: 'EINVAL' });
        assert.deepEqual(sys.view().pages, [{ page: 0, vm: 1 }]);
      });
      it(`${name}: the launch image is encrypted in place and read back by the guest`, () => {
        const sys = create(cfg());
        sys.apply({ op: 'createVm', args: { vm: 1, type: 'sev-es' } });
        sys.apply({ op: 'registerRegion', args: { vm: 1, page: 0, npages: 1 } });
        assert.deepEqual(sys.apply({ op: 'launchWrite', args: { vm: 1, cpu: 2, page: 0, line: 1, value: 9 } }), { ok: true });
        assert.deepEqual(sys.view().written, [], 'not the guest\'s data until encrypted');
        assert.deepEqual(sys.apply({ op: 'launchUpdateData', args: { vm: 1, page: 0, npages: 1 } }), { ok: true });
        assert.deepEqual(sys.view().written, [{ page: 0, line: 1, key: 1, value: 9, reads: 9 }]);
        sys.apply({ op: 'evict', args: { cpu: 2, page: 0, line: 1, key: 0 } });
        assert.deepEqual(sys.apply({ op: 'guestRead', args: { vm: 1, cpu: 0, page: 0, line: 1 } }), { ok: true, value: 9 });
        assert.deepEqual(sys.apply({ op: 'launchUpdateData', args: { vm: 1, page: 0, npages: 1 } }), { ok: false, error: 'EINVAL' });
      });
      it(`${name}: memoryReclaimed with a range writes back and returns the pages to the host`, () => {
        const sys = create(cfg());
        sys.apply({ op: 'createVm', args: { vm: 1, type: 'sev' } });
        sys.apply({ op: 'registerRegion', args: { vm: 1, page: 0, npages: 1 } });
        sys.apply({ op: 'guestWrite', args: { vm: 1, cpu: 1, page: 0, line: 0, value: 3 } });
        assert.deepEqual(sys.apply({ op: 'memoryReclaimed', args: { vm: 1, page: 0, npages: 1 } }), { ok: true });
        assert.deepEqual(sys.view().pages, []);
        assert.ok(sys.view().guestLines.every((l) => !l.dirty));
        assert.deepEqual(sys.apply({ op: 'memoryReclaimed', args: { vm: 1, npages: 1 } }), { ok: false, error: 'EINVAL' });
      });
      it(`${name}: memoryReclaimed is a no-op for SNP, a writeback otherwise`, () => {
        const sys = create(cfg({ smeCoherent: true }));
        sys.apply({ op: 'createVm', args: { vm: 1, type: 'snp' } });
        sys.apply({ op: 'createVm', args: { vm: 2, type: 'sev-es' } });
        assert.deepEqual(sys.apply({ op: 'memoryReclaimed', args: { vm: 1 } }), { ok: true });
        assert.equal(sys.counters!()['releases'], 0);
        assert.deepEqual(sys.apply({ op: 'memoryReclaimed', args: { vm: 2 } }), { ok: true });
        assert.equal(sys.counters!()['releases'], 1);
      });
    }

    for (const [policy, written] of [['clear-after-writeback', 2], ['upstream', 4]] as const) {
    it(`impl (${policy} mask) writes back only the CPUs the VM ran on, with WBNOINVD (no invalidation)`, () => {
      const c = cfg({ cpus: 8, haveRunMask: policy });
      const impl = createImpl(c);
      const model = createModel(c);
      const ops: SevOp[] = [
        { op: 'createVm', args: { vm: 1, type: 'sev' } },
        { op: 'registerRegion', args: { vm: 1, page: 0, npages: 1 } },
        { op: 'registerRegion', args: { vm: 1, page: 1, npages: 1 } },
        { op: 'guestWrite', args: { vm: 1, cpu: 2, page: 0, line: 0, value: 1 } },
        { op: 'guestWrite', args: { vm: 1, cpu: 5, page: 1, line: 1, value: 2 } },
        { op: 'guestWrite', args: { vm: 1, cpu: 5, page: 1, line: 0, value: 3 } },
        { op: 'unregisterRegion', args: { vm: 1, page: 0, npages: 1 } },
        { op: 'destroyVm', args: { vm: 1 } },
      ];
      for (const op of ops) {
        impl.apply(op);
        model.apply(op);
      }
      const ic = impl.counters!();
      const mc = model.counters!();
      assert.equal(ic['releases'], 2);
      // The upstream mask still holds CPUs 2 and 5 at destroy; the clearing one is empty by then.
      assert.equal(ic['cpusWrittenBack'], written);
      assert.equal(ic['cpusWrittenBackUpstream'], 4);
      assert.equal(ic['cpusWrittenBackClearing'], 2);
      assert.equal(ic['minimumCpus'], 2);
      assert.equal(ic['linesInvalidated'], 0);
      assert.equal(mc['cpusWrittenBack'], 16);
      assert.equal(mc['minimumCpus'], 2);
      assert.ok(mc['linesInvalidated']! >= 3);
      // The impl keeps the (clean) lines: the caches stay warm.
      assert.equal(impl.view().guestLines.filter((l) => !l.dirty).length, 3);
    });
    }

    it('the cost report prints both mask policies against the minimum', () => {
      const impl = createImpl(cfg({ cpus: 8 }));
      const model = createModel(cfg({ cpus: 8 }));
      for (const op of STORY) {
        impl.apply(op);
        model.apply(op);
      }
      const lines = d.costReport!(model.counters!(), impl.counters!());
      const policy = lines.find((l) => l.includes('have-run mask policies'));
      assert.ok(policy, lines.join('\n'));
      assert.match(policy!, /upstream \(never cleared\) 1\.00 {2}clear-after-writeback 1\.00 {2}minimum 1\.00/);
      assert.deepEqual(d.costReport!(zero(), zero()), ['no release points in this campaign']);
    });

    it('impl without WBNOINVD falls back to WBINVD and counts the invalidated lines', () => {
      const impl = createImpl(cfg({ wbnoinvd: false }));
      for (const op of STORY.slice(0, 4)) impl.apply(op);
      assert.equal(impl.counters!()['linesInvalidated'], 1);
    });

    it('impl writeback set is the have-run mask: never cleared upstream', () => {
      const impl = createImpl(cfg());
      impl.apply({ op: 'createVm', args: { vm: 1, type: 'sev' } });
      impl.apply({ op: 'registerRegion', args: { vm: 1, page: 0, npages: 1 } });
      impl.apply({ op: 'guestWrite', args: { vm: 1, cpu: 3, page: 0, line: 0, value: 1 } });
      impl.apply({ op: 'memoryReclaimed', args: { vm: 1 } });
      impl.apply({ op: 'guestRead', args: { vm: 1, cpu: 1, page: 0, line: 0 } });
      assert.deepEqual(impl.view().vms[0]!.writebackCpus, [1, 3]);
    });

    it('impl writeback set is the have-run mask, cleared after a writeback (clear-after-writeback)', () => {
      const impl = createImpl(cfg({ haveRunMask: 'clear-after-writeback' }));
      impl.apply({ op: 'createVm', args: { vm: 1, type: 'sev' } });
      impl.apply({ op: 'registerRegion', args: { vm: 1, page: 0, npages: 1 } });
      impl.apply({ op: 'guestWrite', args: { vm: 1, cpu: 3, page: 0, line: 0, value: 1 } });
      impl.apply({ op: 'guestRead', args: { vm: 1, cpu: 1, page: 0, line: 0 } });
      assert.deepEqual(impl.view().vms[0]!.writebackCpus, [1, 3]);
      impl.apply({ op: 'memoryReclaimed', args: { vm: 1 } });
      assert.deepEqual(impl.view().vms[0]!.writebackCpus, []);
      // Re-entering on the same CPU marks it again (the writeback kicked the loaded vCPU).
      impl.apply({ op: 'guestWrite', args: { vm: 1, cpu: 3, page: 0, line: 0, value: 2 } });
      assert.deepEqual(impl.view().vms[0]!.writebackCpus, [3]);
      assert.deepEqual(createModel(cfg()).view().vms, []);
    });

    it('liveView stays equal to a fresh view() and scopes only the touched lines', () => {
      const c = cfg({ cpus: 3, pages: 4, smeCoherent: true });
      const samples = fc.sample(fc.array(intent(), { maxLength: 80, size: 'max' }), { seed: 3, numRuns: 30 });
      for (const intents of samples) {
        const trace = resolve(c, intents);
        for (const sys of [createModel(c), createImpl(c)]) {
          for (const op of trace) {
            sys.apply(op);
            const live = sys.liveView();
            assert.deepEqual(live.view, sys.view());
            for (const w of live.scope.written) assert.ok(live.view.written.includes(w));
          }
        }
      }
      const impl = createImpl(cfg());
      assert.equal(impl.liveView().scope.pages, true);
      assert.equal(impl.liveView().scope.pages, false);
      impl.apply({ op: 'hostWrite', args: { cpu: 0, page: 1, line: 1, value: 4 } });
      assert.deepEqual(impl.liveView().scope.written, [{ page: 1, line: 1, key: 0, value: 4, reads: 4 }]);
      assert.equal(impl.liveView().scope.kernel, false, 'a host write leaves the VM and ASID tables alone');
      impl.apply({ op: 'createVm', args: { vm: 1, type: 'sev' } });
      assert.equal(impl.liveView().scope.kernel, true, 'creating a VM changes the kernel tables');
      const line = { cpu: 0, page: 1, line: 0, key: 1, dirty: true };
      assert.deepEqual(
        mergeScopes({ written: [], pages: false, kernel: true, guestLines: [line] }, { written: [], pages: true, kernel: false, guestLines: [] }),
        { written: [], pages: true, kernel: true, guestLines: [line] },
      );
      assert.equal(mergeScopes({ written: [], pages: false, kernel: false, guestLines: undefined }, { written: [], pages: false, kernel: false, guestLines: [] }).guestLines, undefined);
    });

    it('the model fingerprint tells states apart and ignores history', () => {
      const a = createModel(cfg());
      const b = createModel(cfg());
      assert.equal(a.fingerprint(), b.fingerprint());
      a.apply({ op: 'hostWrite', args: { cpu: 0, page: 0, line: 0, value: 1 } });
      assert.notEqual(a.fingerprint(), b.fingerprint());
      b.apply({ op: 'hostWrite', args: { cpu: 1, page: 0, line: 0, value: 9 } });
      b.apply({ op: 'hostWrite', args: { cpu: 0, page: 0, line: 0, value: 1 } });
      assert.equal(a.fingerprint(), b.fingerprint());
      for (const op of STORY) a.apply(op);
      assert.ok(a.fingerprint().length > 0);
    });

    it('the minimum tracker counts CPUs that ran the VM since their last writeback', () => {
      const m = new MinimumTracker(4);
      m.ran(1, 0);
      m.ran(1, 2);
      m.ran(2, 2);
      assert.equal(m.release(2), 1);
      assert.equal(m.release(1), 1);
      m.ran(1, 3);
      m.allWrittenBack();
      assert.equal(m.release(1), 0);
      m.ran(1, 1);
      m.forget(1);
      assert.equal(m.release(1), 0);
      assert.equal(m.total, 2);
    });
  });

  describe('Bitmap', () => {
    it('sets, clears, walks and counts across words', () => {
      const b = new Bitmap(70);
      for (const x of [0, 31, 32, 63, 69]) b.set(x);
      assert.deepEqual(b.toArray(), [0, 31, 32, 63, 69]);
      assert.equal(b.weight(), 5);
      b.clear(31);
      assert.equal(b.test(31), false);
      assert.equal(b.findNextZero(0), 1);
      const o = new Bitmap(70);
      o.set(0);
      o.set(69);
      b.andNot(o);
      assert.deepEqual(b.toArray(), [32, 63]);
      b.setAll();
      assert.equal(b.weight(), 70);
      assert.equal(b.findNextZero(0), 70);
      b.clearAll();
      assert.ok(b.isEmpty());
    });
  });

  describe('invariants on hand-built bad Views', () => {
    const c = cfg();
    const vm1 = { vm: 1, type: 'sev' as const, asid: 1, fresh: false, writebackCpus: [0] };

    it('no-stale-c1-dirty: a dirty C=1 line of a freed page', () => {
      const v: SevView = { ...emptyView(), vms: [vm1], guestLines: [{ cpu: 2, page: 3, line: 1, key: 1, dirty: true }] };
      const msg = noStaleC1Dirty.check(v, c);
      assert.match(msg ?? '', /page 3/);
      assert.ok(noStaleC1Dirty.exercised(v, c));
      const orphan: SevView = { ...emptyView(), guestLines: [{ cpu: 0, page: 0, line: 0, key: 2, dirty: true }] };
      assert.match(noStaleC1Dirty.check(orphan, c) ?? '', /no live VM/);
      const ok: SevView = { ...v, pages: [{ page: 3, vm: 1 }] };
      assert.equal(noStaleC1Dirty.check(ok, c), null);
      assert.ok(!noStaleC1Dirty.exercised(emptyView(), c));
    });

    it('host-integrity: the host would read ciphertext', () => {
      const v: SevView = { ...emptyView(), written: [{ page: 0, line: 0, key: 0, value: 42, reads: ciphertext(7, 1, 0) }] };
      assert.match(hostIntegrity.check(v, c) ?? '', /free page 0/);
      assert.ok(hostIntegrity.exercised(v, c));
      assert.equal(hostIntegrity.check({ ...v, written: [{ page: 0, line: 0, key: 0, value: 42, reads: 42 }] }, c), null);
      assert.ok(!hostIntegrity.exercised(emptyView(), c));
    });

    it('guest-integrity: the guest would read the host\'s stale data', () => {
      const v: SevView = { ...emptyView(), vms: [vm1], pages: [{ page: 2, vm: 1 }], written: [{ page: 2, line: 1, key: 1, value: 5, reads: ciphertext(600, 0, 1) }] };
      assert.match(guestIntegrity.check(v, c) ?? '', /page 2/);
      assert.ok(guestIntegrity.exercised(v, c));
      assert.equal(guestIntegrity.check({ ...v, written: [{ page: 2, line: 1, key: 1, value: 5, reads: 5 }] }, c), null);
      assert.ok(!guestIntegrity.exercised(emptyView(), c));
    });

    it('asid-reuse-clean: a fresh VM\'s ASID still has lines, or DF_FLUSH without WBINVD', () => {
      const fresh = { ...vm1, fresh: true, writebackCpus: [] };
      const v: SevView = { ...emptyView(), vms: [fresh], guestLines: [{ cpu: 1, page: 0, line: 0, key: 1, dirty: false }] };
      assert.match(asidReuseClean.check(v, c) ?? '', /ASID 1 was given to VM 1/);
      assert.ok(asidReuseClean.exercised(v, c));
      const df: SevView = { ...emptyView(), firmware: { dfFlushes: 1, lastDfFlushMissingWbinvd: [0, 3] } };
      assert.match(asidReuseClean.check(df, c) ?? '', /CPUs 0, 3/);
      assert.ok(asidReuseClean.exercised(df, c));
      assert.equal(asidReuseClean.check({ ...v, guestLines: [] }, c), null);
      assert.equal(asidReuseClean.check(emptyView(), c), null);
      assert.ok(!asidReuseClean.exercised(emptyView(), c));
    });

    it('writeback-covers: a dirty line on a CPU outside the writeback set', () => {
      const v: SevView = { ...emptyView(), vms: [vm1], pages: [{ page: 0, vm: 1 }], guestLines: [{ cpu: 3, page: 0, line: 0, key: 1, dirty: true }] };
      assert.match(writebackCovers.check(v, c) ?? '', /CPU 3/);
      assert.ok(writebackCovers.exercised(v, c));
      assert.equal(writebackCovers.check({ ...v, vms: [{ ...vm1, writebackCpus: 'all' }] }, c), null);
      assert.equal(writebackCovers.check({ ...v, vms: [{ ...vm1, writebackCpus: [3] }] }, c), null);
      assert.ok(!writebackCovers.exercised(emptyView(), c));
    });

    it('with a scope, the guest-line invariants check only the changed lines unless pages or kernel tables changed', () => {
      const stale = { cpu: 2, page: 3, line: 1, key: 1, dirty: true };
      const v: SevView = { ...emptyView(), vms: [vm1], guestLines: [stale] };
      const quiet = { written: [], pages: false, kernel: false, guestLines: [] };
      for (const inv of [noStaleC1Dirty, writebackCovers]) {
        assert.equal(inv.check(v, c, quiet), null, `${inv.id}: an unchanged line is not re-checked`);
        assert.notEqual(inv.check(v, c, { ...quiet, guestLines: [stale] }), null, `${inv.id}: a changed line is checked`);
        assert.notEqual(inv.check(v, c, { ...quiet, pages: true }), null, `${inv.id}: a page change re-checks every line`);
        assert.notEqual(inv.check(v, c, { ...quiet, kernel: true }), null, `${inv.id}: a kernel change re-checks every line`);
        assert.notEqual(inv.check(v, c, { ...quiet, guestLines: undefined }), null, `${inv.id}: a rebuilt list is checked whole`);
      }
      const fresh: SevView = { ...emptyView(), vms: [{ ...vm1, fresh: true }], guestLines: [{ ...stale, dirty: false }] };
      assert.equal(asidReuseClean.check(fresh, c, quiet), null);
      assert.notEqual(asidReuseClean.check(fresh, c, { ...quiet, kernel: true }), null);
    });

    it('asid-in-range: an ASID outside the type\'s range, or held twice', () => {
      const split = cfg({ asids: 4, minSevAsid: 3 });
      const sev = { ...vm1, asid: 1 };
      const v: SevView = { ...emptyView(), vms: [sev] };
      assert.match(asidInRange.check(v, split) ?? '', /VM 1 \(sev\) holds ASID 1, outside its range 3 \.\. 4/);
      assert.ok(asidInRange.exercised(v, split));
      assert.equal(asidInRange.check(v, cfg({ asids: 4 })), null, 'one range: any ASID');
      const twice: SevView = { ...emptyView(), vms: [{ ...vm1, asid: 3 }, { ...vm1, vm: 2, asid: 3 }] };
      assert.match(asidInRange.check(twice, split) ?? '', /both hold ASID 3/);
      const ok: SevView = { ...emptyView(), vms: [{ ...vm1, asid: 3 }, { ...vm1, vm: 2, type: 'sev-es', asid: 2 }] };
      assert.equal(asidInRange.check(ok, split), null);
      const quiet = { written: [], pages: false, kernel: false, guestLines: [] };
      assert.equal(asidInRange.check(v, split, quiet), null, 'only re-checked when the kernel tables change');
      assert.ok(!asidInRange.exercised(emptyView(), split));
    });

    it('every invariant has an id, statement and source', () => {
      assert.equal(new Set(INVARIANTS.map((i) => i.id)).size, 6);
      assert.equal(d.mutants.length, 12);
      for (const i of INVARIANTS) assert.ok(i.title && i.statement && i.source);
    });
  });

  describe('comparison', () => {
    it('accepts any impl value where the model read is unspecified, and nothing else', () => {
      assert.ok(sevResultsAgree({ ok: true, value: 'unspecified' }, { ok: true, value: 123 }));
      assert.ok(!sevResultsAgree({ ok: true, value: 'unspecified' }, { ok: false, error: 'EFAULT' }));
      assert.ok(!sevResultsAgree({ ok: true, value: 'unspecified' }, { ok: true }));
      assert.ok(sevResultsAgree({ ok: true, value: 5 }, { ok: true, value: 5 }));
      assert.ok(!sevResultsAgree({ ok: true, value: 5 }, { ok: true, value: 6 }));
      assert.ok(!sevResultsAgree({ ok: true, asid: 1 }, { ok: true, asid: 2 }));
    });
    it('compares the observable parts of the Views', () => {
      const model = createModel(cfg());
      const impl = createImpl(cfg());
      for (const op of STORY) {
        model.apply(op);
        impl.apply(op);
      }
      assert.equal(sevViewsAgree(model.view(), impl.view()), null);
      const mv = model.view();
      const base = { vm: 1, type: 'sev' as const, asid: 1, fresh: false, writebackCpus: 'all' as const };
      assert.match(sevViewsAgree({ ...mv, vms: [] }, mv) ?? '', /live VMs/);
      assert.match(sevViewsAgree({ ...mv, vms: [base] }, { ...mv, vms: [{ ...base, asid: 2 }] }) ?? '', /VM entries/);
      assert.match(sevViewsAgree({ ...mv, pages: [{ page: 1, vm: 1 }] }, mv) ?? '', /pages/);
      const quiet = { written: [], pages: false, kernel: false, guestLines: [] };
      assert.equal(sevViewsAgree({ ...mv, vms: [] }, mv, quiet), null, 'tables no side reported changed are left to the full check');
      assert.match(sevViewsAgree({ ...mv, vms: [] }, mv, { ...quiet, kernel: true }) ?? '', /live VMs/);
      assert.match(sevViewsAgree({ ...mv, asids: [] }, mv, { ...quiet, kernel: true }) ?? '', /asids/);
      assert.match(sevViewsAgree({ ...mv, pages: [{ page: 1, vm: 1 }] }, mv, { ...quiet, pages: true }) ?? '', /pages/);
      assert.match(sevViewsAgree({ ...mv, written: [] }, mv) ?? '', /written lines/);
      assert.match(sevViewsAgree(mv, { ...mv, written: [{ ...mv.written[0]!, value: 1 }] }) ?? '', /written line 0/);
      assert.match(sevViewsAgree(mv, { ...mv, firmware: { dfFlushes: 9, lastDfFlushMissingWbinvd: [] } }) ?? '', /DF_FLUSH/);
      assert.ok(d.describeOp!(STORY[0]!).startsWith('createVm(vm=1'));
    });
  });

  describe('generators', () => {
    it('produce mostly valid traces with about one bad op in ten', () => {
      let ops = 0;
      let errors = 0;
      const samples = fc.sample(
        fc.tuple(d.arbitraries.config(), fc.array(intent(), { maxLength: 60, size: 'max' })),
        { seed: 7, numRuns: 200 },
      );
      for (const [c, intents] of samples) {
        const trace = resolve(c, intents);
        const m = createModel(c);
        for (const op of trace) {
          assert.deepEqual(validateOp(op, c), []);
          ops++;
          if (!m.apply(op).ok) errors++;
        }
      }
      const rate = errors / ops;
      assert.ok(rate > 0.03 && rate < 0.3, `error rate ${rate}`);
    });
    it('exploration alphabet is valid for its config', () => {
      const r = d.resolveConfig(d.exploration!.config);
      assert.ok(r.ok);
      if (r.ok) {
        const alpha = d.exploration!.alphabet(r.value);
        assert.ok(alpha.length >= 10 && alpha.length <= 30);
        for (const op of alpha) assert.deepEqual(validateOp(op, r.value), []);
      }
    });
  });

  describe('lockstep', () => {
    it('the property holds on the implementation', function () {
      this.timeout(60000);
      const out = checkDomain(d, { runs: 200, maxOps: 60, seed: 12345 });
      assert.equal(out.failure, null, out.failure ? out.failure.failure.message : '');
      for (const inv of INVARIANTS) assert.ok(out.tallies.invariants[inv.id]!.nonTrivial > 0, `${inv.id} never exercised`);
      const ic = out.tallies.counters.impl;
      assert.ok(ic['cpusWrittenBack']! >= ic['minimumCpus']!);
      assert.ok(ic['cpusWrittenBack']! < out.tallies.counters.model['cpusWrittenBack']!);
    });

    it('the story trace passes runTrace with its expected results', () => {
      const out = runTrace(d, cfg(), STORY, { expects: [undefined, undefined, undefined, undefined, undefined, undefined, undefined, { ok: true, value: 42 }] });
      assert.equal(out.failure, null);
    });

    for (const m of d.mutants) {
      it(`kills mutant ${m.id} (expected: ${m.expectedToViolate.join(', ')})`, function () {
        this.timeout(60000);
        const r = runMutant(d, m.id, { seed: 1 });
        assert.ok(r.killed, `${m.id} survived`);
        assert.ok(m.expectedToViolate.includes(r.caughtBy ?? ''), `${m.id} caught by ${r.caughtBy}`);
      });
    }

    it('the story catches the CLFLUSH mutant with no-stale-c1-dirty', () => {
      const m = d.mutants.find((x) => x.id === 'clflush-instead-of-writeback')!;
      const out = runTrace(d, cfg(), STORY, {}, (c) => m.create(c));
      assert.equal(out.failure?.invariant, 'no-stale-c1-dirty');
      assert.ok(m.create(cfg()) instanceof SevCacheImpl);
    });
  });

  describe('case files', () => {
    const dir = path.join(__dirname, '..', '..', '..', 'spec', 'cases', 'sev-cache');
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));
    it('there are at least 12', () => assert.ok(files.length >= 12));
    for (const f of files) {
      it(`replays ${f}`, () => {
        const loaded = loadCaseFile(path.join(dir, f), DOMAINS);
        assert.ok(loaded.ok, loaded.ok ? '' : JSON.stringify(loaded.errors));
        if (loaded.ok) {
          const out = replayCase(loaded.value);
          assert.equal(out.failure, null, out.failure?.message);
        }
      });
    }
  });
});
