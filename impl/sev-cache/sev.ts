/**
 * The optimized sev-cache implementation: KVM's SEV cache maintenance after
 * "KVM: SEV: Prefer WBNOINVD over WBINVD" (seeds 000/001), plus the
 * optimization that patch prepares: write back only the CPUs that have run
 * the VM.
 *
 *  - Release points (unregister a region, free a VMSA page after a faulting
 *    VM_PAGE_FLUSH, reclaim for SEV/SEV-ES, destroy) call
 *    sev_writeback_caches(): WBNOINVD (WBINVD on parts without it, as the
 *    wbnoinvd() helper's alternative() does) on the CPUs in the VM's
 *    have-run mask only.
 *  - ASID recycling keeps WBINVD on every CPU, then DF_FLUSH: the SNP
 *    firmware checks that every CPU executed WBINVD since the last
 *    DEACTIVATE, and a valid line still tagged with the old ASID would be read
 *    by the next owner.
 *  - sev_flush_encrypted_page(): CLFLUSH when SME_COHERENT, else
 *    VM_PAGE_FLUSH, falling back to a writeback if the MSR write faults.
 *  - sev_gmem_invalidate(): SNP pages punched out of guest_memfd are CLFLUSHed
 *    (SNP parts are SME_COHERENT) and freed.
 *  - sev_launch_update_data(): the C=0 launch image is CLFLUSHed (non-coherent
 *    parts) before the firmware encrypts the pages in place.
 *  - sev_asid_new(): SEV-ES/SNP and SEV VMs allocate, recycle and fail with
 *    EBUSY within their own ASID range (split at min_sev_asid).
 *
 * The have-run mask (sev->have_run_cpus upstream, 6f38f8c57464) is set on
 * the VMRUN path. Under the default policy it is never cleared, as upstream;
 * under "clear-after-writeback" it is cleared right after the writeback,
 * together with the per-CPU "loaded VM" that lets a vCPU re-entering on the
 * same CPU skip the marking: clearing the bit while leaving that shortcut in
 * place would let the VM dirty lines on a CPU the next writeback skips.
 *
 * Regions are kept as the kernel lists them (regions_list, pin counts):
 * unregistration must name one exactly (find_enc_region()), and a page goes
 * back to the host when no region of its VM pins it any more.
 *
 * The bug-relevant steps are protected methods so mutants can override them.
 */
import type { System } from '../../harness/domain';
import { MinimumTracker, zeroCounters, type SevCounters } from '../../spec/sev-cache/cost';
import { LiveView, compareGuestLines, type KernelTables, type LiveSource, type SevScope } from '../../spec/sev-cache/live';
import { OK, asidRange, err, type Config, type SevOp, type SevResult, type SevView, type VmType, type WrittenViewT } from '../../spec/sev-cache/types';
import { Bitmap } from './cpumask';
import { Machine } from './machine';

/** kvm_sev_info flags. */
export const SEV_VM_ES = 1 << 0;
export const SEV_VM_SNP = 1 << 1;
/** A vCPU entered the guest since the ASID was bound (the ASID is no longer "fresh"). */
export const SEV_VM_RAN = 1 << 2;

/** pageOwner / loadedVm value for "nobody". */
const NO_VM = 0;

export interface KvmSevInfo {
  readonly id: number;
  readonly asid: number;
  flags: number;
  /**
   * sev->have_run_cpus: CPUs that entered this VM (policy "upstream": ever;
   * "clear-after-writeback": since its last writeback).
   */
  readonly haveRunCpus: Bitmap;
  /** Pages pinned for this VM. */
  nrPages: number;
  /** sev->regions_list: registered regions in registration order. */
  readonly regions: { readonly page: number; readonly npages: number }[];
  /** Cost report only: CPUs the VM ever entered (what the upstream mask holds). */
  readonly everRan: Bitmap;
  /** Cost report only: CPUs the VM entered since its last writeback (what the clearing mask holds). */
  readonly ranSinceWriteback: Bitmap;
}

