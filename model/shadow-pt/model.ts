/**
 * shadow-pt reference model: the rules of spec/shadow-pt/README.md in the
 * plainest form. Shadow PTEs are a map keyed by (slot, virtual page); table
 * pages are a map keyed by the table entry that owns them; every reference is
 * an explicit ledger line "entry K holds host frame P". Releasing scans what
 * the model holds. Slow where it may be, obviously right where it must be.
 */
import { dispatch, type OpHandlers, type System } from '../../harness/domain';
import { hashValue, type Hasher } from '../../harness/fpset';
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
  type SlotView,
  type SpteView,
  type View,
  copyScope,
  copyView,
} from '../../spec/shadow-pt/types';

interface Slot {
  gpgdir: number;
  switcherMapped: boolean;
  lastHostCpu: number;
}

/** Outcome of a guest fault: fixed, the guest's own fault, or a kill reason. */
type Fault = true | false | string;

export class ShadowPtModel implements System<Op, Result, View, Scope> {
  private readonly g: Geometry;
  private readonly mem = new Map<number, number>();
  private readonly slots: (Slot | undefined)[];
  /** Present shadow PTEs: slot -> vpage -> entry. */
  private readonly sptes = new Map<number, Map<number, SpteView>>();
  /** Table entries: owner key -> table page id; and page id -> owner it was allocated for. */
  private readonly tables = new Map<string, number>();
  private readonly tablePages = new Map<number, string>();
  private nextTableId = 1;
  /** The reference ledger: which entry holds a reference on which host frame. */
  private readonly ledger = new Map<string, number>();
  private readonly kernelGens = new Map<number, number>();
  /** What the host last learnt of each guest PTE: `gpgdir:vpage` -> gpte (the View's `told`). */
  private readonly told = new Map<string, number>();
  private kernelAddress = 0;
  private initialized = false;
  private linear = true;
  private current = 0;
  private dead = false;
  private destroyed = false;
  private stack: { vaddr: number; pages: number } | null = null;
  private readonly readOnly: Set<number>;
  private readonly live: View = emptyView();
  private scope: Scope = emptyScope();
  private scanned = 0;

  constructor(private readonly c: Config) {
    this.g = geometry(c);
    this.readOnly = new Set(c.readOnlyPages);
    this.slots = new Array<Slot | undefined>(c.pgdirSlots).fill(undefined);
    // H:500: slot 0 shadows "top level 0" with the Switcher mapped; linear until newPagetable.
    this.setSlot(0, { gpgdir: 0, switcherMapped: false, lastHostCpu: -1 });
    this.allocateSwitcher(0);
  }

  // ---- System --------------------------------------------------------------

  /** One handler per op (see OpHandlers: exhaustive, and cheaper per call than a ts-pattern chain). */
  private readonly handlers: OpHandlers<Op, Result> = {
    guestWrite: ({ gpa, value }) => this.guestWrite(gpa, value),
    pageFault: ({ vaddr, errcode }) => this.finish(this.demandPage(vaddr, errcode), (f) => ({ ok: true, fixed: f })),
    setPte: ({ pgdir, vaddr, gpte }) => this.setPte(pgdir, vaddr, gpte),
    lguestInit: ({ kernelAddress }) => this.lguestInit(kernelAddress),
    setPgd: ({ pgdir, idx }) => this.setPgd(pgdir, idx),
    setPmd: () => (this.c.pae ? this.kill(this.clearAll()) : EINVAL),
    newPagetable: ({ pgtable, victim }) => this.newPagetable(pgtable, victim),
    flushUser: () => (this.flushUser(this.current), OK),
    flushAll: () => this.kill(this.clearAll()),
    setStack: ({ vaddr, pages }) => ((this.stack = { vaddr, pages }), this.kill(this.pinStack())),
    pinPage: ({ vaddr }) => this.kill(this.pinPage(vaddr)),
    runOnCpu: ({ cpu }) => this.runOnCpu(cpu),
    translate: ({ vaddr }) => this.translate(vaddr),
    hostRefs: ({ gfn }) => (gfn >= this.c.guestPages ? EINVAL : ({ ok: true, refs: this.refsOf(this.c.hostBase + gfn) } as Result)),
    destroy: () => this.destroy(),
  };

  apply(op: Op): Result {
    if (this.dead && op.op !== 'destroy' && op.op !== 'translate' && op.op !== 'hostRefs') return DEAD;
    return dispatch(this.handlers, op);
  }

