/**
 * Reference model of the `prefault` domain: the simplest code that obeys the
 * spec. State is per 4 KiB page: a map from gfn to the leaf covering it, the
 * VM's attribute overrides as a list of ranges, the set of pages in the
 * launch image and its order, and the live memslots as a plain list. A fault
 * tries the levels from the largest down and checks each rule page by page.
 * Slow for huge leaves (a 1 GiB leaf is 262144 page steps), by design.
 */
import { dispatch, type OpHandlers, type System } from '../../harness/domain';
import {
  GFN_LIMIT,
  KVM_MEM_MAX_NR_PAGES,
  KVM_USER_MEM_SLOTS,
  LEVEL_OF,
  MEMSLOT_PAGES_BUDGET,
  PAGES_OF_LEVEL,
  PAGE_SIZE,
  SHARED_MAX_LEVEL,
  SIZE_OF_LEVEL,
  isConfidential,
  firstLeafEndingAfter,
  leavesIn,
  maxLeafLevel,
  pagesOf,
  preFaultArgsValid,
  reachOf,
  type AttrRun,
  type GhostResult,
  type LastOp,
  type Leaf,
  type Memslot,
  type PopulateResult,
  type PreFaultCallResult,
  type PrefaultConfig,
  type PrefaultOp,
  type PrefaultResult,
  type Scope,
  type View,
} from '../../spec/prefault/types';

/** gfn -> leaf, stored in 512-page chunks (a single Map would exceed V8's 2^24-entry limit at 64 GiB). */
class PageMap {
  private readonly chunks = new Map<number, (Leaf | undefined)[]>();
  get(gfn: number): Leaf | undefined {
    return this.chunks.get(Math.floor(gfn / 512))?.[gfn % 512];
  }
  /** Set every page of [start, end) (looking each 512-page chunk up once). */
  fill(start: number, end: number, leaf: Leaf | undefined): void {
    for (let p = start; p < end; ) {
      const k = Math.floor(p / 512);
      let c = this.chunks.get(k);
      if (c === undefined) {
        if (leaf === undefined) {
          p = (k + 1) * 512;
          continue;
        }
        c = new Array<Leaf | undefined>(512);
        this.chunks.set(k, c);
      }
      const stop = Math.min(end, (k + 1) * 512);
      for (; p < stop; p++) c[p % 512] = leaf;
      // Drop chunks that no longer map anything, so memory follows the mapped pages.
      if (leaf === undefined && c.every((l) => l === undefined)) this.chunks.delete(k);
    }
  }
  /** The leaves overlapping [start, end), in gfn order (a leaf covering `start` included). */
  leavesIn(start: number, end: number): Leaf[] {
    const out: Leaf[] = [];
    for (let p = start; p < end; ) {
      const c = this.chunks.get(Math.floor(p / 512));
      if (c === undefined) {
        p = (Math.floor(p / 512) + 1) * 512;
        continue;
      }
      const l = c[p % 512];
      if (l === undefined) {
        p++;
        continue;
      }
      out.push(l);
      p = l.gfn + pagesOf(l.size);
    }
    return out;
  }
  /**
   * Every distinct leaf (found at its first page), skipping over the pages a
   * leaf covers: the cost is chunks + leaves, not mapped pages.
   */
  leaves(): Leaf[] {
    const out: Leaf[] = [];
    for (const [k, c] of this.chunks) {
      for (let i = 0; i < 512; ) {
        const l = c[i];
        if (l === undefined) {
          i++;
          continue;
        }
        if (l.gfn === k * 512 + i) out.push(l);
        i = Math.min(512, l.gfn + pagesOf(l.size) - k * 512);
      }
    }
    return out.sort((a, b) => a.gfn - b.gfn);
  }
}

/** One KVM_SET_MEMORY_ATTRIBUTES call as the model remembers it. */
interface AttrSet {
  readonly start: number;
  readonly end: number;
  readonly private: boolean;
}

