/**
 * stage2-dirty implementation: an Arm stage-2 MMU with dirty logging, in
 * the shape of arch/arm/kvm/mmu.c after seed 002 ("[v14,7/7] KVM: arm: page
 * logging 2nd stage fault handling") with Marc Zyngier's review applied.
 *
 * - The stage-2 table has three levels: a root (level 1) whose entries
 *   point to level-2 tables; level-2 entries are blocks (`blockPages` pages,
 *   2 MiB with the 4 KiB granule) or point to level-3 page tables; level-3
 *   entries map 4 KiB pages. Descriptors are 64-bit as on LPAE, stored as
 *   two 32-bit words (low word: attribute bits and output address bits
 *   [31:12]; high word: the rest of the output address), so that every
 *   attribute test is a plain 32-bit bitwise operation.
 * - Table pages are counted the kernel's way: one for the page itself plus
 *   one per valid entry (get_page/put_page on the table page), and freed
 *   when an unmap leaves them empty.
 * - A TLB caches translations (page or block) until flushed by address
 *   (kvm_tlb_flush_vmid_ipa) or wholesale (kvm_flush_remote_tlbs).
 * - Each logged memslot has a dirty bitmap of 32-bit words (see
 *   `allocDirtyBitmap` for why 32 and not 64), fetched and cleared a word
 *   at a time.
 *
 * The steps a known bug changes are protected methods, so that a mutant is
 * a small subclass (properties/stage2-dirty/mutants.ts).
 */
import type { System } from '../../harness/domain';
import { DIRTY_LOG_GRANULE, blockEligible, clearRangeValid, hostBases, nextHostBase } from '../../spec/stage2-dirty/config';
import {
  EEXIST,
  EFAULT,
  EINVAL,
  ENOENT,
  MMIO,
  OK,
  KVM_MEM_MAX_NR_PAGES,
  MAX_GFN_END,
  type Backing,
  type Config,
  type MappingView,
  type MemoryView,
  type Op,
  type Result,
  type SlotView,
  type TableView,
  type TlbView,
  type View,
} from '../../spec/stage2-dirty/types';

// ---------------------------------------------------------------------------
// Descriptor bits (low word). Named flags, one bit each: no arithmetic on
// flag positions (review of seed 002: "I suffered a minor brain haemorrhage
// on this one").
// ---------------------------------------------------------------------------

/** Entry is valid. */
export const S2_PTE_VALID = 1 << 0;
/** Level 1/2: the entry points to a next-level table (clear: a block). Level 3: page descriptor (must be set). */
export const S2_PTE_TABLE = 1 << 1;
/** Stage-2 access permission: read. */
export const S2_PTE_S2AP_R = 1 << 6;
/** Stage-2 access permission: write (kvm_set_s2pte_writable sets it; write-protection clears it). */
export const S2_PTE_S2AP_W = 1 << 7;
/** Access flag. */
export const S2_PTE_AF = 1 << 10;
/** Output address bits start at bit 12 of the low word. */
export const S2_PTE_OA_SHIFT = 12;
/** Output-address bits held by the low word (frame bits [19:0]); the high word holds frame >> 20. */
const S2_PTE_OA_LO_BITS = 20;
const S2_PTE_OA_LO_MASK = (1 << S2_PTE_OA_LO_BITS) - 1;
const S2_PTE_OA_HI_MUL = 2 ** S2_PTE_OA_LO_BITS;

/** Fault flags passed down the fault path (review of seed 002: KVM_S2PTE_FLAG_* style names). */
export const KVM_S2_FLAG_WRITE_FAULT = 1 << 0;
export const KVM_S2_FLAG_LOGGING_ACTIVE = 1 << 1;

/** The root table page is always page 0. */
const ROOT = 0;

/** Host memory is allocated in chunks of frames, on first write (like a sparse memmap). */
const MEM_CHUNK = 1 << 10;

/** A memslot as the MMU code sees it. */
export interface KvmMemslot {
  readonly id: number;
  /** Changes only when the slot is moved (KVM_MR_MOVE). */
  baseGfn: number;
  readonly npages: number;
  readonly backing: Backing;
  readonly readonly: boolean;
  /** Host frame of the slot's first page. */
  readonly hostBase: number;
  /** The dirty bitmap while logging (kvm_get_logging_state: `!!memslot->dirty_bitmap`), else null. */
  dirtyBitmap: Uint32Array | null;
  /**
   * Ghost (spec level, kept at the guest-access and ioctl level, never by
   * the MMU code): pages written while logged since their bit was last
   * cleared, one bit per page like the dirty bitmap (null when not logged).
   */
  ghostWritten: Uint32Array | null;
  /** Ghost: pages whose bit initiallySet set and that were not cleared since. */
  ghostInitial: Uint32Array | null;
  /** Ghost, right after a KVM_CLEAR_DIRTY_LOG only: gfns whose bit was set before it and not passed by the caller. */
  ghostKept: number[] | null;
}

export class Stage2DirtyImpl implements System<Op, Result, View> {
  protected readonly bp: number;
  /** Pages covered by one root entry (one level-2 table). */
  protected readonly l2Span: number;
  /** Entries of the root table: grown when a slot is created beyond its reach. */
  protected rootEntries: number;
  /** The memslots, sorted by base gfn. */
  protected slots: KvmMemslot[];
  protected readonly slotsById = new Map<number, KvmMemslot>();
  /** Host frames handed out so far (a new slot gets fresh frames above them). */
  protected hostNext = 0;
  /** Whether some slot holds ghostKept from the last op. */
  protected anyGhostKept = false;

  // Table-page pool.
  protected readonly tables: Uint32Array[] = [];
  protected readonly tableCount: number[] = [];
  protected readonly tableLevel: number[] = [];
  protected readonly tableBase: number[] = [];
  /** 0 live, 1 free, 2+ freed again while free. */
  protected readonly tableFreed: number[] = [];
  protected readonly freeTables: number[] = [];

  // TLB: gfn -> pfn * 2 + writable, for pages and for blocks (keyed by block start).
  protected readonly tlbPages = new Map<number, number>();
  protected readonly tlbBlocks = new Map<number, number>();

  // Host memory, by host frame.
  protected readonly hostMem: (Float64Array | undefined)[] = [];

  // Ghost: the value the guest last wrote to each page; blocks installed while logging.
  protected readonly ghostMem = new Map<number, number>();
  protected ghostBlocksWhileLogging = 0;

