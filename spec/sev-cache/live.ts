/**
 * Incremental upkeep of the View's `written` list, shared by the model and
 * the implementation (it is View plumbing, not semantics).
 *
 * A system reports every address (page * linesPerPage + line) whose cache
 * lines, memory, owner or ghost write may have changed during an op;
 * `refresh` recomputes just those entries, in place, and rebuilds the sorted
 * array only when an entry appears or disappears. The patched entries are the
 * op's scope: the integrity invariants check only them, and the harness's
 * periodic full check compares this live list with a fresh `view()`.
 */
import type { GuestLineViewT, SevView, WrittenViewT } from './types';

export interface SevScope {
  /** `written` entries recomputed by the op (the only ones whose read-back can have changed). */
  readonly written: readonly WrittenViewT[];
  /** Page ownership changed. */
  readonly pages: boolean;
  /** The VM or ASID tables (or the firmware's record) changed. */
  readonly kernel: boolean;
  /**
   * The listed guest lines at every address whose lines changed; undefined
   * when the whole list was rebuilt. Only when neither pages nor kernel
   * tables changed can a new violation come from these lines alone.
   */
  readonly guestLines: readonly GuestLineViewT[] | undefined;
}

export function mergeScopes(a: SevScope, b: SevScope): SevScope {
  return {
    written: [...a.written, ...b.written],
    pages: a.pages || b.pages,
    kernel: a.kernel || b.kernel,
    guestLines: a.guestLines && b.guestLines ? [...a.guestLines, ...b.guestLines] : undefined,
  };
}

/** What the system says about one address, or undefined when its owner has not written it. */
export type EntryOf = (addr: number) => WrittenViewT | undefined;

export class LiveWritten {
  private readonly entries = new Map<number, WrittenViewT>();
  /** The entries in address order, and their addresses (same order). */
  private sorted: WrittenViewT[] = [];
  private addrs: number[] = [];

  /** Index of the first address >= addr. */
  private position(addr: number): number {
    let lo = 0;
    let hi = this.addrs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.addrs[mid]! < addr) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Recompute the touched entries; returns them (the scope) and keeps `list` current. */
  refresh(touched: Iterable<number>, entryOf: EntryOf): WrittenViewT[] {
    const changed: WrittenViewT[] = [];
    // Removals come in batches (a page changing hands forgets all its lines):
    // one compaction pass for a batch instead of a splice per entry.
    let removed = 0;
    let lastRemoved = -1;
    for (const addr of touched) {
      const now = entryOf(addr);
      const old = this.entries.get(addr);
      if (now === undefined) {
        if (old !== undefined) {
          this.entries.delete(addr);
          removed++;
          lastRemoved = addr;
        }
        continue;
      }
      if (old === undefined) {
        this.entries.set(addr, now);
        const i = this.position(addr);
        this.sorted.splice(i, 0, now);
        this.addrs.splice(i, 0, addr);
        changed.push(now);
      } else {
        old.key = now.key;
        old.value = now.value;
        old.reads = now.reads;
        changed.push(old);
      }
    }
    if (removed === 1) {
      const i = this.position(lastRemoved);
      this.sorted.splice(i, 1);
      this.addrs.splice(i, 1);
    } else if (removed > 1) {
      const sorted: WrittenViewT[] = [];
      const addrs: number[] = [];
      for (let i = 0; i < this.addrs.length; i++) {
        if (!this.entries.has(this.addrs[i]!)) continue;
        sorted.push(this.sorted[i]!);
        addrs.push(this.addrs[i]!);
      }
      this.sorted = sorted;
      this.addrs = addrs;
    }
    return changed;
  }

  get list(): WrittenViewT[] {
    return this.sorted;
  }
}

/**
 * The View's `guestLines` order: by page, line, key, then CPU. Both sides
 * list them in this order, so a live list can be compared with a fresh one.
 */
export function compareGuestLines(a: GuestLineViewT, b: GuestLineViewT): number {
  return a.page - b.page || a.line - b.line || a.key - b.key || a.cpu - b.cpu;
}

/**
 * `guestLines` kept sorted in place. Every cache change at an address is
 * touched, so only the touched addresses' runs of the list are re-read and,
 * where they differ, replaced; a change of which ASIDs count as fresh
 * rebuilds the whole list, since it changes which clean lines are listed at
 * every address.
 */
class LiveGuestLines {
  private list: GuestLineViewT[] = [];

  constructor(private readonly linesPerPage: number) {}

  rebuild(all: GuestLineViewT[]): void {
    this.list = all.sort(compareGuestLines);
  }

