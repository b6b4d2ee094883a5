/**
 * Optimized implementation of the `prefault` domain: a TDP MMU in miniature.
 *
 * The second-stage table is a 4-level radix tree of 512-entry tables kept in
 * one typed-array pool (PML4 -> PDPT -> PD -> PT, like x86 EPT/NPT with
 * 48-bit GPAs). A fault finds its level with alignment arithmetic against the
 * memslot bounds, the slot's host backing size and the slot's attribute
 * run-lengths, then installs one whole leaf: pre-faulting 64 GiB with 1 GiB
 * leaves is 64 installs, not 16 million page steps. A huge leaf written over
 * an entry that pointed to a lower table frees that table (what the TDP MMU
 * does when a huge SPTE replaces a non-leaf one).
 *
 * Sources: seed 003_af5d94ca23cb5f06.txt; virt/kvm/kvm_main.c
 * kvm_vcpu_pre_fault_memory; arch/x86/kvm/mmu/mmu.c
 * kvm_arch_vcpu_pre_fault_memory; Documentation/virt/kvm/api.rst 4.143.
 *
 * Mutants (properties/prefault/mutants.ts) subclass this class: every step a
 * known bug lives in is a protected method.
 */
import type { System } from '../../harness/domain';
import {
  GFN_LIMIT,
  KVM_MEM_MAX_NR_PAGES,
  KVM_USER_MEM_SLOTS,
  LEVEL_OF,
  MEMSLOT_PAGES_BUDGET,
  PAGES_OF_LEVEL,
  PAGE_SIZE,
  PRIVATE_MAX_LEVEL,
  SHARED_MAX_LEVEL,
  SIZE_OF_LEVEL,
  isConfidential,
  firstLeafEndingAfter,
  maxLeafLevel,
  preFaultArgsValid,
  reachOf,
  type AttrRun,
  type LastOp,
  type Leaf,
  type LeafSize,
  type Memslot,
  type PopulateResult,
  type PreFaultCallResult,
  type PrefaultConfig,
  type PrefaultOp,
  type PrefaultResult,
  type Scope,
  type View,
} from '../../spec/prefault/types';

// SPTE layout (one u32 per entry): flags in the low bits, the child table's
// pool index above them for non-leaf entries. A leaf maps gfn -> the slot's
// backing page at the same offset, so it needs no pfn field here.
/** Entry is present (shadow-present). */
export const SPTE_PRESENT = 1 << 0;
/** Entry is a leaf (PT_PAGE_SIZE_MASK above level 1; every present PT entry is a leaf). */
export const SPTE_LAST = 1 << 1;
/** Leaf maps private (guest_memfd) memory rather than shared memory. */
export const SPTE_PRIVATE = 1 << 2;
export const SPTE_CHILD_SHIFT = 3;

/** Kernel errno values the pre-fault path returns negated, and their names in results. */
export const ENOENT = 2;
export const EINTR = 4;
export const EIO = 5;
export const EFAULT = 14;
export const EOPNOTSUPP = 95;
const ERRNO_NAME: Readonly<Record<number, string>> = { [ENOENT]: 'ENOENT', [EINTR]: 'EINTR', [EIO]: 'EIO', [EFAULT]: 'EFAULT', [EOPNOTSUPP]: 'EOPNOTSUPP' };

export const PT_ENTRIES = 512;
/** Root level: PML4, each entry 512 GiB. */
export const ROOT_LEVEL = 4;
const BITMAP_WORDS = PT_ENTRIES / 32;
/** Pages spanned by one entry at each level (index = level). */
const SPAN: readonly number[] = [0, 1, 512, 512 * 512, 512 * 512 * 512];

/** Shift of the index bits for levels 1-3 (the low 27 bits of a gfn). */
const SHIFT: readonly number[] = [0, 0, 9, 18];
const ROOT_SPAN = 512 * 512 * 512;

/**
 * Index of `gfn` in a table of `level`. A gfn has 36 bits, more than JS bit
 * operators take, so the root index comes from a division and the lower
 * three from shifts of the remaining 27 bits.
 */
function pteIndex(gfn: number, level: number): number {
  if (level === ROOT_LEVEL) return Math.floor(gfn / ROOT_SPAN);
  return ((gfn % ROOT_SPAN) >>> SHIFT[level]!) & (PT_ENTRIES - 1);
}

/** Per-memslot state: bounds and backing level (KVM's struct kvm_memory_slot, reduced). */
interface SlotState {
  readonly slot: Memslot;
  readonly base: number;
  readonly end: number;
  readonly backingLevel: number;
  /** KVM_MEM_GUEST_MEMFD: private memory can be mapped from this slot. */
  readonly gmem: boolean;
}

