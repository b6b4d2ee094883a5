/**
 * The sev-cache reference model: the kernel before the WBNOINVD patch.
 *
 * Every release point (unregister, VMSA free, gmem invalidation, reclaim for
 * SEV/SEV-ES, destroy) runs WBINVD on every CPU; ASID recycling runs WBINVD on
 * every CPU and then DF_FLUSH. Obviously safe, and slow. The hardware is
 * simulated with plain maps keyed by line and tag numbers.
 *
 * Reads answer the value the reader last wrote when it wrote the line since
 * it acquired the page (the host: since the page became free; a guest: since
 * the page was registered to it, or launch data once LAUNCH_UPDATE_DATA
 * encrypted it) and "unspecified" otherwise.
 *
 * Regions are a list per VM and a pin count per page; ASIDs are searched in
 * the VM type's range (README §2, §3).
 */
import { dispatch, type OpHandlers, type System } from '../../harness/domain';
import { MinimumTracker, zeroCounters, type SevCounters } from '../../spec/sev-cache/cost';
import { LiveView, compareGuestLines, type KernelTables, type LiveSource, type SevScope } from '../../spec/sev-cache/live';
import {
  OK,
  asidRange,
  ciphertext,
  err,
  type Config,
  type GuestLineViewT,
  type SevOp,
  type SevResult,
  type SevView,
  type VmType,
  type WrittenViewT,
} from '../../spec/sev-cache/types';

interface Line {
  readonly page: number;
  readonly line: number;
  readonly key: number;
  value: number;
  dirty: boolean;
}

interface Vm {
  readonly type: VmType;
  readonly asid: number;
  fresh: boolean;
  /** Registered regions in registration order (the kernel's regions_list). */
  readonly regions: { readonly page: number; readonly npages: number }[];
}

type AsidState = 'free' | 'active' | 'reclaim';


export class SevCacheModel implements System<SevOp, SevResult, SevView, SevScope> {
  /** Cache contents, tag (see tk) -> (CPU -> its copy). Copies of one tag are coherent. */
  private readonly lines = new Map<number, Map<number, Line>>();
  /** addr (see lk) -> what memory holds (absent: zero, under the host key). */
  private readonly memory = new Map<number, { value: number; key: number }>();
  private readonly vms = new Map<number, Vm>();
  private readonly asidState: AsidState[];
  private readonly asidSnp: boolean[];
  /** page -> VM it is registered to. */
  private readonly owner = new Map<number, number>();
  /** page -> how many of its owner's regions cover it (pin count). */
  private readonly pins = new Map<number, number>();
  /** addr -> what the current owner last wrote there. */
  private readonly written = new Map<number, { page: number; line: number; value: number }>();
  /** addr -> launch image data user space wrote (C=0) into a registered page, not yet encrypted by LAUNCH_UPDATE_DATA. */
  private readonly launchData = new Map<number, { page: number; line: number; value: number }>();
  /** Lines user space wrote through C=0 into a registered page and never had encrypted: nothing is promised about them. */
  private readonly tainted = new Set<number>();
  /** Firmware: CPUs that ran WBINVD since the last DEACTIVATE. */
  private readonly wbinvdSinceDeactivate = new Set<number>();
  private dfFlushes = 0;
  private lastDfFlushMissing: number[] = [];
  private readonly cost: SevCounters = zeroCounters();
  private readonly minimum: MinimumTracker;
  /** View upkeep for liveView(): addresses touched since the last call. */
  private readonly live: LiveView;

  constructor(private readonly config: Config) {
    this.live = new LiveView(config.linesPerPage);
    this.asidState = Array.from({ length: config.asids + 1 }, (): AsidState => 'free');
    this.asidSnp = Array.from({ length: config.asids + 1 }, () => false);
    this.minimum = new MinimumTracker(config.cpus);
  }

  // --- hardware -------------------------------------------------------------

  /** Address number of a line: page * linesPerPage + line. */
  private lk(page: number, line: number): number {
    return page * this.config.linesPerPage + line;
  }