export class PrefaultModel implements System<PrefaultOp, PrefaultResult, View, Scope> {
  private finalized = false;
  private readonly pages = new PageMap();
  /** The live memslots (order irrelevant here: lookups scan them all). */
  private slots: Memslot[];
  /**
   * The VM's attributes: disjoint ranges set by KVM_SET_MEMORY_ATTRIBUTES,
   * sorted by start, each overriding the default (privateByDefault) over
   * [start, end).
   */
  private attrSets: AttrSet[] = [];
  /** The launch image: pages added by populate, and the order they were added in. */
  private readonly added = new Set<number>();
  private readonly measured: number[] = [];
  private last: LastOp | null = null;
  /**
   * The leaves in gfn order, kept up to date by install/zap (the live View);
   * `view()` recomputes them from the page map instead, so the harness can
   * compare the two.
   */
  private leafList: Leaf[] = [];
  /**
   * The range installs changed since leafList was last brought up to date:
   * leafList is re-read from the page map over it when next needed, once per
   * op rather than one splice per installed leaf.
   */
  private staleStart = Infinity;
  private staleEnd = -Infinity;
  private attrCache: AttrRun[] | null = null;
  private slotCache: Memslot[] | null = null;
  /** The gfn range changed since the last liveView(). */
  private dirtyStart = Infinity;
  private dirtyEnd = -Infinity;
  private leavesInstalled = 0;
  private pageSteps = 0;

  constructor(private readonly config: PrefaultConfig) {
    this.slots = config.memslots.map((s) => ({ ...s }));
  }

  private touch(start: number, end: number): void {
    this.dirtyStart = Math.min(this.dirtyStart, start);
    this.dirtyEnd = Math.max(this.dirtyEnd, end);
  }

  // -- memslots and attributes, plainly -------------------------------------

  private slotOf(gfn: number): Memslot | undefined {
    return this.slots.find((s) => gfn >= s.baseGfn && gfn < s.baseGfn + s.npages);
  }

