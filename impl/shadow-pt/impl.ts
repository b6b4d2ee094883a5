/**
 * shadow-pt optimized implementation: lguest's shadow page tables
 * (drivers/lguest/page_tables.c, seed 004) with kernel data structures and
 * without the seed's cost.
 *
 *  - Top levels: one contiguous typed array of `pgdirSlots * PTRS_PER_PGD`
 *    packed entries (like consecutive pgdir pages), one page per slot.
 *  - Table pages (PTE pages, and PMD pages with PAE) come from a pool of
 *    recycled pages; an entry that points to one holds its pool frame.
 *  - Entries are packed x86 words: frame * 4096 + flags. Without PAE they live
 *    in Uint32Arrays (32-bit entries, frames below 2^20). With PAE they are
 *    64-bit; we keep them in Float64Arrays as exact integers below 2^53
 *    (frame below 2^41): the low 12 flag bits are read with `& 0xfff` (ToInt32
 *    keeps them), the frame with an exact division. One array type per table,
 *    no two-word juggling, and NX (bit 63) is not modelled.
 *  - Every table page keeps a dense list of its present indices (with a
 *    position array for O(1) removal), so release and flush visit only present
 *    entries: the seed walks all 1024 PTEs of every PGD entry it drops.
 *  - Per-entry shadow metadata next to each PTE page (the guest PTE it was made
 *    from, the top level it came from, the kernel-change generation), as KVM
 *    keeps `sp->gfns` beside a shadow page: it feeds the abstraction function.
 *  - Host page references: an Int32Array indexed by host frame.
 *  - The slot of a guest top level: a Map (the seed scans `pgdirs[]`).
 *
 * The steps a known bug changes are protected methods, so that a mutant is a
 * small subclass (properties/shadow-pt/mutants.ts).
 */
import type { System } from '../../harness/domain';
import { copyStateInto } from '../../harness/clone';
import {
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_GLOBAL,
  _PAGE_PRESENT,
  _PAGE_PSE,
  _PAGE_RW,
  _PAGE_TABLE,
  _PAGE_USER,
  DEAD,
  EBUSY,
  EFAULT,
  EINVAL,
  ERR_USER,
  ERR_WRITE,
  OK,
  PAGE_SIZE,
  PTE_FLAGS_MASK,
  Reason,
  SWITCHER_CODE_FLAGS,
  SWITCHER_REGS_FLAGS,
  SWITCHER_RO_FLAGS,
  emptyScope,
  emptyView,
  entryFlags,
  entryFrame,
  geometry,
  hostFrames,
  killed,
  ownerKey,
  regsPfn,
  spteKey,
  switcherPfn,
  toldKey,
  type Config,
  type Geometry,
  type Op,
  type Result,
  type Scope,
  type View,
  copyScope,
  copyView,
} from '../../spec/shadow-pt/types';

type Entries = Uint32Array | Float64Array;

/** A shadow table page (PTE page, or PMD page with PAE) and its bookkeeping. */
export class TablePage {
  /** Allocation id (the View's table page id): a new one at every allocation. */
  id = 0;
  slot = 0;
  /** The table entry pointing here: `slot:g<i>` or `slot:g<i>:m<j>`. */
  owner = '';
  /** 2: PMD page (PAE); 1: PTE page. */
  level = 1;
  /** First virtual page this table covers. */
  baseVpage = 0;
  /** Present indices, dense, and each index's position in `list` (-1: not present). */
  readonly list: Uint16Array;
  readonly pos: Int16Array;
  n = 0;
  readonly ent: Entries;
  /** Per-entry metadata of PTE pages: guest PTE made from, top level read from, kernel generation. */
  readonly gpte: Float64Array;
  readonly from: Float64Array;
  readonly gen: Float64Array;

  constructor(readonly frame: number, entries: number, pae: boolean) {
    this.list = new Uint16Array(entries);
    this.pos = new Int16Array(entries).fill(-1);
    this.ent = pae ? new Float64Array(entries) : new Uint32Array(entries);
    this.gpte = new Float64Array(entries);
    this.from = new Float64Array(entries);
    this.gen = new Float64Array(entries);
  }

  markPresent(i: number): void {
    if (this.pos[i]! >= 0) return;
    this.pos[i] = this.n;
    this.list[this.n++] = i;
  }
  markAbsent(i: number): void {
    const p = this.pos[i]!;
    if (p < 0) return;
    const last = this.list[--this.n]!;
    this.list[p] = last;
    this.pos[last] = p;
    this.pos[i] = -1;
  }
}

type Fault = true | false | string;

/** Virtual pages in the 32-bit address space: entry codes are slot * VPAGES + vpage. */
const VPAGES = 1 << 20;

export class ShadowPtImpl implements System<Op, Result, View, Scope> {
  protected readonly g: Geometry;
  /** Virtual pages per top-level entry, and per PMD entry with PAE. */
  protected readonly pagesPerTop: number;
  protected readonly pagesPerMid: number;
  protected readonly topShift: number; // vpage >>> topShift = top index
  protected readonly switcherVpage: number;
  protected readonly switcherTop: number;

  // Top levels (the seed's pgdirs[]).
  protected readonly pgd: Entries;
  protected readonly pgdList: Uint16Array;
  protected readonly pgdPos: Int16Array;
  protected readonly pgdN: Int32Array;
  protected readonly slotInUse: Uint8Array;
  protected readonly slotGpgdir: Float64Array;
  protected readonly switcherMapped: Uint8Array;
  protected readonly lastHostCpu: Int32Array;
  protected readonly slotOf = new Map<number, number>();
  protected cpuPgd = 0;

  // Table page pool.
  protected readonly pool: TablePage[] = [];
  protected readonly freeFrames: number[] = [];
  protected readonly allocated = new Set<TablePage>();
  protected nextTableId = 1;

  // Host page references above base, and present shadow PTEs mapping each page
  // (page->_mapcount), by (pfn - hostBase).
  protected readonly refcount: Int32Array;
  protected readonly mapcount: Int32Array;
  protected readonly nonzeroRefs = new Set<number>();
  protected readonly underflow = new Map<number, number>();

  // Guest memory: page-table words by guest frame.
  protected readonly guestMem = new Map<number, Entries>();
  protected readonly readOnly: Set<number>;

  protected readonly kernelGen = new Map<number, number>();
  /**
   * What the host last learnt of each guest PTE (the View's `told`), keyed by
   * top-level frame * 2^20 + vpage: top levels are guest pages, so the key
   * stays below 2^40.
   */
  protected readonly told = new Map<number, number>();
  private readonly touchedTold: number[] = [];
  protected kernelAddress = 0;
  protected kernelPage = 0;
  protected initialized = false;
  protected linearPages = true;
  protected dead = false;
  protected destroyed = false;
  protected stackVaddr = 0;
  protected stackPages = 0;

