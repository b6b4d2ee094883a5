/**
 * stage2-dirty reference model: the simplest code that obeys the spec.
 *
 * Mappings are a flat map from guest frame to { writable, block }: a block
 * is simply `blockPages` consecutive aligned entries marked `block`, always
 * complete. The dirty bitmap is a set of frames. There is no table, no
 * count and no TLB: the model says what the guest and user space observe,
 * and the implementation must agree with it.
 */
import { match } from 'ts-pattern';
import type { System } from '../../harness/domain';
import { blockEligible, clearRangeValid, hostBases, slotIndexById, slotIndexOf } from '../../spec/stage2-dirty/config';
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
  type View,
} from '../../spec/stage2-dirty/types';

interface SlotState {
  readonly m: Memslot;
  readonly hostBase: number;
  logging: boolean;
  readonly dirty: Set<number>;
  /** Ghost: written while logged since the bit was last cleared. */
  readonly written: Set<number>;
  /** Ghost: bits set by initiallySet and not cleared since. */
  readonly initial: Set<number>;
}

interface Mapping {
  writable: boolean;
  readonly block: boolean;
}

const sorted = (s: Set<number>): number[] => [...s].sort((a, b) => a - b);

export class Stage2DirtyModel implements System<Op, Result, View> {
  private readonly slots: SlotState[];
  private readonly map = new Map<number, Mapping>();
  private readonly mem = new Map<number, number>();
  private faults = 0;

  constructor(private readonly config: Config) {
    const bases = hostBases(config);
    this.slots = config.memslots.map((m, i) => ({
      m,
      hostBase: bases[i]!,
      logging: false,
      dirty: new Set<number>(),
      written: new Set<number>(),
      initial: new Set<number>(),
    }));
  }

  apply(op: Op): Result {
    return match(op)
      .with({ op: 'guestRead' }, ({ args }) => this.access(args.gfn, false, 0))
      .with({ op: 'guestWrite' }, ({ args }) => this.access(args.gfn, true, args.value ?? 0))
      .with({ op: 'enableDirtyLog' }, ({ args }) => this.enable(args.slot))
      .with({ op: 'disableDirtyLog' }, ({ args }) => this.disable(args.slot))
      .with({ op: 'getDirtyLog' }, ({ args }) => this.getLog(args.slot))
      .with({ op: 'clearDirtyLog' }, ({ args }) => this.clearLog(args.slot, args.first, args.num))
      .with({ op: 'unmapRange' }, ({ args }) => this.unmap(args.gfn, args.npages))
      .with({ op: 'tlbEvict' }, () => OK)
      .with({ op: 'mappingOf' }, ({ args }) => this.mappingOf(args.gfn))
      .exhaustive();
  }

  private slotOf(gfn: number): SlotState | undefined {
    const i = slotIndexOf(this.config, gfn);
    return i < 0 ? undefined : this.slots[i];
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
    for (let g = start; g < start + this.config.blockPages; g++) this.map.delete(g);
  }

  private access(gfn: number, write: boolean, value: number): Result {
    const s = this.slotOf(gfn);
    if (!s) return MMIO;
    if (write && s.m.readonly) return MMIO;
    const cur = this.map.get(gfn);
    if (!cur || (write && !cur.writable)) this.fault(s, gfn, write);
    if (!write) return { ok: true, value: this.mem.get(gfn) ?? 0 };
    this.mem.set(gfn, value);
    if (s.logging) s.written.add(gfn);
    return OK;
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
      if (this.map.get(gfn)?.block) this.dropBlock(this.blockStart(gfn));
      this.map.set(gfn, { writable: write, block: false });
      if (write) s.dirty.add(gfn);
      return;
    }
    const writable = !s.m.readonly;
    if (blockEligible(s.m, gfn, bp)) {
      const start = this.blockStart(gfn);
      for (let g = start; g < start + bp; g++) this.map.set(g, { writable, block: true });
    } else {
      this.map.set(gfn, { writable, block: false });
    }
  }

  private writeProtect(gfn: number): void {
    const cur = this.map.get(gfn);
    if (cur) cur.writable = false;
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
    const dirty = sorted(s.dirty);
    if (!this.config.manualProtect) {
      for (const g of dirty) {
        s.dirty.delete(g);
        s.written.delete(g);
        s.initial.delete(g);
        this.writeProtect(g);
      }
    }
    return { ok: true, dirty };
  }

  private clearLog(id: number, first: number, num: number): Result {
    const s = this.slotById(id);
    if (!s) return EINVAL;
    if (!s.logging) return ENOENT;
    if (!clearRangeValid(s.m.npages, first, num)) return EINVAL;
    const lo = s.m.baseGfn + first;
    for (let g = lo; g < lo + num; g++) {
      if (s.dirty.delete(g)) this.writeProtect(g);
      s.written.delete(g);
      s.initial.delete(g);
    }
    return OK;
  }

  private unmap(gfn: number, npages: number): Result {
    const end = gfn + npages;
    for (const [g, mp] of [...this.map]) {
      if (g < gfn || g >= end || !this.map.has(g)) continue;
      if (mp.block) this.dropBlock(this.blockStart(g));
      else this.map.delete(g);
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
      dirty: sorted(s.dirty),
      written: sorted(s.written),
      initial: sorted(s.initial),
    }));
    const mappings: MappingView[] = [];
    const bp = this.config.blockPages;
    for (const g of [...this.map.keys()].sort((a, b) => a - b)) {
      const mp = this.map.get(g)!;
      // A block is listed once, at its aligned start.
      if (mp.block && g % bp !== 0) continue;
      const s = this.slotOf(g)!;
      mappings.push({ gfn: g, pfn: s.hostBase + (g - s.m.baseGfn), writable: mp.writable, size: mp.block ? '2m' : '4k' });
    }
    const memory: MemoryView[] = [];
    for (const g of [...this.mem.keys()].sort((a, b) => a - b)) {
      const v = this.mem.get(g)!;
      memory.push({ gfn: g, expected: v, host: v, mapped: this.map.has(g) ? v : null });
    }
    return { slots, mappings, tlb: [], tables: [], memory, blocksWhileLogging: 0 };
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
    return parts.join('|');
  }
}

export function createModel(config: Config): Stage2DirtyModel {
  return new Stage2DirtyModel(config);
}