export class SevCacheImpl implements System<SevOp, SevResult, SevView, SevScope> {
  protected readonly hw: Machine;
  protected readonly vms = new Map<number, KvmSevInfo>();
  /** sev_asid_bitmap: ASIDs in use or awaiting recycling (bit 0 unused). */
  protected readonly asidBitmap: Bitmap;
  /** sev_reclaim_asid_bitmap: ASIDs deactivated, waiting for WBINVD + DF_FLUSH. */
  protected readonly reclaimBitmap: Bitmap;
  /** ASID -> VM id bound to it (NO_VM: none). */
  protected readonly asidOwner: Int32Array;
  /** ASIDs last bound to an SNP VM. */
  protected readonly asidSnp: Bitmap;
  /** page -> VM id it is pinned for (NO_VM: free). */
  protected readonly pageOwner: Int32Array;
  /** Pinned pages, one bit per page (the View walks set bits in page order). */
  protected readonly pinned: Bitmap;
  /** page -> how many of its owner's regions pin it. */
  protected readonly pinCount: Int32Array;
  /** Per CPU: the VM whose vCPU last entered there and is still loaded (NO_VM: none). */
  protected readonly loadedVm: Int32Array;
  /**
   * Ghost state for the View only (never read by the kernel logic): per addr,
   * what the page's current owner last wrote there.
   */
  private readonly ghostValue: Float64Array;
  private readonly ghostWritten: Bitmap;
  /** Ghost: launch image data written (C=0) into a registered page and not yet encrypted. */
  private readonly ghostLaunchValue: Float64Array;
  private readonly ghostLaunch: Bitmap;
  /** Ghost: lines user space dirtied through C=0 in a registered page and never had encrypted. */
  private readonly ghostTainted: Bitmap;
  protected readonly cost: SevCounters = zeroCounters();
  protected readonly minimum: MinimumTracker;
  /** View upkeep for liveView(): addresses touched since the last call. */
  private readonly live: LiveView;

  constructor(protected readonly config: Config) {
    this.live = new LiveView(config.linesPerPage);
    this.hw = new Machine(config, (addr) => this.live.touch(addr));
    this.asidBitmap = new Bitmap(config.asids + 1);
    this.asidBitmap.set(0);
    this.reclaimBitmap = new Bitmap(config.asids + 1);
    this.asidSnp = new Bitmap(config.asids + 1);
    this.asidOwner = new Int32Array(config.asids + 1);
    this.pageOwner = new Int32Array(config.pages);
    this.loadedVm = new Int32Array(config.cpus);
    this.ghostValue = new Float64Array(config.pages * config.linesPerPage);
    this.ghostWritten = new Bitmap(config.pages * config.linesPerPage);
    this.ghostLaunchValue = new Float64Array(config.pages * config.linesPerPage);
    this.ghostLaunch = new Bitmap(config.pages * config.linesPerPage);
    this.ghostTainted = new Bitmap(config.pages * config.linesPerPage);
    this.pinned = new Bitmap(config.pages);
    this.pinCount = new Int32Array(config.pages);
    this.minimum = new MinimumTracker(config.cpus);
  }

  // --- cache maintenance ----------------------------------------------------

  /** wbnoinvd() on one CPU: WBNOINVD, or WBINVD where X86_FEATURE_WBNOINVD is missing. */
  protected wbnoinvdOnCpu(cpu: number): void {
    this.cost.cpusWrittenBack++;
    if (this.config.wbnoinvd) this.hw.wbnoinvd(cpu);
    else this.cost.linesInvalidated += this.hw.wbinvd(cpu);
  }

  /** wbinvd_on_all_cpus() for ASID recycling. */
  protected wbinvdOnAllCpus(): void {
    for (let cpu = 0; cpu < this.config.cpus; cpu++) this.cost.recycleLinesInvalidated += this.hw.wbinvd(cpu);
  }

