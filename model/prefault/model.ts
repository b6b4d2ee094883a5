/**
 * Reference model of the `prefault` domain: the simplest code that obeys the
 * spec. State is per 4 KiB page: a map from gfn to the leaf covering it, a map
 * of per-page attribute overrides, the set of added pages and the measurement.
 * A fault tries the levels from the largest down and checks each rule page by
 * page. Slow for huge leaves (a 1 GiB leaf is 262144 page steps), by design.
 */
import { dispatch, type OpHandlers, type System } from '../../harness/domain';
import { slotOf } from '../../spec/prefault/config';
import {
  GFN_LIMIT,
  LEVEL_OF,
  PAGES_OF_LEVEL,
  PAGE_SIZE,
  SIZE_OF_LEVEL,
  VM_MAX_LEVEL,
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
  type PreFaultResult,
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
        c = new Array<Leaf | undefined>(512);
        this.chunks.set(k, c);
      }
      const stop = Math.min(end, (k + 1) * 512);
      for (; p < stop; p++) c[p % 512] = leaf;
    }
  }
  /** Every distinct leaf (found at its first page). */
  leaves(): Leaf[] {
    const out: Leaf[] = [];
    for (const [k, c] of this.chunks) {
      for (let i = 0; i < 512; i++) {
        const l = c[i];
        if (l !== undefined && l.gfn === k * 512 + i) out.push(l);
      }
    }
    return out.sort((a, b) => a.gfn - b.gfn);
  }
}

export class PrefaultModel implements System<PrefaultOp, PrefaultResult, View, Scope> {
  private finalized = false;
  private readonly pages = new PageMap();
  /** Per memslot (same order as config.memslots), one byte per page: 1 = private. */
  private readonly attrs: Uint8Array[];
  private readonly added = new Set<number>();
  private readonly measured: number[] = [];
  private last: LastOp | null = null;
  /**
   * The leaves in gfn order, kept up to date by install/zap (the live View);
   * `view()` recomputes them from the page map instead, so the harness can
   * compare the two.
   */
  private readonly leafList: Leaf[] = [];
  private attrCache: AttrRun[] | null = null;
  private measurementCopy: number[] | null = [];
  /** The gfn range changed since the last liveView(). */
  private dirtyStart = Infinity;
  private dirtyEnd = -Infinity;
  private readonly reachLevel: number;
  private leavesInstalled = 0;
  private pageSteps = 0;

  constructor(private readonly config: PrefaultConfig) {
    this.reachLevel = maxLeafLevel(config);
    this.attrs = config.memslots.map((s) => new Uint8Array(s.npages).fill(config.privateByDefault ? 1 : 0));
  }

  private touch(start: number, end: number): void {
    this.dirtyStart = Math.min(this.dirtyStart, start);
    this.dirtyEnd = Math.max(this.dirtyEnd, end);
  }

  // -- rules, page by page -------------------------------------------------

  /** The attribute of a memslot page. */
  private isPrivate(gfn: number): boolean {
    const i = this.config.memslots.findIndex((s) => gfn >= s.baseGfn && gfn < s.baseGfn + s.npages);
    return this.attrs[i]![gfn - this.config.memslots[i]!.baseGfn] === 1;
  }

  private prefaultAllowed(): boolean {
    return !isConfidential(this.config.vmType) || this.finalized;
  }

  /** The leaf choice: the largest level whose block passes every rule, checked page by page. */
  private chooseLevel(gfn: number): number {
    const slot = slotOf(this.config, gfn)!;
    const priv = this.isPrivate(gfn) ? 1 : 0;
    const bytes = this.attrs[this.config.memslots.indexOf(slot)]!;
    const max = isConfidential(this.config.vmType) && !this.finalized ? 1 : VM_MAX_LEVEL[this.config.vmType];
    for (let level = max; level > 1; level--) {
      if (level > LEVEL_OF[slot.backing]) continue;
      const n = PAGES_OF_LEVEL[level]!;
      const start = Math.floor(gfn / n) * n;
      // Every page of the block must be in gfn's memslot ...
      const slotEnd = slot.baseGfn + slot.npages;
      let p = start;
      while (p < start + n && p >= slot.baseGfn && p < slotEnd) p++;
      // ... and have gfn's attribute.
      if (p === start + n) {
        p = start;
        while (p < start + n && bytes[p - slot.baseGfn] === priv) p++;
      }
      this.pageSteps += p - start + 1;
      if (p === start + n) return level;
    }
    return 1;
  }