  /** Cache tag of a line under a key. */
  private tk(page: number, line: number, key: number): number {
    return this.lk(page, line) * (this.config.asids + 1) + key;
  }

  private cached(cpu: number, page: number, line: number, key: number): Line | undefined {
    return this.lines.get(this.tk(page, line, key))?.get(cpu);
  }

  private drop(cpu: number, l: Line): void {
    this.writeBack(l);
    const t = this.tk(l.page, l.line, l.key);
    const holders = this.lines.get(t)!;
    holders.delete(cpu);
    if (holders.size === 0) this.lines.delete(t);
  }

  private writeBack(l: Line): void {
    this.live.touch(this.lk(l.page, l.line));
    if (l.dirty) this.memory.set(this.lk(l.page, l.line), { value: l.value, key: l.key });
    l.dirty = false;
  }

  /** With SME_COHERENT, an access under `key` first writes back and drops the address's lines under other keys. */
  private dropAliases(page: number, line: number, key: number): void {
    if (!this.config.smeCoherent) return;
    for (let k = 0; k <= this.config.asids; k++) {
      if (k === key) continue;
      const holders = this.lines.get(this.tk(page, line, k));
      if (holders) for (const [cpu, l] of [...holders]) this.drop(cpu, l);
    }
  }

  /** What a read under `key` sees, without changing anything. */
  private peek(page: number, line: number, key: number): number {
    const holders = this.lines.get(this.tk(page, line, key));
    if (holders) for (const l of holders.values()) return l.value; // coherent: every copy has the newest value
    if (this.config.smeCoherent) {
      // The access would first write back a dirty alias under another key.
      for (let k = 0; k <= this.config.asids; k++) {
        const other = this.lines.get(this.tk(page, line, k));
        if (other) for (const l of other.values()) if (l.dirty) return ciphertext(l.value, l.key, key);
      }
    }
    const m = this.memory.get(this.lk(page, line)) ?? { value: 0, key: 0 };
    return m.key === key ? m.value : ciphertext(m.value, m.key, key);
  }

  private read(cpu: number, page: number, line: number, key: number): number {
    this.live.touch(this.lk(page, line));
    this.dropAliases(page, line, key);
    const v = this.peek(page, line, key);
    const t = this.tk(page, line, key);
    let holders = this.lines.get(t);
    if (!holders) this.lines.set(t, (holders = new Map()));
    if (!holders.has(cpu)) holders.set(cpu, { page, line, key, value: v, dirty: false });
    return v;
  }

  private write(cpu: number, page: number, line: number, key: number, value: number): void {
    this.live.touch(this.lk(page, line));
    this.dropAliases(page, line, key);
    // The writer takes the line exclusively: every other copy is superseded.
    this.lines.set(this.tk(page, line, key), new Map([[cpu, { page, line, key, value, dirty: true }]]));
  }

  /** WBINVD on every CPU: write back every dirty line, invalidate everything. Returns lines invalidated. */
  private wbinvdAll(): number {
    let n = 0;
    for (const holders of this.lines.values()) {
      for (const l of holders.values()) {
        this.writeBack(l);
        n++;
      }
    }
    this.lines.clear();
    for (let cpu = 0; cpu < this.config.cpus; cpu++) this.wbinvdSinceDeactivate.add(cpu);
    return n;
  }

  /** CLFLUSH through the host mapping: the C=0 lines of the pages on every CPU. */
  private clflushC0(page: number, npages: number): void {
    for (let p = page; p < page + npages; p++) {
      for (let line = 0; line < this.config.linesPerPage; line++) {
        const holders = this.lines.get(this.tk(p, line, 0));
        if (!holders) continue;
        for (const [cpu, l] of [...holders]) {
          this.drop(cpu, l);
          this.cost.pageFlushLines++;
        }
      }
    }
  }

  // --- kernel ---------------------------------------------------------------

