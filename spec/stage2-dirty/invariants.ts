/**
 * stage2-dirty: the seven invariants, as predicates over a View. Each check
 * is linear in the View and answers null or one sentence naming the pages
 * or entries involved. Sources: seed 002_2e4baad6e04960f3.txt ("[v14,7/7]
 * KVM: arm: page logging 2nd stage fault handling" and Marc Zyngier's
 * review), Documentation/virt/kvm/api.rst (KVM_GET_DIRTY_LOG,
 * KVM_CLEAR_DIRTY_LOG, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) and
 * tools/testing/selftests/kvm/dirty_log_test.c (vm_dirty_log_verify).
 */
import type { Invariant } from '../../harness/domain';
import type { Config, MappingView, SlotView, View } from './types';

type Inv = Invariant<Config, View>;

const SEED = 'seed 002_2e4baad6e04960f3.txt';

/**
 * The logged slot (bitmap present, not read-only: arm64 memslot_is_logging)
 * holding `gfn`, if any. Slots are few; a linear scan of the View's slots.
 */
function loggedSlotAt(view: View, gfn: number): SlotView | undefined {
  for (const s of view.slots) if (s.logging && !s.readonly && gfn >= s.baseGfn && gfn < s.baseGfn + s.npages) return s;
  return undefined;
}