  view(): View {
    const v = emptyView();
    v.dead = this.dead;
    v.destroyed = this.destroyed;
    v.linear = this.linear;
    v.kernelAddress = this.kernelAddress;
    v.current = this.current;
    this.slots.forEach((s, i) => {
      if (s) v.slots[i] = { ...s };
    });
    for (const [slot, m] of this.sptes) {
      for (const [vp, e] of m) {
        v.sptes[spteKey(slot, vp)] = { ...e };
        v.mapcount[e.pfn] = (v.mapcount[e.pfn] ?? 0) + 1;
      }
    }
    for (const p of this.ledger.values()) v.refs[p] = (v.refs[p] ?? 0) + 1;
    for (const [o, id] of this.tables) v.tables[o] = id;
    for (const [id, o] of this.tablePages) v.tablePages[id] = o;
    for (const [vp, n] of this.kernelGens) v.kernelGens[vp] = n;
    for (const [k, g] of this.told) v.told[k] = g;
    return v;
  }

  liveView(): { view: View; scope: Scope } {
    const scope = this.scope;
    this.scope = emptyScope();
    // One op can touch a key many times (a kernel setPte in every slot): report each once.
    scope.entries = [...new Set(scope.entries)];
    scope.pfns = [...new Set(scope.pfns)];
    scope.told = [...new Set(scope.told)];
    return { view: this.live, scope };
  }

  counters(): Readonly<Record<string, number>> {
    return { entriesScanned: this.scanned };
  }

  /**
   * The fingerprint() above as a 64-bit hash, without building its text:
   * the same parts (flags, stack, slots, entries, references, table owners,
   * kernel generations, what the host was told, non-zero guest memory), read
   * from the live View the model keeps, mixed into `h`.
   */
  fingerprintHash(h: Hasher): void {
    const v = this.live;
    h.word((+v.dead) | (+v.destroyed << 1) | (+v.linear << 2) | (+this.initialized << 3));
    h.num(v.kernelAddress);
    h.num(v.current);
    if (this.stack) {
      h.num(this.stack.vaddr);
      h.num(this.stack.pages);
    } else h.word(-1);
    hashValue(h, v.slots);
    hashValue(h, v.sptes);
    hashValue(h, v.refs);
    hashKeys(h, v.tables);
    hashValue(h, v.kernelGens);
    hashValue(h, v.told);
    hashNonZero(h, this.mem);
  }

  /** A copy of the whole state, for exploration (faster than the generic deep copy). */
  snapshot(): object {
    const snap: ModelSnapshot = {
      mem: new Map(this.mem),
      slots: this.slots.map((x) => (x ? { ...x } : undefined)),
      sptes: new Map([...this.sptes].map(([k, m]) => [k, new Map(m)])),
      tables: new Map(this.tables),
      tablePages: new Map(this.tablePages),
      ledger: new Map(this.ledger),
      kernelGens: new Map(this.kernelGens),
      told: new Map(this.told),
      live: copyView(this.live),
      scope: copyScope(this.scope),
      scalars: {
        nextTableId: this.nextTableId,
        kernelAddress: this.kernelAddress,
        initialized: this.initialized,
        linear: this.linear,
        current: this.current,
        dead: this.dead,
        destroyed: this.destroyed,
        stack: this.stack,
        scanned: this.scanned,
      },
    };
    return snap;
  }

  restore(snapshot: object): void {
    const s = snapshot as ModelSnapshot;
    refill(this.mem, s.mem);
    for (let i = 0; i < s.slots.length; i++) {
      const x = s.slots[i];
      this.slots[i] = x ? { ...x } : undefined;
    }
    this.sptes.clear();
    for (const [k, m] of s.sptes) this.sptes.set(k, new Map(m));
    refill(this.tables, s.tables);
    refill(this.tablePages, s.tablePages);
    refill(this.ledger, s.ledger);
    refill(this.kernelGens, s.kernelGens);
    refill(this.told, s.told);
    Object.assign(this.live, copyView(s.live));
    this.scope = copyScope(s.scope);
    Object.assign(this, s.scalars);
  }