  /** A release point: pages (if any) leave `vm`. */
  private release(vm: number, pages: readonly number[]): void {
    this.cost.releases++;
    this.cost.cpusWrittenBack += this.config.cpus;
    this.cost.linesInvalidated += this.wbinvdAll();
    for (const p of pages) this.free(p);
  }

  private free(page: number): void {
    this.owner.delete(page);
    this.forget(page);
  }

  /** The page changed hands: nobody has written it since. */
  private forget(page: number): void {
    this.live.markPages();
    for (let line = 0; line < this.config.linesPerPage; line++) {
      const a = this.lk(page, line);
      this.written.delete(a);
      this.launchData.delete(a);
      this.tainted.delete(a);
      this.live.touch(a);
    }
  }

  /** Remove one region of the VM; returns the pages no region of it covers any more. */
  private dropRegion(vm: Vm, index: number): number[] {
    const [r] = vm.regions.splice(index, 1);
    const freed: number[] = [];
    for (let p = r!.page; p < r!.page + r!.npages; p++) {
      const n = (this.pins.get(p) ?? 0) - 1;
      if (n <= 0) {
        this.pins.delete(p);
        freed.push(p);
      } else this.pins.set(p, n);
    }
    return freed;
  }

  /** find_enc_region(): the first region with exactly this start and size. */
  private findRegion(vm: Vm, page: number, npages: number): number {
    return vm.regions.findIndex((r) => r.page === page && r.npages === npages);
  }

  /**
   * A range handed back whole (gmem hole-punch, reclaim with a range): every
   * page is the VM's and every region touching it lies inside it. Returns the
   * indexes of those regions (descending), or undefined.
   */
  private wholeRegions(vmId: number, vm: Vm, page: number, npages: number): number[] | undefined {
    if (!this.rangeOwnedBy(vmId, page, npages)) return undefined;
    const out: number[] = [];
    for (let i = vm.regions.length - 1; i >= 0; i--) {
      const r = vm.regions[i]!;
      if (r.page + r.npages <= page || r.page >= page + npages) continue;
      if (r.page < page || r.page + r.npages > page + npages) return undefined;
      out.push(i);
    }
    return out;
  }

  /** Drop the given regions (indexes descending); returns the pages freed. */
  private dropRegions(vm: Vm, indexes: readonly number[]): number[] {
    const freed: number[] = [];
    for (const i of indexes) for (const p of this.dropRegion(vm, i)) freed.push(p);
    return freed;
  }

  private pagesOf(vm: number): number[] {
    const out: number[] = [];
    for (const [p, v] of this.owner) if (v === vm) out.push(p);
    return out;
  }

  private rangeOwnedBy(vm: number, page: number, npages: number): boolean {
    if (npages < 1) return false;
    for (let p = page; p < page + npages; p++) if (this.owner.get(p) !== vm) return false;
    return true;
  }

  private inRange(cpu: number, line: number): boolean {
    return cpu < this.config.cpus && line < this.config.linesPerPage;
  }

  private guestAccess(vmId: number, cpu: number, page: number, line: number, value: number | undefined): SevResult {
    const vm = this.vms.get(vmId);
    if (!vm) return err('ENOENT');
    if (!this.inRange(cpu, line)) return err('EINVAL');
    if (this.owner.get(page) !== vmId) return err('EFAULT');
    if (vm.fresh) this.live.markKernel();
    vm.fresh = false;
    this.minimum.ran(vmId, cpu);
    const k = this.lk(page, line);
    if (value !== undefined) {
      this.write(cpu, page, line, vm.asid, value);
      // A line user space dirtied through C=0 and never had encrypted may be
      // written back over the guest's data at any time: user space's doing.
      if (!this.tainted.has(k)) this.written.set(k, { page, line, value });
      return OK;
    }
    const v = this.read(cpu, page, line, vm.asid);
    return { ok: true, value: this.written.has(k) ? v : 'unspecified' };
  }