  protected readonly live: View = emptyView();
  protected scope: Scope = emptyScope();
  /** Entries (slot * 2^20 + vpage) and host frames touched since the last liveView(). */
  private readonly touchedEntries: number[] = [];
  private readonly touchedPfns: number[] = [];
  private logOverflow = false;
  private liveGen = 0;
  private readonly pfnStamp: Int32Array;
  /** Touched-entry log limit before the live View is rebuilt instead. */
  protected logLimit = 1 << 20;
  protected visited = 0;

  constructor(protected readonly c: Config) {
    const g = (this.g = geometry(c));
    this.pagesPerTop = 2 ** (g.pgdirShift - 12);
    this.pagesPerMid = 2 ** (g.pmdShift - 12);
    this.topShift = g.pgdirShift - 12;
    this.switcherVpage = c.switcherAddr / PAGE_SIZE;
    this.switcherTop = this.switcherVpage >>> this.topShift;
    const n = c.pgdirSlots * g.ptrsPerPgd;
    this.pgd = g.pae ? new Float64Array(n) : new Uint32Array(n);
    this.pgdList = new Uint16Array(n);
    this.pgdPos = new Int16Array(n).fill(-1);
    this.pgdN = new Int32Array(c.pgdirSlots);
    this.slotInUse = new Uint8Array(c.pgdirSlots);
    this.slotGpgdir = new Float64Array(c.pgdirSlots);
    this.switcherMapped = new Uint8Array(c.pgdirSlots);
    this.lastHostCpu = new Int32Array(c.pgdirSlots).fill(-1);
    this.refcount = new Int32Array(hostFrames(c));
    this.mapcount = new Int32Array(hostFrames(c));
    this.pfnStamp = new Int32Array(hostFrames(c));
    this.readOnly = new Set(c.readOnlyPages);
    // H:500 init_guest_pagetable: slot 0 for "top level 0", linear, Switcher mapped.
    this.newSlot(0, 0);
    this.allocateSwitcherMapping(0);
  }

  // ---- System --------------------------------------------------------------

  /**
   * A copy of the whole state, for exploration (which restores one snapshot
   * per op tried at a state). Faster than the generic deep copy: restore
   * writes back into this system's own typed arrays and pooled table pages
   * instead of allocating new ones. Fields a subclass (a mutant) adds are
   * copied generically, so no state is left behind.
   */
  snapshot(): object {
    const snap: ImplSnapshot = {
      pgd: this.pgd.slice(),
      pgdList: this.pgdList.slice(),
      pgdPos: this.pgdPos.slice(),
      pgdN: this.pgdN.slice(),
      slotInUse: this.slotInUse.slice(),
      slotGpgdir: this.slotGpgdir.slice(),
      switcherMapped: this.switcherMapped.slice(),
      lastHostCpu: this.lastHostCpu.slice(),
      refcount: this.refcount.slice(),
      mapcount: this.mapcount.slice(),
      pfnStamp: this.pfnStamp.slice(),
      slotOf: new Map(this.slotOf),
      pages: this.pool.map((p) => ({
        id: p.id,
        slot: p.slot,
        owner: p.owner,
        level: p.level,
        baseVpage: p.baseVpage,
        n: p.n,
        list: p.list.slice(),
        pos: p.pos.slice(),
        ent: p.ent.slice(),
        gpte: p.gpte.slice(),
        from: p.from.slice(),
        gen: p.gen.slice(),
        allocated: this.allocated.has(p),
      })),
      freeFrames: this.freeFrames.slice(),
      nonzeroRefs: new Set(this.nonzeroRefs),
      underflow: new Map(this.underflow),
      guestMem: new Map([...this.guestMem].map(([gfn, page]) => [gfn, page.slice()])),
      kernelGen: new Map(this.kernelGen),
      told: new Map(this.told),
      touchedTold: this.touchedTold.slice(),
      touchedEntries: this.touchedEntries.slice(),
      touchedPfns: this.touchedPfns.slice(),
      live: copyView(this.live),
      scope: copyScope(this.scope),
      scalars: {
        cpuPgd: this.cpuPgd,
        nextTableId: this.nextTableId,
        kernelAddress: this.kernelAddress,
        kernelPage: this.kernelPage,
        initialized: this.initialized,
        linearPages: this.linearPages,
        dead: this.dead,
        destroyed: this.destroyed,
        stackVaddr: this.stackVaddr,
        stackPages: this.stackPages,
        logOverflow: this.logOverflow,
        liveGen: this.liveGen,
        logLimit: this.logLimit,
        visited: this.visited,
      },
      extra: copyStateInto<object>({}, this.extraFields()),
    };
    return snap;
  }

  restore(snapshot: object): void {
    const s = snapshot as ImplSnapshot;
    this.pgd.set(s.pgd);
    this.pgdList.set(s.pgdList);
    this.pgdPos.set(s.pgdPos);
    this.pgdN.set(s.pgdN);
    this.slotInUse.set(s.slotInUse);
    this.slotGpgdir.set(s.slotGpgdir);
    this.switcherMapped.set(s.switcherMapped);
    this.lastHostCpu.set(s.lastHostCpu);
    this.refcount.set(s.refcount);
    this.mapcount.set(s.mapcount);
    this.pfnStamp.set(s.pfnStamp);
    refill(this.slotOf, s.slotOf);
    // Table pages: pool frame i is this system's own page object i, overwritten.
    this.allocated.clear();
    for (let i = 0; i < s.pages.length; i++) {
      const sp = s.pages[i]!;
      let p = this.pool[i];
      if (!p) this.pool[i] = p = new TablePage(i, this.g.ptrsPerPte, this.g.pae);
      p.id = sp.id;
      p.slot = sp.slot;
      p.owner = sp.owner;
      p.level = sp.level;
      p.baseVpage = sp.baseVpage;
      p.n = sp.n;
      p.list.set(sp.list);
      p.pos.set(sp.pos);
      p.ent.set(sp.ent);
      p.gpte.set(sp.gpte);
      p.from.set(sp.from);
      p.gen.set(sp.gen);
      if (sp.allocated) this.allocated.add(p);
    }
    this.pool.length = s.pages.length;
    this.freeFrames.length = 0;
    this.freeFrames.push(...s.freeFrames);
    this.nonzeroRefs.clear();
    for (const x of s.nonzeroRefs) this.nonzeroRefs.add(x);
    refill(this.underflow, s.underflow);
    for (const gfn of [...this.guestMem.keys()]) if (!s.guestMem.has(gfn)) this.guestMem.delete(gfn);
    for (const [gfn, page] of s.guestMem) {
      const mine = this.guestMem.get(gfn);
      if (mine && mine.length === page.length) mine.set(page);
      else this.guestMem.set(gfn, page.slice());
    }
    refill(this.kernelGen, s.kernelGen);
    refill(this.told, s.told);
    refillArray(this.touchedTold, s.touchedTold);
    refillArray(this.touchedEntries, s.touchedEntries);
    refillArray(this.touchedPfns, s.touchedPfns);
    Object.assign(this.live, copyView(s.live));
    this.scope = copyScope(s.scope);
    Object.assign(this, s.scalars);
    copyStateInto<object>(this, s.extra);
  }

