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
  LEVEL_OF,
  PAGES_OF_LEVEL,
  PAGE_SIZE,
  SIZE_OF_LEVEL,
  VM_MAX_LEVEL,
  isConfidential,
  firstLeafEndingAfter,
  maxLeafLevel,
  preFaultArgsValid,
  reachOf,
  type AttrRun,
  type LastOp,
  type Leaf,
  type Memslot,
  type PreFaultResult,
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
const ENOENT = 2;
const EINTR = 4;
const EIO = 5;
const EOPNOTSUPP = 95;
const ERRNO_NAME: Readonly<Record<number, string>> = { [ENOENT]: 'ENOENT', [EINTR]: 'EINTR', [EIO]: 'EIO', [EOPNOTSUPP]: 'EOPNOTSUPP' };

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

/** Per-memslot state: bounds, backing level, attribute run-lengths, added-page bitmap. */
interface SlotState {
  readonly slot: Memslot;
  readonly base: number;
  readonly end: number;
  readonly backingLevel: number;
  /** Run starts, ascending, first = base; runs are maximal (neighbours differ). */
  runStart: number[];
  runPrivate: boolean[];
  /** One bit per page: added by populate (allocated on first populate). */
  addedBits: Uint32Array | null;
}

export class PrefaultMmu implements System<PrefaultOp, PrefaultResult, View, Scope> {
  protected finalized = false;
  protected readonly vmMaxLevel: number;
  protected readonly confidential: boolean;
  protected readonly slots: SlotState[];

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
  private readonly reachLevel: number;
  private attrCache: AttrRun[] | null = null;
  private measurementCache: number[] | null = [];

  private stats = { leavesInstalled: 0, pagesCovered: 0, tablesAllocated: 1, chunks: 0 };