  /** User space writes the launch image through its C=0 mapping into a page registered to a VM that has not run. */
  private launchWrite(vmId: number, cpu: number, page: number, line: number, value: number): SevResult {
    const vm = this.vms.get(vmId);
    if (!vm) return err('ENOENT');
    if (!this.inRange(cpu, line)) return err('EINVAL');
    if (this.owner.get(page) !== vmId) return err('EFAULT');
    if (vm.type === 'snp' || !vm.fresh) return err('EINVAL');
    const k = this.lk(page, line);
    this.write(cpu, page, line, 0, value);
    this.written.delete(k);
    this.launchData.set(k, { page, line, value });
    this.tainted.add(k);
    return OK;
  }

  /**
   * sev_launch_update_data(): CLFLUSH the pages' C=0 lines (non-coherent
   * parts), then the firmware encrypts them in place with the VM's key.
   */
  private launchUpdateData(vmId: number, page: number, npages: number): SevResult {
    const vm = this.vms.get(vmId);
    if (!vm) return err('ENOENT');
    if (vm.type === 'snp' || !vm.fresh || !this.rangeOwnedBy(vmId, page, npages)) return err('EINVAL');
    this.clflushC0(page, npages);
    for (let p = page; p < page + npages; p++) {
      if (this.config.smeCoherent) {
        // The PSP's accesses are coherent with the caches on these parts.
        for (let line = 0; line < this.config.linesPerPage; line++) {
          for (let key = 0; key <= this.config.asids; key++) {
            const holders = this.lines.get(this.tk(p, line, key));
            if (holders) for (const [c, l] of [...holders]) this.drop(c, l);
          }
        }
      }
      for (let line = 0; line < this.config.linesPerPage; line++) {
        const a = this.lk(p, line);
        this.live.touch(a);
        const m = this.memory.get(a) ?? { value: 0, key: 0 };
        const plain = m.key === 0 ? m.value : ciphertext(m.value, m.key, 0);
        this.memory.set(a, { value: plain, key: vm.asid });
        const d = this.launchData.get(a);
        this.launchData.delete(a);
        this.tainted.delete(a);
        if (d) this.written.set(a, d);
        else this.written.delete(a);
      }
    }
    return OK;
  }

  private hostAccess(cpu: number, page: number, line: number, value: number | undefined): SevResult {
    if (!this.inRange(cpu, line) || page >= this.config.pages) return err('EINVAL');
    if (this.owner.has(page)) return err('EBUSY');
    const k = this.lk(page, line);
    if (value !== undefined) {
      this.write(cpu, page, line, 0, value);
      this.written.set(k, { page, line, value });
      return OK;
    }
    const v = this.read(cpu, page, line, 0);
    return { ok: true, value: this.written.has(k) ? v : 'unspecified' };
  }

  /** The lowest ASID in [lo, hi] in the given state, or -1. */
  private findAsid(lo: number, hi: number, state: AsidState): number {
    for (let a = lo; a <= hi; a++) if (this.asidState[a] === state) return a;
    return -1;
  }

  private createVm(vm: number, type: VmType): SevResult {
    if (type === 'snp' && !this.config.smeCoherent) return err('EINVAL');
    if (this.vms.has(vm)) return err('EEXIST');
    const { lo, hi } = asidRange(this.config, type);
    if (lo > hi) return err('ENOTTY');
    let asid = this.findAsid(lo, hi, 'free');
    if (asid < 0 && this.findAsid(lo, hi, 'reclaim') >= 0) {
      // Recycling: WBINVD on every CPU, then DF_FLUSH; every reclaimed ASID
      // (in either range) becomes free.
      this.cost.recycles++;
      this.cost.recycleLinesInvalidated += this.wbinvdAll();
      this.minimum.allWrittenBack();
      this.dfFlush();
      for (let a = 1; a <= this.config.asids; a++) if (this.asidState[a] === 'reclaim') this.asidState[a] = 'free';
      asid = this.findAsid(lo, hi, 'free');
    }
    if (asid < 0) return err('EBUSY');
    this.asidState[asid] = 'active';
    this.asidSnp[asid] = type === 'snp';
    this.vms.set(vm, { type, asid, fresh: true, regions: [] });
    this.live.markKernel();
    return { ok: true, asid };
  }