  // Result of the last stage2Walk.
  protected walkPfn = 0;
  protected walkWritable = false;
  protected walkBlock = false;

  // Counters.
  protected nFaults = 0;
  protected nDissolved = 0;
  protected nCollapsed = 0;
  protected nTlbFlushIpa = 0;
  protected nTlbFlushAll = 0;
  protected nTablesAllocated = 0;
  protected nBitmapWords = 0;

  constructor(protected readonly config: Config) {
    this.bp = config.blockPages;
    this.l2Span = this.bp * this.bp;
    const end = config.memslots.reduce((e, m) => Math.max(e, m.baseGfn + m.npages), 0);
    this.rootEntries = Math.max(1, Math.ceil(end / this.l2Span));
    const bases = hostBases(config);
    this.slots = config.memslots.map((m, index) => this.newMemslot(m.id, m.baseGfn, m.npages, m.backing, m.readonly, bases[index]!));
    for (const s of this.slots) {
      this.slotsById.set(s.id, s);
      this.hostNext = Math.max(this.hostNext, s.hostBase + s.npages);
    }
    this.slots.sort((a, b) => a.baseGfn - b.baseGfn);
    this.allocTablePage(1, 0, this.rootEntries);
  }

  protected newMemslot(id: number, baseGfn: number, npages: number, backing: Backing, readonly: boolean, hostBase: number): KvmMemslot {
    return { id, baseGfn, npages, backing, readonly, hostBase, dirtyBitmap: null, ghostWritten: null, ghostInitial: null, ghostKept: null };
  }

  /** Grow the root table (copying its entries) so that it reaches gfn `end - 1`. */
  protected ensureRootReach(end: number): void {
    const need = Math.ceil(end / this.l2Span);
    if (need <= this.rootEntries) return;
    const grown = new Uint32Array(2 * need);
    grown.set(this.tables[ROOT]!);
    this.tables[ROOT] = grown;
    this.rootEntries = need;
  }

  apply(op: Op): Result {
    if (this.anyGhostKept) {
      for (const s of this.slots) s.ghostKept = null;
      this.anyGhostKept = false;
    }
    // A plain switch: this is the hot path of the lockstep run.
    switch (op.op) {
      case 'guestRead':
        return this.guestAccess(op.args.gfn, false, 0);
      case 'guestWrite':
        return this.guestAccess(op.args.gfn, true, op.args.value ?? 0);
      case 'enableDirtyLog':
        return this.enableDirtyLog(op.args.slot);
      case 'disableDirtyLog':
        return this.disableDirtyLog(op.args.slot);
      case 'getDirtyLog':
        return this.getDirtyLog(op.args.slot);
      case 'clearDirtyLog':
        return this.clearDirtyLog(op.args.slot, op.args.first, op.args.num, op.args.bits);
      case 'setUserMemoryRegion': {
        const a = op.args;
        return this.setUserMemoryRegion(a.slot, a.baseGfn, a.npages, a.logDirty ?? false, a.readonly ?? false, a.backing);
      }
      case 'unmapRange':
        return this.unmapRange(op.args.gfn, op.args.npages);
      case 'tlbEvict':
        return this.tlbEvict(op.args.gfn);
      case 'mappingOf':
        return this.mappingOf(op.args.gfn);
      default: {
        const never: never = op;
        return never;
      }
    }
  }

  // -------------------------------------------------------------------------
  // Descriptors and table pages
  // -------------------------------------------------------------------------

  protected static descLo(attrs: number, oa: number): number {
    return ((oa & S2_PTE_OA_LO_MASK) << S2_PTE_OA_SHIFT) | attrs;
  }

  protected static descHi(oa: number): number {
    return Math.floor(oa / S2_PTE_OA_HI_MUL);
  }

  /** Output address (frame or table page) of the descriptor at `idx` of table `tid`. */
  protected descOa(tid: number, idx: number): number {
    const t = this.tables[tid]!;
    return t[2 * idx + 1]! * S2_PTE_OA_HI_MUL + (t[2 * idx]! >>> S2_PTE_OA_SHIFT);
  }

  protected setDesc(tid: number, idx: number, attrs: number, oa: number): void {
    const t = this.tables[tid]!;
    t[2 * idx] = Stage2DirtyImpl.descLo(attrs, oa);
    t[2 * idx + 1] = Stage2DirtyImpl.descHi(oa);
  }

  /** pmd_clear / pte_clear: the entry becomes invalid (the caller flushes and puts). */
  protected stage2ClearEntry(tid: number, idx: number): void {
    const t = this.tables[tid]!;
    t[2 * idx] = 0;
    t[2 * idx + 1] = 0;
  }

  protected leafAttrs(writable: boolean, page: boolean): number {
    let a = S2_PTE_VALID | S2_PTE_AF | S2_PTE_S2AP_R;
    if (page) a |= S2_PTE_TABLE;
    if (writable) a |= S2_PTE_S2AP_W;
    return a;
  }

  protected allocTablePage(level: number, baseGfn: number, entries: number): number {
    let tid = this.freeTables.pop();
    if (tid === undefined) {
      tid = this.tables.length;
      this.tables.push(new Uint32Array(2 * entries));
      this.tableCount.push(0);
      this.tableLevel.push(0);
      this.tableBase.push(0);
      this.tableFreed.push(0);
    } else if (this.tables[tid]!.length !== 2 * entries) {
      this.tables[tid] = new Uint32Array(2 * entries);
    } else {
      this.tables[tid]!.fill(0);
    }
    this.tableCount[tid] = 1;
    this.tableLevel[tid] = level;
    this.tableBase[tid] = baseGfn;
    this.tableFreed[tid] = 0;
    this.nTablesAllocated++;
    return tid;
  }

  protected freeTablePage(tid: number): void {
    const was = this.tableFreed[tid]!;
    this.tableFreed[tid] = was + 1;
    if (was === 0) {
      this.tableCount[tid] = 0;
      this.freeTables.push(tid);
    }
  }

  /** get_page(virt_to_page(table)): one more valid entry in it. */
  protected getPage(tid: number): void {
    this.tableCount[tid]!++;
  }

  /** put_page(virt_to_page(table)): one valid entry fewer. */
  protected putPage(tid: number): void {
    this.tableCount[tid]!--;
  }

  protected l1Index(gfn: number): number {
    return Math.floor(gfn / this.l2Span);
  }

