/**
 * Known-bug mutants of the sev-cache implementation: each puts back one real
 * way to get SEV cache maintenance wrong. All must be killed by the lockstep
 * property within the domain's mutant budget.
 */
import type { Mutant } from '../../harness/domain';
import { SevCacheImpl, type KvmSevInfo } from '../../impl/sev-cache/sev';
import type { SevScope } from '../../spec/sev-cache/live';
import type { Config, SevOp, SevResult, SevView, VmType } from '../../spec/sev-cache/types';

type SevMutant = Mutant<Config, SevOp, SevResult, SevView, SevScope>;

const SEED = 'seeds 000_21c4e5073768e9da.txt / 001_ad1dd143e329dc6d.txt';

/**
 * Releases pages with CLFLUSH through the host's C=0 mapping (as
 * sev_clflush_pages() does at registration) instead of a cache writeback.
 * Without SME_COHERENT that never touches the C=1 lines: the dirty
 * ciphertext stays cached and lands on the page after the host reuses it.
 */
class ClflushInsteadOfWriteback extends SevCacheImpl {
  protected override writebackForRelease(_sev: KvmSevInfo, pages: readonly number[]): void {
    for (const p of pages) this.cost.pageFlushLines += this.hw.clflushPage(p);
  }
}

/**
 * Marks a CPU in the have-run mask only when the mask is empty, i.e. where
 * the VM first runs after a writeback, assuming its vCPUs stay put: a vCPU
 * that migrates dirties lines on a CPU the next writeback skips.
 */
class MaskMissesMigratedCpu extends SevCacheImpl {
  protected override markCpuRan(sev: KvmSevInfo, cpu: number): void {
    if (sev.haveRunCpus.isEmpty()) sev.haveRunCpus.set(cpu);
  }
}

/**
 * Clears the have-run mask after a writeback but leaves the vCPUs loaded:
 * a vCPU re-entering on the same CPU takes the fast path, which does not mark
 * the CPU again, while the VM still runs (and dirties lines) there.
 */
class MaskClearedWhileRunning extends SevCacheImpl {
  protected override clearRanMask(sev: KvmSevInfo): void {
    sev.haveRunCpus.clearAll();
  }
}

/**
 * Uses WBNOINVD for ASID recycling too: lines tagged with the old ASID stay
 * valid for the next VM that gets it, and the SNP firmware's DF_FLUSH finds
 * CPUs that have not executed WBINVD since DEACTIVATE.
 */
class WbnoinvdForAsidRecycle extends SevCacheImpl {
  protected override flushCachesForAsidRecycle(): void {
    for (let cpu = 0; cpu < this.config.cpus; cpu++) {
      if (this.config.wbnoinvd) this.hw.wbnoinvd(cpu);
      else this.cost.recycleLinesInvalidated += this.hw.wbinvd(cpu);
    }
  }
}

/** When the VM_PAGE_FLUSH MSR write faults, returns without the fallback writeback. */
class VmPageFlushNoFallback extends SevCacheImpl {
  protected override vmPageFlushFallback(_sev: KvmSevInfo): void {}
}

/** sev_vm_destroy() without the writeback: the VM's pages go back to the host with dirty C=1 lines cached. */
class DestroyWithoutWriteback extends SevCacheImpl {
  protected override destroyWriteback(_sev: KvmSevInfo, _pages: readonly number[]): void {}
}

/**
 * KVM_MEMORY_ENCRYPT_REG_REGION without sev_clflush_pages(): a dirty C=0
 * line of the host's stays cached and is written back over the guest's
 * encrypted data after the guest wrote the page.
 */
class RegisterWithoutClflush extends SevCacheImpl {
  protected override sevClflushPages(_page: number, _npages: number): void {}
}

/**
 * find_enc_region() matching any registered region that *contains* the range
 * instead of one with exactly the same start and size: a sub-range is
 * accepted and the whole containing region is released.
 */
class UnregisterMatchesContainingRegion extends SevCacheImpl {
  protected override findEncRegion(sev: KvmSevInfo, page: number, npages: number): number {
    return sev.regions.findIndex((r) => r.page <= page && page + npages <= r.page + r.npages && npages > 0);
  }
}

/**
 * sev_asid_new() ignoring min_sev_asid: every VM type allocates from 1 .. max,
 * so a plain SEV VM can take an ASID of the SEV-ES range (and recycling is
 * not per range).
 */
class AsidRangeIgnored extends SevCacheImpl {
  protected override asidRangeFor(_type: VmType): { readonly lo: number; readonly hi: number } {
    return { lo: 1, hi: this.config.asids };
  }
}

/**
 * The MMU-notifier reclaim (sev_guest_memory_reclaimed()) without the cache
 * writeback: the host takes the pages back with the guest's dirty C=1 lines
 * still cached.
 */
class ReclaimWithoutWriteback extends SevCacheImpl {
  protected override reclaimWriteback(_sev: KvmSevInfo): void {}
}

/**
 * sev_launch_update_data() without sev_clflush_pages(): the launch image user
 * space wrote with C=0 is still in a dirty cache line when the firmware
 * encrypts the page in place, so the firmware encrypts stale memory and the
 * C=0 line later lands on top of the ciphertext.
 */
class LaunchUpdateWithoutClflush extends SevCacheImpl {
  protected override launchClflushPages(_page: number, _npages: number): void {}
}

