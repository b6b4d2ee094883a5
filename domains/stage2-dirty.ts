/**
 * The stage2-dirty domain: Arm stage-2 faults while dirty logging is on
 * (seed 002). Assembles spec, model, implementation, generators and
 * mutants into one `Domain`.
 */
import { someDomain, type Domain } from '../harness/domain';
import { stage2DirtyHidden } from '../spec/stage2-dirty/hidden';
import { ERRORS, SCENARIOS } from '../spec/stage2-dirty/scenarios';
import { firstDifference, rowsEqual } from '../harness/codec';
import { encodeConfig, resolveConfig, validateOp } from '../spec/stage2-dirty/config';
import { invariants } from '../spec/stage2-dirty/invariants';
import { ConfigInput, DOMAIN_ID, ResultCodec, ViewCodec, opArgs, type Config, type Op, type Result, type View } from '../spec/stage2-dirty/types';
import { createModel } from '../model/stage2-dirty/model';
import { createImpl } from '../impl/stage2-dirty/impl';
import { config as configArb, ops as opsArb } from '../properties/stage2-dirty/arbitraries';
import { mutants } from '../properties/stage2-dirty/mutants';

/**
 * The observable parts of the View: slots (logging, bitmap, ghosts), the
 * mappings, the TLB (cached translations and the flushes the spec names),
 * memory, and the ghost block count. The table pages are the
 * implementation's own business (the model has none); table-counts judges
 * them. Compared field by field (this runs
 * after every op of every lockstep trace), with the generic first-difference
 * report only once a difference is known.
 */
function numsEqual(a: readonly number[], b: readonly number[]): boolean {
  return rowsEqual(a, b, (x, y) => x === y);
}

const slotsEqual = (a: View['slots'], b: View['slots']): boolean =>
  rowsEqual(
    a,
    b,
    (x, y) =>
      x.id === y.id &&
      x.baseGfn === y.baseGfn &&
      x.npages === y.npages &&
      x.readonly === y.readonly &&
      x.logging === y.logging &&
      numsEqual(x.dirty, y.dirty) &&
      numsEqual(x.written, y.written) &&
      numsEqual(x.initial, y.initial) &&
      numsEqual(x.kept, y.kept),
  );
const mappingsEqual = (a: View['mappings'], b: View['mappings']): boolean =>
  rowsEqual(a, b, (x, y) => x.gfn === y.gfn && x.pfn === y.pfn && x.writable === y.writable && x.size === y.size);
const memoryEqual = (a: View['memory'], b: View['memory']): boolean =>
  rowsEqual(a, b, (x, y) => x.gfn === y.gfn && x.expected === y.expected && x.host === y.host && x.mapped === y.mapped);
const tlbEqual = (a: View['tlb'], b: View['tlb']): boolean =>
  rowsEqual(a, b, (x, y) => x.gfn === y.gfn && x.npages === y.npages && x.pfn === y.pfn && x.writable === y.writable);

function viewsAgree(model: View, impl: View): string | null {
  const diff = (name: string, a: unknown, b: unknown) => `model and implementation disagree on ${firstDifference(a, b, `view.${name}`)}`;
  if (!slotsEqual(model.slots, impl.slots)) return diff('slots', model.slots, impl.slots);
  if (!mappingsEqual(model.mappings, impl.mappings)) return diff('mappings', model.mappings, impl.mappings);
  if (!memoryEqual(model.memory, impl.memory)) return diff('memory', model.memory, impl.memory);
  if (!tlbEqual(model.tlb, impl.tlb)) return diff('tlb', model.tlb, impl.tlb);
  if (model.blocksWhileLogging !== impl.blocksWhileLogging) {
    return diff('blocksWhileLogging', model.blocksWhileLogging, impl.blocksWhileLogging);
  }
  return null;
}

function describeOp(op: Op): string {
  const a = op.args as Record<string, unknown>;
  return `${op.op} ${Object.keys(a)
    .map((k) => `${k}=${String(a[k])}`)
    .join(' ')}`.trim();
}