  protected l2Index(gfn: number): number {
    return Math.floor(gfn / this.bp) % this.bp;
  }

  /**
   * stage2_get_pmd: the level-2 table for `gfn`, allocated (and linked from
   * the root, which gains a reference) when missing. -1 when the root does
   * not reach `gfn`.
   */
  protected stage2GetPmd(gfn: number): number {
    const i1 = this.l1Index(gfn);
    if (i1 >= this.rootEntries) return -1;
    const root = this.tables[ROOT]!;
    if ((root[2 * i1]! & S2_PTE_VALID) !== 0) return this.descOa(ROOT, i1);
    const l2 = this.allocTablePage(2, i1 * this.l2Span, this.bp);
    this.setDesc(ROOT, i1, S2_PTE_VALID | S2_PTE_TABLE, l2);
    this.getPage(ROOT);
    return l2;
  }

  /**
   * Walk the table for `gfn`. On success the leaf's frame for `gfn`, its
   * write permission and whether it is a block are left in walkPfn,
   * walkWritable, walkBlock.
   */
  protected stage2Walk(gfn: number): boolean {
    const i1 = this.l1Index(gfn);
    if (i1 >= this.rootEntries) return false;
    const root = this.tables[ROOT]!;
    if ((root[2 * i1]! & S2_PTE_VALID) === 0) return false;
    const l2 = this.descOa(ROOT, i1);
    const i2 = this.l2Index(gfn);
    const d2 = this.tables[l2]![2 * i2]!;
    if ((d2 & S2_PTE_VALID) === 0) return false;
    const off = gfn % this.bp;
    if ((d2 & S2_PTE_TABLE) === 0) {
      this.walkPfn = this.descOa(l2, i2) + off;
      this.walkWritable = (d2 & S2_PTE_S2AP_W) !== 0;
      this.walkBlock = true;
      return true;
    }
    const l3 = this.descOa(l2, i2);
    const d3 = this.tables[l3]![2 * off]!;
    if ((d3 & S2_PTE_VALID) === 0) return false;
    this.walkPfn = this.descOa(l3, off);
    this.walkWritable = (d3 & S2_PTE_S2AP_W) !== 0;
    this.walkBlock = false;
    return true;
  }

  // -------------------------------------------------------------------------
  // TLB
  // -------------------------------------------------------------------------

  /** Cached translation of `gfn` as pfn * 2 + writable, or -1. */
  protected tlbLookup(gfn: number): number {
    const p = this.tlbPages.get(gfn);
    if (p !== undefined) return p;
    const off = gfn % this.bp;
    const b = this.tlbBlocks.get(gfn - off);
    if (b === undefined) return -1;
    return b + 2 * off;
  }

  protected tlbFill(gfn: number): void {
    const w = this.walkWritable ? 1 : 0;
    if (this.walkBlock) {
      const off = gfn % this.bp;
      this.tlbBlocks.set(gfn - off, (this.walkPfn - off) * 2 + w);
    } else {
      this.tlbPages.set(gfn, this.walkPfn * 2 + w);
    }
  }

  /** kvm_tlb_flush_vmid_ipa: drop whatever translation covers `gfn` (page or block). */
  protected kvmTlbFlushVmidIpa(gfn: number): void {
    this.nTlbFlushIpa++;
    this.tlbPages.delete(gfn);
    this.tlbBlocks.delete(gfn - (gfn % this.bp));
  }

  /** kvm_flush_remote_tlbs: the whole VMID. */
  protected kvmFlushRemoteTlbs(): void {
    this.nTlbFlushAll++;
    this.tlbPages.clear();
    this.tlbBlocks.clear();
  }

  protected tlbEvict(gfn: number): Result {
    this.tlbPages.delete(gfn);
    this.tlbBlocks.delete(gfn - (gfn % this.bp));
    return OK;
  }

  // -------------------------------------------------------------------------
  // Memslots and host memory
  // -------------------------------------------------------------------------

  protected findSlot(gfn: number): KvmMemslot | null {
    const s = this.slots;
    for (let i = 0; i < s.length; i++) {
      const m = s[i]!;
      if (gfn >= m.baseGfn && gfn < m.baseGfn + m.npages) return m;
    }
    return null;
  }

  protected memRead(pfn: number): number {
    const c = this.hostMem[Math.floor(pfn / MEM_CHUNK)];
    return c === undefined ? 0 : c[pfn % MEM_CHUNK]!;
  }

  protected memWrite(pfn: number, value: number): void {
    const k = Math.floor(pfn / MEM_CHUNK);
    let c = this.hostMem[k];
    if (c === undefined) {
      c = new Float64Array(MEM_CHUNK);
      this.hostMem[k] = c;
    }
    c[pfn % MEM_CHUNK] = value;
  }

  // -------------------------------------------------------------------------
  // Guest accesses and the fault path
  // -------------------------------------------------------------------------

  /**
   * A guest load or store: through the TLB when it holds a translation good
   * enough for the access, else a table walk; a missing translation or a
   * store to a read-only one faults into user_mem_abort, and the access is
   * retried after it.
   */
  protected guestAccess(gfn: number, write: boolean, value: number): Result {
    let pfn: number;
    const t = this.tlbLookup(gfn);
    if (t >= 0 && (!write || t % 2 === 1)) {
      pfn = Math.floor(t / 2);
    } else {
      if (!this.stage2Walk(gfn) || (write && !this.walkWritable)) {
        const slot = this.findSlot(gfn);
        // No memslot, or a store to a read-only one: an MMIO exit to user space.
        if (slot === null || (write && slot.readonly)) return MMIO;
        let flags = 0;
        if (write) flags |= KVM_S2_FLAG_WRITE_FAULT;
        if (this.memslotIsLogging(slot)) flags |= KVM_S2_FLAG_LOGGING_ACTIVE;
        this.userMemAbort(slot, gfn, flags);
        if (!this.stage2Walk(gfn) || (write && !this.walkWritable)) return EFAULT;
      }
      pfn = this.walkPfn;
      this.tlbFill(gfn);
    }
    if (!write) return { ok: true, value: this.memRead(pfn) };
    this.memWrite(pfn, value);
    // Ghost bookkeeping (spec level, not MMU state): what the guest wrote.
    this.ghostMem.set(gfn, value);
    const slot = this.findSlot(gfn);
    if (slot !== null && slot.ghostWritten !== null) {
      const off = gfn - slot.baseGfn;
      slot.ghostWritten[off >>> 5] = slot.ghostWritten[off >>> 5]! | (1 << (off & 31));
    }
    return OK;
  }

