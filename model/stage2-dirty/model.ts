/**
 * stage2-dirty reference model: the simplest code that obeys the spec.
 *
 * Mappings are a flat map from guest frame to { writable, block }: a block
 * is simply `blockPages` consecutive aligned entries marked `block`, always
 * complete. The dirty bitmap is a set of frames. There is no table and no
 * count. The TLB is only what the spec says of it: a translation (a page,
 * or a whole block) is cached by the access that used it and stays until
 * a flush the spec names (enabling logging, re-protection by a fetch or a
 * clear, a dissolved or replaced block, an unmap) or a `tlbEvict`. The
 * model's behaviour never depends on it; it is kept so that the
 * implementation's TLB can be compared with it and so that the fingerprint
 * tells apart states a stale translation would make behave differently.
 */
import { dispatch, type OpHandlers, type System } from '../../harness/domain';
import { DIRTY_LOG_GRANULE, blockEligible, clearRangeValid, hostBases, slotIndexById, slotIndexOf } from '../../spec/stage2-dirty/config';
import {
  EINVAL,
  ENOENT,
  MMIO,
  OK,
  type Config,
  type MappingView,
  type Memslot,
  type MemoryView,
  type Op,
  type Result,
  type SlotView,
  type TlbView,
  type View,
} from '../../spec/stage2-dirty/types';

interface SlotState {
  readonly m: Memslot;
  readonly hostBase: number;
  logging: boolean;
  readonly dirty: FrameSet;
  /** Ghost: written while logged since the bit was last cleared. */
  readonly written: FrameSet;
  /** Ghost: bits set by initiallySet and not cleared since. */
  readonly initial: FrameSet;
}

interface Mapping {
  writable: boolean;
  readonly block: boolean;
}

/** A set of frame numbers that also answers its members in ascending order (cached until it changes). */
class FrameSet {
  private readonly s = new Set<number>();
  private asc: number[] | null = [];
  add(x: number): void {
    if (this.s.has(x)) return;
    this.s.add(x);
    this.asc = null;
  }
  delete(x: number): boolean {
    if (!this.s.delete(x)) return false;
    this.asc = null;
    return true;
  }
  clear(): void {
    if (this.s.size === 0) return;
    this.s.clear();
    this.asc = null;
  }
  /** Members in ascending order (a fresh array the caller may keep). */
  sorted(): number[] {
    this.asc ??= [...this.s].sort((a, b) => a - b);
    return this.asc.slice();
  }
}

/** TLB entries in a canonical order (both sides list them this way). */
export function byGfnThenSize(a: TlbView, b: TlbView): number {
  return a.gfn - b.gfn || a.npages - b.npages;
}

export class Stage2DirtyModel implements System<Op, Result, View> {
  private readonly slots: SlotState[];
  private readonly map = new Map<number, Mapping>();
  private readonly mem = new Map<number, number>();
  /** Written gfns in ascending order, rebuilt when a page is written for the first time. */
  private memKeys: number[] | null = [];
  /** Cached translations: page gfn -> writable, block start -> writable. */
  private readonly tlbPages = new Map<number, boolean>();
  private readonly tlbBlocks = new Map<number, boolean>();
  private faults = 0;

  constructor(private readonly config: Config) {
    const bases = hostBases(config);
    this.slots = config.memslots.map((m, i) => ({
      m,
      hostBase: bases[i]!,
      logging: false,
      dirty: new FrameSet(),
      written: new FrameSet(),
      initial: new FrameSet(),
    }));
  }

  /** One handler per op (see OpHandlers: exhaustive, and cheaper per call than a ts-pattern chain). */
  private readonly handlers: OpHandlers<Op, Result> = {
    guestRead: ({ gfn }) => this.access(gfn, false, 0),
    guestWrite: ({ gfn, value }) => this.access(gfn, true, value ?? 0),
    enableDirtyLog: ({ slot }) => this.enable(slot),
    disableDirtyLog: ({ slot }) => this.disable(slot),
    getDirtyLog: ({ slot }) => this.getLog(slot),
    clearDirtyLog: ({ slot, first, num }) => this.clearLog(slot, first, num),
    unmapRange: ({ gfn, npages }) => this.unmap(gfn, npages),
    tlbEvict: ({ gfn }) => {
      this.flushIpa(gfn);
      return OK;
    },
    mappingOf: ({ gfn }) => this.mappingOf(gfn),
  };

  apply(op: Op): Result {
    return dispatch(this.handlers, op);
  }

  /** Mapped gfns in ascending order, rebuilt from the map when its key set changed (the view lists mappings in order). */
  private sortedKeys: number[] | null = null;

  private mapSet(gfn: number, m: Mapping): void {
    if (!this.map.has(gfn)) this.sortedKeys = null;
    this.map.set(gfn, m);
  }

