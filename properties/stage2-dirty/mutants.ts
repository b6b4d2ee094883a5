/**
 * stage2-dirty known-bug mutants: the implementation with one real defect
 * put back, each a small subclass overriding one protected step.
 */
import type { Mutant } from '../../harness/domain';
import { blockEligible } from '../../spec/stage2-dirty/config';
import { EINVAL, type Backing, type Config, type Op, type Result, type View } from '../../spec/stage2-dirty/types';
import { KVM_S2_FLAG_LOGGING_ACTIVE, Stage2DirtyImpl, type KvmMemslot } from '../../impl/stage2-dirty/impl';

type M = Mutant<Config, Op, Result, View>;

const SEED = 'seed 002_2e4baad6e04960f3.txt';

/**
 * Dissolves a block without flushing the TLB for it: the old block
 * translation stays cached over pages the new page table does not map
 * (break-before-make broken). The seed's hunk is
 * `pmd_clear(pmd); kvm_tlb_flush_vmid_ipa(kvm, ipa); put_page(...)`; this
 * drops the middle step.
 */
export class NoFlushAfterDissolve extends Stage2DirtyImpl {
  protected override dissolveBlock(l2: number, i2: number, _blockGfn: number): void {
    this.stage2ClearEntry(l2, i2);
    this.putPage(l2);
  }
}

/**
 * Dissolves a block without dropping the level-2 table page's count: the
 * page keeps a reference for an entry that is gone, and is never freed
 * (the seed's `put_page(virt_to_page(pmd))` omitted).
 */
export class DissolveKeepsCount extends Stage2DirtyImpl {
  protected override dissolveBlock(l2: number, i2: number, blockGfn: number): void {
    this.stage2ClearEntry(l2, i2);
    this.kvmTlbFlushVmidIpa(blockGfn);
  }
}

/**
 * A write fault maps the page writable but does not mark it dirty (the
 * seed adds `if (write_fault) mark_page_dirty(kvm, gfn);` to
 * user_mem_abort; without it the write, and every later write through the
 * now writable entry, is invisible to KVM_GET_DIRTY_LOG).
 */
export class WriteFaultNotMarked extends Stage2DirtyImpl {
  protected override markPageDirty(_slot: KvmMemslot, _gfn: number): void {
    /* the bug: nothing */
  }
}

/**
 * The THP path before the fix: transparent_hugepage_adjust is tried even
 * while the slot is logged (`if (!hugetlb && !force_pte)` without
 * `&& !logging_active`), so a logged THP-backed slot gets block mappings
 * again and one write fault makes a whole block writable.
 */
export class BlockWhileLogging extends Stage2DirtyImpl {
  protected override useBlockMapping(slot: KvmMemslot, gfn: number, flags: number): boolean {
    if (slot.backing === 'thp') return blockEligible(slot, gfn, this.bp);
    return super.useBlockMapping(slot, gfn, flags);
  }
}

/**
 * A write fault marks the whole aligned block dirty instead of its page
 * (logging at block granularity, as the hugetlb path's
 * `gfn = (fault_ipa & PMD_MASK) >> PAGE_SHIFT` would): pages never written
 * are reported dirty.
 */
export class WholeBlockDirty extends Stage2DirtyImpl {
  protected override markPageDirty(slot: KvmMemslot, gfn: number): void {
    const start = gfn - (gfn % this.bp);
    for (let g = start; g < start + this.bp; g++) {
      if (g >= slot.baseGfn && g < slot.baseGfn + slot.npages) super.markPageDirty(slot, g);
    }
  }
}

/**
 * KVM_GET_DIRTY_LOG clears the fetched bits but does not write-protect the
 * pages again: a page stays writable with its bit clear, and its next
 * write is not logged (api.rst: the bits are cleared *and* the pages
 * re-protected unless KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 is enabled).
 */
export class GetLogNoReprotect extends Stage2DirtyImpl {
  protected override getLogReprotect(_gfn: number): boolean {
    return false;
  }
}

/**
 * A read fault in a logged slot maps the page writable when the host page
 * is writable (the seed's `if (writable) kvm_set_s2pte_writable(&new_pte)`
 * with `writable` from gfn_to_pfn_prot): the first write then needs no
 * fault and is never logged. Later arm64 code maps read faults read-only
 * while logging.
 */