  fingerprint(): string {
    const v = this.view();
    const sortObj = (o: Record<string, unknown>) =>
      Object.keys(o)
        .sort()
        .map((k) => `${k}=${JSON.stringify(o[k])}`)
        .join(',');
    const owners = Object.keys(v.tables).sort().join(',');
    const mem = [...this.mem.entries()].filter(([, w]) => w !== 0).sort((a, b) => a[0] - b[0]);
    return [
      `d${+v.dead}x${+v.destroyed}l${+v.linear}i${+this.initialized}k${v.kernelAddress}c${v.current}`,
      `stack=${JSON.stringify(this.stack)}`,
      sortObj(v.slots),
      sortObj(v.sptes),
      sortObj(v.refs),
      owners,
      sortObj(v.kernelGens),
      sortObj(v.told),
      JSON.stringify(mem),
    ].join('|');
  }

  // ---- state helpers (each keeps the live View and the scope in step) -----

  private refsOf(pfn: number): number {
    return this.live.refs[pfn] ?? 0;
  }

  private bump(rec: Record<string, number>, key: number, by: number): void {
    const n = (rec[key] ?? 0) + by;
    if (n === 0) delete rec[key];
    else rec[key] = n;
  }

  private setSlot(i: number, s: Slot | undefined): void {
    this.slots[i] = s;
    if (s) this.live.slots[i] = { ...s } as SlotView;
    else delete this.live.slots[i];
    this.scope.slots.push(i);
  }

  private updSlot(i: number, patch: Partial<Slot>): void {
    const s = this.slots[i]!;
    Object.assign(s, patch);
    this.setSlot(i, s);
  }

  private entriesOf(slot: number): Map<number, SpteView> {
    let m = this.sptes.get(slot);
    if (!m) this.sptes.set(slot, (m = new Map()));
    return m;
  }

  private entry(slot: number, vpage: number): SpteView | undefined {
    return this.sptes.get(slot)?.get(vpage);
  }

  /** Install a present entry: it takes one reference on its host frame. */
  private install(slot: number, vpage: number, e: SpteView): void {
    this.drop(slot, vpage);
    const k = spteKey(slot, vpage);
    this.entriesOf(slot).set(vpage, e);
    this.ledger.set(k, e.pfn);
    this.live.sptes[k] = { ...e };
    this.bump(this.live.mapcount, e.pfn, 1);
    this.bump(this.live.refs, e.pfn, 1);
    this.scope.entries.push(k);
    this.scope.pfns.push(e.pfn);
  }

  /** Drop an entry (if present): its reference goes back, exactly once. */
  private drop(slot: number, vpage: number): void {
    const m = this.sptes.get(slot);
    const e = m?.get(vpage);
    if (!e) return;
    const k = spteKey(slot, vpage);
    m!.delete(vpage);
    const held = this.ledger.get(k)!;
    this.ledger.delete(k);
    delete this.live.sptes[k];
    this.bump(this.live.mapcount, e.pfn, -1);
    this.bump(this.live.refs, held, -1);
    this.scope.entries.push(k);
    this.scope.pfns.push(e.pfn, held);
  }

  /** The host learns a guest PTE of top level `gpgdir` (told by setPte, or read by a fault). */
  private tell(gpgdir: number, vpage: number, gpte: number): void {
    const k = toldKey(gpgdir, vpage);
    this.told.set(k, gpte);
    this.live.told[k] = gpte;
    this.scope.told!.push(k);
  }

  private linkTable(owner: string): void {
    const id = this.nextTableId++;
    this.tables.set(owner, id);
    this.tablePages.set(id, owner);
    this.live.tables[owner] = id;
    this.live.tablePages[id] = owner;
    this.scope.owners.push(owner);
    this.scope.pages.push(id);
  }

  private unlinkTable(owner: string): void {
    const id = this.tables.get(owner);
    if (id === undefined) return;
    this.tables.delete(owner);
    this.tablePages.delete(id);
    delete this.live.tables[owner];
    delete this.live.tablePages[id];
    this.scope.owners.push(owner);
    this.scope.pages.push(id);
  }

  private topIdx(vpage: number): number {
    return Math.floor((vpage * PAGE_SIZE) / 2 ** this.g.pgdirShift);
  }
  private midIdx(vpage: number): number {
    return Math.floor((vpage * PAGE_SIZE) / 2 ** this.g.pmdShift) % this.g.ptrsPerPmd;
  }
  private pteOwnerOf(slot: number, vpage: number): string {
    return this.g.pae ? ownerKey(slot, this.topIdx(vpage), this.midIdx(vpage)) : ownerKey(slot, this.topIdx(vpage));
  }