  /**
   * user_mem_abort, after seed 002 with the review applied: the logging
   * state becomes a named flag; huge mappings are used only while the slot
   * is not logged; a write fault marks its own page dirty.
   */
  protected userMemAbort(slot: KvmMemslot, gfn: number, flags: number): void {
    this.nFaults++;
    const writable = this.faultMapsWritable(slot, flags);
    const pfn = this.faultPfn(slot, gfn, flags);
    if (this.useBlockMapping(slot, gfn, flags)) {
      const off = gfn % this.bp;
      this.stage2SetPmdHuge(slot, gfn - off, pfn - off, writable);
    } else {
      this.stage2SetPte(gfn, pfn, writable);
    }
    if ((flags & KVM_S2_FLAG_WRITE_FAULT) !== 0) this.markPageDirty(slot, gfn);
  }

  /** gfn_to_pfn_prot: the host frame backing `gfn` (the slot's host layout). */
  protected faultPfn(slot: KvmMemslot, gfn: number, _flags: number): number {
    return slot.hostBase + (gfn - slot.baseGfn);
  }

  /**
   * Whether the new mapping is writable: never in a read-only slot; while
   * logging, only on a write fault, so that a read fault cannot leave a
   * writable page whose first write would go unseen (later arm64
   * user_mem_abort: `if (logging_active && !write_fault) writable = false`).
   */
  protected faultMapsWritable(slot: KvmMemslot, flags: number): boolean {
    if (slot.readonly) return false;
    if ((flags & KVM_S2_FLAG_LOGGING_ACTIVE) === 0) return true;
    return (flags & KVM_S2_FLAG_WRITE_FAULT) !== 0;
  }

  /**
   * Whether the fault maps a block: the backing and alignment allow it, and
   * the slot is not logged (seed 002: `is_vm_hugetlb_page(vma) &&
   * !logging_active`, and `!hugetlb && !force_pte && !logging_active` before
   * transparent_hugepage_adjust).
   */
  protected useBlockMapping(slot: KvmMemslot, gfn: number, flags: number): boolean {
    if ((flags & KVM_S2_FLAG_LOGGING_ACTIVE) !== 0) return false;
    return blockEligible(slot, gfn, this.bp);
  }

  /** mark_page_dirty: set the page's bit if the slot has a bitmap (a no-op otherwise). */
  protected markPageDirty(slot: KvmMemslot, gfn: number): void {
    const bm = slot.dirtyBitmap;
    if (bm === null) return;
    const off = gfn - slot.baseGfn;
    bm[off >>> 5] = bm[off >>> 5]! | (1 << (off & 31));
  }

  /**
   * stage2_set_pmd_huge: install a block at level 2. If the entry holds a
   * page table (the slot was logged, its block dissolved, and logging has
   * stopped), the table is unmapped first: its pages cleared and flushed,
   * the table freed, the level-2 count dropped (upstream 3c3736cd32bf "KVM:
   * arm/arm64: Fix handling of stage2 huge mappings", which names the leak
   * and the stale TLB entries this path had).
   */
  protected stage2SetPmdHuge(slot: KvmMemslot, blockGfn: number, blockPfn: number, writable: boolean): void {
    const l2 = this.stage2GetPmd(blockGfn);
    const i2 = this.l2Index(blockGfn);
    const old = this.tables[l2]![2 * i2]!;
    if ((old & S2_PTE_VALID) !== 0 && (old & S2_PTE_TABLE) !== 0) this.unmapTableForBlock(l2, i2, blockGfn);
    const present = (this.tables[l2]![2 * i2]! & S2_PTE_VALID) !== 0;
    this.setDesc(l2, i2, this.leafAttrs(writable, false), blockPfn);
    if (present) this.kvmTlbFlushVmidIpa(blockGfn);
    else this.getPage(l2);
    if (this.memslotIsLogging(slot)) this.ghostBlocksWhileLogging++;
  }

  /**
   * arm64 memslot_is_logging: a bitmap and not read-only. A read-only slot
   * may carry a bitmap (check_memory_region_flags allows both flags), but
   * its faults never write, so they map as if it were not logged.
   */
  protected memslotIsLogging(slot: KvmMemslot): boolean {
    return slot.dirtyBitmap !== null && !slot.readonly;
  }

  /** Unmap the page table under level-2 entry `i2` of `l2` so a block can take its place. */
  protected unmapTableForBlock(l2: number, i2: number, blockGfn: number): void {
    this.nCollapsed++;
    const l3 = this.descOa(l2, i2);
    const t3 = this.tables[l3]!;
    for (let i3 = 0; i3 < this.bp; i3++) {
      if ((t3[2 * i3]! & S2_PTE_VALID) === 0) continue;
      this.stage2ClearEntry(l3, i3);
      this.kvmTlbFlushVmidIpa(blockGfn + i3);
      this.putPage(l3);
    }
    this.stage2ClearEntry(l2, i2);
    this.putPage(l2);
    this.freeTablePage(l3);
  }

  /**
   * stage2_set_pte: map one page. A block met on the way is dissolved first
   * (seed 002: "While dirty memory logging, clear PMD entry for huge page
   * and split into smaller pages"). The seed tests its LOGGING_ACTIVE flag
   * here because its change_pte path never meets a block; in this code only
   * a logged fault can meet one (an unlogged fault in a block-eligible
   * range takes the block path instead), so a block here is always
   * dissolved: a page must never be linked under a block's output address.
   */
  protected stage2SetPte(gfn: number, pfn: number, writable: boolean): void {
    const l2 = this.stage2GetPmd(gfn);
    const i2 = this.l2Index(gfn);
    let d2 = this.tables[l2]![2 * i2]!;
    if ((d2 & S2_PTE_VALID) !== 0 && (d2 & S2_PTE_TABLE) === 0) {
      this.dissolveBlock(l2, i2, gfn - (gfn % this.bp));
      d2 = this.tables[l2]![2 * i2]!;
    }
    let l3: number;
    if ((d2 & S2_PTE_VALID) === 0) {
      // Create stage-2 page mappings - level 3 (pmd_populate + get_page on the pmd's page).
      l3 = this.allocTablePage(3, gfn - (gfn % this.bp), this.bp);
      this.setDesc(l2, i2, S2_PTE_VALID | S2_PTE_TABLE, l3);
      this.getPage(l2);
    } else {
      l3 = this.descOa(l2, i2);
    }
    const i3 = gfn % this.bp;
    const present = (this.tables[l3]![2 * i3]! & S2_PTE_VALID) !== 0;
    // Relaxing read-only to writable needs no break-before-make.
    this.setDesc(l3, i3, this.leafAttrs(writable, true), pfn);
    if (!present) this.getPage(l3);
  }