  /** Own data fields this class does not know (a subclass's), for the generic copy. */
  private extraFields(): object {
    const known = ShadowPtImpl.knownFields;
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(this)) {
      const v = (this as unknown as Record<string, unknown>)[k];
      if (!known.has(k) && typeof v !== 'function') out[k] = v;
    }
    return out;
  }

  /** Fields the snapshot copies by hand, or that never change after construction. */
  private static readonly knownFields = new Set([
    'c', 'g', 'pagesPerTop', 'pagesPerMid', 'topShift', 'switcherVpage', 'switcherTop', 'readOnly',
    'pgd', 'pgdList', 'pgdPos', 'pgdN', 'slotInUse', 'slotGpgdir', 'switcherMapped', 'lastHostCpu', 'refcount', 'mapcount', 'pfnStamp',
    'slotOf', 'pool', 'allocated', 'freeFrames', 'nonzeroRefs', 'underflow', 'guestMem', 'kernelGen', 'told',
    'touchedTold', 'touchedEntries', 'touchedPfns', 'live', 'scope',
    'cpuPgd', 'nextTableId', 'kernelAddress', 'kernelPage', 'initialized', 'linearPages', 'dead', 'destroyed',
    'stackVaddr', 'stackPages', 'logOverflow', 'liveGen', 'logLimit', 'visited',
  ]);

  apply(op: Op): Result {
    if (this.dead && op.op !== 'destroy' && op.op !== 'translate' && op.op !== 'hostRefs') return DEAD;
    // A plain switch: this is the hot path of the lockstep run.
    switch (op.op) {
      case 'guestWrite':
        return this.guestWrite(op.args.gpa, op.args.value);
      case 'lguestInit':
        return this.lguestInit(op.args.kernelAddress);
      case 'pageFault': {
        const f = this.demandPage(op.args.vaddr, op.args.errcode);
        return typeof f === 'string' ? this.killGuest(f) : { ok: true, fixed: f };
      }
      case 'setPte':
        return this.guestSetPte(op.args.pgdir, op.args.vaddr, op.args.gpte);
      case 'setPgd':
        return this.guestSetPgd(op.args.pgdir, op.args.idx);
      case 'setPmd':
        return this.g.pae ? this.orKill(this.clearAll()) : EINVAL;
      case 'newPagetable':
        return this.guestNewPagetable(op.args.pgtable, op.args.victim);
      case 'flushUser':
        this.flushUserMappings(this.cpuPgd);
        return OK;
      case 'flushAll':
        return this.orKill(this.clearAll());
      case 'setStack':
        this.stackVaddr = op.args.vaddr;
        this.stackPages = op.args.pages;
        return this.orKill(this.pinStackPages());
      case 'pinPage':
        return this.orKill(this.pinPage(op.args.vaddr));
      case 'runOnCpu':
        return this.mapSwitcherInGuest(op.args.cpu);
      case 'translate':
        return this.translate(op.args.vaddr);
      case 'hostRefs':
        return op.args.gfn >= this.c.guestPages ? EINVAL : { ok: true, refs: this.refcount[op.args.gfn]! };
      case 'destroy':
        return this.destroy();
      default: {
        const never: never = op;
        return never;
      }
    }
  }

  /**
   * The incremental View. Ops only log what they touched (entry codes and
   * host frames, as numbers); the View's records for those are brought up to
   * date here, from the tables themselves, when the harness asks. A system
   * nobody watches pays almost nothing for it; a log that grows past
   * `logLimit` is dropped and the whole View rebuilt (scope: everything).
   */
  liveView(): { view: View; scope: Scope | undefined } {
    const scope = this.scope;
    this.scope = emptyScope();
    const live = this.live;
    if (this.logOverflow) {
      this.logOverflow = false;
      this.touchedEntries.length = 0;
      this.touchedPfns.length = 0;
      this.touchedTold.length = 0;
      Object.assign(live, this.view());
      return { view: live, scope: undefined };
    }
    // One op can touch an entry or a page many times: refresh and report each once.
    const stamp = ++this.liveGen;
    const codes = this.touchedEntries.length > 4 ? new Set(this.touchedEntries) : this.touchedEntries;
    let prev = -1;
    for (const code of codes) {
      if (code === prev) continue;
      prev = code;
      const slot = Math.floor(code / VPAGES);
      const vpage = code - slot * VPAGES;
      const key = spteKey(slot, vpage);
      scope.entries.push(key);
      const page = this.slotInUse[slot] ? this.ptePage(slot, vpage) : undefined;
      const i = page ? vpage - page.baseVpage : 0;
      const e = page ? page.ent[i]! : 0;
      if (e & _PAGE_PRESENT) live.sptes[key] = { pfn: entryFrame(e), flags: entryFlags(e), gpte: page!.gpte[i]!, from: page!.from[i]!, gen: page!.gen[i]! };
      else delete live.sptes[key];
    }
    for (const pfn of this.touchedPfns) {
      const i = pfn - this.c.hostBase;
      if (this.pfnStamp[i] === stamp) continue;
      this.pfnStamp[i] = stamp;
      scope.pfns.push(pfn);
      this.setRec(live.refs, pfn, this.refcount[i] ?? 0);
      this.setRec(live.mapcount, pfn, this.mapcount[i] ?? 0);
      const u = this.underflow.get(pfn);
      if (u !== undefined) live.underflows[pfn] = u;
    }
    this.touchedEntries.length = 0;
    this.touchedPfns.length = 0;
    const told = this.touchedTold.length > 4 ? new Set(this.touchedTold) : this.touchedTold;
    let prevTold = -1;
    const toldScope = (scope.told ??= []);
    for (const code of told) {
      if (code === prevTold) continue;
      prevTold = code;
      const key = this.toldKeyOf(code);
      toldScope.push(key);
      live.told[key] = this.told.get(code)!;
    }
    this.touchedTold.length = 0;
    return { view: live, scope };
  }

  private toldKeyOf(code: number): string {
    const frame = Math.floor(code / VPAGES);
    return toldKey(frame * PAGE_SIZE, code - frame * VPAGES);
  }

  /** The host learns a guest PTE of top level `gpgdir` (told by setPte, or read by a fault). */
  protected tell(gpgdir: number, vpage: number, gpte: number): void {
    const code = (gpgdir / PAGE_SIZE) * VPAGES + vpage;
    this.told.set(code, gpte);
    if (this.touchedTold.length >= this.logLimit) this.logOverflow = true;
    else this.touchedTold.push(code);
  }

  private touchEntry(slot: number, vpage: number): void {
    if (this.touchedEntries.length >= this.logLimit) this.logOverflow = true;
    else this.touchedEntries.push(slot * VPAGES + vpage);
  }
  private touchPfn(pfn: number): void {
    if (this.touchedPfns.length >= this.logLimit) this.logOverflow = true;
    else this.touchedPfns.push(pfn);
  }

  counters(): Readonly<Record<string, number>> {
    return { entriesVisited: this.visited };
  }

  /** The abstraction function, from scratch: walks only what is present. */
  view(): View {
    const v = emptyView();
    v.dead = this.dead;
    v.destroyed = this.destroyed;
    v.linear = this.linearPages;
    v.kernelAddress = this.kernelAddress;
    v.current = this.cpuPgd;
    const P = this.g.ptrsPerPgd;
    for (let s = 0; s < this.c.pgdirSlots; s++) {
      if (!this.slotInUse[s]) continue;
      v.slots[s] = { gpgdir: this.slotGpgdir[s]!, switcherMapped: this.switcherMapped[s] === 1, lastHostCpu: this.lastHostCpu[s]! };
      for (let k = 0; k < this.pgdN[s]!; k++) {
        const i = this.pgdList[s * P + k]!;
        const page = this.pool[entryFrame(this.pgd[s * P + i]!)]!;
        v.tables[page.owner] = page.id;
        if (page.level === 2) {
          for (let m = 0; m < page.n; m++) {
            const child = this.pool[entryFrame(page.ent[page.list[m]!]!)]!;
            v.tables[child.owner] = child.id;
            this.viewPtePage(v, child);
          }
        } else {
          this.viewPtePage(v, page);
        }
      }
    }
    for (const page of this.allocated) v.tablePages[page.id] = page.owner;
    for (const i of this.nonzeroRefs) v.refs[this.c.hostBase + i] = this.refcount[i]!;
    for (const [p, n] of this.underflow) v.underflows[p] = n;
    for (const [vp, n] of this.kernelGen) v.kernelGens[vp] = n;
    for (const [code, g] of this.told) v.told[this.toldKeyOf(code)] = g;
    return v;
  }

  private viewPtePage(v: View, page: TablePage): void {
    for (let m = 0; m < page.n; m++) {
      const i = page.list[m]!;
      const e = page.ent[i]!;
      const pfn = entryFrame(e);
      v.sptes[spteKey(page.slot, page.baseVpage + i)] = { pfn, flags: entryFlags(e), gpte: page.gpte[i]!, from: page.from[i]!, gen: page.gen[i]! };
      v.mapcount[pfn] = (v.mapcount[pfn] ?? 0) + 1;
    }
  }

  // ---- host page references (get_user_pages / put_page) -------------------

  protected getPage(pfn: number): void {
    const i = pfn - this.c.hostBase;
    const n = ++this.refcount[i]!;
    if (n === 1) this.nonzeroRefs.add(i);
    else if (n === 0) this.nonzeroRefs.delete(i);
    this.touchPfn(pfn);
  }

  protected putPage(pfn: number): void {
    const i = pfn - this.c.hostBase;
    this.touchPfn(pfn);
    if (this.refcount[i]! <= 0) {
      // A put that finds no reference above base: recorded, never applied.
      this.underflow.set(pfn, (this.underflow.get(pfn) ?? 0) + 1);
      return;
    }
    const n = --this.refcount[i]!;
    if (n === 0) this.nonzeroRefs.delete(i);
  }

  private setRec(rec: Record<string, number>, k: number, n: number): void {
    if (n === 0) delete rec[k];
    else rec[k] = n;
  }

  // ---- shadow PTEs ----------------------------------------------------------

  /** Write a present entry (no reference taken here); page->_mapcount follows. */
  protected writeSpte(page: TablePage, i: number, pfn: number, flags: number, gpte: number, from: number, gen: number): void {
    const old = page.ent[i]!;
    if (old & _PAGE_PRESENT) {
      this.mapcount[entryFrame(old) - this.c.hostBase]!--;
      this.touchPfn(entryFrame(old));
    }
    page.ent[i] = pfn * PAGE_SIZE + flags;
    page.gpte[i] = gpte;
    page.from[i] = from;
    page.gen[i] = gen;
    page.markPresent(i);
    this.mapcount[pfn - this.c.hostBase]!++;
    this.touchEntry(page.slot, page.baseVpage + i);
    this.touchPfn(pfn);
  }

  /** Install a present entry: takes one reference on its host frame (get_pfn). */
  protected installSpte(page: TablePage, i: number, pfn: number, flags: number, gpte: number, from: number, gen: number): void {
    this.getPage(pfn);
    this.writeSpte(page, i, pfn, flags, gpte, from, gen);
  }

  /** Zero an entry (set_pte(spte, __pte(0))), without touching any reference. */
  protected clearSpte(page: TablePage, i: number): void {
    const old = page.ent[i]!;
    if (!(old & _PAGE_PRESENT)) return;
    const pfn = entryFrame(old);
    page.ent[i] = 0;
    page.markAbsent(i);
    this.mapcount[pfn - this.c.hostBase]!--;
    this.touchEntry(page.slot, page.baseVpage + i);
    this.touchPfn(pfn);
  }

  /** H:460 release_pte: put the reference the entry holds, and clear it so it is never put twice. */
  protected releasePte(page: TablePage, i: number): void {
    const e = page.ent[i]!;
    if (!(e & _PAGE_PRESENT)) return;
    this.putPage(entryFrame(e));
    this.clearSpte(page, i);
  }

  // ---- table pages ---------------------------------------------------------

  protected allocTable(slot: number, owner: string, level: number, baseVpage: number): TablePage {
    const f = this.freeFrames.pop();
    const page = f !== undefined ? this.pool[f]! : new TablePage(this.pool.length, this.g.ptrsPerPte, this.g.pae);
    if (f === undefined) this.pool.push(page);
    page.id = this.nextTableId++;
    page.slot = slot;
    page.owner = owner;
    page.level = level;
    page.baseVpage = baseVpage;
    this.allocated.add(page);
    this.live.tables[owner] = page.id;
    this.live.tablePages[page.id] = owner;
    this.scope.owners.push(owner);
    this.scope.pages.push(page.id);
    return page;
  }

  /** free_page: any entry still present is zeroed (a freed page comes back zeroed from the pool). */
  protected freeTable(page: TablePage): void {
    while (page.n > 0) {
      const i = page.list[page.n - 1]!;
      if (page.level === 1) this.clearSpte(page, i);
      else {
        page.ent[i] = 0;
        page.markAbsent(i);
      }
    }
    this.allocated.delete(page);
    if (this.live.tables[page.owner] === page.id) delete this.live.tables[page.owner];
    delete this.live.tablePages[page.id];
    this.scope.owners.push(page.owner);
    this.scope.pages.push(page.id);
    this.freeFrames.push(page.frame);
  }

  /** Release every present PTE of a PTE page (visiting only present ones), then free it. */
  protected releasePtePage(page: TablePage): void {
    for (let k = page.n - 1; k >= 0; k--) {
      this.visited++;
      this.releasePte(page, page.list[k]!);
    }
    this.freeTable(page);
  }

  /** PAE release_pmd: the PTE page under mid-level entry `j` of `pmd`. */
  protected releasePmd(pmd: TablePage, j: number): void {
    const e = pmd.ent[j]!;
    if (!(e & _PAGE_PRESENT)) return;
    this.releasePtePage(this.pool[entryFrame(e)]!);
    pmd.ent[j] = 0;
    pmd.markAbsent(j);
  }

  /**
   * H:450 release_pgd: entry `idx` of slot `slot`'s top level and everything
   * under it. The top levels are one contiguous array, so an index past the
   * end of one page lands in the next slot's page (the seed's idx check is
   * off by one: mutants.ts).
   */
  protected releasePgd(slot: number, idx: number): void {
    const P = this.g.ptrsPerPgd;
    const flat = slot * P + idx;
    const e = this.pgd[flat];
    if (e === undefined || !(e & _PAGE_PRESENT)) return;
    const s = Math.floor(flat / P);
    const page = this.pool[entryFrame(e)]!;
    if (page.level === 2) {
      for (let k = page.n - 1; k >= 0; k--) this.releasePmd(page, page.list[k]!);
      this.freeTable(page);
    } else {
      this.releasePtePage(page);
    }
    this.pgd[flat] = 0;
    const p = this.pgdPos[flat]!;
    const last = this.pgdList[s * P + --this.pgdN[s]!]!;
    this.pgdList[s * P + p] = last;
    this.pgdPos[s * P + last] = p;
    this.pgdPos[flat] = -1;
  }

  private linkPgd(slot: number, idx: number, page: TablePage, flags: number): void {
    const P = this.g.ptrsPerPgd;
    const flat = slot * P + idx;
    this.pgd[flat] = page.frame * PAGE_SIZE + flags;
    this.pgdPos[flat] = this.pgdN[slot]!;
    this.pgdList[slot * P + this.pgdN[slot]!++] = idx;
  }

  /** The PTE page holding vpage's entry in `slot`, if the levels above are present. */
  protected ptePage(slot: number, vpage: number): TablePage | undefined {
    const e = this.pgd[slot * this.g.ptrsPerPgd + (vpage >>> this.topShift)]!;
    if (!(e & _PAGE_PRESENT)) return undefined;
    const page = this.pool[entryFrame(e)]!;
    if (!this.g.pae) return page;
    const m = page.ent[(vpage >>> 9) & 511]!;
    return m & _PAGE_PRESENT ? this.pool[entryFrame(m)] : undefined;
  }

  /** H:331 find_spte with allocate: make any missing level (top-level entry first). */
  protected findSpteAlloc(slot: number, vpage: number): TablePage {
    const top = vpage >>> this.topShift;
    const e = this.pgd[slot * this.g.ptrsPerPgd + top]!;
    let page: TablePage;
    if (e & _PAGE_PRESENT) page = this.pool[entryFrame(e)]!;
    else {
      page = this.g.pae
        ? this.allocTable(slot, ownerKey(slot, top), 2, top * this.pagesPerTop)
        : this.allocTable(slot, ownerKey(slot, top), 1, top * this.pagesPerTop);
      this.linkPgd(slot, top, page, this.g.pae ? _PAGE_PRESENT : _PAGE_TABLE);
    }
    if (!this.g.pae) return page;
    const j = (vpage >>> 9) & 511;
    const m = page.ent[j]!;
    if (m & _PAGE_PRESENT) return this.pool[entryFrame(m)]!;
    const pte = this.allocTable(slot, ownerKey(slot, top, j), 1, top * this.pagesPerTop + j * this.pagesPerMid);
    page.ent[j] = pte.frame * PAGE_SIZE + _PAGE_TABLE;
    page.markPresent(j);
    return pte;
  }

  // ---- slots ----------------------------------------------------------------

  private pushSlot(s: number): void {
    if (this.slotInUse[s]) {
      this.live.slots[s] = { gpgdir: this.slotGpgdir[s]!, switcherMapped: this.switcherMapped[s] === 1, lastHostCpu: this.lastHostCpu[s]! };
    } else delete this.live.slots[s];
    this.scope.slots.push(s);
  }

  private newSlot(s: number, gpgdir: number): void {
    this.slotInUse[s] = 1;
    this.setGpgdir(s, gpgdir);
    this.switcherMapped[s] = 0;
    this.lastHostCpu[s] = -1;
    this.pushSlot(s);
  }

  private setGpgdir(s: number, gpgdir: number): void {
    if (this.slotInUse[s] && this.slotOf.get(this.slotGpgdir[s]!) === s) this.slotOf.delete(this.slotGpgdir[s]!);
    this.slotGpgdir[s] = gpgdir;
    // The lowest slot wins a tie, like the seed's scan of pgdirs[].
    const had = this.slotOf.get(gpgdir);
    if (had === undefined || had > s) this.slotOf.set(gpgdir, s);
  }

  /** find_pgdir: the slot caching this guest top level, or -1. */
  protected findPgdir(gpgdir: number): number {
    const s = this.slotOf.get(gpgdir);
    if (s !== undefined && this.slotInUse[s] && this.slotGpgdir[s] === gpgdir) return s;
    // A stale or shadowed index entry: fall back to the scan (rare: two slots once shared a top level).
    for (let i = 0; i < this.c.pgdirSlots; i++) {
      if (this.slotInUse[i] && this.slotGpgdir[i] === gpgdir) {
        this.slotOf.set(gpgdir, i);
        return i;
      }
    }
    if (s !== undefined) this.slotOf.delete(gpgdir);
    return -1;
  }

  // ---- kill -----------------------------------------------------------------

  protected killGuest(reason: string): Result {
    this.dead = true;
    this.live.dead = true;
    return killed(reason);
  }
  private orKill(reason: string | null): Result {
    return reason === null ? OK : this.killGuest(reason);
  }

  // ---- guest memory -----------------------------------------------------------

  protected lgread(gpa: number): number {
    const page = this.guestMem.get(Math.floor(gpa / PAGE_SIZE));
    return page ? page[(gpa % PAGE_SIZE) / this.g.entryBytes]! : 0;
  }

  protected lgwrite(gpa: number, value: number): void {
    const gfn = Math.floor(gpa / PAGE_SIZE);
    let page = this.guestMem.get(gfn);
    if (!page) {
      const n = PAGE_SIZE / this.g.entryBytes;
      page = this.g.pae ? new Float64Array(n) : new Uint32Array(n);
      this.guestMem.set(gfn, page);
    }
    page[(gpa % PAGE_SIZE) / this.g.entryBytes] = value;
  }

  private guestWrite(gpa: number, value: number): Result {
    if (gpa % this.g.entryBytes !== 0 || value > this.g.maxEntry) return EINVAL;
    if (gpa >= this.c.guestPages * PAGE_SIZE) return EFAULT;
    this.lgwrite(gpa, value);
    return OK;
  }

  // ---- H:508 page_table_guest_data_init ----------------------------------------

  private lguestInit(ka: number): Result {
    if (this.initialized || !this.linearPages) return EBUSY;
    if (ka % PAGE_SIZE !== 0) return EINVAL;
    // flush_user_mappings() loops up to the kernel address: it must not reach the Switcher.
    if (ka >= this.c.switcherAddr) return this.killGuest(Reason.kernelAddress(ka, this.c.switcherAddr));
    this.initialized = true;
    this.kernelAddress = ka;
    this.kernelPage = ka / PAGE_SIZE;
    this.live.kernelAddress = ka;
    return OK;
  }

  // ---- H:330 demand_page ---------------------------------------------------------

  /** The shadow flags for a guest PTE: no global bit; writable only when the guest PTE is also dirty. */
  protected spteFlags(gpte: number, _path: 'fault' | 'setPte'): number {
    const f = entryFlags(gpte);
    const flags = f & PTE_FLAGS_MASK & ~_PAGE_GLOBAL;
    return f & _PAGE_DIRTY ? flags : flags & ~_PAGE_RW;
  }

  protected demandPage(vaddr: number, errcode: number): Fault {
    const c = this.c;
    const g = this.g;
    // We never demand page the Switcher.
    if (vaddr >= c.switcherAddr) return false;
    const vpage = Math.floor(vaddr / PAGE_SIZE);
    let gpte: number;
    let gptePtr = -1;
    if (this.linearPages) {
      // Faking up a linear mapping: virtual = physical, writable.
      gpte = vpage * PAGE_SIZE + (_PAGE_RW | _PAGE_PRESENT);
    } else {
      const gpgd = this.lgread(this.slotGpgdir[this.cpuPgd]! + (vpage >>> this.topShift) * g.entryBytes);
      const pgdFlags = entryFlags(gpgd);
      if (!(pgdFlags & _PAGE_PRESENT)) return false;
      if (pgdFlags & ~(g.pae ? _PAGE_PRESENT : _PAGE_TABLE) || entryFrame(gpgd) >= c.guestPages) {
        return Reason.badPgd(gpgd, vaddr, c.guestPages);
      }
      let table = entryFrame(gpgd);
      if (g.pae) {
        const gpmd = this.lgread(table * PAGE_SIZE + ((vpage >>> 9) & 511) * 8);
        const pmdFlags = entryFlags(gpmd);
        if (!(pmdFlags & _PAGE_PRESENT)) return false;
        if (pmdFlags & ~_PAGE_TABLE || entryFrame(gpmd) >= c.guestPages) return Reason.badPmd(gpmd, vaddr, c.guestPages);
        table = entryFrame(gpmd);
      }
      gptePtr = table * PAGE_SIZE + (vpage & (g.ptrsPerPte - 1)) * g.entryBytes;
      gpte = this.lgread(gptePtr);
    }
    const f = entryFlags(gpte);
    if (!(f & _PAGE_PRESENT)) return false;
    // A write to a page the guest wants read-only, or a user access to a kernel page: the guest's fault.
    if (errcode & ERR_WRITE && !(f & _PAGE_RW)) return false;
    if (errcode & ERR_USER && !(f & _PAGE_USER)) return false;
    if (!this.checkGpte(gpte)) return Reason.badPte(gpte, vaddr, c.guestPages);
    // pte_mkyoung, and pte_mkdirty for a write.
    if (!(f & _PAGE_ACCESSED)) gpte += _PAGE_ACCESSED;
    if (errcode & ERR_WRITE && !(f & _PAGE_DIRTY)) gpte += _PAGE_DIRTY;
    const gfn = entryFrame(gpte);
    const flags = this.spteFlags(gpte, 'fault');
    // get_pfn(write) fails on a backing that cannot be taken writable: checked before anything changes.
    if (flags & _PAGE_RW && this.readOnly.has(gfn)) return this.faultCannotGet(vpage, gfn);
    const page = this.findSpteAlloc(this.cpuPgd, vpage);
    const i = vpage - page.baseVpage;
    this.releasePte(page, i);
    const gpgdir = this.slotGpgdir[this.cpuPgd]!; // 0 while linear: "top level 0"
    this.installSpte(page, i, c.hostBase + gfn, flags, gpte, gpgdir, this.kernelGen.get(vpage) ?? 0);
    this.tell(gpgdir, vpage, gpte);
    // Write the guest PTE back: we've set its accessed and maybe dirty bits.
    if (gptePtr >= 0) this.lgwrite(gptePtr, gpte);
    return true;
  }

  /**
   * The write fault's page cannot be taken writable: kill, leaving the old
   * shadow entry and the guest PTE as they were (the seed has already
   * released the entry here: spec page §5).
   */
  protected faultCannotGet(_vpage: number, gfn: number): string {
    return Reason.getPage(gfn);
  }

  /** check_gpte: no large pages, and the frame must be guest memory (below pfn_limit). */
  protected checkGpte(gpte: number): boolean {
    return !(entryFlags(gpte) & _PAGE_PSE) && entryFrame(gpte) < this.c.guestPages;
  }

  // ---- H:360 pin_page -----------------------------------------------------------

  protected pinPage(vaddr: number): string | null {
    if (vaddr < this.c.switcherAddr) {
      const vpage = Math.floor(vaddr / PAGE_SIZE);
      const page = this.ptePage(this.cpuPgd, vpage);
      if (page && (page.ent[vpage - page.baseVpage]! & (_PAGE_PRESENT | _PAGE_RW)) === (_PAGE_PRESENT | _PAGE_RW)) return null;
    }
    const f = this.demandPage(vaddr, ERR_WRITE);
    if (typeof f === 'string') return f;
    return f ? null : Reason.stackPage(vaddr);
  }

  protected pinStackPages(): string | null {
    for (let i = 0; i < this.stackPages; i++) {
      const r = this.pinPage((this.stackVaddr - 1 - i * PAGE_SIZE) >>> 0);
      if (r !== null) return r;
    }
    return null;
  }

  // ---- H:440/H:445 flushing ----------------------------------------------------------

  /**
   * flush_user_mappings, made exact: every entry below the kernel address.
   * Whole top-level (and PAE mid-level) entries below it are released with
   * their pages; the one table straddling the kernel address loses only its
   * user entries (the seed stops at pgd_index(kernel_address) and leaves them).
   */
  protected flushUserMappings(slot: number): void {
    const kp = this.kernelPage;
    if (kp === 0) return;
    const P = this.g.ptrsPerPgd;
    for (let k = this.pgdN[slot]! - 1; k >= 0; k--) {
      const top = this.pgdList[slot * P + k]!;
      const start = top * this.pagesPerTop;
      if (start >= kp) continue;
      if (start + this.pagesPerTop <= kp) {
        this.releasePgd(slot, top);
        continue;
      }
      const page = this.pool[entryFrame(this.pgd[slot * P + top]!)]!;
      if (page.level === 1) this.releaseBelow(page, kp);
      else {
        for (let m = page.n - 1; m >= 0; m--) {
          const j = page.list[m]!;
          const mstart = start + j * this.pagesPerMid;
          if (mstart >= kp) continue;
          if (mstart + this.pagesPerMid <= kp) this.releasePmd(page, j);
          else this.releaseBelow(this.pool[entryFrame(page.ent[j]!)]!, kp);
        }
      }
    }
  }

  private releaseBelow(page: TablePage, kp: number): void {
    for (let k = page.n - 1; k >= 0; k--) {
      this.visited++;
      const i = page.list[k]!;
      if (page.baseVpage + i < kp) this.releasePte(page, i);
    }
  }

  /** H:470 release_all_pagetables: every present top-level entry of every cached slot. */
  protected releaseAllPagetables(): void {
    const P = this.g.ptrsPerPgd;
    for (let s = 0; s < this.c.pgdirSlots; s++) {
      if (!this.slotInUse[s]) continue;
      while (this.pgdN[s]! > 0) this.releasePgd(s, this.pgdList[s * P + this.pgdN[s]! - 1]!);
      this.switcherMapped[s] = 0;
      this.lastHostCpu[s] = -1;
      this.pushSlot(s);
    }
  }

  /** guest_pagetable_clear_all: drop everything, re-pin the stack, re-map the Switcher. */
  protected clearAll(): string | null {
    this.releaseAllPagetables();
    const r = this.pinStackPages();
    if (r !== null) return r;
    this.allocateSwitcherMapping(this.cpuPgd);
    return null;
  }

  // ---- H:501 the Switcher ---------------------------------------------------------------

  protected allocateSwitcherMapping(slot: number): void {
    const page = this.findSpteAlloc(slot, this.switcherVpage);
    const i = this.switcherVpage - page.baseVpage;
    if (!(page.ent[i]! & _PAGE_PRESENT)) {
      this.installSpte(page, i, switcherPfn(this.c, 0), SWITCHER_CODE_FLAGS, -1, -1, 0);
    }
    this.switcherMapped[slot] = 1;
    this.pushSlot(slot);
  }

  /** H:481 remove_switcher_percpu_map. */
  private removeSwitcherPercpuMap(page: TablePage, cpu: number): void {
    const i = this.switcherVpage - page.baseVpage + 1 + 2 * cpu;
    this.releasePte(page, i);
    this.releasePte(page, i + 1);
  }

  /** H:480 map_switcher_in_guest. */
  protected mapSwitcherInGuest(cpu: number): Result {
    if (cpu >= this.c.hostCpus) return EINVAL;
    const slot = this.cpuPgd;
    if (!this.switcherMapped[slot]) this.allocateSwitcherMapping(slot);
    const last = this.lastHostCpu[slot]!;
    if (last === cpu) return OK;
    const page = this.ptePage(slot, this.switcherVpage)!;
    if (last === -1) for (let k = 0; k < this.c.hostCpus; k++) this.removeSwitcherPercpuMap(page, k);
    else this.removeSwitcherPercpuMap(page, last);
    const i = this.switcherVpage - page.baseVpage + 1 + 2 * cpu;
    // The guest's register page where this CPU's first Switcher page sits; the IDT/GDT page read-only.
    this.installSpte(page, i, regsPfn(this.c), SWITCHER_REGS_FLAGS, -1, -1, 0);
    this.installSpte(page, i + 1, switcherPfn(this.c, 2 + 2 * cpu), SWITCHER_RO_FLAGS, -1, -1, 0);
    this.lastHostCpu[slot] = cpu;
    this.pushSlot(slot);
    return OK;
  }

  // ---- H:430 switching page tables ------------------------------------------------------

  /** new_pgdir's "release all the non-kernel mappings" of a reused slot. */
  protected flushOnReuse(slot: number): void {
    this.flushUserMappings(slot);
  }

  /**
   * Leaving the linear mapping: a slot that already caches `pgtable` (only
   * "top level 0" of the start can) is reused, emptied like every other;
   * the seed forces new_pgdir here and so can cache top level 0 twice.
   */
  protected linearExitSlot(pgtable: number): number {
    return this.findPgdir(pgtable);
  }

  protected guestNewPagetable(pgtable: number, victim: number): Result {
    if (pgtable % PAGE_SIZE !== 0 || pgtable >= this.c.guestPages * PAGE_SIZE) return this.killGuest(Reason.pgdirAddress(pgtable));
    if (victim >= this.c.pgdirSlots) return EINVAL;
    let fresh = false;
    let slot = -1;
    if (this.linearPages) {
      // The first switch: everything made up for the linear mapping goes.
      this.releaseAllPagetables();
      this.linearPages = false;
      this.live.linear = false;
      fresh = true;
      slot = this.linearExitSlot(pgtable);
    } else slot = this.findPgdir(pgtable);
    if (slot < 0) {
      // new_pgdir: the victim slot (the seed picks it at random).
      slot = victim;
      if (!this.slotInUse[slot]) {
        this.newSlot(slot, pgtable);
        fresh = true;
      }
      this.setGpgdir(slot, pgtable);
      this.lastHostCpu[slot] = -1;
      this.pushSlot(slot);
      this.flushOnReuse(slot);
    }
    this.cpuPgd = slot;
    this.live.current = slot;
    if (fresh) {
      const r = this.pinStackPages();
      if (r !== null) return this.killGuest(r);
    }
    if (!this.switcherMapped[slot]) this.allocateSwitcherMapping(slot);
    return OK;
  }

  // ---- H:400/H:410/H:420 guest changes ----------------------------------------------------

  /** The slots a kernel-range setPte must reach: every cached top level. */
  protected kernelPteSlots(): number[] {
    const out: number[] = [];
    for (let s = 0; s < this.c.pgdirSlots; s++) if (this.slotInUse[s]) out.push(s);
    return out;
  }

  protected guestSetPte(gpgdir: number, vaddr: number, gpte: number): Result {
    const c = this.c;
    // We don't let you remap the Switcher; we need it to get back!
    if (vaddr >= c.switcherAddr) return this.killGuest(Reason.setPteSwitcher(vaddr));
    const f = entryFlags(gpte);
    // H:420: accessed or dirty (and present) means "install it now".
    const eager = (f & _PAGE_PRESENT) !== 0 && (f & (_PAGE_ACCESSED | _PAGE_DIRTY)) !== 0;
    if (eager && !this.checkGpte(gpte)) return this.killGuest(Reason.badPte(gpte, vaddr, c.guestPages));
    const vpage = Math.floor(vaddr / PAGE_SIZE);
    let targets: number[];
    if (vpage >= this.kernelPage) {
      targets = this.kernelPteSlots();
      const n = (this.kernelGen.get(vpage) ?? 0) + 1;
      this.kernelGen.set(vpage, n);
      this.live.kernelGens[vpage] = n;
      this.scope.vpages.push(vpage);
    } else {
      const s = this.findPgdir(gpgdir);
      targets = s >= 0 ? [s] : [];
    }
    // Every top level the change reaches learns the new value, shadow PTE page or not.
    for (const s of targets) this.tell(this.slotGpgdir[s]!, vpage, gpte);
    const gfn = entryFrame(gpte);
    const flags = eager ? this.spteFlags(gpte, 'setPte') : 0;
    const cannotGet = eager && (flags & _PAGE_RW) !== 0 && this.readOnly.has(gfn);
    const gen = this.kernelGen.get(vpage) ?? 0;
    let touched = false;
    for (const s of targets) {
      if (this.setPteIn(s, vpage, gpte, eager && !cannotGet ? flags : -1, gen)) touched = true;
    }
    if (touched && cannotGet) return this.killGuest(Reason.getPage(gfn));
    return OK;
  }

  /**
   * H:420 do_set_pte in one top level: release the old entry and, with
   * `flags` >= 0, install the new one at once. False when the slot has no
   * shadow PTE page for vpage (nothing to update).
   */
  protected setPteIn(slot: number, vpage: number, gpte: number, flags: number, gen: number): boolean {
    const page = this.ptePage(slot, vpage);
    if (!page) return false;
    const i = vpage - page.baseVpage;
    this.releasePte(page, i);
    if (flags >= 0) this.installSpte(page, i, this.c.hostBase + entryFrame(gpte), flags, gpte, this.slotGpgdir[slot]!, gen);
    return true;
  }

  /** The bound on a top-level index (the seed has `idx > PTRS_PER_PGD`: off by one). */
  protected pgdIndexValid(idx: number): boolean {
    return idx < this.g.ptrsPerPgd;
  }

  protected guestSetPgd(gpgdir: number, idx: number): Result {
    if (!this.pgdIndexValid(idx)) return this.killGuest(Reason.setPgdIdx(idx, this.g.ptrsPerPgd));
    const s = this.findPgdir(gpgdir);
    if (s < 0) return OK;
    this.releasePgd(s, idx);
    if (idx === this.switcherTop) {
      // That was the Switcher's table: map it again, in this slot (the seed remaps the current one).
      this.allocateSwitcherMapping(s);
      this.lastHostCpu[s] = -1;
      this.pushSlot(s);
    }
    return OK;
  }

  // ---- queries and teardown -------------------------------------------------------------

  private translate(vaddr: number): Result {
    const vpage = Math.floor(vaddr / PAGE_SIZE);
    if (!this.slotInUse[this.cpuPgd]) return { ok: true, present: false };
    const page = this.ptePage(this.cpuPgd, vpage);
    const e = page ? page.ent[vpage - page.baseVpage]! : 0;
    if (!(e & _PAGE_PRESENT)) return { ok: true, present: false };
    return { ok: true, present: true, pfn: entryFrame(e), writable: (e & _PAGE_RW) !== 0, user: (e & _PAGE_USER) !== 0 };
  }

  /** free_guest_pagetable. */
  protected destroy(): Result {
    if (this.destroyed) return OK;
    this.releaseAllPagetables();
    for (let s = 0; s < this.c.pgdirSlots; s++) {
      if (!this.slotInUse[s]) continue;
      this.slotInUse[s] = 0;
      this.switcherMapped[s] = 0;
      this.pushSlot(s);
    }
    this.slotOf.clear();
    this.destroyed = true;
    this.dead = true;
    this.live.destroyed = true;
    this.live.dead = true;
    return OK;
  }
}