  /** The VM's attribute of gfn: the set covering it, else the default (beyond the GFN space: shared). */
  private isPrivate(gfn: number): boolean {
    if (gfn >= GFN_LIMIT) return false;
    // attrSets is sorted by start and disjoint: the last set starting at or before gfn is the only candidate.
    let lo = 0;
    let hi = this.attrSets.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.attrSets[mid]!.start <= gfn) lo = mid + 1;
      else hi = mid - 1;
    }
    const a = this.attrSets[hi];
    return a !== undefined && gfn < a.end ? a.private : this.config.privateByDefault;
  }

  /**
   * Every page of [start, end) shared: no private set overlaps it and, when
   * memory is private by default, shared sets cover it without a gap. (The
   * range form of asking isPrivate of each page: the same answer, without a
   * binary search per page of a 1 GiB block.)
   */
  private allShared(start: number, end: number): boolean {
    if (start >= GFN_LIMIT) return true;
    let covered = start;
    for (const a of this.attrSets) {
      if (a.end <= start) continue;
      if (a.start >= end) break;
      if (a.private) return false;
      if (a.start > covered && this.config.privateByDefault) return false;
      covered = Math.max(covered, a.end);
    }
    return !this.config.privateByDefault || covered >= Math.min(end, GFN_LIMIT);
  }

  private setAttrs(start: number, end: number, priv: boolean): void {
    const kept: AttrSet[] = [];
    for (const a of this.attrSets) {
      if (a.end <= start || a.start >= end) kept.push(a);
      else {
        if (a.start < start) kept.push({ start: a.start, end: start, private: a.private });
        if (a.end > end) kept.push({ start: end, end: a.end, private: a.private });
      }
    }
    kept.push({ start, end, private: priv });
    this.attrSets = kept.sort((a, b) => a.start - b.start);
    this.attrCache = null;
  }

  private prefaultAllowed(): boolean {
    return !isConfidential(this.config.vmType) || this.finalized;
  }

  // -- the leaf choice, page by page ----------------------------------------

  /**
   * The largest level whose block passes every rule: private memory 4 KiB
   * (guest_memfd's order-0 folios); shared memory up to 1 GiB, no larger
   * than the slot's backing, the block inside gfn's memslot, every page of
   * it shared.
   */
  private chooseLevel(gfn: number, slot: Memslot): number {
    if (this.isPrivate(gfn)) return 1;
    for (let level = SHARED_MAX_LEVEL; level > 1; level--) {
      if (level > LEVEL_OF[slot.backing]) continue;
      const n = PAGES_OF_LEVEL[level]!;
      const start = Math.floor(gfn / n) * n;
      // Every page of the block must be in gfn's memslot, and be shared.
      const inSlot = start >= slot.baseGfn && start + n <= slot.baseGfn + slot.npages;
      this.pageSteps += n;
      if (inSlot && this.allShared(start, start + n)) return level;
    }
    return 1;
  }

  private install(gfn: number, level: number, priv: boolean): void {
    const n = PAGES_OF_LEVEL[level]!;
    const start = Math.floor(gfn / n) * n;
    const leaf: Leaf = { gfn: start, size: SIZE_OF_LEVEL[level]!, private: priv };
    this.pages.fill(start, start + n, leaf);
    this.pageSteps += n;
    this.staleStart = Math.min(this.staleStart, start);
    this.staleEnd = Math.max(this.staleEnd, start + n);
    this.touch(start, start + n);
    this.leavesInstalled++;
  }

  /**
   * A fault at gfn: private memory needs a guest_memfd memslot
   * (kvm_faultin_pfn_private, kvm_handle_noslot_fault: EFAULT); shared memory
   * outside memslots is MMIO (RET_PF_EMULATE). Otherwise keep the leaf if it
   * already has the chosen level, else map the chosen block.
   */
  private fault(gfn: number): Leaf | 'EFAULT' | 'NOSLOT' {
    const slot = this.slotOf(gfn);
    const priv = this.isPrivate(gfn);
    if (priv && (slot === undefined || !slot.guestMemfd)) return 'EFAULT';
    if (slot === undefined) return 'NOSLOT';
    const level = this.chooseLevel(gfn, slot);
    const cur = this.pages.get(gfn);
    if (cur === undefined || LEVEL_OF[cur.size] < level) this.install(gfn, level, priv);
    return this.pages.get(gfn)!;
  }

  /** The leaves in gfn order, re-read from the page map over the range installs changed. */
  private leaves(): Leaf[] {
    if (this.staleStart < this.staleEnd) {
      const list = this.leafList;
      const i = firstLeafEndingAfter(list, this.staleStart);
      let j = i;
      while (j < list.length && list[j]!.gfn < this.staleEnd) j++;
      // concat, not splice(...fresh): a pre-fault of private memory can install millions of leaves at once.
      this.leafList = list.slice(0, i).concat(this.pages.leavesIn(this.staleStart, this.staleEnd), list.slice(j));
      this.staleStart = Infinity;
      this.staleEnd = -Infinity;
    }
    return this.leafList;
  }

  private zapRange(gfn: number, npages: number): void {
    this.leaves();
    const i = firstLeafEndingAfter(this.leafList, gfn);
    let j = i;
    while (j < this.leafList.length && this.leafList[j]!.gfn < gfn + npages) j++;
    for (const l of this.leafList.slice(i, j)) {
      this.pages.fill(l.gfn, l.gfn + pagesOf(l.size), undefined);
      this.pageSteps += pagesOf(l.size);
      this.touch(l.gfn, l.gfn + pagesOf(l.size));
    }
    this.leafList.splice(i, j - i);
  }

  private rangeBad(gfn: number, npages: number): boolean {
    return npages === 0 || gfn + npages > GFN_LIMIT;
  }

  // -- ops ---------------------------------------------------------------

  /** The op being applied and the measurement's length before it (for the ghost record). */
  private current: { op: PrefaultOp['op']; measuredBefore: number } = { op: 'measurement', measuredBefore: 0 };

  /** Record what the invariants need to know about this op. */
  private ghost(extra: Partial<LastOp>): void {
    this.last = { op: this.current.op, measuredBefore: this.current.measuredBefore, gfn: null, request: null, result: null, before: [], populate: null, ...extra };
  }

  /** One handler per op (see OpHandlers: exhaustive, and cheaper per call than a ts-pattern chain). */
  private readonly handlers: OpHandlers<PrefaultOp, PrefaultResult> = {
    preFault: ({ gpa, size, flags, signalAfter }) => {
      const signal = signalAfter ?? null;
      const before = preFaultArgsValid(gpa, size, flags) ? leavesIn(this.leaves(), ...reachOf(gpa / PAGE_SIZE, size / PAGE_SIZE, maxLeafLevel(this.slots))) : [];
      const r = this.preFault(gpa, size, flags, signal);
      const result: GhostResult = { ok: r.ok, error: r.ok ? null : r.error, gpa: r.gpa, size: r.size };
      this.ghost({ request: { gpa, size, flags, signalAfter: signal }, result, before });
      return r;
    },
    populate: ({ gpa, npages }) => {
      const r = this.populate(gpa, npages);
      this.ghost({
        gfn: gpa % PAGE_SIZE === 0 ? gpa / PAGE_SIZE : null,
        populate: { gpa, npages, ok: r.ok, error: r.ok ? null : r.error, resGpa: r.gpa, resNpages: r.npages },
      });
      return r;
    },
    setUserMemoryRegion: ({ slot, baseGfn, npages, backing, guestMemfd }) => {
      this.ghost({});
      return this.setMemoryRegion(slot, baseGfn, npages, backing ?? '2m', guestMemfd ?? false);
    },
    finalize: () => {
      this.ghost({});
      if (!isConfidential(this.config.vmType) || this.finalized) return { ok: false, error: 'EINVAL' };
      this.finalized = true;
      return { ok: true };
    },
    guestAccess: ({ gfn }) => {
      this.ghost({ gfn, before: leavesIn(this.leaves(), ...reachOf(gfn, 1, maxLeafLevel(this.slots))) });
      const r = this.guestAccess(gfn);
      this.last!.result = { ok: r.ok, error: r.error ?? null, gpa: gfn * PAGE_SIZE, size: PAGE_SIZE };
      return r;
    },
    setAttributes: ({ gfn, npages, private: priv }) => {
      this.ghost({});
      // A default VM supports no memory attributes: the ioctl itself is refused (live kernel: ENOTTY).
      if (this.config.vmType === 'default') return { ok: false, error: 'ENOTTY' };
      if (this.rangeBad(gfn, npages)) return { ok: false, error: 'EINVAL' };
      this.setAttrs(gfn, gfn + npages, priv);
      this.touch(gfn, gfn + npages);
      this.zapRange(gfn, npages);
      return { ok: true };
    },
    zap: ({ gfn, npages }) => {
      this.ghost({});
      if (this.rangeBad(gfn, npages)) return { ok: false, error: 'EINVAL' };
      this.zapRange(gfn, npages);
      return { ok: true };
    },
    mappings: ({ gfn, npages }) => {
      this.ghost({});
      if (this.rangeBad(gfn, npages)) return { ok: false, error: 'EINVAL' };
      return { ok: true, leaves: leavesIn(this.leaves(), gfn, gfn + npages).map((l) => ({ gfn: l.gfn, size: l.size })) };
    },
    measurement: () => {
      this.ghost({});
      return { ok: true, pages: [...this.measured] };
    },
  };

  apply(op: PrefaultOp): PrefaultResult {
    this.current = { op: op.op, measuredBefore: this.measured.length };
    return dispatch(this.handlers, op);
  }

  /** A guest access: a fault maps the page if nothing does. */
  private guestAccess(gfn: number): PrefaultResult {
    if (isConfidential(this.config.vmType) && !this.finalized) return { ok: false, error: 'EINVAL' };
    if (this.pages.get(gfn) !== undefined) return { ok: true };
    const r = this.fault(gfn);
    if (r === 'EFAULT') return { ok: false, error: 'EFAULT' };
    if (r === 'NOSLOT') return { ok: false, error: 'MMIO' };
    return { ok: true };
  }

  /** KVM_PRE_FAULT_MEMORY: kvm_vcpu_pre_fault_memory's checks and chunk loop. */
  private preFault(gpa: number, size: number, flags: number, signalAfter: number | null): PreFaultCallResult {
    if (!preFaultArgsValid(gpa, size, flags)) return { ok: false, error: 'EINVAL', gpa, size };
    const full = size;
    let error = 'EIO';
    let chunks = 0;
    while (size > 0) {
      if (signalAfter !== null && chunks === signalAfter) {
        error = 'EINTR';
        break;
      }
      if (!this.prefaultAllowed()) {
        error = 'EOPNOTSUPP';
        break;
      }
      const leaf = this.fault(gpa / PAGE_SIZE);
      if (leaf === 'EFAULT' || leaf === 'NOSLOT') {
        error = leaf === 'EFAULT' ? 'EFAULT' : 'ENOENT';
        break;
      }
      const leafEnd = (leaf.gfn + pagesOf(leaf.size)) * PAGE_SIZE;
      const advance = Math.min(size, leafEnd - gpa);
      gpa += advance;
      size -= advance;
      chunks++;
    }
    return size === full ? { ok: false, error, gpa, size } : { ok: true, gpa, size };
  }

  /**
   * The initial image. SNP (snp_launch_update + kvm_gmem_populate +
   * sev_gmem_post_populate): the first page must be in a guest_memfd slot
   * (else EINVAL); the request is cut at that slot's end; each page must be
   * private and not yet added; pages are added and measured but not mapped;
   * an error on the first page is EIO, a later one ends the call with the
   * pages done. TDX (tdx_vcpu_init_mem_region + tdx_gmem_post_populate): page
   * by page, each added, measured and mapped at 4 KiB; the first failure is
   * returned with the range left at the failing page.
   */
  private populate(gpa: number, npages: number): PopulateResult {
    const fail = (error: string, g = gpa, n = npages): PopulateResult => ({ ok: false, error, gpa: g, npages: n });
    const vm = this.config.vmType;
    if (vm !== 'snp' && vm !== 'tdx') return fail('EINVAL');
    if (gpa % PAGE_SIZE !== 0) return fail('EINVAL');
    const first = gpa / PAGE_SIZE;
    /** Why page g cannot be added, or null. */
    const refuse = (g: number): string | null => {
      const s = this.slotOf(g);
      if (s === undefined || !s.guestMemfd) return 'EINVAL';
      if (!this.isPrivate(g)) return 'EINVAL';
      if (this.added.has(g)) return vm === 'snp' ? 'EEXIST' : 'EIO';
      return null;
    };
    const add = (g: number): void => {
      this.added.add(g);
      this.measured.push(g);
    };
    if (vm === 'tdx') {
      if (this.finalized || npages === 0) return fail('EINVAL');
      for (let k = 0; k < npages; k++) {
        const g = first + k;
        const why = refuse(g);
        if (why !== null) return fail(why, g * PAGE_SIZE, npages - k);
        add(g);
        this.install(g, 1, true);
      }
      return { ok: true, gpa: (first + npages) * PAGE_SIZE, npages: 0 };
    }
    const slot = this.slotOf(first);
    if (slot === undefined || !slot.guestMemfd) return fail('EINVAL');
    // After LAUNCH_FINISH the firmware refuses LAUNCH_UPDATE; npages 0 trips kvm_gmem_populate's WARN (-EINVAL): both EIO.
    if (this.finalized || npages === 0) return fail('EIO');
    const todo = Math.min(npages, slot.baseGfn + slot.npages - first);
    let done = 0;
    while (done < todo && refuse(first + done) === null) add(first + done++);
    if (done === 0) return fail('EIO');
    return { ok: true, gpa: (first + done) * PAGE_SIZE, npages: npages - done };
  }

  /** KVM_SET_USER_MEMORY_REGION2, in kvm_set_memory_region's order. */
  private setMemoryRegion(id: number, baseGfn: number, npages: number, backing: Memslot['backing'], guestMemfd: boolean): PrefaultResult {
    const bad = { ok: false, error: 'EINVAL' } as const;
    if (id >= KVM_USER_MEM_SLOTS || npages > KVM_MEM_MAX_NR_PAGES) return bad;
    const old = this.slots.find((s) => s.id === id);
    const overlaps = (): boolean => this.slots.some((s) => s.id !== id && s.baseGfn < baseGfn + npages && baseGfn < s.baseGfn + s.npages);
    const drop = (s: Memslot): void => {
      this.zapRange(s.baseGfn, s.npages);
      this.touch(s.baseGfn, s.baseGfn + s.npages);
    };
    if (npages === 0) {
      if (old === undefined) return bad;
      drop(old);
      this.slots = this.slots.filter((s) => s !== old);
      this.slotCache = null;
      return { ok: true };
    }
    if (old !== undefined) {
      // guest_memfd slots are immutable (only deletion); size and host mapping cannot change.
      if (guestMemfd || old.guestMemfd || npages !== old.npages || backing !== old.backing) return bad;
      if (baseGfn === old.baseGfn) return { ok: true };
      if (overlaps()) return { ok: false, error: 'EEXIST' };
      if (baseGfn + npages > GFN_LIMIT) return bad;
      drop(old);
      this.slots = this.slots.map((s) => (s === old ? { ...s, baseGfn } : s));
      this.touch(baseGfn, baseGfn + npages);
      this.slotCache = null;
      return { ok: true };
    }
    if (overlaps()) return { ok: false, error: 'EEXIST' };
    if (baseGfn + npages > GFN_LIMIT) return bad;
    if (this.slots.reduce((n, s) => n + s.npages, 0) + npages > MEMSLOT_PAGES_BUDGET) return { ok: false, error: 'ENOMEM' };
    this.slots.push({ id, baseGfn, npages, backing, guestMemfd });
    this.touch(baseGfn, baseGfn + npages);
    this.slotCache = null;
    return { ok: true };
  }

  // -- abstraction ---------------------------------------------------------

  /** Maximal alternating runs over [0, GFN_LIMIT), from the attribute sets. */
  private attributes(): AttrRun[] {
    if (this.attrCache !== null) return this.attrCache;
    const sets = this.attrSets;
    const runs: AttrRun[] = [];
    const push = (gfn: number, end: number, priv: boolean): void => {
      if (gfn >= end) return;
      const p = runs[runs.length - 1];
      if (p !== undefined && p.private === priv) runs[runs.length - 1] = { gfn: p.gfn, npages: end - p.gfn, private: priv };
      else runs.push({ gfn, npages: end - gfn, private: priv });
    };
    let g = 0;
    for (const a of sets) {
      push(g, a.start, this.config.privateByDefault);
      push(a.start, a.end, a.private);
      g = a.end;
    }
    push(g, GFN_LIMIT, this.config.privateByDefault);
    this.attrCache = runs;
    return runs;
  }

  private memslots(): Memslot[] {
    this.slotCache ??= [...this.slots].sort((a, b) => a.baseGfn - b.baseGfn);
    return this.slotCache;
  }

  /** The abstraction from scratch: leaves read off the page map. */
  view(): View {
    return {
      finalized: this.finalized,
      leaves: this.pages.leaves(),
      memslots: this.memslots(),
      attributes: this.attributes(),
      measurement: [...this.measured],
      last: this.last,
    };
  }

  /**
   * The live View (valid until the next apply) and the gfn range changed
   * since the previous call. The measurement is the model's own append-only
   * list (the invariants look at what the op appended, from `measuredBefore`).
   */
  liveView(): { view: View; scope: Scope } {
    const scope = this.dirtyStart < this.dirtyEnd ? { start: this.dirtyStart, end: this.dirtyEnd } : { start: 0, end: 0 };
    this.dirtyStart = Infinity;
    this.dirtyEnd = -Infinity;
    return {
      view: { finalized: this.finalized, leaves: this.leaves(), memslots: this.memslots(), attributes: this.attributes(), measurement: this.measured, last: this.last },
      scope,
    };
  }

  counters(): Readonly<Record<string, number>> {
    return { leavesInstalled: this.leavesInstalled, pageSteps: this.pageSteps };
  }

  fingerprint(): string {
    const v = this.view();
    return JSON.stringify([v.finalized, v.leaves, v.memslots, v.attributes, v.measurement]);
  }
}

export function createModel(config: PrefaultConfig): PrefaultModel {
  return new PrefaultModel(config);
}