  /**
   * sev_writeback_caches(): every dirty guest-tagged line must reach memory
   * before pages go back to the host (CLFLUSH via C=0 does not reach C=1
   * lines without SME_COHERENT). Only the CPUs that ran the VM since its last
   * writeback can hold such lines.
   */
  protected sevWritebackCaches(sev: KvmSevInfo): void {
    // Cost report: what each mask policy would write back here.
    this.cost.cpusWrittenBackUpstream += sev.everRan.weight();
    this.cost.cpusWrittenBackClearing += sev.ranSinceWriteback.weight();
    sev.ranSinceWriteback.clearAll();
    if (sev.haveRunCpus.isEmpty()) return;
    this.live.markWritebackSet();
    sev.haveRunCpus.forEach((cpu) => this.wbnoinvdOnCpu(cpu));
    // Upstream (6f38f8c57464) never removes a CPU from the mask; clearing it
    // here is hvspec's refinement, safe only because ops are atomic.
    if (this.config.haveRunMask === 'clear-after-writeback') this.clearRanMask(sev);
  }

  /**
   * Forget where the VM ran, right after writing those CPUs back. A vCPU still
   * loaded on one of them is kicked back through the marking slow path, so
   * the bit is never cleared while the VM may still run there unmarked.
   */
  protected clearRanMask(sev: KvmSevInfo): void {
    sev.haveRunCpus.forEach((cpu) => {
      if (this.loadedVm[cpu] === sev.id) this.loadedVm[cpu] = NO_VM;
    });
    sev.haveRunCpus.clearAll();
  }

  /** The writeback at a release point (unregister, reclaim). */
  protected writebackForRelease(sev: KvmSevInfo, _pages: readonly number[]): void {
    this.sevWritebackCaches(sev);
  }

  /** The writeback of the MMU-notifier path (sev_guest_memory_reclaimed()). */
  protected reclaimWriteback(sev: KvmSevInfo): void {
    this.sevWritebackCaches(sev);
  }

  /** sev_clflush_pages() in sev_launch_update_data(): the C=0 launch image out of the caches before the firmware encrypts in place. */
  protected launchClflushPages(page: number, npages: number): void {
    this.sevClflushPages(page, npages);
  }

  /** find_enc_region(): the first region with exactly this start and size, or -1. */
  protected findEncRegion(sev: KvmSevInfo, page: number, npages: number): number {
    return sev.regions.findIndex((r) => r.page === page && r.npages === npages);
  }

  /** The ASIDs a VM of this type may get (sev_asid_new()). */
  protected asidRangeFor(type: VmType): { readonly lo: number; readonly hi: number } {
    return asidRange(this.config, type);
  }

  /** sev_free_vcpu() only has a VMSA to flush for SEV-ES and SNP. */
  protected hasVmsa(sev: KvmSevInfo): boolean {
    return (sev.flags & SEV_VM_ES) !== 0;
  }

  /** The writeback at the start of sev_vm_destroy(). */
  protected destroyWriteback(sev: KvmSevInfo, pages: readonly number[]): void {
    this.writebackForRelease(sev, pages);
  }

  /** The cache flush of ASID recycling (sev_flush_asids): WBINVD on every CPU, as the SNP firmware requires. */
  protected flushCachesForAsidRecycle(): void {
    this.wbinvdOnAllCpus();
  }

  /** wrmsrl_safe(MSR_AMD64_VM_PAGE_FLUSH, addr | asid): false when it faults. */
  protected vmPageFlushMsr(page: number, asid: number): boolean {
    if (this.config.vmPageFlush === 'faults') return false;
    this.cost.pageFlushLines += this.hw.vmPageFlush(page, asid);
    return true;
  }

  /** The fault path of sev_flush_encrypted_page(): a full writeback. */
  protected vmPageFlushFallback(sev: KvmSevInfo): void {
    this.sevWritebackCaches(sev);
  }

  /** sev_flush_encrypted_page() */
  protected sevFlushEncryptedPage(sev: KvmSevInfo, page: number): void {
    if (this.config.smeCoherent) {
      // Coherent parts: CLFLUSH through the host mapping reaches every alias.
      this.cost.pageFlushLines += this.hw.clflushPage(page);
      return;
    }
    if (!this.vmPageFlushMsr(page, sev.asid)) {
      this.minimum.release(sev.id);
      this.vmPageFlushFallback(sev);
    }
  }

