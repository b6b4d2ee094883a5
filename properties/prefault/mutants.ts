/**
 * Known-bug mutants of the `prefault` implementation: each is the optimized
 * MMU with one defect put back, a small override of one protected step.
 */
import type { Mutant } from '../../harness/domain';
import { ENOENT, PrefaultMmu, type SlotState } from '../../impl/prefault/mmu';
import {
  PAGES_2M,
  PAGES_OF_LEVEL,
  PAGE_SIZE,
  type PopulateResult,
  type PrefaultConfig,
  type PrefaultOp,
  type PrefaultResult,
  type Scope,
  type View,
} from '../../spec/prefault/types';

type PrefaultMutant = Mutant<PrefaultConfig, PrefaultOp, PrefaultResult, View, Scope>;

/**
 * The RFC's level rule for the initial image: "IS_ALIGNED(base_gfn, 2M) &&
 * nr_pages >= 512 -> max_level = 2M", evaluated once for the whole request
 * and used for every page of it, on a TDX VM before finalize (the one whose
 * populate maps). The first 512 pages become one 2 MiB leaf instead of 512
 * added 4 KiB ones; with 513 pages the last one maps a second 2 MiB leaf over
 * 511 pages nobody asked for: the GPA1/GPA2 hazard of seed 003.
 */
class RfcLevelBeforeFinalize extends PrefaultMmu {
  protected override populateLevel(s: SlotState, gfn: number, first: number, npages: number): number {
    if (first % PAGES_2M !== 0 || npages < PAGES_2M || s.backingLevel < 2) return 1;
    const start = gfn - (gfn % PAGES_2M);
    return this.blockFitsSlot(s, start, start + PAGES_2M) && this.attrsUniform(start, start + PAGES_2M) ? 2 : 1;
  }
}

/** The level check forgets the memslot bounds: a huge leaf may cross the slot's edge (into a gap or the next slot). */
class HugeLeafCrossesSlot extends PrefaultMmu {
  protected override blockFitsSlot(): boolean {
    return true;
  }
}

/** The level check looks only at the faulting page's attribute: one huge leaf over mixed private/shared pages. */
class MixedAttrsHugeLeaf extends PrefaultMmu {
  protected override attrsUniform(): boolean {
    return true;
  }
}

/**
 * populate extends the measurement before it checks whether the page was
 * already added: adding GPA1 again still fails with EEXIST, but the page has
 * been measured a second time (seed 003: "it's one time operation. It updates
 * measurement").
 */
class PopulateRemeasures extends PrefaultMmu {
  protected override populateCheck(s: SlotState | undefined, g: number): string | null {
    const why = super.populateCheck(s, g);
    if (why !== null && this.isAdded(g)) this.measurePage(g);
    return why;
  }
}

/** Progress counts the whole huge leaf, not min(size, leafEnd - gpa): bytes outside the request are reported as done. */
class ProgressWholeLeaf extends PrefaultMmu {
  protected override chunkAdvance(gpa: number, _size: number, leafEnd: number): number {
    return leafEnd - gpa;
  }
}

/** pre_fault_allowed true from the start for SNP/TDX: pre-faulting before finalize maps pages that were never added. */
class PrefaultBeforeFinalize extends PrefaultMmu {
  protected override prefaultAllowed(): boolean {
    return true;
  }
}

/**
 * A huge leaf is not written over an entry that points to a lower table: the
 * walk treats the present non-leaf entry as a spurious fault and reports the
 * huge level anyway, so a pre-fault chunk counts the whole huge leaf as
 * processed while only the smaller leaves already there are mapped, and a
 * guest access "succeeds" without mapping its page.
 */
class PrefaultKeepsSmallLeaves extends PrefaultMmu {
  protected override hugeReplacesTable(): boolean {
    return false;
  }
}

/** A pre-fault over an existing huge leaf splits it: the leaf is zapped and only the 4 KiB page at gpa is mapped again. */
class PrefaultSplitsHuge extends PrefaultMmu {
  protected override mapFault(s: SlotState | undefined, gfn: number): number {
    const cur = this.lookup(gfn);
    if (cur > 1) {
      const n = PAGES_OF_LEVEL[cur]!;
      const start = gfn - (gfn % n);
      this.zapRange(start, start + n);
      this.installLeaf(gfn, 1, this.isPrivate(gfn));
      return 1;
    }
    return super.mapFault(s, gfn);
  }
}

/**
 * Private memory mapped with the largest level the host backing allows, as
 * if guest_memfd handed out huge folios: upstream's __kvm_gmem_get_pfn sets
 * max_order = 0, so private leaves are 4 KiB whatever private_max_mapping_level
 * (SNP 2M) says.
 */
class HugePrivateLeaf extends PrefaultMmu {
  protected override privateLevel(s: SlotState): number {
    return s.backingLevel;
  }
}

