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
  type TlbView,
  type View,
} from '../../spec/stage2-dirty/types';

interface SlotState {
  readonly id: number;
  baseGfn: number;
  readonly npages: number;
  readonly backing: Backing;
  readonly readonly: boolean;
  readonly hostBase: number;
  logging: boolean;
  readonly dirty: FrameSet;
  /** Ghost: written while logged since the bit was last cleared. */
  readonly written: FrameSet;
  /** Ghost: bits set by initiallySet and not cleared since. */
  readonly initial: FrameSet;
  /** Ghost, right after a clearDirtyLog only: bits set before it that the caller did not pass. */
  kept: number[];
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
  /** The memslots, by id order (the View lists them so). */
  private slots: SlotState[];
  /** Host frames handed out so far: a new slot's memory starts above them. */
  private hostNext = 0;
  /** Whether some slot holds a `kept` list from the last op. */
  private anyKept = false;
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
    this.slots = config.memslots.map((m, i) => this.newSlot(m.id, m.baseGfn, m.npages, m.backing, m.readonly, bases[i]!));
    for (let i = 0; i < bases.length; i++) this.hostNext = Math.max(this.hostNext, bases[i]! + config.memslots[i]!.npages);
    this.slots.sort((a, b) => a.id - b.id);
  }

  private newSlot(id: number, baseGfn: number, npages: number, backing: Backing, readonly: boolean, hostBase: number): SlotState {
    return { id, baseGfn, npages, backing, readonly, hostBase, logging: false, dirty: new FrameSet(), written: new FrameSet(), initial: new FrameSet(), kept: [] };
  }

  /** One handler per op (see OpHandlers: exhaustive, and cheaper per call than a ts-pattern chain). */
  private readonly handlers: OpHandlers<Op, Result> = {
    guestRead: ({ gfn }) => this.access(gfn, false, 0),
    guestWrite: ({ gfn, value }) => this.access(gfn, true, value ?? 0),
    enableDirtyLog: ({ slot }) => this.enable(slot),
    disableDirtyLog: ({ slot }) => this.disable(slot),
    getDirtyLog: ({ slot }) => this.getLog(slot),
    clearDirtyLog: ({ slot, first, num, bits }) => this.clearLog(slot, first, num, bits),
    setUserMemoryRegion: (a) => this.setRegion(a.slot, a.baseGfn, a.npages, a.logDirty ?? false, a.readonly, a.backing),
    unmapRange: ({ gfn, npages }) => this.unmap(gfn, npages),
    tlbEvict: ({ gfn }) => {
      this.flushIpa(gfn);
      return OK;
    },
    mappingOf: ({ gfn }) => this.mappingOf(gfn),
  };

  apply(op: Op): Result {
    if (this.anyKept) {
      for (const s of this.slots) s.kept = [];
      this.anyKept = false;
    }
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
    for (const s of this.slots) if (gfn >= s.baseGfn && gfn < s.baseGfn + s.npages) return s;
    return undefined;
  }

  /** Host frame backing `gfn` (which must be in a slot). */
  private pfnOf(gfn: number): number {
    const s = this.slotOf(gfn)!;
    return s.hostBase + (gfn - s.baseGfn);
  }

  private slotById(id: number): SlotState | undefined {
    return this.slots.find((s) => s.id === id);
  }

  /** Faults in a slot are "logging" ones only when it has a bitmap and is writable (arm64 memslot_is_logging). */
  private loggingFaults(s: SlotState): boolean {
    return s.logging && !s.readonly;
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
    if (write && s.readonly) return MMIO;
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
    if (this.loggingFaults(s)) {
      if (this.map.get(gfn)?.block) {
        this.dropBlock(this.blockStart(gfn));
        this.flushIpa(this.blockStart(gfn));
      }
      this.mapSet(gfn, { writable: write, block: false });
      if (write) s.dirty.add(gfn);
      return;
    }
    const writable = !s.readonly;
    if (blockEligible(s, gfn, bp)) {
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

  /**
   * KVM_MEM_LOG_DIRTY_PAGES turned on (kvm_prepare_memory_region allocates
   * the bitmap, all ones with KVM_DIRTY_LOG_INITIALLY_SET; arm64
   * kvm_arch_commit_memory_region write-protects the slot and flushes,
   * except with INITIALLY_SET, where protection comes chunk by chunk with
   * the CLEARs).
   */
  private startLogging(s: SlotState): void {
    s.logging = true;
    s.dirty.clear();
    s.written.clear();
    s.initial.clear();
    const { baseGfn, npages } = s;
    if (this.config.initiallySet) {
      for (let g = baseGfn; g < baseGfn + npages; g++) {
        s.dirty.add(g);
        s.initial.add(g);
      }
      return;
    }
    for (const [g, mp] of this.map) if (g >= baseGfn && g < baseGfn + npages) mp.writable = false;
    this.flushAll();
  }

  private stopLogging(s: SlotState): void {
    s.logging = false;
    s.dirty.clear();
    s.written.clear();
    s.initial.clear();
  }

  /** The shorthand: the slot's own region again with KVM_MEM_LOG_DIRTY_PAGES set. */
  private enable(id: number): Result {
    const s = this.slotById(id);
    if (!s) return EINVAL;
    return this.setRegion(id, s.baseGfn, s.npages, true, s.readonly, undefined);
  }

  private disable(id: number): Result {
    const s = this.slotById(id);
    if (!s) return EINVAL;
    return this.setRegion(id, s.baseGfn, s.npages, false, s.readonly, undefined);
  }

  /**
   * KVM_SET_USER_MEMORY_REGION, with upstream's checks in upstream's order
   * (kvm_vm_ioctl_set_memory_region, __kvm_set_memory_region, arm64
   * kvm_arch_prepare_memory_region).
   */
  private setRegion(id: number, baseGfn: number, npages: number, logDirty: boolean, readonly: boolean | undefined, backing: Backing | undefined): Result {
    // `readonly` absent is the flag clear, as in the ioctl's flags word.
    if (id >= this.config.userMemSlots) return EINVAL;
    if (npages > KVM_MEM_MAX_NR_PAGES) return EINVAL;
    const old = this.slotById(id);
    if (npages === 0) {
      if (!old) return EINVAL;
      this.dropRange(old.baseGfn, old.npages, true);
      this.slots = this.slots.filter((x) => x !== old);
      return OK;
    }
    const ro = readonly ?? false;
    if (old) {
      // A different size, KVM_MEM_READONLY flipped, or other host memory (a
      // different userspace_addr, which `backing` stands for): EINVAL.
      if (npages !== old.npages || ro !== old.readonly || (backing !== undefined && backing !== old.backing)) return EINVAL;
    }
    const move = old !== undefined && baseGfn !== old.baseGfn;
    if (!old || move) {
      for (const o of this.slots) if (o !== old && baseGfn < o.baseGfn + o.npages && o.baseGfn < baseGfn + npages) return EEXIST;
      if (baseGfn + npages > MAX_GFN_END) return EFAULT;
    }
    if (!old) {
      const hostBase = nextHostBase(this.hostNext, baseGfn, this.config.blockPages);
      this.hostNext = hostBase + npages;
      const s = this.newSlot(id, baseGfn, npages, backing ?? 'thp', ro, hostBase);
      this.slots.push(s);
      this.slots.sort((a, b) => a.id - b.id);
      if (logDirty) this.startLogging(s);
      return OK;
    }
    if (move) {
      // kvm_invalidate_memslot: the old range is unmapped and flushed; the
      // memory (same userspace_addr) and the bitmap go with the slot.
      this.dropRange(old.baseGfn, old.npages, false);
      const delta = baseGfn - old.baseGfn;
      const moved = new Map<number, number>();
      for (const [g, v] of this.mem) if (g >= old.baseGfn && g < old.baseGfn + old.npages) moved.set(g + delta, v);
      for (const g of [...this.mem.keys()]) if (g >= old.baseGfn && g < old.baseGfn + old.npages) this.mem.delete(g);
      for (const [g, v] of moved) this.mem.set(g, v);
      this.memKeys = null;
      for (const set of [old.dirty, old.written, old.initial]) {
        const members = set.sorted();
        set.clear();
        for (const g of members) set.add(g + delta);
      }
      old.baseGfn = baseGfn;
    }
    if (logDirty && !old.logging) this.startLogging(old);
    else if (!logDirty && old.logging) this.stopLogging(old);
    return OK;
  }

  /** Unmap a slot's range (kvm_arch_flush_shadow_memslot); on delete the ghost memory of it goes too. */
  private dropRange(baseGfn: number, npages: number, forget: boolean): void {
    this.unmap(baseGfn, npages);
    if (!forget) return;
    for (const g of [...this.mem.keys()]) {
      if (g >= baseGfn && g < baseGfn + npages) {
        this.mem.delete(g);
        this.memKeys = null;
      }
    }
  }

  private getLog(id: number): Result {
    if (id >= this.config.userMemSlots) return EINVAL;
    const s = this.slotById(id);
    if (!s || !s.logging) return ENOENT;
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

  private clearLog(id: number, first: number, num: number, bits: readonly number[] | undefined): Result {
    // The order of kvm_clear_dirty_log_protect: slot id range, alignment of first, slot and bitmap, range.
    if (id >= this.config.userMemSlots || first % DIRTY_LOG_GRANULE !== 0) return EINVAL;
    const s = this.slotById(id);
    if (!s || !s.logging) return ENOENT;
    if (!clearRangeValid(s.npages, first, num)) return EINVAL;
    const lo = s.baseGfn + first;
    const passed = new Set<number>();
    if (bits === undefined) for (let g = lo; g < lo + num; g++) passed.add(g);
    else for (const b of bits) if (b < num) passed.add(lo + b);
    s.kept = s.dirty.sorted().filter((g) => !passed.has(g));
    this.anyKept = true;
    let flush = false;
    for (const g of passed) {
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
      id: s.id,
      baseGfn: s.baseGfn,
      npages: s.npages,
      readonly: s.readonly,
      logging: s.logging,
      dirty: s.dirty.sorted(),
      written: s.written.sorted(),
      initial: s.initial.sorted(),
      kept: s.kept.slice(),
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
    for (const s of v.slots) parts.push(`s${s.id}@${s.baseGfn}+${s.npages}:${s.logging ? 1 : 0}:${s.dirty.join(',')}:${s.written.join(',')}:${s.initial.join(',')}:${s.kept.join(',')}`);
    parts.push('m' + v.mappings.map((m) => `${m.gfn}${m.writable ? 'w' : 'r'}${m.size === '2m' ? 'b' : 'p'}`).join(','));
    parts.push('v' + v.memory.map((m) => `${m.gfn}=${m.expected}`).join(','));
    parts.push('t' + v.tlb.map((e) => `${e.gfn}${e.npages > 1 ? 'b' : 'p'}${e.writable ? 'w' : 'r'}`).join(','));
    return parts.join('|');
  }
}

export function createModel(config: Config): Stage2DirtyModel {
  return new Stage2DirtyModel(config);
}