  /** sev_clflush_pages() at registration: C=0 lines out before the guest uses the pages with C=1. */
  protected sevClflushPages(page: number, npages: number): void {
    if (this.config.smeCoherent) return;
    for (let p = page; p < page + npages; p++) this.cost.pageFlushLines += this.hw.clflushPage(p);
  }

  /** pre_sev_run(): the VMRUN path on `cpu`. */
  protected preSevRun(sev: KvmSevInfo, cpu: number): void {
    sev.everRan.set(cpu);
    sev.ranSinceWriteback.set(cpu);
    if (this.loadedVm[cpu] !== sev.id) {
      this.live.markWritebackSet();
      this.loadedVm[cpu] = sev.id;
      this.markCpuRan(sev, cpu);
    }
  }

  /** cpumask_set_cpu(cpu, sev->have_run_cpus) */
  protected markCpuRan(sev: KvmSevInfo, cpu: number): void {
    sev.haveRunCpus.set(cpu);
  }

  // --- ASIDs ----------------------------------------------------------------

  /** sev_flush_asids() + __sev_recycle_asids(): reclaimed ASIDs become free. */
  protected recycleAsids(): void {
    this.cost.recycles++;
    this.live.markKernel();
    this.flushCachesForAsidRecycle();
    this.hw.dfFlush();
    // The flush covers every reclaimed ASID, in both ranges.
    this.asidBitmap.andNot(this.reclaimBitmap);
    this.reclaimBitmap.clearAll();
    // Every CPU was just written back: no VM can have a dirty line anywhere.
    // Upstream leaves the masks alone; the clearing policy may forget them.
    for (const sev of this.vms.values()) {
      sev.ranSinceWriteback.clearAll();
      if (this.config.haveRunMask === 'clear-after-writeback') this.clearRanMask(sev);
    }
    this.minimum.allWrittenBack();
  }

  /** Lowest set bit of `b` in [lo, hi], or -1 (find_next_bit bounded by max_asid). */
  private static nextSet(b: Bitmap, lo: number, hi: number): number {
    for (let a = lo; a <= hi; a++) if (b.test(a)) return a;
    return -1;
  }

  /**
   * sev_asid_new(): the lowest free ASID in the type's range; if none, recycle
   * once when that range has a reclaimed ASID (sev_flush_asids() answers
   * EBUSY otherwise). -1: none; -2: the range is empty (ENOTTY).
   */
  protected sevAsidNew(type: VmType): number {
    const { lo, hi } = this.asidRangeFor(type);
    if (lo > hi) return -2;
    let asid = this.asidBitmap.findNextZero(lo);
    if (asid > hi && SevCacheImpl.nextSet(this.reclaimBitmap, lo, hi) >= 0) {
      this.recycleAsids();
      asid = this.asidBitmap.findNextZero(lo);
    }
    if (asid > hi) return -1;
    this.asidBitmap.set(asid);
    return asid;
  }

  // --- pages ----------------------------------------------------------------

  private pin(page: number, vm: number): void {
    this.pageOwner[page] = vm;
    this.pinned.set(page);
    this.forgetGhost(page);
  }

  private unpin(page: number): void {
    this.pageOwner[page] = NO_VM;
    this.pinned.clear(page);
    this.forgetGhost(page);
  }

  private forgetGhost(page: number): void {
    this.live.markPages();
    const base = page * this.config.linesPerPage;
    for (let line = 0; line < this.config.linesPerPage; line++) {
      this.ghostWritten.clear(base + line);
      this.ghostLaunch.clear(base + line);
      this.ghostTainted.clear(base + line);
      this.live.touch(base + line);
    }
  }

  /** Unlist one region and unpin its pages once; returns the pages no region pins any more (still owned). */
  private dropRegion(sev: KvmSevInfo, index: number): number[] {
    const [r] = sev.regions.splice(index, 1);
    const freed: number[] = [];
    for (let p = r!.page; p < r!.page + r!.npages; p++) if (--this.pinCount[p]! === 0) freed.push(p);
    return freed;
  }