  private dfFlush(): void {
    this.dfFlushes++;
    this.lastDfFlushMissing = [];
    for (let cpu = 0; cpu < this.config.cpus; cpu++) if (!this.wbinvdSinceDeactivate.has(cpu)) this.lastDfFlushMissing.push(cpu);
  }

  private registerRegion(vmId: number, page: number, npages: number): SevResult {
    const vm = this.vms.get(vmId);
    if (!vm) return err('ENOENT');
    if (npages < 1 || page + npages > this.config.pages) return err('EINVAL');
    // Upstream pins the range again and lists a second region; hvspec follows
    // that for pages the VM already holds, and refuses another VM's pages.
    for (let p = page; p < page + npages; p++) {
      const o = this.owner.get(p);
      if (o !== undefined && o !== vmId) return err('EINVAL');
    }
    this.clflushC0(page, npages);
    for (let p = page; p < page + npages; p++) {
      if (!this.owner.has(p)) {
        this.owner.set(p, vmId);
        this.forget(p);
      }
      this.pins.set(p, (this.pins.get(p) ?? 0) + 1);
    }
    vm.regions.push({ page, npages });
    return OK;
  }

  private unregisterRegion(vmId: number, page: number, npages: number): SevResult {
    const vm = this.vms.get(vmId);
    if (!vm) return err('ENOENT');
    const i = this.findRegion(vm, page, npages);
    if (i < 0) return err('EINVAL');
    this.minimum.release(vmId);
    this.release(vmId, this.dropRegion(vm, i));
    return OK;
  }

  private flushEncryptedPage(vmId: number, page: number): SevResult {
    const vm = this.vms.get(vmId);
    if (!vm) return err('ENOENT');
    // sev_free_vcpu() returns early for plain SEV: there is no VMSA.
    if (vm.type === 'sev') return err('EINVAL');
    if (this.owner.get(page) !== vmId) return err('EFAULT');
    // The VMSA is one page of its own: a one-page region, pinned once.
    const i = this.findRegion(vm, page, 1);
    if (i < 0 || this.pins.get(page) !== 1) return err('EINVAL');
    if (!this.config.smeCoherent && this.config.vmPageFlush === 'faults') this.minimum.release(vmId);
    this.release(vmId, this.dropRegion(vm, i));
    return OK;
  }

  private memoryReclaimed(vmId: number, page: number | undefined, npages: number | undefined): SevResult {
    const vm = this.vms.get(vmId);
    if (!vm) return err('ENOENT');
    if ((page === undefined) !== (npages === undefined)) return err('EINVAL');
    // SNP private memory is out of reach of the hva-based notifiers: nothing happens.
    if (vm.type === 'snp') return OK;
    let freed: number[] = [];
    if (page !== undefined && npages !== undefined) {
      const idx = this.wholeRegions(vmId, vm, page, npages);
      if (idx === undefined) return err('EINVAL');
      freed = this.dropRegions(vm, idx);
    }
    this.minimum.release(vmId);
    this.release(vmId, freed);
    return OK;
  }

  private gmemInvalidate(vmId: number, page: number, npages: number): SevResult {
    const vm = this.vms.get(vmId);
    if (!vm) return err('ENOENT');
    if (vm.type !== 'snp') return err('EINVAL');
    const idx = this.wholeRegions(vmId, vm, page, npages);
    if (idx === undefined) return err('EINVAL');
    this.release(vmId, this.dropRegions(vm, idx));
    return OK;
  }

  private destroyVm(vmId: number): SevResult {
    const vm = this.vms.get(vmId);
    if (!vm) return err('ENOENT');
    this.minimum.release(vmId);
    this.minimum.forget(vmId);
    vm.regions.length = 0;
    for (const p of this.pagesOf(vmId)) this.pins.delete(p);
    this.release(vmId, this.pagesOf(vmId));
    // DEACTIVATE: the firmware forgets which CPUs ran WBINVD.
    this.wbinvdSinceDeactivate.clear();
    this.asidState[vm.asid] = 'reclaim';
    this.vms.delete(vmId);
    this.live.markKernel();
    return OK;
  }