  /**
   * The seed's dissolution of a huge PMD: clear the entry, flush the TLB for
   * the block's address (break-before-make: the old block translation must
   * be gone before a page table appears under it), drop the level-2 table
   * page's count. The caller then builds the page table.
   */
  protected dissolveBlock(l2: number, i2: number, blockGfn: number): void {
    this.nDissolved++;
    this.stage2ClearEntry(l2, i2);
    this.kvmTlbFlushVmidIpa(blockGfn);
    this.putPage(l2);
  }

  // -------------------------------------------------------------------------
  // Write protection
  // -------------------------------------------------------------------------

  /** Clear S2AP_W on the leaf mapping `gfn` (page or block), if any. True if a writable leaf was changed. */
  protected stage2WpGfn(gfn: number): boolean {
    const i1 = this.l1Index(gfn);
    if (i1 >= this.rootEntries) return false;
    const root = this.tables[ROOT]!;
    if ((root[2 * i1]! & S2_PTE_VALID) === 0) return false;
    const l2 = this.descOa(ROOT, i1);
    const i2 = this.l2Index(gfn);
    const t2 = this.tables[l2]!;
    const d2 = t2[2 * i2]!;
    if ((d2 & S2_PTE_VALID) === 0) return false;
    if ((d2 & S2_PTE_TABLE) === 0) {
      if ((d2 & S2_PTE_S2AP_W) === 0) return false;
      t2[2 * i2] = d2 & ~S2_PTE_S2AP_W;
      return true;
    }
    const l3 = this.descOa(l2, i2);
    const t3 = this.tables[l3]!;
    const i3 = gfn % this.bp;
    const d3 = t3[2 * i3]!;
    if ((d3 & S2_PTE_VALID) === 0 || (d3 & S2_PTE_S2AP_W) === 0) return false;
    t3[2 * i3] = d3 & ~S2_PTE_S2AP_W;
    return true;
  }

  /** stage2_wp_range over a whole memslot (kvm_mmu_wp_memory_region): blocks and pages lose S2AP_W. */
  protected stage2WpRange(start: number, end: number): void {
    const root = this.tables[ROOT]!;
    const lastL1 = Math.min(this.rootEntries - 1, this.l1Index(end - 1));
    for (let i1 = this.l1Index(start); i1 <= lastL1; i1++) {
      if ((root[2 * i1]! & S2_PTE_VALID) === 0) continue;
      const l2 = this.descOa(ROOT, i1);
      const t2 = this.tables[l2]!;
      const base2 = i1 * this.l2Span;
      for (let i2 = 0; i2 < this.bp; i2++) {
        const g2 = base2 + i2 * this.bp;
        if (g2 + this.bp <= start || g2 >= end) continue;
        const d2 = t2[2 * i2]!;
        if ((d2 & S2_PTE_VALID) === 0) continue;
        if ((d2 & S2_PTE_TABLE) === 0) {
          t2[2 * i2] = d2 & ~S2_PTE_S2AP_W;
          continue;
        }
        const t3 = this.tables[this.descOa(l2, i2)]!;
        const lo = Math.max(0, start - g2);
        const hi = Math.min(this.bp, end - g2);
        for (let i3 = lo; i3 < hi; i3++) t3[2 * i3] = t3[2 * i3]! & ~S2_PTE_S2AP_W;
      }
    }
  }

  /**
   * Re-protect one page whose dirty bit was just fetched or cleared
   * (kvm_arch_mmu_enable_log_dirty_pt_masked). True if it changed anything.
   */
  protected reprotectDirtyPage(gfn: number): boolean {
    return this.stage2WpGfn(gfn);
  }

  /** The write-protect step of KVM_GET_DIRTY_LOG (without manual protect) for one fetched page. */
  protected getLogReprotect(gfn: number): boolean {
    return this.reprotectDirtyPage(gfn);
  }

  // -------------------------------------------------------------------------
  // Dirty logging ioctls
  // -------------------------------------------------------------------------

  /**
   * The bitmap is an array of 32-bit words. The kernel's words are 64-bit
   * `unsigned long`s, and the 64-page granule of KVM_CLEAR_DIRTY_LOG comes
   * from that; here one kernel word is a pair of Uint32Array words (the
   * array length is rounded up to whole pairs so the 64-page granule maps
   * onto whole pairs). Uint32Array rather than BigUint64Array because
   * JavaScript's bitwise operators work on 32-bit integers natively, while
   * every BigInt operation allocates: scanning and clearing a
   * BigUint64Array bitmap is many times slower (bench/stage2-dirty.ts
   * measures both).
   */
  protected allocDirtyBitmap(npages: number): Uint32Array {
    return new Uint32Array(2 * Math.ceil(npages / 64));
  }

  /** Shorthand: the slot's own region again with KVM_MEM_LOG_DIRTY_PAGES. */
  protected enableDirtyLog(id: number): Result {
    const slot = this.slotsById.get(id);
    if (slot === undefined) return EINVAL;
    return this.setUserMemoryRegion(id, slot.baseGfn, slot.npages, true, slot.readonly, undefined);
  }

  /** Shorthand: the slot's own region again without KVM_MEM_LOG_DIRTY_PAGES. */
  protected disableDirtyLog(id: number): Result {
    const slot = this.slotsById.get(id);
    if (slot === undefined) return EINVAL;
    return this.setUserMemoryRegion(id, slot.baseGfn, slot.npages, false, slot.readonly, undefined);
  }