  /** Regions lying inside a range handed back whole (indexes descending), or undefined if one sticks out. */
  private wholeRegions(sev: KvmSevInfo, page: number, npages: number): number[] | undefined {
    if (!this.rangeOwnedBy(sev.id, page, npages)) return undefined;
    const out: number[] = [];
    for (let i = sev.regions.length - 1; i >= 0; i--) {
      const r = sev.regions[i]!;
      if (r.page + r.npages <= page || r.page >= page + npages) continue;
      if (r.page < page || r.page + r.npages > page + npages) return undefined;
      out.push(i);
    }
    return out;
  }

  private unpinAll(sev: KvmSevInfo, pages: readonly number[]): void {
    for (const p of pages) this.unpin(p);
    sev.nrPages -= pages.length;
  }

  private rangeOwnedBy(vm: number, page: number, npages: number): boolean {
    if (npages < 1 || page + npages > this.config.pages) return false;
    for (let p = page; p < page + npages; p++) if (this.pageOwner[p] !== vm) return false;
    return true;
  }

  private pagesOf(sev: KvmSevInfo): number[] {
    const out: number[] = [];
    if (sev.nrPages === 0) return out;
    this.pinned.forEach((p) => {
      if (this.pageOwner[p] === sev.id) out.push(p);
    });
    return out;
  }


  private asidVm(asid: number): KvmSevInfo | undefined {
    const id = this.asidOwner[asid]!;
    return id === NO_VM ? undefined : this.vms.get(id);
  }

  // --- operations -----------------------------------------------------------

  private createVm(vm: number, type: VmType): SevResult {
    if (type === 'snp' && !this.config.smeCoherent) return err('EINVAL');
    if (this.vms.has(vm)) return err('EEXIST');
    const asid = this.sevAsidNew(type);
    if (asid === -2) return err('ENOTTY');
    if (asid < 0) return err('EBUSY');
    if (type === 'snp') this.asidSnp.set(asid);
    else this.asidSnp.clear(asid);
    this.asidOwner[asid] = vm;
    const flags = type === 'snp' ? SEV_VM_SNP | SEV_VM_ES : type === 'sev-es' ? SEV_VM_ES : 0;
    const cpus = this.config.cpus;
    this.vms.set(vm, { id: vm, asid, flags, haveRunCpus: new Bitmap(cpus), nrPages: 0, regions: [], everRan: new Bitmap(cpus), ranSinceWriteback: new Bitmap(cpus) });
    this.live.markKernel();
    return { ok: true, asid };
  }

  private registerRegion(vm: number, page: number, npages: number): SevResult {
    const sev = this.vms.get(vm);
    if (!sev) return err('ENOENT');
    if (npages < 1 || page + npages > this.config.pages) return err('EINVAL');
    // sev_pin_memory() pins an overlapping range again: allowed for the VM's own pages.
    for (let p = page; p < page + npages; p++) {
      const o = this.pageOwner[p]!;
      if (o !== NO_VM && o !== vm) return err('EINVAL');
    }
    this.sevClflushPages(page, npages);
    for (let p = page; p < page + npages; p++) {
      if (this.pageOwner[p] === NO_VM) {
        this.pin(p, vm);
        sev.nrPages++;
      }
      this.pinCount[p]!++;
    }
    sev.regions.push({ page, npages });
    return OK;
  }

  private unregisterRegion(vm: number, page: number, npages: number): SevResult {
    const sev = this.vms.get(vm);
    if (!sev) return err('ENOENT');
    const i = this.findEncRegion(sev, page, npages);
    if (i < 0) return err('EINVAL');
    this.cost.releases++;
    this.minimum.release(vm);
    const r = sev.regions[i]!;
    this.writebackForRelease(sev, rangeOf(r.page, r.npages));
    this.unpinAll(sev, this.dropRegion(sev, i));
    return OK;
  }

