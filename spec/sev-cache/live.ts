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
import type { SevView, WrittenViewT } from './types';

export interface SevScope {
  /** `written` entries recomputed by the op (the only ones whose read-back can have changed). */
  readonly written: readonly WrittenViewT[];
  /** Page ownership changed. */
  readonly pages: boolean;
}

export function mergeScopes(a: SevScope, b: SevScope): SevScope {
  return { written: [...a.written, ...b.written], pages: a.pages || b.pages };
}

/** What the system says about one address, or undefined when its owner has not written it. */
export type EntryOf = (addr: number) => WrittenViewT | undefined;

export class LiveWritten {
  private readonly entries = new Map<number, WrittenViewT>();
  private readonly touched = new Set<number>();
  /** The entries in address order, and their addresses (same order). */
  private readonly sorted: WrittenViewT[] = [];
  private readonly addrs: number[] = [];

  touch(addr: number): void {
    this.touched.add(addr);
  }

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
  refresh(entryOf: EntryOf): WrittenViewT[] {
    const changed: WrittenViewT[] = [];
    for (const addr of this.touched) {
      const now = entryOf(addr);
      const old = this.entries.get(addr);
      if (now === undefined) {
        if (old !== undefined) {
          this.entries.delete(addr);
          const i = this.position(addr);
          this.sorted.splice(i, 1);
          this.addrs.splice(i, 1);
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
    this.touched.clear();
    return changed;
  }

  get list(): WrittenViewT[] {
    return this.sorted;
  }
}

type Tables = Omit<SevView, 'written'>;
type Kernel = Pick<SevView, 'vms' | 'asids'>;

/**
 * The whole live View of a sev-cache system: the `written` list kept by
 * `LiveWritten`, and the page-ownership and VM/ASID tables, rebuilt only when
 * the system marked them changed. Both sides build their tables their own way
 * (`tables`); this class only decides what to rebuild.
 */
export class LiveView {
  private readonly written = new LiveWritten();
  private pagesChanged = true;
  private kernelChanged = true;
  private pages: SevView['pages'] = [];
  private kernel: Kernel = { vms: [], asids: [] };

  touch(addr: number): void {
    this.written.touch(addr);
  }
  /** Page ownership changed. */
  markPages(): void {
    this.pagesChanged = true;
  }
  /** VMs or ASIDs changed. */
  markKernel(): void {
    this.kernelChanged = true;
  }

  /** The View kept up to date, and what changed since the last call. */
  view(
    tables: (pages: SevView['pages'] | undefined, kernel: Kernel | undefined) => Tables,
    entryOf: EntryOf,
  ): { view: SevView; scope: SevScope } {
    const changed = this.written.refresh(entryOf);
    const pages = this.pagesChanged;
    const t = tables(pages ? undefined : this.pages, this.kernelChanged ? undefined : this.kernel);
    this.pages = t.pages;
    this.kernel = { vms: t.vms, asids: t.asids };
    this.pagesChanged = false;
    this.kernelChanged = false;
    return { view: { ...t, written: this.written.list }, scope: { written: changed, pages } };
  }
}