  /**
   * KVM_SET_USER_MEMORY_REGION: kvm_vm_ioctl_set_memory_region (id range),
   * __kvm_set_memory_region (size limit, delete of a free id, what an
   * existing slot may change, overlap), arm64 kvm_arch_prepare_memory_region
   * (the IPA limit), then kvm_set_memslot.
   */
  protected setUserMemoryRegion(id: number, baseGfn: number, npages: number, logDirty: boolean, readonly: boolean, backing: Backing | undefined): Result {
    if (id >= this.config.userMemSlots) return EINVAL;
    if (npages > KVM_MEM_MAX_NR_PAGES) return EINVAL;
    const old = this.slotsById.get(id);
    if (npages === 0) {
      if (old === undefined) return EINVAL;
      this.deleteMemslot(old);
      return OK;
    }
    if (old !== undefined) {
      if (npages !== old.npages || readonly !== old.readonly || (backing !== undefined && backing !== old.backing)) return EINVAL;
      if (baseGfn === old.baseGfn) return this.updateFlags(old, logDirty);
    }
    if (this.overlaps(old ?? null, baseGfn, npages)) return EEXIST;
    if (baseGfn + npages > MAX_GFN_END) return EFAULT;
    this.ensureRootReach(baseGfn + npages);
    if (old === undefined) {
      const hostBase = nextHostBase(this.hostNext, baseGfn, this.bp);
      this.hostNext = hostBase + npages;
      const slot = this.newMemslot(id, baseGfn, npages, backing ?? 'thp', readonly, hostBase);
      this.slots.push(slot);
      this.slots.sort((a, b) => a.baseGfn - b.baseGfn);
      this.slotsById.set(id, slot);
      return this.updateFlags(slot, logDirty);
    }
    this.moveMemslot(old, baseGfn);
    return this.updateFlags(old, logDirty);
  }

  /** kvm_check_memslot_overlap: another slot holds a page of the range. */
  protected overlaps(self: KvmMemslot | null, baseGfn: number, npages: number): boolean {
    for (const o of this.slots) if (o !== self && baseGfn < o.baseGfn + o.npages && o.baseGfn < baseGfn + npages) return true;
    return false;
  }

  /** KVM_MR_DELETE: kvm_arch_flush_shadow_memslot unmaps the range; the slot and its bitmap go. */
  protected deleteMemslot(slot: KvmMemslot): void {
    this.flushShadowMemslot(slot);
    this.slots = this.slots.filter((s) => s !== slot);
    this.slotsById.delete(slot.id);
    // Ghost: the guest can no longer reach what it wrote there.
    for (const g of [...this.ghostMem.keys()]) if (g >= slot.baseGfn && g < slot.baseGfn + slot.npages) this.ghostMem.delete(g);
  }

  /**
   * KVM_MR_MOVE: the old range is unmapped (kvm_invalidate_memslot); the
   * host memory (same userspace_addr) and the dirty bitmap, whose bits are
   * slot-relative, stay with the slot (kvm_prepare_memory_region reuses it).
   */
  protected moveMemslot(slot: KvmMemslot, baseGfn: number): void {
    this.flushShadowMemslot(slot);
    const delta = baseGfn - slot.baseGfn;
    const moved: Array<[number, number]> = [];
    for (const [g, v] of this.ghostMem) if (g >= slot.baseGfn && g < slot.baseGfn + slot.npages) moved.push([g + delta, v]);
    for (const [g] of moved) this.ghostMem.delete(g - delta);
    for (const [g, v] of moved) this.ghostMem.set(g, v);
    slot.baseGfn = baseGfn;
    this.slots.sort((a, b) => a.baseGfn - b.baseGfn);
  }

  /** arm64 kvm_arch_flush_shadow_memslot: unmap the slot's whole range (each cleared entry flushed). */
  protected flushShadowMemslot(slot: KvmMemslot): void {
    this.unmapRange(slot.baseGfn, slot.npages);
  }

  /** KVM_MR_FLAGS_ONLY (or the flags of a created or moved slot): start or stop logging. */
  protected updateFlags(slot: KvmMemslot, logDirty: boolean): Result {
    if (logDirty && slot.dirtyBitmap === null) this.startDirtyLog(slot);
    else if (!logDirty && slot.dirtyBitmap !== null) {
      slot.dirtyBitmap = null;
      slot.ghostWritten = null;
      slot.ghostInitial = null;
    }
    return OK;
  }

  /**
   * kvm_prepare_memory_region allocates the bitmap (all ones with
   * KVM_DIRTY_LOG_INITIALLY_SET). arm64 kvm_arch_commit_memory_region then
   * write-protects the slot in one go, except with INITIALLY_SET, where it
   * returns early and protection comes chunk by chunk with KVM_CLEAR_DIRTY_LOG.
   */
  protected startDirtyLog(slot: KvmMemslot): void {
    const bm = this.allocDirtyBitmap(slot.npages);
    slot.ghostWritten = new Uint32Array(bm.length);
    slot.ghostInitial = new Uint32Array(bm.length);
    slot.dirtyBitmap = bm;
    if (this.config.initiallySet) {
      // bitmap_set(0, npages): exactly the slot's pages, not the padding.
      const full = slot.npages >>> 5;
      bm.fill(0xffffffff, 0, full);
      const rest = slot.npages & 31;
      if (rest !== 0) bm[full] = (1 << rest) - 1;
      slot.ghostInitial.set(bm);
    }
    if (this.protectLazily()) return;
    // kvm_mmu_wp_memory_region: write-protect the slot, then flush.
    this.stage2WpRange(slot.baseGfn, slot.baseGfn + slot.npages);
    this.kvmFlushRemoteTlbs();
  }

  /** kvm_dirty_log_manual_protect_and_init_set: with INITIALLY_SET, no write-protection at enable. */
  protected protectLazily(): boolean {
    return this.config.initiallySet;
  }