  /** find_spte(allocate): make the table pages down to the PTE page for vpage (top level first). */
  private ensureTables(slot: number, vpage: number): void {
    const top = ownerKey(slot, this.topIdx(vpage));
    if (!this.tables.has(top)) this.linkTable(top);
    if (this.g.pae) {
      const mid = ownerKey(slot, this.topIdx(vpage), this.midIdx(vpage));
      if (!this.tables.has(mid)) this.linkTable(mid);
    }
  }

  private hasPtePage(slot: number, vpage: number): boolean {
    return this.tables.has(this.pteOwnerOf(slot, vpage));
  }

  /** Drop every entry of `slot` whose vpage satisfies `pred`, scanning all it holds. */
  private dropWhere(slot: number, pred: (vpage: number) => boolean): void {
    const m = this.sptes.get(slot);
    if (!m) return;
    for (const vp of [...m.keys()]) {
      this.scanned++;
      if (pred(vp)) this.drop(slot, vp);
    }
  }

  /** Drop every table entry of `slot` (and the pages) whose owner satisfies `pred`. */
  private unlinkWhere(slot: number, pred: (top: number, mid: number | undefined) => boolean): void {
    const prefix = slot + ':g';
    for (const o of [...this.tables.keys()]) {
      if (!o.startsWith(prefix)) continue;
      const rest = o.slice(prefix.length);
      const mi = rest.indexOf(':m');
      const top = mi < 0 ? +rest : +rest.slice(0, mi);
      const mid = mi < 0 ? undefined : +rest.slice(mi + 2);
      if (pred(top, mid)) this.unlinkTable(o);
    }
  }

  /** release_pgd: top-level entry `idx` of `slot` and everything under it. */
  private releaseTop(slot: number, idx: number): void {
    this.dropWhere(slot, (vp) => this.topIdx(vp) === idx);
    this.unlinkWhere(slot, (top) => top === idx);
  }

  /** flush_user_mappings, per entry: every entry below the kernel address; table pages wholly below it. */
  private flushUser(slot: number): void {
    const ka = this.kernelAddress;
    this.dropWhere(slot, (vp) => vp * PAGE_SIZE < ka);
    const topSpan = 2 ** this.g.pgdirShift;
    const midSpan = 2 ** this.g.pmdShift;
    this.unlinkWhere(slot, (top, mid) => {
      if ((top + 1) * topSpan <= ka) return true; // the whole top-level entry is user space
      return mid !== undefined && top * topSpan + (mid + 1) * midSpan <= ka; // PAE: a PTE page wholly below
    });
  }

  /** release_all_pagetables: everything in every cached top level. */
  private releaseAll(): void {
    for (let s = 0; s < this.c.pgdirSlots; s++) {
      if (!this.slots[s]) continue;
      this.dropWhere(s, () => true);
      this.unlinkWhere(s, () => true);
      this.updSlot(s, { switcherMapped: false, lastHostCpu: -1 });
    }
  }

  private switcherVpage(): number {
    return this.c.switcherAddr / PAGE_SIZE;
  }

  /** allocate_switcher_mapping: the tables for the Switcher's range, and its code page, in `slot`. */
  private allocateSwitcher(slot: number): void {
    const base = this.switcherVpage();
    this.ensureTables(slot, base);
    if (!this.entry(slot, base)) {
      this.install(slot, base, { pfn: switcherPfn(this.c, 0), flags: SWITCHER_CODE_FLAGS, gpte: -1, from: -1, gen: 0 });
    }
    this.updSlot(slot, { switcherMapped: true });
  }

  private dead_(reason: string): Result {
    this.dead = true;
    this.live.dead = true;
    return killed(reason);
  }
  private kill(reason: string | null): Result {
    return reason === null ? OK : this.dead_(reason);
  }
  private finish(f: Fault, ok: (fixed: boolean) => Result): Result {
    return typeof f === 'string' ? this.dead_(f) : ok(f);
  }

  // ---- guest memory -------------------------------------------------------

  private read(gpa: number): number {
    return this.mem.get(gpa) ?? 0;
  }