  /** User space writes the launch image (C=0) into a registered page of a VM that has not run. */
  private launchWrite(vm: number, cpu: number, page: number, line: number, value: number): SevResult {
    const sev = this.vms.get(vm);
    if (!sev) return err('ENOENT');
    if (cpu >= this.config.cpus || line >= this.config.linesPerPage) return err('EINVAL');
    if (page >= this.config.pages || this.pageOwner[page] !== vm) return err('EFAULT');
    if (sev.flags & (SEV_VM_SNP | SEV_VM_RAN)) return err('EINVAL');
    const a = this.hw.addr(page, line);
    this.hw.write(cpu, a, 0, value);
    this.ghostWritten.clear(a);
    this.ghostLaunchValue[a] = value;
    this.ghostLaunch.set(a);
    this.ghostTainted.set(a);
    return OK;
  }

  /** sev_launch_update_data(): flush the C=0 lines, then LAUNCH_UPDATE_DATA encrypts in place. */
  private launchUpdateData(vm: number, page: number, npages: number): SevResult {
    const sev = this.vms.get(vm);
    if (!sev) return err('ENOENT');
    if (sev.flags & (SEV_VM_SNP | SEV_VM_RAN) || !this.rangeOwnedBy(vm, page, npages)) return err('EINVAL');
    this.launchClflushPages(page, npages);
    for (let p = page; p < page + npages; p++) {
      this.hw.encryptInPlace(p, sev.asid);
      const base = p * this.config.linesPerPage;
      for (let a = base; a < base + this.config.linesPerPage; a++) {
        this.live.touch(a);
        this.ghostTainted.clear(a);
        if (this.ghostLaunch.test(a)) {
          this.ghostValue[a] = this.ghostLaunchValue[a]!;
          this.ghostWritten.set(a);
          this.ghostLaunch.clear(a);
        } else this.ghostWritten.clear(a);
      }
    }
    return OK;
  }

  private guestAccess(vm: number, cpu: number, page: number, line: number, value: number | undefined): SevResult {
    const sev = this.vms.get(vm);
    if (!sev) return err('ENOENT');
    if (cpu >= this.config.cpus || line >= this.config.linesPerPage) return err('EINVAL');
    if (page >= this.config.pages || this.pageOwner[page] !== vm) return err('EFAULT');
    this.preSevRun(sev, cpu);
    if (!(sev.flags & SEV_VM_RAN)) this.live.markKernel();
    sev.flags |= SEV_VM_RAN;
    this.minimum.ran(vm, cpu);
    const a = this.hw.addr(page, line);
    if (value === undefined) return { ok: true, value: this.hw.read(cpu, a, sev.asid) };
    this.hw.write(cpu, a, sev.asid, value);
    // A line user space dirtied through C=0 and never had encrypted carries no promise.
    if (!this.ghostTainted.test(a)) {
      this.ghostValue[a] = value;
      this.ghostWritten.set(a);
    }
    return OK;
  }

  private hostAccess(cpu: number, page: number, line: number, value: number | undefined): SevResult {
    if (cpu >= this.config.cpus || line >= this.config.linesPerPage || page >= this.config.pages) return err('EINVAL');
    if (this.pageOwner[page] !== NO_VM) return err('EBUSY');
    const a = this.hw.addr(page, line);
    if (value === undefined) return { ok: true, value: this.hw.read(cpu, a, 0) };
    this.hw.write(cpu, a, 0, value);
    this.ghostValue[a] = value;
    this.ghostWritten.set(a);
    return OK;
  }

  private evict(cpu: number, page: number, line: number, key: number): SevResult {
    if (cpu >= this.config.cpus || line >= this.config.linesPerPage || page >= this.config.pages || key > this.config.asids) {
      return err('EINVAL');
    }
    this.hw.evict(cpu, this.hw.addr(page, line), key);
    return OK;
  }