  /**
   * KVM_GET_DIRTY_LOG. Each word is fetched and, without manual protect,
   * cleared in the same step (xchg in the kernel), and the pages whose bits
   * were set are write-protected again; one TLB flush at the end covers
   * them all. Bits are visited lowest first, so the list comes out sorted.
   */
  protected getDirtyLog(id: number): Result {
    // kvm_get_dirty_log_protect: an id at or above KVM_USER_MEM_SLOTS is
    // EINVAL; a free id or a slot without a bitmap is ENOENT.
    if (id >= this.config.userMemSlots) return EINVAL;
    const slot = this.slotsById.get(id);
    const bm = slot === undefined ? null : slot.dirtyBitmap;
    if (slot === undefined || bm === null) return this.freeSlotAnswer(slot);
    // Two passes: count the bits (so the result array is allocated once, at
    // its final size), then fetch (and clear) word by word.
    let n = 0;
    for (let i = 0; i < bm.length; i++) {
      const w = bm[i]!;
      if (w !== 0) n += popcount32(w);
    }
    const dirty: number[] = new Array<number>(n);
    const base = slot.baseGfn;
    const manual = this.config.manualProtect;
    const ghost = slot.ghostWritten!;
    let k = 0;
    let flush = false;
    for (let i = 0; i < bm.length && k < n; i++) {
      let w = bm[i]!;
      if (w === 0) continue;
      if (!manual) {
        bm[i] = 0;
        ghost[i] = ghost[i]! & ~w;
      }
      const g0 = base + i * 32;
      while (w !== 0) {
        const b = 31 - Math.clz32(w & -w);
        w &= w - 1;
        const gfn = g0 + b;
        dirty[k++] = gfn;
        if (!manual && this.getLogReprotect(gfn)) flush = true;
      }
    }
    this.nBitmapWords += bm.length;
    if (flush) this.kvmFlushRemoteTlbs();
    return { ok: true, dirty };
  }

  /** The answer for a free id or a slot without a bitmap (kvm_{get,clear}_dirty_log_protect: -ENOENT). */
  protected freeSlotAnswer(_slot: KvmMemslot | undefined): Result {
    return ENOENT;
  }

  /**
   * KVM_CLEAR_DIRTY_LOG of `num` pages from offset `first` with the user
   * bitmap `bits` (absent: all ones). Word at a time: the bits cleared are
   * those passed AND set in the log (`mask &= atomic_long_fetch_andnot(mask,
   * p)`), and only those pages are write-protected again.
   */
  protected clearDirtyLog(id: number, first: number, num: number, bits: readonly number[] | undefined): Result {
    // kvm_clear_dirty_log_protect checks the id range, then `first_page & 63`,
    // then the slot and its bitmap (-ENOENT), then the range.
    if (id >= this.config.userMemSlots || first % DIRTY_LOG_GRANULE !== 0) return EINVAL;
    const slot = this.slotsById.get(id);
    const bm = slot === undefined ? null : slot.dirtyBitmap;
    if (slot === undefined || bm === null) return this.freeSlotAnswer(slot);
    if (!clearRangeValid(slot.npages, first, num)) return EINVAL;
    // The user bitmap, one bit per page of the range (first is a multiple of 64, so words line up).
    const user = new Uint32Array(Math.ceil(num / 32));
    if (bits === undefined) {
      user.fill(0xffffffff);
      if (num & 31) user[user.length - 1] = (1 << (num & 31)) - 1;
    } else {
      for (const b of bits) if (b < num) user[b >>> 5] = user[b >>> 5]! | (1 << (b & 31));
    }
    // Ghost (ioctl level): the bits set now that the caller did not pass must survive.
    const kept: number[] = [];
    for (let i = 0; i < bm.length; i++) {
      let w = bm[i]!;
      const u = i >= first >>> 5 && i < (first >>> 5) + user.length ? user[i - (first >>> 5)]! : 0;
      w &= ~u;
      while (w !== 0) {
        const b = 31 - Math.clz32(w & -w);
        w &= w - 1;
        kept.push(slot.baseGfn + i * 32 + b);
      }
    }
    slot.ghostKept = kept;
    this.anyGhostKept = true;
    let flush = false;
    for (let k = 0; k < user.length; k++) {
      const off = first + k * 32;
      const i = off >>> 5;
      const left = first + num - off;
      const rangeMask = left >= 32 ? 0xffffffff : (1 << left) - 1;
      let w = this.clearedBits(user[k]!, bm[i]!, rangeMask);
      this.nBitmapWords++;
      if (w === 0) continue;
      bm[i] = bm[i]! & ~w;
      while (w !== 0) {
        const b = 31 - Math.clz32(w & -w);
        w &= w - 1;
        if (this.reprotectDirtyPage(slot.baseGfn + off + b)) flush = true;
      }
    }
    if (flush) this.kvmFlushRemoteTlbs();
    // Ghost: the passed pages are clean again.
    for (let k = 0; k < user.length; k++) {
      const i = (first >>> 5) + k;
      slot.ghostWritten![i] = slot.ghostWritten![i]! & ~user[k]!;
      slot.ghostInitial![i] = slot.ghostInitial![i]! & ~user[k]!;
    }
    return OK;
  }

  /** The bits of one log word that a CLEAR clears: passed by the caller and set in the log. */
  protected clearedBits(user: number, log: number, _rangeMask: number): number {
    return user & log;
  }

  // -------------------------------------------------------------------------
  // MMU notifier unmap, queries
  // -------------------------------------------------------------------------

  /**
   * unmap_range: every leaf in [gfn, gfn+npages) is cleared and flushed by
   * address, a block partly in the range goes whole; a table page left
   * with no valid entries is unlinked and freed (kvm_pte_table_empty /
   * kvm_pmd_table_empty).
   */
  protected unmapRange(gfn: number, npages: number): Result {
    if (npages === 0) return OK;
    const end = gfn + npages;
    const root = this.tables[ROOT]!;
    const lastL1 = Math.min(this.rootEntries - 1, this.l1Index(end - 1));
    for (let i1 = this.l1Index(gfn); i1 <= lastL1; i1++) {
      if ((root[2 * i1]! & S2_PTE_VALID) === 0) continue;
      const l2 = this.descOa(ROOT, i1);
      const t2 = this.tables[l2]!;
      const base2 = i1 * this.l2Span;
      for (let i2 = 0; i2 < this.bp; i2++) {
        const g2 = base2 + i2 * this.bp;
        if (g2 + this.bp <= gfn || g2 >= end) continue;
        const d2 = t2[2 * i2]!;
        if ((d2 & S2_PTE_VALID) === 0) continue;
        if ((d2 & S2_PTE_TABLE) === 0) {
          this.stage2ClearEntry(l2, i2);
          this.kvmTlbFlushVmidIpa(g2);
          this.putPage(l2);
          continue;
        }
        const l3 = this.descOa(l2, i2);
        const t3 = this.tables[l3]!;
        const lo = Math.max(0, gfn - g2);
        const hi = Math.min(this.bp, end - g2);
        for (let i3 = lo; i3 < hi; i3++) {
          if ((t3[2 * i3]! & S2_PTE_VALID) === 0) continue;
          this.stage2ClearEntry(l3, i3);
          this.kvmTlbFlushVmidIpa(g2 + i3);
          this.putPage(l3);
        }
        if (this.tableCount[l3] === 1) {
          this.stage2ClearEntry(l2, i2);
          this.putPage(l2);
          this.freeTablePage(l3);
        }
      }
      if (this.tableCount[l2] === 1) {
        this.stage2ClearEntry(ROOT, i1);
        this.putPage(ROOT);
        this.freeTablePage(l2);
      }
    }
    return OK;
  }