  private mapDelete(gfn: number): void {
    if (this.map.delete(gfn)) this.sortedKeys = null;
  }

  private slotOf(gfn: number): SlotState | undefined {
    const i = slotIndexOf(this.config, gfn);
    return i < 0 ? undefined : this.slots[i];
  }

  /** Host frame backing `gfn` (which must be in a slot). */
  private pfnOf(gfn: number): number {
    const s = this.slotOf(gfn)!;
    return s.hostBase + (gfn - s.m.baseGfn);
  }

  private slotById(id: number): SlotState | undefined {
    const i = slotIndexById(this.config, id);
    return i < 0 ? undefined : this.slots[i];
  }

  private blockStart(gfn: number): number {
    return gfn - (gfn % this.config.blockPages);
  }

  /** Remove every page of the block at `start`. */
  private dropBlock(start: number): void {
    for (let g = start; g < start + this.config.blockPages; g++) this.mapDelete(g);
  }

  private access(gfn: number, write: boolean, value: number): Result {
    const s = this.slotOf(gfn);
    if (!s) return MMIO;
    if (write && s.m.readonly) return MMIO;
    if (!this.tlbHit(gfn, write)) {
      const cur = this.map.get(gfn);
      if (!cur || (write && !cur.writable)) this.fault(s, gfn, write);
      const now = this.map.get(gfn)!;
      if (now.block) this.tlbBlocks.set(this.blockStart(gfn), now.writable);
      else this.tlbPages.set(gfn, now.writable);
    }
    if (!write) return { ok: true, value: this.mem.get(gfn) ?? 0 };
    if (!this.mem.has(gfn)) this.memKeys = null;
    this.mem.set(gfn, value);
    if (s.logging) s.written.add(gfn);
    return OK;
  }

  /** Whether the TLB holds a translation good enough for this access. */
  private tlbHit(gfn: number, write: boolean): boolean {
    const w = this.tlbPages.get(gfn) ?? this.tlbBlocks.get(this.blockStart(gfn));
    return w !== undefined && (!write || w);
  }

  /** Flush by address: whatever translation covers `gfn`. */
  private flushIpa(gfn: number): void {
    this.tlbPages.delete(gfn);
    this.tlbBlocks.delete(this.blockStart(gfn));
  }

  private flushAll(): void {
    this.tlbPages.clear();
    this.tlbBlocks.clear();
  }

  /**
   * The fault handler. Logged slot: 4 KiB pages only, a block met on the
   * way goes (all of it), read faults map read-only, write faults map
   * writable and mark the page dirty. Unlogged slot: a block wherever the
   * backing and alignment allow (replacing whatever pages were there), else
   * a page; writable unless the slot is read-only.
   */
  private fault(s: SlotState, gfn: number, write: boolean): void {
    this.faults++;
    const bp = this.config.blockPages;
    if (s.logging) {
      if (this.map.get(gfn)?.block) {
        this.dropBlock(this.blockStart(gfn));
        this.flushIpa(this.blockStart(gfn));
      }
      this.mapSet(gfn, { writable: write, block: false });
      if (write) s.dirty.add(gfn);
      return;
    }
    const writable = !s.m.readonly;
    if (blockEligible(s.m, gfn, bp)) {
      const start = this.blockStart(gfn);
      // Whatever was there goes first: a block is flushed once, pages one by one.
      if (this.map.get(start)?.block) this.flushIpa(start);
      else for (let g = start; g < start + bp; g++) if (this.map.has(g)) this.flushIpa(g);
      for (let g = start; g < start + bp; g++) this.mapSet(g, { writable, block: true });
    } else {
      this.mapSet(gfn, { writable, block: false });
    }
  }

  /** Make the mapping of `gfn` (its whole block, for a block) read-only; true if it was writable. */
  private writeProtect(gfn: number): boolean {
    const cur = this.map.get(gfn);
    if (!cur || !cur.writable) return false;
    if (!cur.block) {
      cur.writable = false;
      return true;
    }
    const start = this.blockStart(gfn);
    for (let g = start; g < start + this.config.blockPages; g++) this.map.get(g)!.writable = false;
    return true;
  }

  private enable(id: number): Result {
    const s = this.slotById(id);
    if (!s || s.m.readonly) return EINVAL;
    if (s.logging) return OK;
    s.logging = true;
    s.dirty.clear();
    s.written.clear();
    s.initial.clear();
    const { baseGfn, npages } = s.m;
    if (this.config.initiallySet) {
      for (let g = baseGfn; g < baseGfn + npages; g++) {
        s.dirty.add(g);
        s.initial.add(g);
      }
    }
    for (const [g, mp] of this.map) if (g >= baseGfn && g < baseGfn + npages) mp.writable = false;
    this.flushAll();
    return OK;
  }

