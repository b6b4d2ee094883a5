/**
 * Known-bug mutants of the sev-cache implementation: each puts back one real
 * way to get SEV cache maintenance wrong. All must be killed by the lockstep
 * property within the domain's mutant budget.
 */
import type { Mutant } from '../../harness/domain';
import { SevCacheImpl, type KvmSevInfo } from '../../impl/sev-cache/sev';
import type { SevScope } from '../../spec/sev-cache/live';
import type { Config, SevOp, SevResult, SevView } from '../../spec/sev-cache/types';

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
    `${SEED}: sev_vm_destroy() hunk (sev_writeback_caches() before unregistering the regions)`,
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
];