function slotState(s: Memslot): SlotState {
  return { slot: s, base: s.baseGfn, end: s.baseGfn + s.npages, backingLevel: LEVEL_OF[s.backing], gmem: s.guestMemfd };
}

/** Pages per chunk of the launch-image bitmap (one Uint32Array of 16 words per 512 pages touched). */
const ADDED_CHUNK = 512;

export class PrefaultMmu implements System<PrefaultOp, PrefaultResult, View, Scope> {
  protected finalized = false;
  protected readonly confidential: boolean;
  /** The live memslots, sorted by base gfn (search_memslots). */
  protected slots: SlotState[];
  /**
   * The VM's attributes (kvm->mem_attr_array, per VM, not per slot): run
   * starts ascending from gfn 0, runs maximal (neighbours differ), the last
   * running to GFN_LIMIT.
   */
  private runStart: number[];
  private runPrivate: boolean[];
  /** The launch image (pages added by populate), a sparse bitmap in 512-page chunks keyed by gfn / 512. */
  private readonly added = new Map<number, Uint32Array>();
  private slotPages: number;
  private slotView: Memslot[] | null = null;

  // The table pool.
  private spt = new Uint32Array(PT_ENTRIES * 8);
  private present = new Uint32Array(BITMAP_WORDS * 8);
  private nrPresent = new Uint16Array(8);
  private nrTables = 1; // table 0 is the root
  private readonly freeTables: number[] = [];

  protected readonly measured: number[] = [];
  private last: LastOp | null = null;
  /** The live View's leaves, patched from the table over the dirty range when asked for. */
  private liveLeaves: Leaf[] = [];
  private dirtyStart = Infinity;
  private dirtyEnd = -Infinity;
  /** maxLeafLevel of the live slots, recomputed when they change. */
  private reachLevel: number;
  private attrCache: AttrRun[] | null = null;

  private stats = { leavesInstalled: 0, pagesCovered: 0, tablesAllocated: 1, chunks: 0 };

  constructor(protected readonly config: PrefaultConfig) {
    this.confidential = isConfidential(config.vmType);
    this.reachLevel = maxLeafLevel(config.memslots);
    this.slots = config.memslots.map(slotState);
    this.slotPages = config.memslots.reduce((n, s) => n + s.npages, 0);
    this.runStart = [0];
    this.runPrivate = [config.privateByDefault];
  }

  // -- table pool ----------------------------------------------------------

  private allocTable(): number {
    const reused = this.freeTables.pop();
    if (reused !== undefined) return reused;
    const t = this.nrTables++;
    if (this.nrTables > this.nrPresent.length) {
      const cap = this.nrPresent.length * 2;
      const spt = new Uint32Array(cap * PT_ENTRIES);
      spt.set(this.spt);
      this.spt = spt;
      const bm = new Uint32Array(cap * BITMAP_WORDS);
      bm.set(this.present);
      this.present = bm;
      const nr = new Uint16Array(cap);
      nr.set(this.nrPresent);
      this.nrPresent = nr;
    }
    this.stats.tablesAllocated++;
    return t;
  }

  private setSpte(table: number, index: number, spte: number): void {
    const word = table * BITMAP_WORDS + (index >>> 5);
    const bit = 1 << (index & 31);
    if ((this.present[word]! & bit) === 0) {
      this.present[word] = this.present[word]! | bit;
      this.nrPresent[table]!++;
    }
    this.spt[table * PT_ENTRIES + index] = spte;
  }

  private clearSpte(table: number, index: number): void {
    const word = table * BITMAP_WORDS + (index >>> 5);
    const bit = 1 << (index & 31);
    if ((this.present[word]! & bit) !== 0) {
      this.present[word] = this.present[word]! & ~bit;
      this.nrPresent[table]!--;
    }
    this.spt[table * PT_ENTRIES + index] = 0;
  }

  /** Free a lower table and everything below it (the leaves it held are gone with it). */
  private freeTable(table: number): void {
    for (let w = 0; w < BITMAP_WORDS; w++) {
      let bits = this.present[table * BITMAP_WORDS + w]!;
      while (bits !== 0) {
        const low = bits & -bits;
        const i = w * 32 + (31 - Math.clz32(low));
        bits ^= low;
        const spte = this.spt[table * PT_ENTRIES + i]!;
        if ((spte & SPTE_LAST) === 0) this.freeTable(spte >>> SPTE_CHILD_SHIFT);
        this.spt[table * PT_ENTRIES + i] = 0;
      }
      this.present[table * BITMAP_WORDS + w] = 0;
    }
    this.nrPresent[table] = 0;
    this.freeTables.push(table);
  }

  /** Record that leaves in [start, end) may have changed (for the live View and the invariants' scope). */
  protected touch(start: number, end: number): void {
    if (start < this.dirtyStart) this.dirtyStart = start;
    if (end > this.dirtyEnd) this.dirtyEnd = end;
  }