  private addrOf(l: GuestLineViewT): number {
    return l.page * this.linesPerPage + l.line;
  }

  /** Index of the first listed line at an address >= addr. */
  private position(addr: number): number {
    let lo = 0;
    let hi = this.list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.addrOf(this.list[mid]!) < addr) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Re-read the touched addresses; returns the lines now listed at those whose lines changed. */
  refresh(touched: Iterable<number>, linesAt: (addr: number) => GuestLineViewT[]): GuestLineViewT[] {
    const fresh: GuestLineViewT[] = [];
    let list = this.list;
    for (const addr of touched) {
      const now = linesAt(addr);
      const start = this.position(addr);
      let end = start;
      while (end < list.length && this.addrOf(list[end]!) === addr) end++;
      let same = end - start === now.length;
      for (let i = 0; same && i < now.length; i++) {
        const x = list[start + i]!;
        const y = now[i]!;
        same = x.cpu === y.cpu && x.key === y.key && x.dirty === y.dirty;
      }
      if (same) continue;
      // A new array, so that Views handed out earlier are left as they were.
      if (list === this.list) this.list = list = list.slice();
      list.splice(start, end - start, ...now);
      for (const l of now) fresh.push(l);
    }
    return fresh;
  }

  get lines(): GuestLineViewT[] {
    return this.list;
  }
}

/** What a system gives its LiveView to build the View from. */
export interface LiveSource {
  /** Page ownership, by page. */
  pages(): SevView['pages'];
  /** The VM and ASID tables and the firmware's record. */
  kernel(): KernelTables;
  /** The `written` entry for an address. */
  entryOf: EntryOf;
  /** Every listed guest line (any order). */
  guestLines(): GuestLineViewT[];
  /** The listed guest lines at one address, by key then CPU. */
  guestLinesAt(addr: number): GuestLineViewT[];
}

/** The parts of the View that change only with VM creation, destruction, ASIDs and where VMs ran. */
export type KernelTables = Pick<SevView, 'vms' | 'asids' | 'firmware'>;

/**
 * The whole live View of a sev-cache system: the `written` list kept by
 * `LiveWritten`, and the page-ownership and VM/ASID tables, rebuilt only when
 * the system marked them changed. Both sides build their tables their own way
 * (`tables`); this class only decides what to rebuild.
 */
export class LiveView {
  private readonly touched = new Set<number>();
  private readonly written = new LiveWritten();
  private readonly guest: LiveGuestLines;
  private pagesChanged = true;
  private kernelChanged = true;
  private freshChanged = true;
  private pages: SevView['pages'] = [];
  private kernel: KernelTables = { vms: [], asids: [], firmware: { dfFlushes: 0, lastDfFlushMissingWbinvd: [] } };

  constructor(linesPerPage: number) {
    this.guest = new LiveGuestLines(linesPerPage);
  }

  /** Something at this address (cache lines, memory, owner, ghost write) may have changed. */
  touch(addr: number): void {
    this.touched.add(addr);
  }
  /** Page ownership changed. */
  markPages(): void {
    this.pagesChanged = true;
  }
  /**
   * VMs or ASIDs changed in a way that changes which ASIDs count as fresh (a
   * VM created, destroyed or run for the first time, ASIDs recycled), or the
   * firmware's record changed: every guest line's listing may change.
   */
  markKernel(): void {
    this.kernelChanged = true;
    this.freshChanged = true;
  }
  /** Only a VM's writeback set changed (a CPU marked or the set cleared). */
  markWritebackSet(): void {
    this.kernelChanged = true;
  }

  /** The View kept up to date, and what changed since the last call. */
  view(source: LiveSource): { view: SevView; scope: SevScope } {
    const changed = this.written.refresh(this.touched, source.entryOf);
    const pages = this.pagesChanged;
    const kernel = this.kernelChanged;
    let lines: GuestLineViewT[] | undefined;
    if (this.freshChanged) this.guest.rebuild(source.guestLines());
    else lines = this.guest.refresh(this.touched, source.guestLinesAt);
    this.touched.clear();
    if (pages) this.pages = source.pages();
    if (kernel) this.kernel = source.kernel();
    this.pagesChanged = false;
    this.kernelChanged = false;
    this.freshChanged = false;
    const k = this.kernel;
    const view: SevView = { vms: k.vms, asids: k.asids, pages: this.pages, guestLines: this.guest.lines, written: this.written.list, firmware: k.firmware };
    return { view, scope: { written: changed, pages, kernel, guestLines: lines } };
  }
}