/**
 * Treats every VM as having a VMSA: sev_free_vcpu()'s early return for plain
 * SEV is missing, so a plain SEV VM's page is flushed and freed as if it
 * were one.
 */
class VmsaFreeForPlainSev extends SevCacheImpl {
  protected override hasVmsa(_sev: KvmSevInfo): boolean {
    return true;
  }
}

function mutant(
  id: string,
  title: string,
  source: string,
  expectedToViolate: readonly string[],
  Cls: new (c: Config) => SevCacheImpl,
): SevMutant {
  return { id, title, source, expectedToViolate, create: (c) => new Cls(c) };
}

export const MUTANTS: readonly SevMutant[] = [
  mutant(
    'clflush-instead-of-writeback',
    'releases pages with CLFLUSH through the C=0 mapping instead of WBNOINVD, which misses C=1 lines without SME_COHERENT',
    `${SEED}: sev_writeback_caches() comment "CLFLUSH will not do this without SME_COHERENT"`,
    ['no-stale-c1-dirty'],
    ClflushInsteadOfWriteback,
  ),
  mutant(
    'mask-misses-cpu',
    'the have-run mask records only the first CPU the VM enters after a writeback, missing CPUs its vCPUs migrate to',
    `${SEED}: commit message, "limit the WBNOINVD only to physical CPUs that have executed SEV guests"`,
    ['writeback-covers'],
    MaskMissesMigratedCpu,
  ),
  mutant(
    'mask-cleared-while-running',
    'the have-run mask is cleared after a writeback while a vCPU stays loaded on the CPU and re-enters without marking it',
    `${SEED}: sev_writeback_caches() and its planned per-CPU optimization; upstream keeps have_run_cpus set for this reason`,
    ['writeback-covers'],
    MaskClearedWhileRunning,
  ),
  mutant(
    'wbnoinvd-for-asid-recycle',
    'ASID recycling uses WBNOINVD instead of WBINVD before DF_FLUSH',
    `${SEED}: sev_flush_asids() "SNP firmware requires use of WBINVD for ASID recycling"`,
    ['asid-reuse-clean'],
    WbnoinvdForAsidRecycle,
  ),
  mutant(
    'vm-page-flush-no-fallback',
    'a faulting VM_PAGE_FLUSH is not followed by the fallback writeback',
    `${SEED}: sev_flush_encrypted_page() "Fall back to WBNOINVD if this faults"`,
    ['no-stale-c1-dirty'],
    VmPageFlushNoFallback,
  ),
  mutant(
    'destroy-without-writeback',
    'sev_vm_destroy() frees the VM\'s pages without writing caches back',
    `${SEED}: sev_vm_destroy() hunk (sev_writeback_caches() before unregistering the regions); upstream since 7e00013bd339 the notifier reclaim / gmem invalidation before sev_vm_destroy() writes back, which hvspec's destroyVm stands for`,
    ['no-stale-c1-dirty'],
    DestroyWithoutWriteback,
  ),
  mutant(
    'register-without-clflush',
    'registering a region does not flush the host\'s C=0 lines, which are later written back over guest data',
    'arch/x86/kvm/svm/sev.c sev_mem_enc_register_region() -> sev_clflush_pages() ("make sure caches are flushed to ensure that guest data gets written into memory with correct C-bit")',
    ['guest-integrity'],
    RegisterWithoutClflush,
  ),
  mutant(
    'unregister-matches-containing-region',
    'unregistering accepts a sub-range of a registered region (and releases the whole region) instead of an exact match',
    'arch/x86/kvm/svm/sev.c find_enc_region() (address and size must both match) via sev_mem_enc_unregister_region() -> EINVAL',
    ['result-mismatch', 'view-mismatch'],
    UnregisterMatchesContainingRegion,
  ),
  mutant(
    'asid-range-ignored',
    'ASIDs are allocated from 1..max for every VM type, ignoring the SEV-ES/SNP vs SEV split at min_sev_asid',
    'arch/x86/kvm/svm/sev.c sev_asid_new() (SEV-ES/SNP: 1..min_sev_asid-1; SEV: min_sev_asid..max_sev_asid) and sev_flush_asids(min_asid, max_asid)',
    ['result-mismatch', 'asid-in-range'],
    AsidRangeIgnored,
  ),
  mutant(
    'reclaim-without-writeback',
    'the MMU-notifier reclaim path does not write caches back before the host takes the pages',
    'arch/x86/kvm/svm/sev.c sev_guest_memory_reclaimed() (sev_writeback_caches() for SEV/SEV-ES)',
    ['no-stale-c1-dirty'],
    ReclaimWithoutWriteback,
  ),
  mutant(
    'launch-update-without-clflush',
    'LAUNCH_UPDATE_DATA encrypts the pages in place without first flushing the C=0 launch image from the caches',
    'arch/x86/kvm/svm/sev.c sev_launch_update_data() -> sev_clflush_pages() ("Flush (on non-coherent CPUs) before LAUNCH_UPDATE encrypts pages in place")',
    ['guest-integrity'],
    LaunchUpdateWithoutClflush,
  ),
  mutant(
    'vmsa-free-for-plain-sev',
    'the VMSA free path runs for plain SEV VMs, which have no VMSA (sev_free_vcpu() returns early unless SEV-ES)',
    'arch/x86/kvm/svm/sev.c sev_free_vcpu() (if (!sev_es_guest(vcpu->kvm)) return)',
    ['result-mismatch'],
    VmsaFreeForPlainSev,
  ),
];