  /** Level of the leaf mapping gfn, 0 if unmapped (every present level-1 entry is a leaf). */
  protected lookup(gfn: number): number {
    let table = 0;
    let level = ROOT_LEVEL;
    for (;;) {
      const spte = this.spt[table * PT_ENTRIES + pteIndex(gfn, level)]!;
      if ((spte & SPTE_PRESENT) === 0) return 0;
      if ((spte & SPTE_LAST) !== 0) return level;
      table = spte >>> SPTE_CHILD_SHIFT;
      level--;
    }
  }

  /** Install one leaf of `level` covering gfn; a lower table under it is freed. */
  protected installLeaf(gfn: number, level: number, isPrivate: boolean): void {
    let table = 0;
    for (let l = ROOT_LEVEL; l > level; l--) {
      const i = pteIndex(gfn, l);
      const spte = this.spt[table * PT_ENTRIES + i]!;
      if ((spte & SPTE_PRESENT) === 0 || (spte & SPTE_LAST) !== 0) {
        // A larger leaf cannot cover a fault's gfn (attribute changes zap
        // whole leaves), but if one did, splitting would drop it: treat it as absent.
        const child = this.allocTable();
        this.setSpte(table, i, (child << SPTE_CHILD_SHIFT) | SPTE_PRESENT);
        table = child;
      } else table = spte >>> SPTE_CHILD_SHIFT;
    }
    const i = pteIndex(gfn, level);
    const old = this.spt[table * PT_ENTRIES + i]!;
    if ((old & SPTE_PRESENT) !== 0 && (old & SPTE_LAST) === 0) this.freeTable(old >>> SPTE_CHILD_SHIFT);
    this.setSpte(table, i, SPTE_PRESENT | SPTE_LAST | (isPrivate ? SPTE_PRIVATE : 0));
    this.stats.leavesInstalled++;
    this.stats.pagesCovered += PAGES_OF_LEVEL[level]!;
    const n = PAGES_OF_LEVEL[level]!;
    this.touch(gfn - (gfn % n), gfn - (gfn % n) + n);
  }

  /** Zap every leaf touching [start, end) under `table` (which maps from `base` at `level`). Returns whether the table is now empty. */
  private zapTable(table: number, level: number, base: number, start: number, end: number): boolean {
    const span = SPAN[level]!;
    const lo = Math.max(0, Math.floor((start - base) / span));
    const hi = Math.min(PT_ENTRIES - 1, Math.ceil((end - base) / span) - 1);
    for (let i = lo; i <= hi; i++) {
      const spte = this.spt[table * PT_ENTRIES + i]!;
      if ((spte & SPTE_PRESENT) === 0) continue;
      if ((spte & SPTE_LAST) !== 0) {
        this.clearSpte(table, i);
        this.touch(base + i * span, base + (i + 1) * span);
      } else {
        const child = spte >>> SPTE_CHILD_SHIFT;
        if (this.zapTable(child, level - 1, base + i * span, start, end)) {
          this.clearSpte(table, i);
          this.freeTables.push(child);
        }
      }
    }
    return this.nrPresent[table] === 0;
  }

  protected zapRange(start: number, end: number): void {
    if (start >= end) return;
    this.zapTable(0, ROOT_LEVEL, 0, start, Math.min(end, GFN_LIMIT));
  }

  /** Append the leaves overlapping [start, end) under `table`, in gfn order. */
  private collect(table: number, level: number, base: number, start: number, end: number, out: Leaf[]): void {
    const span = SPAN[level]!;
    const lo = Math.max(0, Math.floor((start - base) / span));
    const hi = Math.min(PT_ENTRIES - 1, Math.ceil((end - base) / span) - 1);
    if (lo > hi) return;
    for (let w = lo >>> 5; w <= hi >>> 5; w++) {
      let bits = this.present[table * BITMAP_WORDS + w]!;
      while (bits !== 0) {
        const low = bits & -bits;
        bits ^= low;
        const i = w * 32 + (31 - Math.clz32(low));
        if (i < lo || i > hi) continue;
        const spte = this.spt[table * PT_ENTRIES + i]!;
        const gfn = base + i * span;
        if ((spte & SPTE_LAST) !== 0) out.push({ gfn, size: SIZE_OF_LEVEL[level]!, private: (spte & SPTE_PRIVATE) !== 0 });
        else this.collect(spte >>> SPTE_CHILD_SHIFT, level - 1, gfn, start, end, out);
      }
    }
  }

  protected leavesIn(start: number, end: number): Leaf[] {
    const out: Leaf[] = [];
    if (start < end) this.collect(0, ROOT_LEVEL, 0, start, Math.min(end, GFN_LIMIT), out);
    return out;
  }

  // -- memslots and attributes ---------------------------------------------