  private evict(cpu: number, page: number, line: number, key: number): SevResult {
    if (!this.inRange(cpu, line) || page >= this.config.pages || key > this.config.asids) return err('EINVAL');
    const l = this.cached(cpu, page, line, key);
    if (l) this.drop(cpu, l);
    return OK;
  }

  /** One handler per op (see OpHandlers: exhaustive, and cheaper per call than a ts-pattern chain). */
  private readonly handlers: OpHandlers<SevOp, SevResult> = {
    createVm: ({ vm, type }) => this.createVm(vm, type),
    registerRegion: ({ vm, page, npages }) => this.registerRegion(vm, page, npages),
    unregisterRegion: ({ vm, page, npages }) => this.unregisterRegion(vm, page, npages),
    guestWrite: ({ vm, cpu, page, line, value }) => this.guestAccess(vm, cpu, page, line, value),
    guestRead: ({ vm, cpu, page, line }) => this.guestAccess(vm, cpu, page, line, undefined),
    hostWrite: ({ cpu, page, line, value }) => this.hostAccess(cpu, page, line, value),
    hostRead: ({ cpu, page, line }) => this.hostAccess(cpu, page, line, undefined),
    evict: ({ cpu, page, line, key }) => this.evict(cpu, page, line, key),
    flushEncryptedPage: ({ vm, page }) => this.flushEncryptedPage(vm, page),
    memoryReclaimed: ({ vm, page, npages }) => this.memoryReclaimed(vm, page, npages),
    gmemInvalidate: ({ vm, page, npages }) => this.gmemInvalidate(vm, page, npages),
    destroyVm: ({ vm }) => this.destroyVm(vm),
    launchWrite: ({ vm, cpu, page, line, value }) => this.launchWrite(vm, cpu, page, line, value),
    launchUpdateData: ({ vm, page, npages }) => this.launchUpdateData(vm, page, npages),
  };

  apply(op: SevOp): SevResult {
    return dispatch(this.handlers, op);
  }

  private entryOf(a: number): WrittenViewT | undefined {
    const w = this.written.get(a);
    if (w === undefined) return undefined;
    const owner = this.owner.get(w.page);
    const key = owner === undefined ? 0 : this.vms.get(owner)!.asid;
    return { page: w.page, line: w.line, key, value: w.value, reads: this.peek(w.page, w.line, key) };
  }

  private kernelTables(): KernelTables {
    const vms = [...sortedKeys(this.vms)].map((id) => {
      const v = this.vms.get(id)!;
      return { vm: id, type: v.type, asid: v.asid, fresh: v.fresh, writebackCpus: 'all' as const };
    });
    const asids: SevView['asids'] = [];
    for (let a = 1; a <= this.config.asids; a++) {
      const s = this.asidState[a]!;
      if (s !== 'free') asids.push({ asid: a, state: s, snp: this.asidSnp[a]! });
    }
    return { vms, asids, firmware: { dfFlushes: this.dfFlushes, lastDfFlushMissingWbinvd: [...this.lastDfFlushMissing] } };
  }

  private pageTable(): SevView['pages'] {
    const pages: SevView['pages'] = [];
    for (let page = 0; page < this.config.pages; page++) {
      const vm = this.owner.get(page);
      if (vm !== undefined) pages.push({ page, vm });
    }
    return pages;
  }

  /**
   * The cached lines the invariants look at: every dirty guest-keyed line,
   * and every guest-keyed line under an ASID that no VM has run with yet.
   */
  private listed(l: Line): boolean {
    if (l.key === 0) return false;
    if (l.dirty) return true;
    for (const v of this.vms.values()) if (v.asid === l.key && !v.fresh) return false;
    return true;
  }