export class ReadFaultWritable extends Stage2DirtyImpl {
  protected override faultMapsWritable(slot: KvmMemslot, _flags: number): boolean {
    return !slot.readonly;
  }
}

/**
 * Once logging stops, a fault installs a block over a level-2 entry that
 * still points to the page table built while logging, without unmapping
 * it: the table page is leaked and its pages' TLB entries are not flushed
 * (fixed upstream by 3c3736cd32bf "KVM: arm/arm64: Fix handling of stage2 huge
 * mappings", which unmaps the range before installing the block).
 */
export class CollapseLeaksTable extends Stage2DirtyImpl {
  protected override unmapTableForBlock(_l2: number, _i2: number, _blockGfn: number): void {
    /* the bug: the table entry is simply overwritten */
  }
}

/**
 * The seed's dissolve flushes the TLB at `pmd_pfn(*pmd) << PAGE_SHIFT`,
 * the block's output (host physical) address, under the name `ipa`; the
 * IPA of the block is what must be flushed (later mmu.c:
 * `stage2_dissolve_pmd(kvm, addr, pmd)` flushes `addr`, "@addr: IPA"). The
 * bug hides wherever a slot's host frames equal its guest frames.
 */
export class DissolveFlushesPa extends Stage2DirtyImpl {
  protected override dissolveBlock(l2: number, i2: number, _blockGfn: number): void {
    const pa = this.descOa(l2, i2); // pmd_pfn(*pmd)
    this.stage2ClearEntry(l2, i2);
    this.kvmTlbFlushVmidIpa(pa);
    this.putPage(l2);
  }
}

/**
 * The hugetlbfs path before the fix: `if (is_vm_hugetlb_page(vma))` without
 * `&& !logging_active`, so a logged hugetlbfs-backed slot still faults in
 * blocks (read-only on a read fault, writable on a write fault).
 */
export class HugetlbBlockWhileLogging extends Stage2DirtyImpl {
  protected override useBlockMapping(slot: KvmMemslot, gfn: number, flags: number): boolean {
    if (slot.backing === 'hugetlb') return blockEligible(slot, gfn, this.bp);
    return super.useBlockMapping(slot, gfn, flags);
  }
}

/**
 * THP adjustment done before the logging decision: transparent_hugepage_adjust
 * aligns the pfn down to the huge page's head (`*pfnp &= ~(PTRS_PER_PMD - 1)`),
 * then logging forces a 4 KiB mapping, which is built with the head's frame:
 * the page is mapped to the wrong host frame and its writes land there.
 */
export class PageAtThpHead extends Stage2DirtyImpl {
  protected override faultPfn(slot: KvmMemslot, gfn: number, flags: number): number {
    const pfn = super.faultPfn(slot, gfn, flags);
    if (slot.backing === 'thp' && (flags & KVM_S2_FLAG_LOGGING_ACTIVE) !== 0 && blockEligible(slot, gfn, this.bp)) return pfn - (gfn % this.bp);
    return pfn;
  }
}

/**
 * The old spec's errno: KVM_GET_DIRTY_LOG / KVM_CLEAR_DIRTY_LOG on a free
 * slot id below KVM_USER_MEM_SLOTS answered EINVAL. Upstream
 * (kvm_get_dirty_log_protect, kvm_clear_dirty_log_protect) answers EINVAL
 * only for an id at or above the limit; a free id is `!memslot` -> ENOENT.
 */
export class FreeSlotEinval extends Stage2DirtyImpl {
  protected override freeSlotAnswer(slot: KvmMemslot | undefined): Result {
    return slot === undefined ? EINVAL : super.freeSlotAnswer(slot);
  }
}

/**
 * KVM_CLEAR_DIRTY_LOG that ignores the user bitmap and clears every page of
 * the range: a page dirtied between the GET and the CLEAR of a migration
 * round loses its bit and is never copied again (upstream clears only
 * `mask &= atomic_long_fetch_andnot(mask, p)`, the bits the caller passed).
 */
export class ClearIgnoresBitmap extends Stage2DirtyImpl {
  protected override clearedBits(_user: number, log: number, rangeMask: number): number {
    return rangeMask & log;
  }
}