  private install(gfn: number, level: number): void {
    const n = PAGES_OF_LEVEL[level]!;
    const start = Math.floor(gfn / n) * n;
    const leaf: Leaf = { gfn: start, size: SIZE_OF_LEVEL[level]!, private: this.isPrivate(gfn) };
    this.pages.fill(start, start + n, leaf);
    this.pageSteps += n;
    // The leaves it replaces all lie inside the new one.
    const i = firstLeafEndingAfter(this.leafList, start);
    let j = i;
    while (j < this.leafList.length && this.leafList[j]!.gfn < start + n) j++;
    this.leafList.splice(i, j - i, leaf);
    this.touch(start, start + n);
    this.leavesInstalled++;
  }

  /** A fault at a page of a memslot: keep the leaf if it already has the chosen level, else map the chosen block. */
  private fault(gfn: number): Leaf {
    const level = this.chooseLevel(gfn);
    const cur = this.pages.get(gfn);
    if (cur === undefined || LEVEL_OF[cur.size] < level) this.install(gfn, level);
    return this.pages.get(gfn)!;
  }

  private zapRange(gfn: number, npages: number): void {
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

  private leaves(): Leaf[] {
    return this.leafList;
  }

  private rangeBad(gfn: number, npages: number): boolean {
    return npages === 0 || gfn + npages > GFN_LIMIT;
  }

  // -- ops ---------------------------------------------------------------

  /** The op being applied and the measurement's length before it (for the ghost record). */
  private current: { op: PrefaultOp['op']; measuredBefore: number } = { op: 'measurement', measuredBefore: 0 };

  /** Record what the invariants need to know about this op. */
  private ghost(extra: Partial<LastOp>): void {
    this.last = { op: this.current.op, measuredBefore: this.current.measuredBefore, gfn: null, request: null, result: null, before: [], ...extra };
  }

  /** One handler per op (see OpHandlers: exhaustive, and cheaper per call than a ts-pattern chain). */
  private readonly handlers: OpHandlers<PrefaultOp, PrefaultResult> = {
    preFault: ({ gpa, size, flags, signalAfter }) => {
      const signal = signalAfter ?? null;
      const before = preFaultArgsValid(gpa, size, flags) ? leavesIn(this.leaves(), ...reachOf(gpa / PAGE_SIZE, size / PAGE_SIZE, this.reachLevel)) : [];
      const r = this.preFault(gpa, size, flags, signal);
      const result: GhostResult = { ok: r.ok, error: r.ok ? null : r.error, gpa: r.gpa, size: r.size };
      this.ghost({ request: { gpa, size, flags, signalAfter: signal }, result, before });
      return r;
    },
    populate: ({ gpa, npages }) => {
      this.ghost({ gfn: gpa % PAGE_SIZE === 0 ? gpa / PAGE_SIZE : null });
      return this.populate(gpa, npages);
    },
    finalize: () => {
      this.ghost({});
      if (!isConfidential(this.config.vmType) || this.finalized) return { ok: false, error: 'EINVAL' };
      this.finalized = true;
      return { ok: true };
    },
    guestAccess: ({ gfn }) => {
      this.ghost({ gfn, before: leavesIn(this.leaves(), ...reachOf(gfn, 1, this.reachLevel)) });
      const r = this.guestAccess(gfn);
      this.last!.result = { ok: r.ok, error: r.error ?? null, gpa: gfn * PAGE_SIZE, size: PAGE_SIZE };
      return r;
    },
    setAttributes: ({ gfn, npages, private: priv }) => {
      this.ghost({});
      if (this.rangeBad(gfn, npages)) return { ok: false, error: 'EINVAL' };
      if (priv && this.config.vmType === 'default') return { ok: false, error: 'EINVAL' };
      this.config.memslots.forEach((s, i) => {
        const a = Math.max(gfn, s.baseGfn);
        const b = Math.min(gfn + npages, s.baseGfn + s.npages);
        for (let p = a; p < b; p++) this.attrs[i]![p - s.baseGfn] = priv ? 1 : 0;
      });
      this.attrCache = null;
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
    if (slotOf(this.config, gfn) === undefined) return { ok: false, error: 'MMIO' };
    if (this.pages.get(gfn) === undefined) this.fault(gfn);
    return { ok: true };
  }

  /** KVM_PRE_FAULT_MEMORY: kvm_vcpu_pre_fault_memory's checks and chunk loop. */
  private preFault(gpa: number, size: number, flags: number, signalAfter: number | null): PreFaultResult {
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
      const gfn = gpa / PAGE_SIZE;
      if (gfn >= GFN_LIMIT || slotOf(this.config, gfn) === undefined) {
        error = 'ENOENT';
        break;
      }
      const leaf = this.fault(gfn);
      const leafEnd = (leaf.gfn + pagesOf(leaf.size)) * PAGE_SIZE;
      const advance = Math.min(size, leafEnd - gpa);
      gpa += advance;
      size -= advance;
      chunks++;
    }
    return size === full ? { ok: false, error, gpa, size } : { ok: true, gpa, size };
  }

  /** Initial image: page by page, each added, measured and mapped at 4 KiB. */
  private populate(gpa: number, npages: number): PrefaultResult {
    if (!isConfidential(this.config.vmType) || this.finalized) return { ok: false, error: 'EINVAL', gpa };
    if (gpa % PAGE_SIZE !== 0 || npages === 0) return { ok: false, error: 'EINVAL', gpa };
    const first = gpa / PAGE_SIZE;
    for (let g = first; g < first + npages; g++) {
      if (g >= GFN_LIMIT || slotOf(this.config, g) === undefined) return { ok: false, error: 'EINVAL', gpa: g * PAGE_SIZE };
      if (this.added.has(g)) return { ok: false, error: 'EEXIST', gpa: g * PAGE_SIZE };
      if (!this.isPrivate(g)) return { ok: false, error: 'EINVAL', gpa: g * PAGE_SIZE };
      this.added.add(g);
      this.measured.push(g);
      this.measurementCopy = null;
      this.install(g, 1);
    }
    return { ok: true };
  }

  // -- abstraction ---------------------------------------------------------

  private attributes(): AttrRun[] {
    if (this.attrCache !== null) return this.attrCache;
    // Maximal runs of equal attribute within each memslot, page by page.
    const runs: AttrRun[] = [];
    this.config.memslots.forEach((s, i) => {
      const bytes = this.attrs[i]!;
      let from = 0;
      for (let k = 1; k <= s.npages; k++) {
        if (k === s.npages || bytes[k] !== bytes[from]) {
          runs.push({ gfn: s.baseGfn + from, npages: k - from, private: bytes[from] === 1 });
          from = k;
        }
      }
    });
    this.attrCache = runs;
    return runs;
  }

  /** The abstraction from scratch: leaves read off the page map. */
  view(): View {
    return {
      finalized: this.finalized,
      leaves: this.pages.leaves(),
      attributes: this.attributes(),
      measurement: [...this.measured],
      last: this.last,
    };
  }

  /** The live View (valid until the next apply) and the gfn range changed since the previous call. */
  liveView(): { view: View; scope: Scope } {
    this.measurementCopy ??= [...this.measured];
    const scope = this.dirtyStart < this.dirtyEnd ? { start: this.dirtyStart, end: this.dirtyEnd } : { start: 0, end: 0 };
    this.dirtyStart = Infinity;
    this.dirtyEnd = -Infinity;
    return {
      view: { finalized: this.finalized, leaves: this.leafList, attributes: this.attributes(), measurement: this.measurementCopy, last: this.last },
      scope,
    };
  }

  counters(): Readonly<Record<string, number>> {
    return { leavesInstalled: this.leavesInstalled, pageSteps: this.pageSteps };
  }

  fingerprint(): string {
    const v = this.view();
    return JSON.stringify([v.finalized, v.leaves, v.attributes, v.measurement]);
  }
}

export function createModel(config: PrefaultConfig): PrefaultModel {
  return new PrefaultModel(config);
}