  constructor(protected readonly config: PrefaultConfig) {
    this.vmMaxLevel = VM_MAX_LEVEL[config.vmType];
    this.confidential = isConfidential(config.vmType);
    this.reachLevel = maxLeafLevel(config);
    this.slots = config.memslots.map((s) => ({
      slot: s,
      base: s.baseGfn,
      end: s.baseGfn + s.npages,
      backingLevel: LEVEL_OF[s.backing],
      runStart: [s.baseGfn],
      runPrivate: [config.privateByDefault],
      addedBits: null,
    }));
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

  /** Index of the attribute run containing gfn (gfn inside the slot). */
  private runIndex(s: SlotState, gfn: number): number {
    let lo = 0;
    let hi = s.runStart.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (s.runStart[mid]! <= gfn) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  protected isPrivate(s: SlotState, gfn: number): boolean {
    return s.runPrivate[this.runIndex(s, gfn)]!;
  }

  /** Whether [start, end) (inside the slot) has a single attribute: one run covers it, since runs are maximal. */
  protected attrsUniform(s: SlotState, start: number, end: number): boolean {
    const i = this.runIndex(s, start);
    const runEnd = i + 1 < s.runStart.length ? s.runStart[i + 1]! : s.end;
    return runEnd >= end;
  }

  private setAttrRange(s: SlotState, start: number, end: number, priv: boolean): void {
    const starts: number[] = [];
    const privs: boolean[] = [];
    // Pushed in increasing gfn order; a run with its predecessor's attribute merges into it.
    const push = (g: number, p: boolean): void => {
      if (privs.length > 0 && privs[privs.length - 1] === p) return;
      starts.push(g);
      privs.push(p);
    };
    const n = s.runStart.length;
    for (let i = 0; i < n; i++) {
      const rs = s.runStart[i]!;
      const re = i + 1 < n ? s.runStart[i + 1]! : s.end;
      const rp = s.runPrivate[i]!;
      if (re <= start || rs >= end) push(rs, rp);
      else {
        if (rs < start) push(rs, rp);
        push(Math.max(rs, start), priv);
        if (re > end) push(end, rp);
      }
    }
    s.runStart = starts;
    s.runPrivate = privs;
    this.attrCache = null;
  }

  // -- the leaf choice -----------------------------------------------------

  /** Whether the level-aligned block [start, end) lies inside the slot. */
  protected blockFitsSlot(s: SlotState, start: number, end: number): boolean {
    return start >= s.base && end <= s.end;
  }

  /**
   * The largest level for a fault at gfn: capped by the VM type (SNP 2M, TDX
   * 4K), by the slot's host backing and, before a confidential VM is
   * finalized, at 4K; then lowered until the aligned block lies inside the
   * slot and has one attribute.
   */
  protected faultLevel(s: SlotState, gfn: number): number {
    let level = Math.min(this.vmMaxLevel, s.backingLevel);
    if (this.confidential && !this.finalized) level = 1;
    for (; level > 1; level--) {
      const n = PAGES_OF_LEVEL[level]!;
      const start = gfn - (gfn % n);
      if (this.blockFitsSlot(s, start, start + n) && this.attrsUniform(s, start, start + n)) break;
    }
    return level;
  }

  /**
   * Whether a huge leaf is written over an entry that points to a lower table
   * (freeing the table and the smaller leaves in it), as the TDP MMU does.
   */
  protected hugeReplacesTable(): boolean {
    return true;
  }

  /** Map gfn as a read fault would; returns the level of the leaf now covering it. */
  protected mapFault(s: SlotState, gfn: number): number {
    return this.tdpMap(gfn, this.faultLevel(s, gfn), this.isPrivate(s, gfn));
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
    if (s === undefined) return -ENOENT; // no memslot: RET_PF_EMULATE -> -ENOENT
    const level = this.mapFault(s, gfn);
    const n = PAGES_OF_LEVEL[level]!;
    const leafEnd = (gfn - (gfn % n) + n) * PAGE_SIZE;
    return this.chunkAdvance(gpa, size, leafEnd);
  }

  /** kvm_vcpu_pre_fault_memory: argument checks, then chunks until done, a signal, or an error. */
  protected preFault(gpa: number, size: number, flags: number, signalAfter: number | null): PreFaultResult {
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

  protected isAdded(s: SlotState, gfn: number): boolean {
    const off = gfn - s.base;
    return s.addedBits !== null && (s.addedBits[off >>> 5]! & (1 << (off & 31))) !== 0;
  }

  private markAdded(s: SlotState, gfn: number): void {
    s.addedBits ??= new Uint32Array(Math.ceil(s.slot.npages / 32));
    const off = gfn - s.base;
    s.addedBits[off >>> 5] = s.addedBits[off >>> 5]! | (1 << (off & 31));
  }

  /** The level populate maps an added page at: always 4K (the page is added and measured on its own). */
  protected populateLevel(_s: SlotState, _gfn: number, _first: number, _npages: number): number {
    return 1;
  }

  /** Extend the launch measurement with one page (TDH.MR.EXTEND / the SNP launch digest). */
  protected measurePage(gfn: number): void {
    this.measured.push(gfn);
    this.measurementCache = null;
  }

  /**
   * Add one page of the initial image: check it (no memslot or shared: EINVAL;
   * already added: EEXIST), then add, measure and map it. Returns the errno
   * name, or null when added.
   */
  protected addPage(s: SlotState | undefined, g: number, first: number, npages: number): string | null {
    if (s === undefined) return 'EINVAL';
    if (this.isAdded(s, g)) return 'EEXIST';
    if (!this.isPrivate(s, g)) return 'EINVAL';
    this.markAdded(s, g);
    this.measurePage(g);
    const level = this.populateLevel(s, g, first, npages);
    if (this.lookup(g) < level) this.installLeaf(g, level, true);
    return null;
  }

  protected populate(gpa: number, npages: number): PrefaultResult {
    if (!this.confidential || this.finalized) return { ok: false, error: 'EINVAL', gpa };
    if (gpa % PAGE_SIZE !== 0 || npages === 0) return { ok: false, error: 'EINVAL', gpa };
    const first = gpa / PAGE_SIZE;
    for (let g = first; g < first + npages; g++) {
      const error = this.addPage(g < GFN_LIMIT ? this.findSlot(g) : undefined, g, first, npages);
      if (error !== null) return { ok: false, error, gpa: g * PAGE_SIZE };
    }
    return { ok: true };
  }

  /** A guest access: an EPT/NPT violation if the page is unmapped. */
  private guestAccess(gfn: number): PrefaultResult {
    if (this.confidential && !this.finalized) return { ok: false, error: 'EINVAL' };
    const s = gfn < GFN_LIMIT ? this.findSlot(gfn) : undefined;
    if (s === undefined) return { ok: false, error: 'MMIO' };
    // A present mapping does not fault at all.
    if (this.lookup(gfn) === 0) this.mapFault(s, gfn);
    return { ok: true };
  }

  // -- ops -----------------------------------------------------------------

  private rangeBad(gfn: number, npages: number): boolean {
    return npages === 0 || gfn + npages > GFN_LIMIT;
  }

  apply(op: PrefaultOp): PrefaultResult {
    const measuredBefore = this.measured.length;
    const ghost = (gfn: number | null, before: Leaf[] = []): void => {
      this.last = { op: op.op, measuredBefore, gfn, request: null, result: null, before };
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
        };
        return r;
      }
      case 'populate':
        ghost(op.args.gpa % PAGE_SIZE === 0 ? op.args.gpa / PAGE_SIZE : null);
        return this.populate(op.args.gpa, op.args.npages);
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
        if (this.rangeBad(gfn, npages)) return { ok: false, error: 'EINVAL' };
        // KVM_X86_DEFAULT_VM supports no memory attributes (kvm_supported_mem_attributes() == 0).
        if (op.args.private && this.config.vmType === 'default') return { ok: false, error: 'EINVAL' };
        for (const s of this.slots) {
          const a = Math.max(gfn, s.base);
          const b = Math.min(gfn + npages, s.end);
          if (a < b) this.setAttrRange(s, a, b, op.args.private);
        }
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
      for (const s of this.slots) {
        for (let i = 0; i < s.runStart.length; i++) {
          const g = s.runStart[i]!;
          const e = i + 1 < s.runStart.length ? s.runStart[i + 1]! : s.end;
          runs.push({ gfn: g, npages: e - g, private: s.runPrivate[i]! });
        }
      }
      this.attrCache = runs;
    }
    return this.attrCache;
  }

  /** The abstraction function from scratch: walk the whole table. */
  view(): View {
    return {
      finalized: this.finalized,
      leaves: this.leavesIn(0, GFN_LIMIT),
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
      else live.splice(i, j - i, ...fresh);
      this.dirtyStart = Infinity;
      this.dirtyEnd = -Infinity;
    }
    this.measurementCache ??= [...this.measured];
    return {
      view: { finalized: this.finalized, leaves: this.liveLeaves, attributes: this.attributes(), measurement: this.measurementCache, last: this.last },
      scope,
    };
  }

  counters(): Readonly<Record<string, number>> {
    return { ...this.stats, tablesInUse: this.nrTables - this.freeTables.length };
  }

  fingerprint(): string {
    const v = this.view();
    return JSON.stringify([v.finalized, v.leaves, v.attributes, v.measurement]);
  }
}

export function createImpl(config: PrefaultConfig): PrefaultMmu {
  return new PrefaultMmu(config);
}

/** Re-exported for mutants. */
export type { SlotState };