  private flushEncryptedPage(vm: number, page: number): SevResult {
    const sev = this.vms.get(vm);
    if (!sev) return err('ENOENT');
    // sev_free_vcpu() returns early unless the VM is SEV-ES or SNP.
    if (!this.hasVmsa(sev)) return err('EINVAL');
    if (page >= this.config.pages || this.pageOwner[page] !== vm) return err('EFAULT');
    // The VMSA is a page of its own: a one-page region pinned once.
    const i = this.findEncRegion(sev, page, 1);
    if (i < 0 || this.pinCount[page] !== 1) return err('EINVAL');
    this.cost.releases++;
    this.sevFlushEncryptedPage(sev, page);
    this.unpinAll(sev, this.dropRegion(sev, i));
    return OK;
  }

  private memoryReclaimed(vm: number, page: number | undefined, npages: number | undefined): SevResult {
    const sev = this.vms.get(vm);
    if (!sev) return err('ENOENT');
    if ((page === undefined) !== (npages === undefined)) return err('EINVAL');
    // SNP private memory is not reachable through the hva-based notifiers.
    if (sev.flags & SEV_VM_SNP) return OK;
    let idx: number[] = [];
    if (page !== undefined && npages !== undefined) {
      const w = this.wholeRegions(sev, page, npages);
      if (w === undefined) return err('EINVAL');
      idx = w;
    }
    this.cost.releases++;
    this.minimum.release(vm);
    // The notifier fires because the host takes these pages back: write back first.
    this.reclaimWriteback(sev);
    const freed: number[] = [];
    for (const i of idx) for (const p of this.dropRegion(sev, i)) freed.push(p);
    this.unpinAll(sev, freed);
    return OK;
  }

  private gmemInvalidate(vm: number, page: number, npages: number): SevResult {
    const sev = this.vms.get(vm);
    if (!sev) return err('ENOENT');
    if (!(sev.flags & SEV_VM_SNP)) return err('EINVAL');
    const idx = this.wholeRegions(sev, page, npages);
    if (idx === undefined) return err('EINVAL');
    this.cost.releases++;
    // sev_gmem_invalidate(): clflush_cache_range() of each page; SNP parts are SME_COHERENT.
    for (let p = page; p < page + npages; p++) this.cost.pageFlushLines += this.hw.clflushPage(p);
    const freed: number[] = [];
    for (const i of idx) for (const p of this.dropRegion(sev, i)) freed.push(p);
    this.unpinAll(sev, freed);
    return OK;
  }

  private destroyVm(vm: number): SevResult {
    const sev = this.vms.get(vm);
    if (!sev) return err('ENOENT');
    this.cost.releases++;
    this.minimum.release(vm);
    this.minimum.forget(vm);
    const pages = this.pagesOf(sev);
    this.destroyWriteback(sev, pages);
    for (const p of pages) {
      this.unpin(p);
      this.pinCount[p] = 0;
    }
    sev.regions.length = 0;
    sev.nrPages = 0;
    // sev_unbind_asid(): DEACTIVATE, then the ASID waits in the reclaim bitmap.
    this.hw.deactivate();
    this.reclaimBitmap.set(sev.asid);
    this.asidOwner[sev.asid] = NO_VM;
    for (let cpu = 0; cpu < this.config.cpus; cpu++) if (this.loadedVm[cpu] === vm) this.loadedVm[cpu] = NO_VM;
    this.vms.delete(vm);
    this.live.markKernel();
    return OK;
  }

  apply(op: SevOp): SevResult {
    // A plain switch: this runs once per op on the hot path.
    switch (op.op) {
      case 'createVm':
        return this.createVm(op.args.vm, op.args.type);
      case 'registerRegion':
        return this.registerRegion(op.args.vm, op.args.page, op.args.npages);
      case 'unregisterRegion':
        return this.unregisterRegion(op.args.vm, op.args.page, op.args.npages);
      case 'guestWrite':
        return this.guestAccess(op.args.vm, op.args.cpu, op.args.page, op.args.line, op.args.value);
      case 'guestRead':
        return this.guestAccess(op.args.vm, op.args.cpu, op.args.page, op.args.line, undefined);
      case 'hostWrite':
        return this.hostAccess(op.args.cpu, op.args.page, op.args.line, op.args.value);
      case 'hostRead':
        return this.hostAccess(op.args.cpu, op.args.page, op.args.line, undefined);
      case 'evict':
        return this.evict(op.args.cpu, op.args.page, op.args.line, op.args.key);
      case 'flushEncryptedPage':
        return this.flushEncryptedPage(op.args.vm, op.args.page);
      case 'memoryReclaimed':
        return this.memoryReclaimed(op.args.vm, op.args.page, op.args.npages);
      case 'gmemInvalidate':
        return this.gmemInvalidate(op.args.vm, op.args.page, op.args.npages);
      case 'destroyVm':
        return this.destroyVm(op.args.vm);
      case 'launchWrite':
        return this.launchWrite(op.args.vm, op.args.cpu, op.args.page, op.args.line, op.args.value);
      case 'launchUpdateData':
        return this.launchUpdateData(op.args.vm, op.args.page, op.args.npages);
    }
  }