export const stage2DirtyDomain: Domain<Config, Op, Result, View> = {
  id: DOMAIN_ID,
  title: 'Arm stage-2 dirty logging at page granularity',
  summary:
    'Live migration re-copies the pages a guest wrote; KVM learns which by write-protecting the guest\'s stage-2 mappings and logging each write fault in a per-memslot dirty bitmap. While a memslot is logged, faults map 4 KiB pages only, a huge (block) mapping met on the way is dissolved (cleared, flushed from the TLB, its table page\'s count dropped) and rebuilt as a page table, and every write fault marks its own page dirty; once logging stops, blocks come back. KVM_SET_USER_MEMORY_REGION (create, move, flags, delete, with upstream\'s errnos), KVM_GET_DIRTY_LOG, KVM_CLEAR_DIRTY_LOG (64-page granule, user bitmap), KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 and KVM_DIRTY_LOG_INITIALLY_SET (lazy write-protection on arm64) are modelled with their user-visible semantics.',
  source:
    'seed 002_2e4baad6e04960f3.txt ("[v14,7/7] KVM: arm: page logging 2nd stage fault handling" and review); Documentation/virt/kvm/api.rst (KVM_SET_USER_MEMORY_REGION, KVM_GET_DIRTY_LOG, KVM_CLEAR_DIRTY_LOG, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2); virt/kvm/kvm_main.c (__kvm_set_memory_region, kvm_get_dirty_log_protect, kvm_clear_dirty_log_protect); arch/arm64/kvm/mmu.c; tools/testing/selftests/kvm/dirty_log_test.c',
  configCodec: ConfigInput,
  resolveConfig,
  encodeConfig,
  opArgs,
  validateOp,
  resultCodec: ResultCodec,
  viewCodec: ViewCodec,
  invariants,
  createModel,
  createImpl,
  mutants,
  viewsAgree,
  arbitraries: { config: configArb, ops: opsArb },
  budget: { runs: 300, maxOps: 60 },
  mutantBudget: { runs: 300, maxOps: 60 },
  exploration: {
    // Two small slots (THP and hugetlbfs) whose host frames differ from their
    // guest frames, with 4-page blocks: every hazard is a few ops deep.
    config: {
      memslots: [
        { id: 0, baseGfn: 4, npages: 8, backing: 'thp' },
        { id: 1, baseGfn: 12, npages: 4, backing: 'hugetlb' },
      ],
      blockPages: 4,
    },
    alphabet: () => [
      { op: 'guestRead', args: { gfn: 5 } },
      { op: 'guestRead', args: { gfn: 13 } },
      { op: 'guestWrite', args: { gfn: 5, value: 1 } },
      { op: 'guestWrite', args: { gfn: 6, value: 2 } },
      { op: 'guestWrite', args: { gfn: 9, value: 3 } },
      { op: 'guestWrite', args: { gfn: 13, value: 4 } },
      { op: 'guestWrite', args: { gfn: 16, value: 5 } },
      { op: 'enableDirtyLog', args: { slot: 0 } },
      { op: 'enableDirtyLog', args: { slot: 1 } },
      { op: 'disableDirtyLog', args: { slot: 0 } },
      { op: 'getDirtyLog', args: { slot: 0 } },
      { op: 'getDirtyLog', args: { slot: 1 } },
      { op: 'clearDirtyLog', args: { slot: 0, first: 0, num: 8 } },
      { op: 'clearDirtyLog', args: { slot: 0, first: 0, num: 3 } },
      { op: 'clearDirtyLog', args: { slot: 0, first: 0, num: 8, bits: [1] } },
      { op: 'setUserMemoryRegion', args: { slot: 1, baseGfn: 0, npages: 0 } },
      { op: 'setUserMemoryRegion', args: { slot: 2, baseGfn: 12, npages: 4, backing: 'hugetlb' } },
      { op: 'setUserMemoryRegion', args: { slot: 0, baseGfn: 20, npages: 8, logDirty: true } },
      { op: 'setUserMemoryRegion', args: { slot: 3, baseGfn: 32, npages: 4, readonly: true, logDirty: true } },
      { op: 'unmapRange', args: { gfn: 6, npages: 1 } },
      { op: 'unmapRange', args: { gfn: 3, npages: 6 } },
      { op: 'tlbEvict', args: { gfn: 5 } },
      { op: 'mappingOf', args: { gfn: 5 } },
      { op: 'mappingOf', args: { gfn: 13 } },
    ],
  },
  describeOp,
  hidden: stage2DirtyHidden,
  scenarios: SCENARIOS,
  errors: ERRORS,
};

export const stage2Dirty = someDomain(stage2DirtyDomain);