  private disable(id: number): Result {
    const s = this.slotById(id);
    if (!s) return EINVAL;
    s.logging = false;
    s.dirty.clear();
    s.written.clear();
    s.initial.clear();
    return OK;
  }

  private getLog(id: number): Result {
    const s = this.slotById(id);
    if (!s) return EINVAL;
    if (!s.logging) return ENOENT;
    const dirty = s.dirty.sorted();
    if (!this.config.manualProtect) {
      let flush = false;
      for (const g of dirty) {
        s.dirty.delete(g);
        s.written.delete(g);
        s.initial.delete(g);
        if (this.writeProtect(g)) flush = true;
      }
      if (flush) this.flushAll();
    }
    return { ok: true, dirty };
  }

  private clearLog(id: number, first: number, num: number): Result {
    const s = this.slotById(id);
    // The order of kvm_clear_dirty_log_protect: slot id, alignment of first, bitmap, range.
    if (!s || first % DIRTY_LOG_GRANULE !== 0) return EINVAL;
    if (!s.logging) return ENOENT;
    if (!clearRangeValid(s.m.npages, first, num)) return EINVAL;
    const lo = s.m.baseGfn + first;
    let flush = false;
    for (let g = lo; g < lo + num; g++) {
      if (s.dirty.delete(g) && this.writeProtect(g)) flush = true;
      s.written.delete(g);
      s.initial.delete(g);
    }
    if (flush) this.flushAll();
    return OK;
  }

  private unmap(gfn: number, npages: number): Result {
    const end = gfn + npages;
    for (const [g, mp] of [...this.map]) {
      if (g < gfn || g >= end || !this.map.has(g)) continue;
      if (mp.block) {
        this.dropBlock(this.blockStart(g));
        this.flushIpa(this.blockStart(g));
      } else {
        this.mapDelete(g);
        this.flushIpa(g);
      }
    }
    return OK;
  }

  private mappingOf(gfn: number): Result {
    if (!this.slotOf(gfn)) return EINVAL;
    const mp = this.map.get(gfn);
    if (!mp) return { ok: true, mapped: false };
    return { ok: true, mapped: true, size: mp.block ? '2m' : '4k', writable: mp.writable };
  }

  view(): View {
    const slots: SlotView[] = this.slots.map((s) => ({
      id: s.m.id,
      logging: s.logging,
      dirty: s.dirty.sorted(),
      written: s.written.sorted(),
      initial: s.initial.sorted(),
    }));
    const mappings: MappingView[] = [];
    const bp = this.config.blockPages;
    this.sortedKeys ??= [...this.map.keys()].sort((a, b) => a - b);
    for (const g of this.sortedKeys) {
      const mp = this.map.get(g)!;
      // A block is listed once, at its aligned start.
      if (mp.block && g % bp !== 0) continue;
      mappings.push({ gfn: g, pfn: this.pfnOf(g), writable: mp.writable, size: mp.block ? '2m' : '4k' });
    }
    const memory: MemoryView[] = [];
    this.memKeys ??= [...this.mem.keys()].sort((a, b) => a - b);
    for (const g of this.memKeys) {
      const v = this.mem.get(g)!;
      memory.push({ gfn: g, expected: v, host: v, mapped: this.map.has(g) ? v : null });
    }
    const tlb: TlbView[] = [];
    for (const [g, w] of this.tlbPages) tlb.push({ gfn: g, npages: 1, pfn: this.pfnOf(g), writable: w });
    for (const [g, w] of this.tlbBlocks) tlb.push({ gfn: g, npages: bp, pfn: this.pfnOf(g), writable: w });
    tlb.sort(byGfnThenSize);
    return { slots, mappings, tlb, tables: [], memory, blocksWhileLogging: 0 };
  }

  counters(): Readonly<Record<string, number>> {
    return { faults: this.faults };
  }

  /** Canonical abstract state: slots (logging, bitmap, ghosts), mappings, memory. */
  fingerprint(): string {
    const v = this.view();
    const parts: string[] = [];
    for (const s of v.slots) parts.push(`s${s.id}:${s.logging ? 1 : 0}:${s.dirty.join(',')}:${s.written.join(',')}:${s.initial.join(',')}`);
    parts.push('m' + v.mappings.map((m) => `${m.gfn}${m.writable ? 'w' : 'r'}${m.size === '2m' ? 'b' : 'p'}`).join(','));
    parts.push('v' + v.memory.map((m) => `${m.gfn}=${m.expected}`).join(','));
    parts.push('t' + v.tlb.map((e) => `${e.gfn}${e.npages > 1 ? 'b' : 'p'}${e.writable ? 'w' : 'r'}`).join(','));
    return parts.join('|');
  }
}

export function createModel(config: Config): Stage2DirtyModel {
  return new Stage2DirtyModel(config);
}