/** SNP LAUNCH_UPDATE maps the page it adds (as TDX does): sev_gmem_post_populate only makes it private in the RMP. */
class SnpPopulateMaps extends PrefaultMmu {
  protected override postPopulate(s: SlotState, g: number, first: number, npages: number): void {
    super.postPopulate(s, g, first, npages);
    if (this.config.vmType === 'snp' && this.lookup(g) === 0) this.installLeaf(g, 1, true);
  }
}

/** A private gpa outside every memslot answered like a shared one (ENOENT) instead of kvm_handle_noslot_fault's EFAULT. */
class PrivateNoslotEnoent extends PrefaultMmu {
  protected override mapFault(s: SlotState | undefined, gfn: number): number {
    if (s === undefined) return -ENOENT;
    return super.mapFault(s, gfn);
  }
}

/**
 * SNP LAUNCH_UPDATE passes kvm_gmem_populate's per-page errno through (EEXIST
 * for a page already private in the RMP, EINVAL for a shared one) where
 * snp_launch_update answers any failure before the first page with EIO.
 */
class SnpPopulatePassthrough extends PrefaultMmu {
  protected override populate(gpa: number, npages: number): PopulateResult {
    const r = super.populate(gpa, npages);
    if (this.config.vmType !== 'snp' || r.ok || r.error !== 'EIO' || this.finalized || npages === 0) return r;
    const g = gpa / PAGE_SIZE;
    return { ok: false, error: this.populateCheck(this.findSlot(g), g) ?? 'EIO', gpa, npages };
  }
}

/**
 * TDX populate reports a failure with the range as given, as SNP does, where
 * tdx_vcpu_init_mem_region has advanced region.gpa/nr_pages past every page
 * it added before the failing one: user space would add those pages again.
 */
class TdxPopulateKeepsRange extends PrefaultMmu {
  protected override populate(gpa: number, npages: number): PopulateResult {
    const r = super.populate(gpa, npages);
    return this.config.vmType === 'tdx' && !r.ok ? { ok: false, error: r.error, gpa, npages } : r;
  }
}

/** Deleting or moving a memslot leaves its mappings in place (no kvm_arch_flush_shadow_memslot). */
class MemslotKeepsLeaves extends PrefaultMmu {
  protected override flushSlot(): void {}
}

/** Creating or moving a memslot skips kvm_check_memslot_overlap: two slots claim the same gfns. */
class MemslotOverlapAccepted extends PrefaultMmu {
  protected override overlaps(): boolean {
    return false;
  }
}

const SEED = 'seed 003_af5d94ca23cb5f06.txt';
const GMEM = 'virt/kvm/guest_memfd.c';