  /** search_memslots(): binary search of the sorted slots. */
  protected findSlot(gfn: number): SlotState | undefined {
    let lo = 0;
    let hi = this.slots.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = this.slots[mid]!;
      if (gfn < s.base) hi = mid - 1;
      else if (gfn >= s.end) lo = mid + 1;
      else return s;
    }
    return undefined;
  }

  /** Index of the attribute run containing gfn (gfn < GFN_LIMIT). */
  private runIndex(gfn: number): number {
    const rs = this.runStart;
    let lo = 0;
    let hi = rs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (rs[mid]! <= gfn) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** kvm_mem_is_private(): the VM's attribute of gfn (beyond the GFN space: shared). */
  protected isPrivate(gfn: number): boolean {
    return gfn < GFN_LIMIT && this.runPrivate[this.runIndex(gfn)]!;
  }

  /** Whether [start, end) has a single attribute: one run covers it, since runs are maximal. */
  protected attrsUniform(start: number, end: number): boolean {
    const i = this.runIndex(start);
    const runEnd = i + 1 < this.runStart.length ? this.runStart[i + 1]! : GFN_LIMIT;
    return runEnd >= end;
  }

  /** Set [start, end) to `priv`, keeping the runs maximal. */
  private setAttrRange(start: number, end: number, priv: boolean): void {
    const starts: number[] = [];
    const privs: boolean[] = [];
    // Pushed in increasing gfn order; a run with its predecessor's attribute merges into it.
    const push = (g: number, p: boolean): void => {
      if (privs.length > 0 && privs[privs.length - 1] === p) return;
      starts.push(g);
      privs.push(p);
    };
    const n = this.runStart.length;
    for (let i = 0; i < n; i++) {
      const rs = this.runStart[i]!;
      const re = i + 1 < n ? this.runStart[i + 1]! : GFN_LIMIT;
      const rp = this.runPrivate[i]!;
      if (re <= start || rs >= end) push(rs, rp);
      else {
        if (rs < start) push(rs, rp);
        push(Math.max(rs, start), priv);
        if (re > end) push(end, rp);
      }
    }
    this.runStart = starts;
    this.runPrivate = privs;
    this.attrCache = null;
  }

  // -- the leaf choice -----------------------------------------------------

  /** Whether the level-aligned block [start, end) lies inside the slot. */
  protected blockFitsSlot(s: SlotState, start: number, end: number): boolean {
    return start >= s.base && end <= s.end;
  }

  /**
   * The largest level for a fault at gfn. Private memory: guest_memfd's
   * order-0 folios (`__kvm_gmem_get_pfn`: max_order 0) make it 4 KiB, below
   * any private_max_mapping_level (SNP 2M, TDX 4K). Shared memory: 1 GiB,
   * capped by the slot's host backing, then lowered until the aligned block
   * lies inside the slot and has one attribute (KVM_LPAGE_MIXED_FLAG).
   */
  protected faultLevel(s: SlotState, gfn: number, isPrivate: boolean): number {
    if (isPrivate) return this.privateLevel(s);
    let level = Math.min(SHARED_MAX_LEVEL, s.backingLevel);
    for (; level > 1; level--) {
      const n = PAGES_OF_LEVEL[level]!;
      const start = gfn - (gfn % n);
      if (this.blockFitsSlot(s, start, start + n) && this.attrsUniform(start, start + n)) break;
    }
    return level;
  }

  /** The level of a private leaf: guest_memfd's max_order 0. */
  protected privateLevel(_s: SlotState): number {
    return PRIVATE_MAX_LEVEL;
  }

  /**
   * Whether a huge leaf is written over an entry that points to a lower table
   * (freeing the table and the smaller leaves in it), as the TDP MMU does.
   */
  protected hugeReplacesTable(): boolean {
    return true;
  }

  /**
   * Map gfn as a read fault would; returns the level of the leaf now covering
   * it, or -errno: a private gfn needs a guest_memfd slot (no slot:
   * kvm_handle_noslot_fault; a slot without guest_memfd:
   * kvm_faultin_pfn_private), else EFAULT; a shared gfn in no slot is MMIO
   * (RET_PF_EMULATE, which the pre-fault path turns into ENOENT).
   */
  protected mapFault(s: SlotState | undefined, gfn: number): number {
    const priv = this.isPrivate(gfn);
    if (priv && (s === undefined || !s.gmem)) return -EFAULT;
    if (s === undefined) return -ENOENT;
    return this.tdpMap(gfn, this.faultLevel(s, gfn, priv), priv);
  }

  /**
   * One walk from the root, like kvm_tdp_mmu_map(): allocate missing tables
   * down to `level`; stop at a leaf already there (the same level: a spurious
   * fault; a larger one cannot occur, see installLeaf); else write the leaf,
   * freeing a lower table it replaces. Returns the level of the leaf mapping gfn.
   */
  protected tdpMap(gfn: number, level: number, isPrivate: boolean): number {
    const top = Math.floor(gfn / ROOT_SPAN);
    const low = gfn - top * ROOT_SPAN;
    let table = 0;
    for (let l = ROOT_LEVEL; l > level; l--) {
      const i = l === ROOT_LEVEL ? top : (low >>> SHIFT[l]!) & (PT_ENTRIES - 1);
      const spte = this.spt[table * PT_ENTRIES + i]!;
      if ((spte & SPTE_PRESENT) === 0) {
        const child = this.allocTable();
        this.setSpte(table, i, (child << SPTE_CHILD_SHIFT) | SPTE_PRESENT);
        table = child;
      } else if ((spte & SPTE_LAST) !== 0) return l;
      else table = spte >>> SPTE_CHILD_SHIFT;
    }
    const i = (low >>> SHIFT[level]!) & (PT_ENTRIES - 1);
    const old = this.spt[table * PT_ENTRIES + i]!;
    if ((old & SPTE_PRESENT) !== 0) {
      if ((old & SPTE_LAST) !== 0) return level;
      if (!this.hugeReplacesTable()) return level;
      this.freeTable(old >>> SPTE_CHILD_SHIFT);
    }
    this.setSpte(table, i, SPTE_PRESENT | SPTE_LAST | (isPrivate ? SPTE_PRIVATE : 0));
    const n = PAGES_OF_LEVEL[level]!;
    this.stats.leavesInstalled++;
    this.stats.pagesCovered += n;
    this.touch(gfn - (gfn % n), gfn - (gfn % n) + n);
    return level;
  }

  // -- KVM_PRE_FAULT_MEMORY ------------------------------------------------

  /**
   * kvm->arch.pre_fault_allowed ("KVM: x86: disallow pre-fault for SNP VMs before
   * initialization"): true for default/sw-protected VMs, set by finalize for SNP/TDX.
   */
  protected prefaultAllowed(): boolean {
    return !this.confidential || this.finalized;
  }

  /** kvm_arch_vcpu_pre_fault_memory's return: bytes of the request covered by the leaf (never beyond the request). */
  protected chunkAdvance(gpa: number, size: number, leafEnd: number): number {
    return Math.min(size, leafEnd - gpa);
  }

  /** One chunk (kvm_arch_vcpu_pre_fault_memory): map the leaf covering gpa; the bytes processed, or -errno. */
  protected preFaultChunk(gpa: number, size: number): number {
    if (!this.prefaultAllowed()) return -EOPNOTSUPP;
    const gfn = gpa / PAGE_SIZE;
    const s = gfn < GFN_LIMIT ? this.findSlot(gfn) : undefined;
    const level = this.mapFault(s, gfn);
    if (level < 0) return level;
    const n = PAGES_OF_LEVEL[level]!;
    const leafEnd = (gfn - (gfn % n) + n) * PAGE_SIZE;
    return this.chunkAdvance(gpa, size, leafEnd);
  }

  /** kvm_vcpu_pre_fault_memory: argument checks, then chunks until done, a signal, or an error. */
  protected preFault(gpa: number, size: number, flags: number, signalAfter: number | null): PreFaultCallResult {
    if (!preFaultArgsValid(gpa, size, flags)) return { ok: false, error: 'EINVAL', gpa, size };
    const full = size;
    let r = -EIO;
    let chunks = 0;
    do {
      if (signalAfter !== null && chunks === signalAfter) {
        r = -EINTR;
        break;
      }
      r = this.preFaultChunk(gpa, size);
      if (r < 0) break;
      gpa += r;
      size -= r;
      chunks++;
    } while (size > 0);
    this.stats.chunks += chunks;
    // "Return success if at least one page was mapped successfully."
    return size === full ? { ok: false, error: ERRNO_NAME[-r] ?? 'EIO', gpa, size } : { ok: true, gpa, size };
  }

  // -- populate (TDX INIT_MEM_REGION / SNP LAUNCH_UPDATE) -------------------

  protected isAdded(gfn: number): boolean {
    const c = this.added.get(Math.floor(gfn / ADDED_CHUNK));
    const off = gfn % ADDED_CHUNK;
    return c !== undefined && (c[off >>> 5]! & (1 << (off & 31))) !== 0;
  }

  private markAdded(gfn: number): void {
    const k = Math.floor(gfn / ADDED_CHUNK);
    let c = this.added.get(k);
    if (c === undefined) {
      c = new Uint32Array(ADDED_CHUNK / 32);
      this.added.set(k, c);
    }
    const off = gfn % ADDED_CHUNK;
    c[off >>> 5] = c[off >>> 5]! | (1 << (off & 31));
  }

  /** Add one page to the launch image (TDH.MEM.PAGE.ADD / SNP_LAUNCH_UPDATE) and record it in order. */
  protected measurePage(gfn: number): void {
    this.markAdded(gfn);
    this.measured.push(gfn);
  }

  /**
   * kvm_gmem_populate's per-page checks: a guest_memfd slot (kvm_slot_has_gmem),
   * the PRIVATE attribute (EINVAL); then the vendor's: SNP's RMP entry must
   * not be assigned yet (sev_gmem_post_populate: EEXIST), TDX's page must not
   * be mapped and added yet (the S-EPT map / TDH.MEM.PAGE.ADD fails: EIO).
   * Returns the errno name, or null when the page can be added.
   */
  protected populateCheck(s: SlotState | undefined, g: number): string | null {
    if (s === undefined || !s.gmem) return 'EINVAL';
    if (!this.isPrivate(g)) return 'EINVAL';
    if (this.isAdded(g)) return this.config.vmType === 'snp' ? 'EEXIST' : 'EIO';
    return null;
  }

  /**
   * SNP's post-populate: the page becomes private in the RMP and is measured
   * by the firmware; no NPT entry is installed (sev_gmem_post_populate calls
   * rmp_make_private at 4K and SNP_LAUNCH_UPDATE, nothing else). TDX's maps
   * the page at 4K first (tdx_gmem_post_populate -> kvm_tdp_map_page /
   * kvm_tdp_mmu_map_private_pfn), then adds it.
   */
  protected postPopulate(s: SlotState, g: number, first: number, npages: number): void {
    this.measurePage(g);
    if (this.config.vmType !== 'tdx') return;
    const level = this.populateLevel(s, g, first, npages);
    if (this.lookup(g) < level) this.installLeaf(g, level, true);
  }

  /** The level TDX's populate maps a page at: 4K (private memory, and the page is added on its own). */
  protected populateLevel(_s: SlotState, _g: number, _first: number, _npages: number): number {
    return 1;
  }

  protected populate(gpa: number, npages: number): PopulateResult {
    const vm = this.config.vmType;
    if ((vm !== 'snp' && vm !== 'tdx') || gpa % PAGE_SIZE !== 0) return { ok: false, error: 'EINVAL', gpa, npages };
    const first = gpa / PAGE_SIZE;
    if (vm === 'tdx') {
      // tdx_vcpu_init_mem_region: refused once the TD is runnable, or for an empty range.
      if (this.finalized || npages === 0) return { ok: false, error: 'EINVAL', gpa, npages };
      // One kvm_gmem_populate call per page; its errno is returned as is, the range left at the failing page.
      for (let k = 0; k < npages; k++) {
        const g = first + k;
        const slot = g < GFN_LIMIT ? this.findSlot(g) : undefined;
        const why = this.populateCheck(slot, g);
        if (why !== null || slot === undefined) return { ok: false, error: why ?? 'EINVAL', gpa: g * PAGE_SIZE, npages: npages - k };
        this.postPopulate(slot, g, first, npages);
      }
      return { ok: true, gpa: (first + npages) * PAGE_SIZE, npages: 0 };
    }
    // snp_launch_update: the first page's slot must be able to hold private memory.
    const s = first < GFN_LIMIT ? this.findSlot(first) : undefined;
    if (s === undefined || !s.gmem) return { ok: false, error: 'EINVAL', gpa, npages };
    // Firmware refuses LAUNCH_UPDATE after LAUNCH_FINISH, and npages 0 trips kvm_gmem_populate's
    // WARN: either way kvm_gmem_populate returns < 0, which snp_launch_update reports as EIO.
    if (this.finalized || npages === 0) return { ok: false, error: 'EIO', gpa, npages };
    // kvm_gmem_populate cuts the request at the slot's end and returns the pages done
    // unless the very first one failed ("ret && !i ? ret : i").
    const todo = Math.min(npages, s.end - first);
    let done = 0;
    while (done < todo && this.populateCheck(s, first + done) === null) this.postPopulate(s, first + done++, first, npages);
    if (done === 0) return { ok: false, error: 'EIO', gpa, npages };
    return { ok: true, gpa: (first + done) * PAGE_SIZE, npages: npages - done };
  }

  // -- memslots (KVM_SET_USER_MEMORY_REGION2) --------------------------------

  /** kvm_check_memslot_overlap: another slot intersects [base, end). */
  protected overlaps(id: number, base: number, end: number): boolean {
    for (const s of this.slots) if (s.slot.id !== id && s.base < end && base < s.end) return true;
    return false;
  }

  /** kvm_arch_flush_shadow_memslot: a deleted or moved slot's mappings go. */
  protected flushSlot(s: SlotState): void {
    this.zapRange(s.base, s.end);
  }

  private installSlots(slots: SlotState[]): void {
    this.slots = slots.sort((a, b) => a.base - b.base);
    this.slotView = null;
    let level = 1;
    for (const s of this.slots) level = Math.max(level, s.backingLevel);
    this.reachLevel = Math.min(SHARED_MAX_LEVEL, level);
  }

  /** kvm_set_memory_region: the checks in its order, then create, delete or move. */
  protected setMemoryRegion(id: number, baseGfn: number, npages: number, backing: LeafSize, guestMemfd: boolean): PrefaultResult {
    if (id >= KVM_USER_MEM_SLOTS || npages > KVM_MEM_MAX_NR_PAGES) return { ok: false, error: 'EINVAL' };
    let old: SlotState | undefined;
    for (const s of this.slots) if (s.slot.id === id) old = s;
    if (npages === 0) {
      if (old === undefined) return { ok: false, error: 'EINVAL' };
      this.flushSlot(old);
      this.slotPages -= old.slot.npages;
      this.installSlots(this.slots.filter((s) => s !== old));
      return { ok: true };
    }
    if (old !== undefined) {
      // "Private memslots are immutable, they can only be deleted"; the host mapping and size are fixed.
      if (guestMemfd || old.gmem || npages !== old.slot.npages || backing !== old.slot.backing) return { ok: false, error: 'EINVAL' };
      if (baseGfn === old.base) return { ok: true }; // nothing to change
      if (this.overlaps(id, baseGfn, baseGfn + npages)) return { ok: false, error: 'EEXIST' };
      if (baseGfn + npages > GFN_LIMIT) return { ok: false, error: 'EINVAL' };
      this.flushSlot(old);
      const moved = slotState({ ...old.slot, baseGfn });
      this.installSlots(this.slots.map((s) => (s === old ? moved : s)));
      return { ok: true };
    }
    if (this.overlaps(id, baseGfn, baseGfn + npages)) return { ok: false, error: 'EEXIST' };
    if (baseGfn + npages > GFN_LIMIT) return { ok: false, error: 'EINVAL' };
    if (this.slotPages + npages > MEMSLOT_PAGES_BUDGET) return { ok: false, error: 'ENOMEM' };
    this.slotPages += npages;
    this.installSlots([...this.slots, slotState({ id, baseGfn, npages, backing, guestMemfd })]);
    return { ok: true };
  }

  /** A guest access: an EPT/NPT violation if the page is unmapped. */
  private guestAccess(gfn: number): PrefaultResult {
    if (this.confidential && !this.finalized) return { ok: false, error: 'EINVAL' };
    // A present mapping does not fault at all.
    if (gfn < GFN_LIMIT && this.lookup(gfn) !== 0) return { ok: true };
    const r = this.mapFault(gfn < GFN_LIMIT ? this.findSlot(gfn) : undefined, gfn);
    if (r === -EFAULT) return { ok: false, error: 'EFAULT' };
    if (r === -ENOENT) return { ok: false, error: 'MMIO' };
    return { ok: true };
  }

  // -- ops -----------------------------------------------------------------

  private rangeBad(gfn: number, npages: number): boolean {
    return npages === 0 || gfn + npages > GFN_LIMIT;
  }

  apply(op: PrefaultOp): PrefaultResult {
    const measuredBefore = this.measured.length;
    const ghost = (gfn: number | null, before: Leaf[] = []): void => {
      this.last = { op: op.op, measuredBefore, gfn, request: null, result: null, before, populate: null };
    };
    // A plain switch: this is the hot path of the lockstep run.
    switch (op.op) {
      case 'preFault': {
        const { gpa, size, flags } = op.args;
        const signalAfter = op.args.signalAfter ?? null;
        const before = preFaultArgsValid(gpa, size, flags) ? this.leavesIn(...reachOf(gpa / PAGE_SIZE, size / PAGE_SIZE, this.reachLevel)) : [];
        const r = this.preFault(gpa, size, flags, signalAfter);
        this.last = {
          op: op.op,
          measuredBefore,
          gfn: null,
          request: { gpa, size, flags, signalAfter },
          result: { ok: r.ok, error: r.ok ? null : r.error, gpa: r.gpa, size: r.size },
          before,
          populate: null,
        };
        return r;
      }
      case 'populate': {
        const { gpa, npages } = op.args;
        const r = this.populate(gpa, npages);
        ghost(gpa % PAGE_SIZE === 0 ? gpa / PAGE_SIZE : null);
        this.last!.populate = { gpa, npages, ok: r.ok, error: r.ok ? null : r.error, resGpa: r.gpa, resNpages: r.npages };
        return r;
      }
      case 'setUserMemoryRegion':
        ghost(null);
        return this.setMemoryRegion(op.args.slot, op.args.baseGfn, op.args.npages, op.args.backing ?? '2m', op.args.guestMemfd ?? false);
      case 'finalize':
        ghost(null);
        if (!this.confidential || this.finalized) return { ok: false, error: 'EINVAL' };
        this.finalized = true;
        return { ok: true };
      case 'guestAccess': {
        const { gfn } = op.args;
        ghost(gfn, this.leavesIn(...reachOf(gfn, 1, this.reachLevel)));
        const r = this.guestAccess(gfn);
        this.last!.result = { ok: r.ok, error: r.error ?? null, gpa: gfn * PAGE_SIZE, size: PAGE_SIZE };
        return r;
      }
      case 'setAttributes': {
        ghost(null);
        const { gfn, npages } = op.args;
        // KVM_X86_DEFAULT_VM supports no memory attributes (kvm_supported_mem_attributes() == 0):
        // the ioctl is refused outright (live kernel: ENOTTY, KVM_CAP_MEMORY_ATTRIBUTES 0).
        if (this.config.vmType === 'default') return { ok: false, error: 'ENOTTY' };
        if (this.rangeBad(gfn, npages)) return { ok: false, error: 'EINVAL' };
        this.setAttrRange(gfn, gfn + npages, op.args.private);
        this.touch(gfn, gfn + npages);
        // kvm_arch_pre_set_memory_attributes: unmap the range; a huge leaf partly inside goes whole.
        this.zapRange(gfn, gfn + npages);
        return { ok: true };
      }
      case 'zap':
        ghost(null);
        if (this.rangeBad(op.args.gfn, op.args.npages)) return { ok: false, error: 'EINVAL' };
        this.zapRange(op.args.gfn, op.args.gfn + op.args.npages);
        return { ok: true };
      case 'mappings':
        ghost(null);
        if (this.rangeBad(op.args.gfn, op.args.npages)) return { ok: false, error: 'EINVAL' };
        return { ok: true, leaves: this.leavesIn(op.args.gfn, op.args.gfn + op.args.npages).map((l) => ({ gfn: l.gfn, size: l.size })) };
      case 'measurement':
        ghost(null);
        return { ok: true, pages: [...this.measured] };
    }
  }

  // -- abstraction function ------------------------------------------------

  private attributes(): AttrRun[] {
    if (this.attrCache === null) {
      const runs: AttrRun[] = [];
      const rs = this.runStart;
      for (let i = 0; i < rs.length; i++) {
        const e = i + 1 < rs.length ? rs[i + 1]! : GFN_LIMIT;
        runs.push({ gfn: rs[i]!, npages: e - rs[i]!, private: this.runPrivate[i]! });
      }
      this.attrCache = runs;
    }
    return this.attrCache;
  }

  private memslots(): Memslot[] {
    this.slotView ??= this.slots.map((s) => s.slot);
    return this.slotView;
  }

  /** The abstraction function from scratch: walk the whole table. */
  view(): View {
    return {
      finalized: this.finalized,
      leaves: this.leavesIn(0, GFN_LIMIT),
      memslots: this.memslots(),
      attributes: this.attributes(),
      measurement: [...this.measured],
      last: this.last,
    };
  }

  /**
   * The live View: the cached leaf list with the dirty range re-read from the
   * table (cost proportional to the leaves changed), and that range as scope.
   */
  liveView(): { view: View; scope: Scope } {
    let scope: Scope = { start: 0, end: 0 };
    if (this.dirtyStart < this.dirtyEnd) {
      const start = Math.max(0, this.dirtyStart);
      const end = Math.min(GFN_LIMIT, this.dirtyEnd);
      scope = { start, end };
      const live = this.liveLeaves;
      const i = firstLeafEndingAfter(live, start);
      let j = i;
      while (j < live.length && live[j]!.gfn < end) j++;
      const fresh = this.leavesIn(start, end);
      if (j - i === 1 && fresh.length === 1) live[i] = fresh[0]!;
      else if (fresh.length < 4096) live.splice(i, j - i, ...fresh);
      // A spread of millions of leaves (a pre-fault of private memory) would overflow the call stack.
      else this.liveLeaves = live.slice(0, i).concat(fresh, live.slice(j));
      this.dirtyStart = Infinity;
      this.dirtyEnd = -Infinity;
    }
    return {
      view: { finalized: this.finalized, leaves: this.liveLeaves, memslots: this.memslots(), attributes: this.attributes(), measurement: this.measured, last: this.last },
      scope,
    };
  }

  counters(): Readonly<Record<string, number>> {
    return { ...this.stats, tablesInUse: this.nrTables - this.freeTables.length };
  }

  fingerprint(): string {
    const v = this.view();
    return JSON.stringify([v.finalized, v.leaves, v.memslots, v.attributes, v.measurement]);
  }
}

export function createImpl(config: PrefaultConfig): PrefaultMmu {
  return new PrefaultMmu(config);
}

/** Re-exported for mutants. */
export type { SlotState };