  /** Append the listed copies of one tag. */
  private listHolders(holders: Map<number, Line>, out: GuestLineViewT[]): void {
    for (const [cpu, l] of holders) if (this.listed(l)) out.push({ cpu, page: l.page, line: l.line, key: l.key, dirty: l.dirty });
  }

  private guestLines(): GuestLineViewT[] {
    const out: GuestLineViewT[] = [];
    for (const holders of this.lines.values()) this.listHolders(holders, out);
    return out;
  }

  private guestLinesAt(addr: number): GuestLineViewT[] {
    const out: GuestLineViewT[] = [];
    for (let key = 1; key <= this.config.asids; key++) {
      const holders = this.lines.get(addr * (this.config.asids + 1) + key);
      if (holders) this.listHolders(holders, out);
    }
    return out.sort(compareGuestLines);
  }

  private readonly source: LiveSource = {
    pages: () => this.pageTable(),
    kernel: () => this.kernelTables(),
    entryOf: (a) => this.entryOf(a),
    guestLines: () => this.guestLines(),
    guestLinesAt: (a) => this.guestLinesAt(a),
  };

  view(): SevView {
    const written: WrittenViewT[] = [];
    for (const a of sortedKeys(this.written)) written.push(this.entryOf(a)!);
    return { ...this.kernelTables(), pages: this.pageTable(), guestLines: this.guestLines().sort(compareGuestLines), written };
  }

  liveView(): { view: SevView; scope: SevScope } {
    return this.live.view(this.source);
  }

  counters(): Readonly<Record<string, number>> {
    return { ...this.cost, minimumCpus: this.minimum.total };
  }

  /** Canonical abstract state: kernel tables, ghost writes, caches and memory. */
  fingerprint(): string {
    const vms = [...this.vms].sort((a, b) => a[0] - b[0]).map(([id, v]) => `${id}:${v.type}:${v.asid}:${v.fresh ? 1 : 0}`);
    const caches: string[] = [];
    for (const holders of this.lines.values()) {
      for (const [cpu, l] of holders) caches.push(`${cpu}@${l.page}.${l.line}.${l.key}=${l.value}${l.dirty ? '*' : ''}`);
    }
    caches.sort();
    const mem = [...this.memory].filter(([, m]) => m.value !== 0 || m.key !== 0).map(([k, m]) => `${k}=${m.value}/${m.key}`).sort();
    const owner = [...this.owner].sort((a, b) => a[0] - b[0]).map(([p, v]) => `${p}>${v}`);
    const written = [...this.written].map(([k, w]) => `${k}=${w.value}`).sort();
    const launch = [...this.launchData].map(([k, w]) => `${k}=${w.value}`).sort();
    const tainted = [...this.tainted].sort((a, b) => a - b);
    const pins = [...this.pins].sort((a, b) => a[0] - b[0]).map(([p, n]) => `${p}x${n}`);
    const regions = [...this.vms].sort((a, b) => a[0] - b[0]).map(([id, v]) => `${id}:${v.regions.map((r) => `${r.page}+${r.npages}`).join('/')}`);
    const wb = [...this.wbinvdSinceDeactivate].sort((a, b) => a - b);
    return [
      vms.join(';'),
      this.asidState.join(','),
      this.asidSnp.map((s) => (s ? 1 : 0)).join(''),
      owner.join(','),
      written.join(','),
      launch.join(','),
      tainted.join(','),
      pins.join(','),
      regions.join(';'),
      caches.join(','),
      mem.join(','),
      wb.join(','),
      this.lastDfFlushMissing.join(','),
    ].join('#');
  }
}

/** The keys of a map of non-negative integers, ascending. */
function sortedKeys(m: Map<number, unknown>): Int32Array {
  const keys: number[] = [];
  for (const k of m.keys()) keys.push(k);
  return new Int32Array(keys).sort();
}


export function createModel(config: Config): SevCacheModel {
  return new SevCacheModel(config);
}