  private guestWrite(gpa: number, value: number): Result {
    if (gpa % this.g.entryBytes !== 0 || value > this.g.maxEntry) return EINVAL;
    if (gpa >= this.c.guestPages * PAGE_SIZE) return EFAULT;
    this.mem.set(gpa, value);
    return OK;
  }

  // ---- the operations -----------------------------------------------------

  private lguestInit(ka: number): Result {
    if (this.initialized || !this.linear) return EBUSY;
    if (ka % PAGE_SIZE !== 0) return EINVAL;
    if (ka >= this.c.switcherAddr) return this.dead_(Reason.kernelAddress(ka, this.c.switcherAddr));
    this.initialized = true;
    this.kernelAddress = ka;
    this.live.kernelAddress = ka;
    return OK;
  }

  /** H:330 demand_page. */
  private demandPage(vaddr: number, errcode: number): Fault {
    const c = this.c;
    const g = this.g;
    if (vaddr >= c.switcherAddr) return false;
    const vpage = Math.floor(vaddr / PAGE_SIZE);
    let gpte: number;
    let gptePtr = -1;
    if (this.linear) {
      gpte = vpage * PAGE_SIZE + (_PAGE_RW | _PAGE_PRESENT);
    } else {
      const gpgdir = this.slots[this.current]!.gpgdir;
      const top = this.topIdx(vpage);
      const gpgd = this.read(gpgdir + top * g.entryBytes);
      if (!(entryFlags(gpgd) & _PAGE_PRESENT)) return false;
      const pgdMask = g.pae ? _PAGE_PRESENT : _PAGE_TABLE;
      if (entryFlags(gpgd) & ~pgdMask || entryFrame(gpgd) >= c.guestPages) return Reason.badPgd(gpgd, vaddr, c.guestPages);
      let ptePage = entryFrame(gpgd);
      if (g.pae) {
        const gpmd = this.read(entryFrame(gpgd) * PAGE_SIZE + this.midIdx(vpage) * 8);
        if (!(entryFlags(gpmd) & _PAGE_PRESENT)) return false;
        if (entryFlags(gpmd) & ~_PAGE_TABLE || entryFrame(gpmd) >= c.guestPages) return Reason.badPmd(gpmd, vaddr, c.guestPages);
        ptePage = entryFrame(gpmd);
      }
      gptePtr = ptePage * PAGE_SIZE + (vpage % g.ptrsPerPte) * g.entryBytes;
      gpte = this.read(gptePtr);
    }
    const f = entryFlags(gpte);
    if (!(f & _PAGE_PRESENT)) return false;
    if (errcode & ERR_WRITE && !(f & _PAGE_RW)) return false;
    if (errcode & ERR_USER && !(f & _PAGE_USER)) return false;
    if (f & _PAGE_PSE || entryFrame(gpte) >= c.guestPages) return Reason.badPte(gpte, vaddr, c.guestPages);
    gpte += f & _PAGE_ACCESSED ? 0 : _PAGE_ACCESSED;
    if (errcode & ERR_WRITE && !(entryFlags(gpte) & _PAGE_DIRTY)) gpte += _PAGE_DIRTY;
    const gfn = entryFrame(gpte);
    const writable = (entryFlags(gpte) & (_PAGE_RW | _PAGE_DIRTY)) === (_PAGE_RW | _PAGE_DIRTY);
    if (writable && this.readOnly.has(gfn)) return Reason.getPage(gfn);
    this.ensureTables(this.current, vpage);
    const gpgdir = this.slots[this.current]!.gpgdir; // 0 while linear: "top level 0"
    this.installFromGuest(this.current, vpage, gpte, gpgdir);
    this.tell(gpgdir, vpage, gpte);
    if (gptePtr >= 0) this.mem.set(gptePtr, gpte);
    return true;
  }

  /** gpte_to_spte: host frame backing the guest frame; writable only if writable and dirty; no global bit. */
  private installFromGuest(slot: number, vpage: number, gpte: number, from: number): void {
    const f = entryFlags(gpte);
    let flags = f & PTE_FLAGS_MASK & ~_PAGE_GLOBAL;
    if (!(f & _PAGE_DIRTY)) flags &= ~_PAGE_RW;
    this.install(slot, vpage, { pfn: this.c.hostBase + entryFrame(gpte), flags, gpte, from, gen: this.kernelGens.get(vpage) ?? 0 });
  }