export function createImpl(c: Config): ShadowPtImpl {
  return new ShadowPtImpl(c);
}

/** What `ShadowPtImpl.snapshot()` keeps (see there). */
interface ImplSnapshot {
  readonly pgd: Entries;
  readonly pgdList: Uint16Array;
  readonly pgdPos: Int16Array;
  readonly pgdN: Int32Array;
  readonly slotInUse: Uint8Array;
  readonly slotGpgdir: Float64Array;
  readonly switcherMapped: Uint8Array;
  readonly lastHostCpu: Int32Array;
  readonly refcount: Int32Array;
  readonly mapcount: Int32Array;
  readonly pfnStamp: Int32Array;
  readonly slotOf: Map<number, number>;
  readonly pages: readonly {
    id: number;
    slot: number;
    owner: string;
    level: number;
    baseVpage: number;
    n: number;
    list: Uint16Array;
    pos: Int16Array;
    ent: Entries;
    gpte: Float64Array;
    from: Float64Array;
    gen: Float64Array;
    allocated: boolean;
  }[];
  readonly freeFrames: number[];
  readonly nonzeroRefs: Set<number>;
  readonly underflow: Map<number, number>;
  readonly guestMem: Map<number, Entries>;
  readonly kernelGen: Map<number, number>;
  readonly told: Map<number, number>;
  readonly touchedTold: number[];
  readonly touchedEntries: number[];
  readonly touchedPfns: number[];
  readonly live: View;
  readonly scope: Scope;
  readonly scalars: object;
  readonly extra: object;
}

function refill<K, V>(dst: Map<K, V>, src: ReadonlyMap<K, V>): void {
  dst.clear();
  for (const [k, v] of src) dst.set(k, v);
}
function refillArray(dst: number[], src: readonly number[]): void {
  dst.length = 0;
  for (const x of src) dst.push(x);
}