/**
 * The old spec's rule: KVM_MEM_LOG_DIRTY_PAGES refused on a read-only slot.
 * Upstream check_memory_region_flags accepts both flags together (arm64
 * page_fault_test.c creates such slots).
 */
export class ReadonlyRefusesLogging extends Stage2DirtyImpl {
  protected override setUserMemoryRegion(id: number, baseGfn: number, npages: number, logDirty: boolean, readonly: boolean, backing: Backing | undefined): Result {
    if (logDirty && readonly) return EINVAL;
    return super.setUserMemoryRegion(id, baseGfn, npages, logDirty, readonly, backing);
  }
}

/**
 * Lazy write-protection taken for the default mode: logging enabled without
 * KVM_DIRTY_LOG_INITIALLY_SET but the slot not write-protected (arm64
 * kvm_arch_commit_memory_region skips kvm_mmu_wp_memory_region only when
 * kvm_dirty_log_manual_protect_and_init_set). Writes through the old
 * writable mappings are never logged.
 */
export class LazyProtectWithoutInitiallySet extends Stage2DirtyImpl {
  protected override protectLazily(): boolean {
    return true;
  }
}

/**
 * A deleted or moved memslot whose range is not unmapped
 * (kvm_arch_flush_shadow_memslot skipped): stage 2 still translates the old
 * guest frames to the slot's host memory.
 */
export class MemslotChangeKeepsMappings extends Stage2DirtyImpl {
  protected override flushShadowMemslot(_slot: KvmMemslot): void {
    /* the bug: nothing */
  }
}