  private entryOf(a: number): WrittenViewT | undefined {
    if (!this.ghostWritten.test(a)) return undefined;
    const L = this.config.linesPerPage;
    const line = a % L;
    const page = (a - line) / L;
    const owner = this.pageOwner[page]!;
    const key = owner === NO_VM ? 0 : this.vms.get(owner)!.asid;
    return { page, line, key, value: this.ghostValue[a]!, reads: this.hw.peek(a, key) };
  }

  private kernelTables(): KernelTables {
    const ids = [...this.vms.keys()];
    if (ids.length > 1) ids.sort((a, b) => a - b);
    const vms = ids.map((id) => {
      const s = this.vms.get(id)!;
      return {
        vm: id,
        type: (s.flags & SEV_VM_SNP ? 'snp' : s.flags & SEV_VM_ES ? 'sev-es' : 'sev') as VmType,
        asid: s.asid,
        fresh: (s.flags & SEV_VM_RAN) === 0,
        writebackCpus: s.haveRunCpus.toArray(),
      };
    });
    const asids: SevView['asids'] = [];
    this.asidBitmap.forEach((a) => {
      if (a === 0) return;
      asids.push({ asid: a, state: this.reclaimBitmap.test(a) ? 'reclaim' : 'active', snp: this.asidSnp.test(a) });
    });
    return { vms, asids, firmware: { dfFlushes: this.hw.dfFlushes, lastDfFlushMissingWbinvd: [...this.hw.lastDfFlushMissing] } };
  }

  private pageTable(): SevView['pages'] {
    const pages: SevView['pages'] = [];
    this.pinned.forEach((page) => pages.push({ page, vm: this.pageOwner[page]! }));
    return pages;
  }

  /** No VM has run with this ASID since it was handed out (all its lines are listed, clean or not). */
  private readonly freshKey = (key: number): boolean => {
    const owner = this.asidVm(key);
    return owner === undefined || (owner.flags & SEV_VM_RAN) === 0;
  };

  private readonly source: LiveSource = {
    pages: () => this.pageTable(),
    kernel: () => this.kernelTables(),
    entryOf: (a) => this.entryOf(a),
    guestLines: () => this.hw.guestLines(this.freshKey),
    guestLinesAt: (a) => this.hw.guestLinesAt(a, this.freshKey),
  };

  /** The abstraction function, from scratch. */
  view(): SevView {
    const written: WrittenViewT[] = [];
    this.ghostWritten.forEach((a) => {
      written.push(this.entryOf(a)!);
    });
    return { ...this.kernelTables(), pages: this.pageTable(), guestLines: this.hw.guestLines(this.freshKey).sort(compareGuestLines), written };
  }

  /** The same View kept up to date: only the addresses touched since the last call are recomputed. */
  liveView(): { view: SevView; scope: SevScope } {
    return this.live.view(this.source);
  }

  counters(): Readonly<Record<string, number>> {
    return { ...this.cost, minimumCpus: this.minimum.total };
  }
}

function rangeOf(page: number, npages: number): number[] {
  return Array.from({ length: npages }, (_, i) => page + i);
}

export function createImpl(config: Config): SevCacheImpl {
  return new SevCacheImpl(config);
}