/** Whether sorted `arr` contains `x` (binary search). */
export function sortedHas(arr: readonly number[], x: number): boolean {
  let lo = 0;
  let hi = arr.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const v = arr[mid]!;
    if (v === x) return true;
    if (v < x) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

/**
 * The first element of sorted `sub` that is in neither sorted `sup` nor
 * sorted `alt`, or -1 (a linear merge).
 */
export function firstMissing(sub: readonly number[], sup: readonly number[], alt: readonly number[] = []): number {
  let i = 0;
  let j = 0;
  for (const x of sub) {
    while (i < sup.length && sup[i]! < x) i++;
    if (i < sup.length && sup[i] === x) continue;
    while (j < alt.length && alt[j]! < x) j++;
    if (j < alt.length && alt[j] === x) continue;
    return x;
  }
  return -1;
}

/** Pages a mapping entry covers. */
export function leafPages(m: MappingView, config: Config): number {
  return m.size === '2m' ? config.blockPages : 1;
}

/** The mapping entry (of sorted `mappings`) covering page `gfn`, if any. */
export function leafAt(mappings: readonly MappingView[], gfn: number, config: Config): MappingView | undefined {
  let lo = 0;
  let hi = mappings.length - 1;
  let best = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (mappings[mid]!.gfn <= gfn) {
      best = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  if (best < 0) return undefined;
  const m = mappings[best]!;
  return gfn < m.gfn + leafPages(m, config) ? m : undefined;
}

function anyLogged(view: View): boolean {
  for (const s of view.slots) if (s.logging) return true;
  return false;
}

export const dirtyComplete: Inv = {
  id: 'dirty-complete',
  title: 'no write is lost from the dirty log',
  statement:
    'Every page written while its slot is logged has its dirty bit set until a getDirtyLog reports it (or a clearDirtyLog covering it clears it), so it appears in the next getDirtyLog of that slot; bits set by KVM_DIRTY_LOG_INITIALLY_SET stay set until cleared.',
  source: `${SEED}, user_mem_abort: "if (write_fault) mark_page_dirty(kvm, gfn)"; api.rst KVM_GET_DIRTY_LOG ("a bitmap of pages dirtied since the last call"); dirty_log_test.c vm_dirty_log_verify ("should have its dirty bit set ... but it is missing")`,
  check(view) {
    for (const s of view.slots) {
      if (!s.logging) continue;
      if (s.written.length === 0 && s.initial.length === 0) continue;
      const w = firstMissing(s.written, s.dirty);
      if (w >= 0) {
        return `page gfn ${w} of memslot ${s.id} was written while the slot was logged but its dirty bit is clear, so the next getDirtyLog would miss the write`;
      }
      const g = firstMissing(s.initial, s.dirty);
      if (g >= 0) return `page gfn ${g} of memslot ${s.id} lost the bit KVM_DIRTY_LOG_INITIALLY_SET gave it without being cleared by clearDirtyLog`;
    }
    return null;
  },
  exercised(view) {
    for (const s of view.slots) if (s.logging && (s.written.length > 0 || s.initial.length > 0)) return true;
    return false;
  },
};

export const dirtyExact: Inv = {
  id: 'dirty-exact',
  title: 'a page reported dirty was written',
  statement:
    'A page whose dirty bit is set was written since its bit was last cleared, or still carries the bit KVM_DIRTY_LOG_INITIALLY_SET gave it: tracking is per 4 KiB page, never per block.',
  source: `${SEED}, commit message ("to track dirty memory at page granularity") and stage2_set_pte comment; dirty_log_test.c vm_dirty_log_verify (a set bit must match a page the guest wrote)`,
  check(view) {
    for (const s of view.slots) {
      if (!s.logging || s.dirty.length === 0) continue;
      const g = firstMissing(s.dirty, s.written, s.initial);
      if (g >= 0) return `page gfn ${g} of memslot ${s.id} is marked dirty but was not written since its bit was last cleared`;
    }
    return null;
  },
  exercised(view) {
    for (const s of view.slots) if (s.logging && s.dirty.length > 0) return true;
    return false;
  },
};

export const writableImpliesDirty: Inv = {
  id: 'writable-implies-dirty',
  title: 'a writable translation of a logged page exists only while its bit is set',
  statement:
    'While a slot is logged, any writable translation of one of its pages, a stage-2 entry or a TLB entry, exists only if the page\'s dirty bit is set: the next write to a clean page must fault. Without KVM_DIRTY_LOG_INITIALLY_SET it also covers only that page (no writable block).',
  source: `${SEED}, user_mem_abort (huge pages disabled while logging, write faults mark the page); api.rst KVM_CLEAR_DIRTY_LOG ("dirty tracking is re-enabled for that page (for example via write-protection ...)"); arm64 kvm_arch_commit_memory_region (with INITIALLY_SET, protection comes with each CLEAR)`,
  check(view, config) {
    if (!anyLogged(view)) return null;
    for (const m of view.mappings) {
      if (!m.writable) continue;
      const n = leafPages(m, config);
      for (let p = m.gfn; p < m.gfn + n; p++) {
        const s = loggedSlotAt(view, p);
        if (!s) continue;
        if (n > 1 && !config.initiallySet) return `page gfn ${p} of logged memslot ${s.id} is covered by a writable 2m block mapping at gfn ${m.gfn}`;
        if (!sortedHas(s.dirty, p)) return `page gfn ${p} of logged memslot ${s.id} is mapped writable at stage 2 but its dirty bit is clear`;
      }
    }
    for (const e of view.tlb) {
      if (!e.writable) continue;
      for (let p = e.gfn; p < e.gfn + e.npages; p++) {
        const s = loggedSlotAt(view, p);
        if (!s) continue;
        if (e.npages > 1 && !config.initiallySet) return `a writable TLB entry for the block at gfn ${e.gfn} covers page gfn ${p} of logged memslot ${s.id}`;
        if (!sortedHas(s.dirty, p)) return `the TLB holds a writable translation of page gfn ${p} of logged memslot ${s.id} whose dirty bit is clear`;
      }
    }
    return null;
  },
  exercised(view) {
    if (!anyLogged(view)) return false;
    for (const m of view.mappings) if (m.writable && loggedSlotAt(view, m.gfn)) return true;
    return false;
  },
};

export const noBlockWhileLogging: Inv = {
  id: 'no-block-while-logging',
  title: 'no block installed while logging; a writable block over a logged page only while its bits are set (INITIALLY_SET)',
  statement:
    'Faults in a logged, writable slot install no block mappings (they map 4 KiB pages and dissolve a block met on the way). No block mapping that covers a page of a logged slot is writable, except with KVM_DIRTY_LOG_INITIALLY_SET, where arm64 does not write-protect at enable: there a writable block may stay only while every logged page under it still has its bit set.',
  source: `${SEED}, user_mem_abort: "is_vm_hugetlb_page(vma) && !logging_active" and "!hugetlb && !force_pte && !logging_active" before transparent_hugepage_adjust; stage2_set_pte: "While dirty memory logging, clear PMD entry for huge page and split into smaller pages"; arm64 kvm_arch_commit_memory_region returns early when kvm_dirty_log_manual_protect_and_init_set`,
  check(view, config) {
    if (view.blocksWhileLogging > 0) {
      return `${view.blocksWhileLogging} block mapping(s) were installed by faults in a logged memslot`;
    }
    if (!anyLogged(view)) return null;
    for (const m of view.mappings) {
      if (m.size !== '2m' || !m.writable) continue;
      for (let p = m.gfn; p < m.gfn + config.blockPages; p++) {
        const s = loggedSlotAt(view, p);
        if (!s) continue;
        if (!config.initiallySet) return `page gfn ${p} of logged memslot ${s.id} lies under the writable block mapping at gfn ${m.gfn}`;
        if (!sortedHas(s.dirty, p)) return `page gfn ${p} of logged memslot ${s.id} lies under the writable block mapping at gfn ${m.gfn} although its dirty bit was cleared`;
      }
    }
    return null;
  },
  exercised(view) {
    if (!anyLogged(view)) return false;
    for (const m of view.mappings) if (m.size === '2m' && loggedSlotAt(view, m.gfn)) return true;
    return false;
  },
};

export const clearKeepsUnpassedBits: Inv = {
  id: 'clear-keeps-unpassed-bits',
  title: 'KVM_CLEAR_DIRTY_LOG clears only the bits the caller passed',
  statement:
    'Right after a clearDirtyLog, every page whose bit was set before it and that the caller did not pass in its bitmap (or that lies outside its range) still has its bit set: a page dirtied between the GET and the CLEAR of a migration round is not lost.',
  source: 'virt/kvm/kvm_main.c kvm_clear_dirty_log_protect ("mask &= atomic_long_fetch_andnot(mask, p)": only bits set in the user bitmap are cleared); api.rst KVM_CLEAR_DIRTY_LOG',
  check(view) {
    for (const s of view.slots) {
      if (s.kept.length === 0) continue;
      const g = firstMissing(s.kept, s.dirty);
      if (g >= 0) return `page gfn ${g} of memslot ${s.id} lost its dirty bit in a clearDirtyLog whose bitmap did not pass it`;
    }
    return null;
  },
  exercised(view) {
    for (const s of view.slots) if (s.kept.length > 0) return true;
    return false;
  },
};

export const tlbCoherent: Inv = {
  id: 'tlb-coherent',
  title: 'the TLB never grants more than the stage-2 table',
  statement:
    'Every page a TLB entry translates is mapped by the table to the same frame, and writable in the table if the TLB entry is writable: clearing an entry (a dissolved block, an unmap, a write-protect) is followed by a TLB flush for it (break-before-make).',
  source: `${SEED}, stage2_set_pte: "pmd_clear(pmd); kvm_tlb_flush_vmid_ipa(kvm, ipa);"; Arm ARM break-before-make for stage-2 block to table changes`,
  check(view, config) {
    if (view.tlb.length === 0) return null;
    for (const e of view.tlb) {
      for (let k = 0; k < e.npages; k++) {
        const p = e.gfn + k;
        const m = leafAt(view.mappings, p, config);
        if (!m) return `the TLB entry at gfn ${e.gfn} still translates page gfn ${p}, which the stage-2 table no longer maps`;
        const pfn = m.pfn + (p - m.gfn);
        if (pfn !== e.pfn + k) return `the TLB entry at gfn ${e.gfn} translates page gfn ${p} to frame ${e.pfn + k} but the table maps it to frame ${pfn}`;
        if (e.writable && !m.writable) return `the TLB entry at gfn ${e.gfn} lets the guest write page gfn ${p}, which the stage-2 table maps read-only`;
      }
    }
    return null;
  },
  exercised(view) {
    return view.tlb.length > 0;
  },
};

export const tableCounts: Inv = {
  id: 'table-counts',
  title: 'table-page counts are one plus the valid entries',
  statement:
    'Every live stage-2 table page has count one plus its valid entries and exactly one parent entry pointing at it (the root none); a freed table page is referenced by no entry and was freed once.',
  source: `${SEED}, stage2_set_pte: "put_page(virt_to_page(pmd))" after clearing a huge PMD; arch/arm/kvm/mmu.c get_page/put_page on table pages (kvm_pte_table_empty frees a table whose count is back to one)`,
  check(view) {
    for (const tp of view.tables) {
      const what = `table page #${tp.id} (level ${tp.level}, from gfn ${tp.baseGfn})`;
      if (tp.freedTwice) return `${what} was freed twice`;
      if (tp.free) {
        if (tp.refs > 0) return `${what} is free but still referenced by ${tp.refs} table entr${tp.refs === 1 ? 'y' : 'ies'}`;
        continue;
      }
      if (tp.count !== tp.valid + 1) return `${what} has count ${tp.count} but ${tp.valid} valid entries (expected ${tp.valid + 1})`;
      if (tp.level > 1 && tp.refs === 0) return `${what} is lost: allocated but no table entry points at it`;
      if (tp.refs > 1) return `${what} is referenced by ${tp.refs} table entries`;
    }
    return null;
  },
  exercised(view) {
    for (const tp of view.tables) if (tp.level > 1) return true;
    return false;
  },
};

export const memoryIntact: Inv = {
  id: 'memory-intact',
  title: 'guest memory survives splits, re-protection and unmaps',
  statement:
    'Every page the guest wrote holds the value last written, in the host frame backing it and through its current stage-2 mapping, across block dissolution, write-protection and unmaps: a guest read returns the last value written.',
  source: `${SEED}, stage2_set_pte (the page table built after a dissolved block maps the same frames); api.rst KVM_GET_DIRTY_LOG; dirty_log_test.c vm_dirty_log_verify (the value on a page is the iteration that last wrote it)`,
  check(view) {
    for (const m of view.memory) {
      if (m.host !== m.expected) return `page gfn ${m.gfn} holds ${m.host} in its host frame but the guest last wrote ${m.expected}`;
      if (m.mapped !== null && m.mapped !== m.expected) {
        return `the stage-2 mapping of page gfn ${m.gfn} leads to a frame holding ${m.mapped}, not the ${m.expected} the guest last wrote`;
      }
    }
    return null;
  },
  exercised(view) {
    return view.memory.length > 0;
  },
};

/**
 * Checked in this order: the specific block rule before the general
 * writable rule, so that a block installed while logging is reported as
 * such.
 */
export const invariants: readonly Inv[] = [
  clearKeepsUnpassedBits,
  dirtyComplete,
  dirtyExact,
  noBlockWhileLogging,
  writableImpliesDirty,
  tlbCoherent,
  tableCounts,
  memoryIntact,
];