export const mutants: readonly M[] = [
  {
    id: 'no-flush-after-dissolve',
    title: 'a dissolved block is not flushed from the TLB',
    source: `${SEED}, stage2_set_pte: "pmd_clear(pmd); kvm_tlb_flush_vmid_ipa(kvm, ipa);"`,
    expectedToViolate: ['tlb-coherent'],
    create: (c) => new NoFlushAfterDissolve(c),
  },
  {
    id: 'dissolve-keeps-count',
    title: 'a dissolved block does not drop the level-2 table page count',
    source: `${SEED}, stage2_set_pte: "put_page(virt_to_page(pmd))"`,
    expectedToViolate: ['table-counts'],
    create: (c) => new DissolveKeepsCount(c),
  },
  {
    id: 'write-fault-not-marked',
    title: 'a write fault maps writable without marking the page dirty',
    source: `${SEED}, user_mem_abort: "if (write_fault) mark_page_dirty(kvm, gfn);"`,
    expectedToViolate: ['dirty-complete', 'writable-implies-dirty'],
    create: (c) => new WriteFaultNotMarked(c),
  },
  {
    id: 'block-while-logging',
    title: 'a THP-backed logged slot still gets block mappings',
    source: `${SEED}, user_mem_abort: "if (!hugetlb && !force_pte && !logging_active)" (the THP path before the fix)`,
    expectedToViolate: ['no-block-while-logging', 'writable-implies-dirty'],
    create: (c) => new BlockWhileLogging(c),
  },
  {
    id: 'whole-block-dirty',
    title: 'a write marks the whole block dirty',
    source: `${SEED}, commit message ("track dirty memory at page granularity"); the hugetlb path's block-aligned gfn`,
    expectedToViolate: ['dirty-exact'],
    create: (c) => new WholeBlockDirty(c),
  },
  {
    id: 'get-log-no-reprotect',
    title: 'getDirtyLog clears the bits without write-protecting the pages',
    source: 'Documentation/virt/kvm/api.rst, KVM_GET_DIRTY_LOG / KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 (bits cleared and pages re-protected before the ioctl returns)',
    expectedToViolate: ['writable-implies-dirty', 'dirty-complete'],
    create: (c) => new GetLogNoReprotect(c),
  },
  {
    id: 'read-fault-writable',
    title: 'a read fault in a logged slot maps the page writable',
    source: `${SEED}, user_mem_abort: "if (writable) kvm_set_s2pte_writable(&new_pte)" with writable from gfn_to_pfn_prot; later arm64: "logging_active && !write_fault" maps read-only`,
    expectedToViolate: ['writable-implies-dirty', 'dirty-complete'],
    create: (c) => new ReadFaultWritable(c),
  },
  {
    id: 'collapse-leaks-table',
    title: 'a block installed after logging stops overwrites the page table without unmapping it',
    source: 'upstream commit 3c3736cd32bf "KVM: arm/arm64: Fix handling of stage2 huge mappings" (2019: a block installed over a table split for dirty logging leaked the table and left stale TLB entries)',
    expectedToViolate: ['table-counts', 'tlb-coherent'],
    create: (c) => new CollapseLeaksTable(c),
  },
  {
    id: 'dissolve-flushes-pa',
    title: 'a dissolved block is flushed at its output (physical) address instead of its IPA',
    source: `${SEED}, stage2_set_pte: "phys_addr_t ipa = pmd_pfn(*pmd) << PAGE_SHIFT; ... kvm_tlb_flush_vmid_ipa(kvm, ipa)"; later stage2_dissolve_pmd flushes addr (the IPA)`,
    expectedToViolate: ['tlb-coherent'],
    create: (c) => new DissolveFlushesPa(c),
  },
  {
    id: 'hugetlb-block-while-logging',
    title: 'a hugetlbfs-backed logged slot still gets block mappings',
    source: `${SEED}, user_mem_abort: "if (is_vm_hugetlb_page(vma) && !logging_active)" (the hugetlbfs path before the fix)`,
    expectedToViolate: ['no-block-while-logging'],
    create: (c) => new HugetlbBlockWhileLogging(c),
  },
  {
    id: 'page-at-thp-head',
    title: 'a page mapped while logging gets the THP head frame',
    source: `${SEED}, user_mem_abort: transparent_hugepage_adjust must not run while logging ("!hugetlb && !force_pte && !logging_active"); its pfn alignment applied to a 4 KiB mapping`,
    expectedToViolate: ['memory-intact'],
    create: (c) => new PageAtThpHead(c),
  },
  {
    id: 'free-slot-einval',
    title: 'getDirtyLog / clearDirtyLog on a free slot id answer EINVAL instead of ENOENT',
    source: 'virt/kvm/kvm_main.c kvm_get_dirty_log_protect / kvm_clear_dirty_log_protect ("if (!memslot || !memslot->dirty_bitmap) return -ENOENT"); live kernel: free id 5 answered ENOENT',
    expectedToViolate: ['result-mismatch'],
    create: (c) => new FreeSlotEinval(c),
  },
  {
    id: 'clear-ignores-bitmap',
    title: 'clearDirtyLog clears every page of the range whatever the user bitmap says',
    source: 'virt/kvm/kvm_main.c kvm_clear_dirty_log_protect ("mask &= atomic_long_fetch_andnot(mask, p)")',
    expectedToViolate: ['clear-keeps-unpassed-bits'],
    create: (c) => new ClearIgnoresBitmap(c),
  },
  {
    id: 'readonly-refuses-logging',
    title: 'KVM_MEM_LOG_DIRTY_PAGES refused on a read-only slot',
    source: 'virt/kvm/kvm_main.c check_memory_region_flags (LOG_DIRTY_PAGES and READONLY are both valid flags); tools/testing/selftests/kvm/arm64/page_fault_test.c (RO + LOG_DIRTY_PAGES slots); live kernel: accepted',
    expectedToViolate: ['result-mismatch'],
    create: (c) => new ReadonlyRefusesLogging(c),
  },
  {
    id: 'lazy-protect-without-initially-set',
    title: 'logging enabled without INITIALLY_SET but the slot not write-protected',
    source: 'arch/arm64/kvm/mmu.c kvm_arch_commit_memory_region (returns early only for kvm_dirty_log_manual_protect_and_init_set; otherwise kvm_mmu_wp_memory_region)',
    expectedToViolate: ['writable-implies-dirty', 'no-block-while-logging'],
    create: (c) => new LazyProtectWithoutInitiallySet(c),
  },
  {
    id: 'memslot-change-keeps-mappings',
    title: 'a deleted or moved memslot keeps its stage-2 mappings',
    source: 'virt/kvm/kvm_main.c kvm_invalidate_memslot -> kvm_arch_flush_shadow_memslot (arch/arm64/kvm/mmu.c: kvm_stage2_unmap_range over the slot)',
    expectedToViolate: ['view-mismatch'],
    create: (c) => new MemslotChangeKeepsMappings(c),
  },
];
