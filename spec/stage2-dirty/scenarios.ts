/**
 * stage2-dirty's named scenarios (harness/reach.ts): the hazards of the spec
 * page ("The hazard", "Operations"), each as a predicate over (View before,
 * op, result, View after). `check` reports how many runs reached each.
 */
import type { Scenario } from '../../harness/reach';
import type { Config, MappingView, Op, Result, SlotView, View } from './types';

type S = Scenario<Config, Op, Result, View>;

function slotOf(v: View, gfn: number): SlotView | undefined {
  return v.slots.find((s) => s.baseGfn <= gfn && gfn < s.baseGfn + s.npages);
}
function mappingAt(v: View, gfn: number, bp: number): MappingView | undefined {
  return v.mappings.find((m) => (m.size === '2m' ? m.gfn <= gfn && gfn < m.gfn + bp : m.gfn === gfn));
}
function access(op: Op): number | null {
  return op.op === 'guestRead' || op.op === 'guestWrite' ? op.args.gfn : null;
}

export const SCENARIOS: readonly S[] = [
  {
    id: 'block-dissolved-while-logging',
    title: 'an access to a logged slot meets a block mapping and dissolves it into pages',
    source: 'spec page "The hazard" rule 2; arm64 user_mem_abort (!logging_active), seed stage2_set_pte',
    before(v, op, c) {
      const g = access(op);
      if (g === null) return null;
      const s = slotOf(v, g);
      if (!s || !s.logging || s.readonly || mappingAt(v, g, c.blockPages)?.size !== '2m') return null;
      return (_r, after) => mappingAt(after, g, c.blockPages)?.size === '4k';
    },
  },
  {
    id: 'block-tlb-while-logged',
    title: 'a write to a logged slot while the TLB still caches a block translation for its page',
    source: 'spec page "The hazard" rule 2 (break-before-make: clear, flush, then build)',
    before(v, op, c) {
      if (op.op !== 'guestWrite') return null;
      const g = op.args.gfn;
      const s = slotOf(v, g);
      if (!s || !s.logging || s.readonly) return null;
      if (!v.tlb.some((e) => e.npages > 1 && e.gfn <= g && g < e.gfn + e.npages)) return null;
      return (r, after) => r.ok && mappingAt(after, g, c.blockPages)?.size === '4k';
    },
  },
  {
    id: 'block-replaces-table',
    title: 'with logging off, a fault maps a block where a page table of 4 KiB pages stands',
    source: 'spec page "The hazard", last paragraph; commit 3c3736cd32bf (unmap the table first)',
    before(v, op, c) {
      const g = access(op);
      if (g === null) return null;
      const s = slotOf(v, g);
      if (!s || s.logging) return null;
      const base = g - (g % c.blockPages);
      if (!v.mappings.some((m) => m.size === '4k' && m.gfn >= base && m.gfn < base + c.blockPages)) return null;
      return (_r, after) => mappingAt(after, g, c.blockPages)?.size === '2m';
    },
  },
  {
    id: 'clear-keeps-unfetched',
    title: 'KVM_CLEAR_DIRTY_LOG with a partial bitmap keeps bits the caller did not pass',
    source: 'spec page "Operations", clearDirtyLog; kvm_clear_dirty_log_protect (atomic_long_fetch_andnot)',
    before(_v, op) {
      if (op.op !== 'clearDirtyLog') return null;
      const id = op.args.slot;
      return (r, after) => r.ok && (after.slots.find((s) => s.id === id)?.kept.length ?? 0) > 0;
    },
  },
  {
    id: 'logged-slot-moved',
    title: 'a logged memslot moved to a new base (bitmap kept, old range unmapped)',
    source: 'spec page "Operations", setUserMemoryRegion step 6; kvm_prepare_memory_region',
    before(v, op) {
      if (op.op !== 'setUserMemoryRegion' || op.args.npages === 0) return null;
      const id = op.args.slot;
      const s = v.slots.find((x) => x.id === id);
      if (!s || !s.logging || s.baseGfn === op.args.baseGfn) return null;
      return (r) => r.ok;
    },
  },
  {
    id: 'mapped-slot-deleted',
    title: 'a memslot deleted while stage 2 still maps some of its pages',
    source: 'spec page "Operations", setUserMemoryRegion step 3; kvm_arch_flush_shadow_memslot',
    before(v, op) {
      if (op.op !== 'setUserMemoryRegion' || op.args.npages !== 0) return null;
      const id = op.args.slot;
      const s = v.slots.find((x) => x.id === id);
      if (!s || !v.mappings.some((m) => m.gfn < s.baseGfn + s.npages && m.gfn >= s.baseGfn)) return null;
      return (r) => r.ok;
    },
  },
  {
    id: 'unmap-partial-block',
    title: 'an MMU-notifier unmap covering part of a block takes the whole block',
    source: 'spec page "Operations", unmapRange; kvm_unmap_gfn_range / stage2_apply_range',
    before(v, op, c) {
      if (op.op !== 'unmapRange') return null;
      const lo = op.args.gfn;
      const hi = lo + op.args.npages;
      const hit = v.mappings.some((m) => m.size === '2m' && m.gfn < hi && lo < m.gfn + c.blockPages && (m.gfn < lo || hi < m.gfn + c.blockPages));
      return hit ? (r) => r.ok : null;
    },
  },
];

/** Per op, the errors the spec page documents (error coverage). */
export const ERRORS: { readonly [op: string]: readonly string[] } = {
  guestRead: ['MMIO'],
  guestWrite: ['MMIO'],
  setUserMemoryRegion: ['EINVAL', 'EEXIST', 'EFAULT'],
  enableDirtyLog: ['EINVAL'],
  disableDirtyLog: ['EINVAL'],
  getDirtyLog: ['EINVAL', 'ENOENT'],
  clearDirtyLog: ['EINVAL', 'ENOENT'],
  mappingOf: ['EINVAL'],
};