  protected mappingOf(gfn: number): Result {
    if (this.findSlot(gfn) === null) return EINVAL;
    if (!this.stage2Walk(gfn)) return { ok: true, mapped: false };
    return { ok: true, mapped: true, size: this.walkBlock ? '2m' : '4k', writable: this.walkWritable };
  }

  // -------------------------------------------------------------------------
  // Abstraction function
  // -------------------------------------------------------------------------

  view(): View {
    const slots: SlotView[] = [...this.slots]
      .sort((a, b) => a.id - b.id)
      .map((s) => ({
        id: s.id,
        baseGfn: s.baseGfn,
        npages: s.npages,
        readonly: s.readonly,
        logging: s.dirtyBitmap !== null,
        dirty: bitsOf(s.dirtyBitmap, s.baseGfn),
        written: bitsOf(s.ghostWritten, s.baseGfn),
        initial: bitsOf(s.ghostInitial, s.baseGfn),
        kept: s.ghostKept === null ? [] : s.ghostKept.slice(),
      }));

    // One walk gives the mappings, each table page's parent references, and
    // (on a page's first visit) its valid entries; pages the walk does not
    // reach are counted afterwards.
    const mappings: MappingView[] = [];
    const refs = new Array<number>(this.tables.length).fill(0);
    const valid = new Array<number>(this.tables.length).fill(-1);
    const root = this.tables[ROOT]!;
    valid[ROOT] = 0;
    for (let i1 = 0; i1 < this.rootEntries; i1++) {
      if ((root[2 * i1]! & S2_PTE_VALID) === 0) continue;
      valid[ROOT]!++;
      const l2 = this.descOa(ROOT, i1);
      const first2 = refs[l2]!++ === 0;
      if (first2) valid[l2] = 0;
      const t2 = this.tables[l2]!;
      for (let i2 = 0; i2 < this.bp; i2++) {
        const d2 = t2[2 * i2]!;
        if ((d2 & S2_PTE_VALID) === 0) continue;
        if (first2) valid[l2]!++;
        const g2 = i1 * this.l2Span + i2 * this.bp;
        if ((d2 & S2_PTE_TABLE) === 0) {
          mappings.push({ gfn: g2, pfn: this.descOa(l2, i2), writable: (d2 & S2_PTE_S2AP_W) !== 0, size: '2m' });
          continue;
        }
        const l3 = this.descOa(l2, i2);
        const first3 = refs[l3]!++ === 0;
        if (first3) valid[l3] = 0;
        const t3 = this.tables[l3]!;
        for (let i3 = 0; i3 < this.bp; i3++) {
          const d3 = t3[2 * i3]!;
          if ((d3 & S2_PTE_VALID) === 0) continue;
          if (first3) valid[l3]!++;
          mappings.push({ gfn: g2 + i3, pfn: this.descOa(l3, i3), writable: (d3 & S2_PTE_S2AP_W) !== 0, size: '4k' });
        }
      }
    }

    const tables: TableView[] = [];
    for (let tid = 0; tid < this.tables.length; tid++) {
      const free = this.tableFreed[tid]! > 0;
      let v = valid[tid]!;
      if (v < 0) {
        v = 0;
        const t = this.tables[tid]!;
        if (!free) for (let i = 0; i < t.length; i += 2) if ((t[i]! & S2_PTE_VALID) !== 0) v++;
      }
      tables.push({
        id: tid,
        level: this.tableLevel[tid]!,
        baseGfn: this.tableBase[tid]!,
        count: this.tableCount[tid]!,
        valid: v,
        refs: refs[tid]!,
        free,
        freedTwice: this.tableFreed[tid]! > 1,
      });
    }

    const tlb: TlbView[] = [];
    for (const [g, e] of this.tlbPages) tlb.push({ gfn: g, npages: 1, pfn: Math.floor(e / 2), writable: e % 2 === 1 });
    for (const [g, e] of this.tlbBlocks) tlb.push({ gfn: g, npages: this.bp, pfn: Math.floor(e / 2), writable: e % 2 === 1 });
    tlb.sort((a, b) => a.gfn - b.gfn || a.npages - b.npages);

    const memory: MemoryView[] = [];
    for (const g of [...this.ghostMem.keys()].sort((a, b) => a - b)) {
      const s = this.findSlot(g)!;
      const mapped = this.stage2Walk(g) ? this.memRead(this.walkPfn) : null;
      memory.push({ gfn: g, expected: this.ghostMem.get(g)!, host: this.memRead(s.hostBase + (g - s.baseGfn)), mapped });
    }

    return { slots, mappings, tlb, tables, memory, blocksWhileLogging: this.ghostBlocksWhileLogging };
  }

  counters(): Readonly<Record<string, number>> {
    return {
      faults: this.nFaults,
      blocksDissolved: this.nDissolved,
      tablesCollapsed: this.nCollapsed,
      tlbFlushIpa: this.nTlbFlushIpa,
      tlbFlushAll: this.nTlbFlushAll,
      tablePagesAllocated: this.nTablesAllocated,
      bitmapWordsScanned: this.nBitmapWords,
    };
  }
}

/** Number of set bits in a 32-bit word. */
export function popcount32(w: number): number {
  w = w - ((w >>> 1) & 0x55555555);
  w = (w & 0x33333333) + ((w >>> 2) & 0x33333333);
  return Math.imul((w + (w >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

/** Sorted list of `base + bit index` for every set bit of `bm` (empty for null). */
function bitsOf(bm: Uint32Array | null, base: number): number[] {
  const out: number[] = [];
  if (bm === null) return out;
  for (let i = 0; i < bm.length; i++) {
    let w = bm[i]!;
    while (w !== 0) {
      const b = 31 - Math.clz32(w & -w);
      w &= w - 1;
      out.push(base + i * 32 + b);
    }
  }
  return out;
}

export function createImpl(config: Config): Stage2DirtyImpl {
  return new Stage2DirtyImpl(config);
}