export const MUTANTS: readonly PrefaultMutant[] = [
  {
    id: 'rfc-level-before-finalize',
    title: "TDX populate picks the level with the RFC's alignment-and-size rule (2 MiB if the request is 2 MiB-aligned and at least 512 pages)",
    source: `${SEED}: the quoted RFC hunk "IS_ALIGNED(mapping->base_gfn, ...) && mapping->nr_pages >= ... max_level = PG_LEVEL_2M" and Yamahata's reply "We'd like to map exact gpa range for SNP or TDX case".`,
    expectedToViolate: ['exact-range'],
    create: (c) => new RfcLevelBeforeFinalize(c),
  },
  {
    id: 'huge-leaf-crosses-slot',
    title: 'the level choice ignores memslot bounds, so a huge leaf crosses the slot edge',
    source: `${SEED}: the RFC level choice "IS_ALIGNED(base_gfn, ...)" checks alignment only; upstream kvm_mmu_max_mapping_level bounds the level by the memslot (lpage_info disallow at slot edges).`,
    expectedToViolate: ['leaf-sound'],
    create: (c) => new HugeLeafCrossesSlot(c),
  },
  {
    id: 'mixed-attrs-huge-leaf',
    title: 'the level choice checks the attribute of the faulting page only, so one huge leaf covers private and shared pages',
    source: `${SEED}: the gmem_max_level hook (v11 30/35 "Add gmem hook for determining max NPT mapping level"); upstream KVM_LPAGE_MIXED_FLAG in hugepage_has_attrs().`,
    expectedToViolate: ['leaf-sound'],
    create: (c) => new MixedAttrsHugeLeaf(c),
  },
  {
    id: 'populate-remeasures',
    title: 'populate measures a page before noticing it was already added: EEXIST is returned, but the page is measured twice',
    source: `${SEED}: "map page to GPA, it's one time operation. It updates measurement" and "the following mapping of GPA2 fails".`,
    expectedToViolate: ['measure-once'],
    create: (c) => new PopulateRemeasures(c),
  },
  {
    id: 'progress-whole-leaf',
    title: 'preFault advances by the whole huge leaf (leafEnd - gpa) instead of min(size, leafEnd - gpa)',
    source: `${SEED}: Matlack "Is there a requirement that KVM must not map memory outside of the requested region?"; upstream kvm_arch_vcpu_pre_fault_memory "return min(range->size, end - range->gpa)".`,
    expectedToViolate: ['progress-exact'],
    create: (c) => new ProgressWholeLeaf(c),
  },
  {
    id: 'prefault-before-finalize',
    title: 'preFault is allowed on SNP/TDX before finalize',
    source: `${SEED}: "It's user space VMM responsibility to map GPA range only once at most for SNP or TDX"; upstream "KVM: x86: disallow pre-fault for SNP VMs before initialization" (Bonzini/Roth, July 2024: kvm->arch.pre_fault_allowed, set by snp_launch_finish) and the api.rst 4.143 paragraph it added.`,
    expectedToViolate: ['exact-range', 'progress-exact'],
    create: (c) => new PrefaultBeforeFinalize(c),
  },
  {
    id: 'prefault-keeps-small-leaves',
    title: 'a pre-fault chunk whose huge leaf would replace a lower table keeps the smaller leaves, yet advances by the whole huge leaf',
    source: `${SEED}: Matlack "what if the requested region is already mapped with a larger page?"; upstream kvm_arch_vcpu_pre_fault_memory advances by the level kvm_tdp_map_page reports, which must be the level actually mapped.`,
    expectedToViolate: ['progress-exact', 'idempotent'],
    create: (c) => new PrefaultKeepsSmallLeaves(c),
  },
  {
    id: 'prefault-splits-huge',
    title: 'pre-faulting a page under an existing huge leaf zaps the huge leaf and maps only that 4 KiB page',
    source: `${SEED}: "KVM_MAP_MEMORY on already mapped area potentially with large page: It succeeds ... It doesn't care whether the GPA is backed by large page or not."`,
    expectedToViolate: ['idempotent'],
    create: (c) => new PrefaultSplitsHuge(c),
  },
  {
    id: 'huge-private-leaf',
    title: 'private (guest_memfd) memory is mapped with huge leaves up to the host backing',
    source: `${GMEM} __kvm_gmem_get_pfn ("*max_order = 0"); arch/x86/kvm/mmu/mmu.c kvm_max_private_mapping_level (min of the gmem order and private_max_mapping_level).`,
    expectedToViolate: ['leaf-sound'],
    create: (c) => new HugePrivateLeaf(c),
  },
  {
    id: 'snp-populate-maps',
    title: 'SNP LAUNCH_UPDATE installs a 4 KiB NPT leaf for each page it adds',
    source: 'arch/x86/kvm/svm/sev.c sev_gmem_post_populate (rmp_make_private + SNP_LAUNCH_UPDATE, no NPT entry); contrast arch/x86/kvm/vmx/tdx.c tdx_gmem_post_populate (kvm_tdp_map_page).',
    expectedToViolate: ['exact-range'],
    create: (c) => new SnpPopulateMaps(c),
  },
  {
    id: 'private-noslot-enoent',
    title: 'a pre-fault or guest access at a private gpa in no memslot answers ENOENT/MMIO instead of EFAULT',
    source: 'arch/x86/kvm/mmu/mmu.c kvm_handle_noslot_fault ("if (fault->is_private) ... return -EFAULT"); tools/testing/selftests/kvm/pre_fault_memory_test.c (slot deleted under a private pre-fault).',
    expectedToViolate: ['progress-exact'],
    create: (c) => new PrivateNoslotEnoent(c),
  },
  {
    id: 'snp-populate-passthrough',
    title: "SNP LAUNCH_UPDATE returns kvm_gmem_populate's per-page errno (EEXIST, EINVAL) for a failure on the first page instead of EIO",
    source: 'arch/x86/kvm/svm/sev.c snp_launch_update ("if (count < 0) ... ret = -EIO"); virt/kvm/guest_memfd.c kvm_gmem_populate.',
    expectedToViolate: ['exact-range'],
    create: (c) => new SnpPopulatePassthrough(c),
  },
  {
    id: 'tdx-populate-keeps-range',
    title: 'TDX populate answers a failure with the range as given instead of the range left at the failing page',
    source: 'arch/x86/kvm/vmx/tdx.c tdx_vcpu_init_mem_region (region.gpa += PAGE_SIZE, nr_pages-- per page done; copy_to_user of the region on return).',
    expectedToViolate: ['exact-range'],
    create: (c) => new TdxPopulateKeepsRange(c),
  },
  {
    id: 'memslot-keeps-leaves',
    title: 'deleting or moving a memslot leaves the leaves that mapped it',
    source: 'virt/kvm/kvm_main.c kvm_set_memslot (KVM_MR_DELETE / KVM_MR_MOVE invalidate the old slot) -> kvm_arch_flush_shadow_memslot.',
    expectedToViolate: ['leaf-sound'],
    create: (c) => new MemslotKeepsLeaves(c),
  },
  {
    id: 'memslot-overlap-accepted',
    title: 'a memslot may be created or moved over another one',
    source: 'virt/kvm/kvm_main.c kvm_set_memory_region (kvm_check_memslot_overlap -> -EEXIST); live probe: overlapping creation and move answer EEXIST.',
    expectedToViolate: ['memslots-sound'],
    create: (c) => new MemslotOverlapAccepted(c),
  },
];