  private findSlot(gpgdir: number): number {
    for (let i = 0; i < this.c.pgdirSlots; i++) if (this.slots[i] && this.slots[i]!.gpgdir === gpgdir) return i;
    return -1;
  }

  /** H:410 guest_set_pte and H:420 do_set_pte. */
  private setPte(gpgdir: number, vaddr: number, gpte: number): Result {
    const c = this.c;
    if (vaddr >= c.switcherAddr) return this.dead_(Reason.setPteSwitcher(vaddr));
    const f = entryFlags(gpte);
    const eager = (f & _PAGE_PRESENT) !== 0 && (f & (_PAGE_ACCESSED | _PAGE_DIRTY)) !== 0;
    if (eager && (f & _PAGE_PSE || entryFrame(gpte) >= c.guestPages)) return this.dead_(Reason.badPte(gpte, vaddr, c.guestPages));
    const vpage = Math.floor(vaddr / PAGE_SIZE);
    const kernel = vpage * PAGE_SIZE >= this.kernelAddress;
    const targets: number[] = [];
    if (kernel) {
      for (let s = 0; s < c.pgdirSlots; s++) if (this.slots[s]) targets.push(s);
      const n = (this.kernelGens.get(vpage) ?? 0) + 1;
      this.kernelGens.set(vpage, n);
      this.live.kernelGens[vpage] = n;
      this.scope.vpages.push(vpage);
    } else {
      const s = this.findSlot(gpgdir);
      if (s >= 0) targets.push(s);
    }
    // Every top level the change reaches learns the new value, shadow PTE page or not.
    for (const s of targets) this.tell(this.slots[s]!.gpgdir, vpage, gpte);
    const gfn = entryFrame(gpte);
    const cannotGet = eager && (f & (_PAGE_RW | _PAGE_DIRTY)) === (_PAGE_RW | _PAGE_DIRTY) && this.readOnly.has(gfn);
    let touched = false;
    for (const s of targets) {
      if (!this.hasPtePage(s, vpage)) continue;
      touched = true;
      this.drop(s, vpage);
      if (eager && !cannotGet) this.installFromGuest(s, vpage, gpte, this.slots[s]!.gpgdir);
    }
    if (touched && cannotGet) return this.dead_(Reason.getPage(gfn));
    return OK;
  }

  /** H:400 guest_set_pgd. */
  private setPgd(gpgdir: number, idx: number): Result {
    if (idx >= this.g.ptrsPerPgd) return this.dead_(Reason.setPgdIdx(idx, this.g.ptrsPerPgd));
    const s = this.findSlot(gpgdir);
    if (s < 0) return OK;
    this.releaseTop(s, idx);
    if (idx === this.topIdx(this.switcherVpage())) {
      this.allocateSwitcher(s);
      this.updSlot(s, { lastHostCpu: -1 });
    }
    return OK;
  }

  /** H:430 guest_new_pagetable and H:435 new_pgdir. */
  private newPagetable(pgtable: number, victim: number): Result {
    if (pgtable % PAGE_SIZE !== 0 || pgtable >= this.c.guestPages * PAGE_SIZE) return this.dead_(Reason.pgdirAddress(pgtable));
    if (victim >= this.c.pgdirSlots) return EINVAL;
    let fresh = false;
    let slot = -1;
    if (this.linear) {
      this.releaseAll();
      this.linear = false;
      this.live.linear = false;
      fresh = true;
      // The seed skips find_pgdir here ("force allocation of a new pgdir"): with pgtable 0 and
      // another victim, "top level 0" would be cached twice. Everything is released, so the
      // slot found is as empty as a new one: it is used, and is fresh.
      slot = this.findSlot(pgtable);
    } else {
      slot = this.findSlot(pgtable);
    }
    if (slot < 0) {
      slot = victim;
      if (!this.slots[slot]) {
        this.setSlot(slot, { gpgdir: pgtable, switcherMapped: false, lastHostCpu: -1 });
        fresh = true;
      }
      this.updSlot(slot, { gpgdir: pgtable, lastHostCpu: -1 });
      this.flushUser(slot);
    }
    this.current = slot;
    this.live.current = slot;
    if (fresh) {
      const r = this.pinStack();
      if (r !== null) return this.dead_(r);
    }
    if (!this.slots[slot]!.switcherMapped) this.allocateSwitcher(slot);
    return OK;
  }

  /** guest_pagetable_clear_all: drop everything, re-pin the stack, re-map the Switcher. */
  private clearAll(): string | null {
    this.releaseAll();
    const r = this.pinStack();
    if (r !== null) return r;
    this.allocateSwitcher(this.current);
    return null;
  }

  /** H:360 pin_page: already mapped writable, or a write fault that fixes it. */
  private pinPage(vaddr: number): string | null {
    if (vaddr < this.c.switcherAddr) {
      const e = this.entry(this.current, Math.floor(vaddr / PAGE_SIZE));
      if (e && e.flags & _PAGE_RW) return null;
    }
    const f = this.demandPage(vaddr, ERR_WRITE);
    if (typeof f === 'string') return f;
    return f ? null : Reason.stackPage(vaddr);
  }

  private pinStack(): string | null {
    if (!this.stack) return null;
    for (let i = 0; i < this.stack.pages; i++) {
      const r = this.pinPage((this.stack.vaddr - 1 - i * PAGE_SIZE) >>> 0);
      if (r !== null) return r;
    }
    return null;
  }

  /** H:480 map_switcher_in_guest. */
  private runOnCpu(cpu: number): Result {
    if (cpu >= this.c.hostCpus) return EINVAL;
    const slot = this.current;
    const s = this.slots[slot]!;
    if (!s.switcherMapped) this.allocateSwitcher(slot);
    if (s.lastHostCpu === cpu) return OK;
    const base = this.switcherVpage();
    for (let other = 0; other < this.c.hostCpus; other++) {
      if (s.lastHostCpu === -1 || other === s.lastHostCpu) {
        this.drop(slot, base + 1 + 2 * other);
        this.drop(slot, base + 2 + 2 * other);
      }
    }
    this.install(slot, base + 1 + 2 * cpu, { pfn: regsPfn(this.c), flags: SWITCHER_REGS_FLAGS, gpte: -1, from: -1, gen: 0 });
    this.install(slot, base + 2 + 2 * cpu, { pfn: switcherPfn(this.c, 2 + 2 * cpu), flags: SWITCHER_RO_FLAGS, gpte: -1, from: -1, gen: 0 });
    this.updSlot(slot, { lastHostCpu: cpu });
    return OK;
  }

  private translate(vaddr: number): Result {
    const e = this.entry(this.current, Math.floor(vaddr / PAGE_SIZE));
    if (!e) return { ok: true, present: false };
    return { ok: true, present: true, pfn: e.pfn, writable: (e.flags & _PAGE_RW) !== 0, user: (e.flags & _PAGE_USER) !== 0 };
  }

  private destroy(): Result {
    if (this.destroyed) return OK;
    for (let s = 0; s < this.c.pgdirSlots; s++) {
      if (!this.slots[s]) continue;
      this.dropWhere(s, () => true);
      this.unlinkWhere(s, () => true);
      this.setSlot(s, undefined);
    }
    this.destroyed = true;
    this.dead = true;
    this.live.destroyed = true;
    this.live.dead = true;
    return OK;
  }
}

export function createModel(c: Config): ShadowPtModel {
  return new ShadowPtModel(c);
}

/** What `ShadowPtModel.snapshot()` keeps. Entries (SpteView) are replaced, never changed in place, so they are shared. */
interface ModelSnapshot {
  readonly mem: Map<number, number>;
  readonly slots: readonly (Slot | undefined)[];
  readonly sptes: Map<number, Map<number, SpteView>>;
  readonly tables: Map<string, number>;
  readonly tablePages: Map<number, string>;
  readonly ledger: Map<string, number>;
  readonly kernelGens: Map<number, number>;
  readonly told: Map<string, number>;
  readonly live: View;
  readonly scope: Scope;
  readonly scalars: object;
}

function refill<K, V>(dst: Map<K, V>, src: ReadonlyMap<K, V>): void {
  dst.clear();
  for (const [k, v] of src) dst.set(k, v);
}

/** The keys of a record, in any order. */
function hashKeys(h: Hasher, rec: Record<string, unknown>): void {
  const set = new Set<string>();
  for (const k in rec) set.add(k);
  hashValue(h, set);
}

/** The non-zero words of guest memory, in any order. */
function hashNonZero(h: Hasher, mem: ReadonlyMap<number, number>): void {
  const nz = new Map<number, number>();
  for (const [a, w] of mem) if (w !== 0) nz.set(a, w);
  hashValue(h, nz);
}
