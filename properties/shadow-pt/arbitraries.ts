/**
 * shadow-pt generators.
 *
 * A trace lives in a planned guest "world" derived from the config: a few
 * guest top levels at real guest-physical pages, a kernel region shared by
 * all of them (one PTE page per region chunk, as Linux shares kernel page
 * tables), a user region with its own PTE pages per top level, and data
 * frames (some of them read-only backed). Ops are generated as small
 * intents ("fault on kernel page 7 after writing its chain") and expanded
 * into hypercalls: the guest writes its PGD/PMD/PTE words with guestWrite
 * before it faults or tells the host, and uses the real top-level addresses
 * for newPagetable/setPte/setPgd. About one op in ten is bad input: bad
 * directory flags, frames at or beyond guestPages, the PSE bit, Switcher
 * addresses, indices out of range, read-only backing, bad CPU/slot numbers.
 */
import * as fc from 'fast-check';
import { swarm, tagSwarm, type WeightedArb } from '../../harness/swarm';
import {
  _PAGE_ACCESSED as A,
  _PAGE_DIRTY as D,
  _PAGE_GLOBAL as G,
  _PAGE_PRESENT as P,
  _PAGE_PSE,
  _PAGE_RW as RW,
  _PAGE_TABLE,
  _PAGE_USER as U,
  PAGE_SIZE,
  ERR_USER,
  ERR_WRITE,
  geometry,
  resolveConfig,
  type Config,
  type Geometry,
  type Op,
} from '../../spec/shadow-pt/types';

// ---------------------------------------------------------------------------
// The planned world

export interface World {
  readonly c: Config;
  readonly g: Geometry;
  readonly kernelAddress: number;
  /** Guest top levels (gpa). */
  readonly pgdirs: readonly number[];
  readonly kernelVaddrs: readonly number[];
  readonly userVaddrs: readonly number[];
  /** The two kernel stack pages and the stack end. */
  readonly stackEnd: number;
  readonly stackVaddrs: readonly number[];
  /** First data frame; frames below hold the guest's page tables. */
  readonly dataBase: number;
  /** Guest frame of the PTE page for (top level t or -1 for kernel, vaddr), of the PMD page (PAE). */
  ptePage(t: number, vaddr: number): number;
  pmdPage(t: number, vaddr: number): number;
  frameOf(t: number, vaddr: number): number;
}

const USER_BASE = 0x08000000;

export function planWorld(c: Config): World {
  const g = geometry(c);
  const span = g.ptePageSpan;
  const kernelAddress = Math.min(0xc0000000, Math.floor((c.switcherAddr - span) / span) * span);
  const nT = Math.min(c.pgdirSlots + 1, 64);
  const nK = Math.max(24, Math.min(Math.floor(c.guestPages / 8), 8192));
  const nU = Math.max(16, Math.min(Math.floor(c.guestPages / 8), 8192));
  let next = 1;
  const pgdirs: number[] = [];
  // Top level 0 sits at gpa 0, the "top level 0" the host starts with (H:500): loading it
  // first is the one way the seed caches a top level twice (issue 12 item 7).
  for (let t = 0; t < nT; t++) pgdirs.push(t === 0 ? (next++, 0) : next++ * PAGE_SIZE);
  const chunks = (n: number) => Math.ceil((n * PAGE_SIZE) / span) + 1;
  // Kernel: one PTE page per chunk (shared), PAE: one PMD page per top index (shared).
  const kPte = new Map<number, number>();
  const kPmd = new Map<number, number>();
  const uPte = new Map<string, number>();
  const uPmd = new Map<string, number>();
  const chunkOf = (v: number) => Math.floor(v / span);
  const topOf = (v: number) => Math.floor(v / 2 ** g.pgdirShift);
  for (let i = 0; i < chunks(nK); i++) kPte.set(chunkOf(kernelAddress) + i, next++);
  if (g.pae) for (let i = 0; i < 4; i++) kPmd.set(i, next++);
  for (let t = 0; t < nT; t++) {
    for (let i = 0; i < chunks(nU); i++) uPte.set(t + ':' + (chunkOf(USER_BASE) + i), next++);
    if (g.pae) uPmd.set(t + ':' + topOf(USER_BASE), next++);
  }
  const dataBase = Math.max(16, next);
  const nData = Math.max(1, c.guestPages - dataBase);
  const kernelVaddrs: number[] = [];
  for (let i = 16; i < nK; i++) kernelVaddrs.push(kernelAddress + i * PAGE_SIZE);
  const userVaddrs: number[] = [];
  for (let i = 0; i < nU; i++) userVaddrs.push(USER_BASE + i * PAGE_SIZE);
  const stackEnd = kernelAddress + 16 * PAGE_SIZE;
  return {
    c,
    g,
    kernelAddress,
    pgdirs,
    kernelVaddrs,
    userVaddrs,
    stackEnd,
    stackVaddrs: [stackEnd - PAGE_SIZE, stackEnd - 2 * PAGE_SIZE],
    dataBase,
    ptePage: (t, v) => (t < 0 ? kPte.get(chunkOf(v)) : uPte.get(t + ':' + chunkOf(v))) ?? 1,
    pmdPage: (t, v) => (t < 0 ? kPmd.get(topOf(v)) : uPmd.get(t + ':' + topOf(v))) ?? 1,
    frameOf: (t, v) => dataBase + (Math.imul((v >>> 12) + 1, 0x9e3779b1) + (t + 1) * 7919 >>> 0) % nData,
  };
}

// ---------------------------------------------------------------------------
// Config

export function configArb(): fc.Arbitrary<Config> {
  return fc
    .record({
      pae: fc.boolean(),
      pgdirSlots: fc.integer({ min: 1, max: 4 }),
      guestPages: fc.constantFrom(64, 128, 256),
      hostCpus: fc.integer({ min: 1, max: 3 }),
      // Pages that cannot be taken writable: on most machines, so that the kill of §4 (i.6) comes up.
      ro: fc.oneof({ weight: 1, arbitrary: fc.constant<number[]>([]) }, { weight: 3, arbitrary: fc.array(fc.nat(), { minLength: 1, maxLength: 3 }) }),
    })
    .map(({ pae, pgdirSlots, guestPages, hostCpus, ro }) => {
      const readOnlyPages = ro.map((r) => guestPages / 2 + (r % (guestPages / 2)));
      const r = resolveConfig({ pae, pgdirSlots, guestPages, hostCpus, readOnlyPages });
      if (!r.ok) throw new Error('shadow-pt: generated config is invalid: ' + JSON.stringify(r.errors));
      return r.value;
    });
}

// ---------------------------------------------------------------------------
// Intents

const USER_FLAVORS = [P | U | RW, P | U, P | U | RW | A, P | U | RW | A | D, P | U | A, 0, P | U | RW | D, P | U | RW | A | D | G, A | D | RW | U];
const KERNEL_FLAVORS = [P | RW, P, P | RW | A | D, P | RW | A, P | A, P | RW | G, 0, P | RW | A | D | G];

type Intent =
  | { k: 'fault'; kernel: boolean; v: number; t: number; err: number; flavor: number; write: boolean }
  | { k: 'setPte'; kernel: boolean; v: number; t: number; flavor: number; mem: boolean }
  | { k: 'newPt'; t: number; victim: number }
  | { k: 'setPgd'; t: number; v: number; kernel: boolean; switcher: boolean }
  | { k: 'simple'; op: 'flushUser' | 'flushAll' | 'setPmd' }
  | { k: 'stack'; pages: number }
  | { k: 'pin'; which: number }
  | { k: 'cpu'; cpu: number }
  | { k: 'translate'; kernel: boolean; v: number }
  | { k: 'refs'; kernel: boolean; v: number; t: number }
  | { k: 'init' }
  | { k: 'kshare'; v: number; t: number; victim: number; flavor: number }
  | { k: 'destroy' }
  | { k: 'bad'; kind: number; v: number; t: number; x: number };

/** The weighted intent table (swarm testing draws subsets of it). */
function intentTable(w: World): WeightedArb<Intent>[] {
  const c = w.c;
  const t = fc.integer({ min: 0, max: w.pgdirs.length - 1 });
  const kernel = fc.boolean();
  return [
    { name: 'fault', weight: 30, arbitrary: fc.record({ k: fc.constant('fault' as const), kernel, v: fc.nat(), t, err: fc.integer({ min: 0, max: 7 }), flavor: fc.nat(), write: fc.boolean() }).map((i) => i as Intent) },
    { name: 'setPte', weight: 14, arbitrary: fc.record({ k: fc.constant('setPte' as const), kernel, v: fc.nat(), t, flavor: fc.nat(), mem: fc.boolean() }).map((i) => i as Intent) },
    { name: 'newPt', weight: 8, arbitrary: fc.record({ k: fc.constant('newPt' as const), t, victim: fc.integer({ min: 0, max: c.pgdirSlots - 1 }) }).map((i) => i as Intent) },
    { name: 'setPgd', weight: 3, arbitrary: fc.record({ k: fc.constant('setPgd' as const), t, v: fc.nat(), kernel, switcher: fc.boolean() }).map((i) => i as Intent) },
    { name: 'simple', weight: 4, arbitrary: fc.record({ k: fc.constant('simple' as const), op: fc.constantFrom('flushUser' as const, 'flushUser' as const, 'flushAll' as const, 'setPmd' as const) }).map((i) => i as Intent) },
    { name: 'stack', weight: 2, arbitrary: fc.record({ k: fc.constant('stack' as const), pages: fc.integer({ min: 1, max: 2 }) }).map((i) => i as Intent) },
    { name: 'pin', weight: 2, arbitrary: fc.record({ k: fc.constant('pin' as const), which: fc.integer({ min: 0, max: 1 }) }).map((i) => i as Intent) },
    { name: 'cpu', weight: 5, arbitrary: fc.record({ k: fc.constant('cpu' as const), cpu: fc.integer({ min: 0, max: c.hostCpus - 1 }) }).map((i) => i as Intent) },
    { name: 'translate', weight: 6, arbitrary: fc.record({ k: fc.constant('translate' as const), kernel, v: fc.nat() }).map((i) => i as Intent) },
    { name: 'refs', weight: 3, arbitrary: fc.record({ k: fc.constant('refs' as const), kernel, v: fc.nat(), t }).map((i) => i as Intent) },
    // A kernel page faulted in under two top levels, then changed by setPte: every cached copy must follow.
    { name: 'kshare', weight: 1, arbitrary: fc.record({ k: fc.constant('kshare' as const), v: fc.nat(), t, victim: fc.nat(), flavor: fc.nat() }).map((i) => i as Intent) },
    { name: 'init', weight: 1, arbitrary: fc.constant({ k: 'init' as const }).map((i) => i as Intent) },
    // Bad input that the host answers without killing the guest (kinds 8-19).
    { name: 'bad', weight: 13, arbitrary: fc.record({ k: fc.constant('bad' as const), kind: fc.integer({ min: 8, max: 18 }), v: fc.nat(), t, x: fc.nat() }).map((i) => i as Intent) },
  ];
}

/** Expands intents into ops, tracking which guest directory chains it has already written. */
class Expander {
  readonly out: Op[] = [];
  private readonly written = new Set<string>();
  /** The top level the guest last switched to (as far as the expansion knows: a switch may fail). */
  cur = 0;
  constructor(readonly w: World) {}

  vaddr(kernel: boolean, n: number): number {
    const list = kernel ? this.w.kernelVaddrs : this.w.userVaddrs;
    return list[n % list.length]!;
  }

  write(gpa: number, value: number): void {
    this.out.push({ op: 'guestWrite', args: { gpa, value } });
  }

  /** The PGD (and PMD) words leading to vaddr's PTE page, in top level t (kernel: in every top level). */
  chain(t: number, v: number, kernel: boolean): void {
    const w = this.w;
    const g = w.g;
    const tops = kernel ? w.pgdirs.map((_, i) => i) : [t];
    const top = Math.floor(v / 2 ** g.pgdirShift);
    const owner = kernel ? -1 : t;
    for (const tt of tops) {
      const key = `${tt}:${top}:${kernel ? 'k' : 'u'}:${Math.floor(v / g.ptePageSpan)}`;
      if (this.written.has(key)) continue;
      this.written.add(key);
      if (g.pae) {
        const pmd = w.pmdPage(owner, v);
        this.write(w.pgdirs[tt]! + top * 8, pmd * PAGE_SIZE + P);
        this.write(pmd * PAGE_SIZE + (Math.floor(v / 2 ** g.pmdShift) % 512) * 8, w.ptePage(owner, v) * PAGE_SIZE + _PAGE_TABLE);
      } else {
        this.write(w.pgdirs[tt]! + top * 4, w.ptePage(owner, v) * PAGE_SIZE + (kernel ? P | RW | A | D : _PAGE_TABLE));
      }
    }
  }

  pteGpa(t: number, v: number, kernel: boolean): number {
    const g = this.w.g;
    return this.w.ptePage(kernel ? -1 : t, v) * PAGE_SIZE + (Math.floor(v / PAGE_SIZE) % g.ptrsPerPte) * g.entryBytes;
  }

  gpte(t: number, v: number, kernel: boolean, flavor: number): number {
    const flags = kernel ? KERNEL_FLAVORS[flavor % KERNEL_FLAVORS.length]! : USER_FLAVORS[flavor % USER_FLAVORS.length]!;
    return this.w.frameOf(kernel ? -1 : t, v) * PAGE_SIZE + flags;
  }

  stackChain(): void {
    for (const v of this.w.stackVaddrs) {
      this.chain(0, v, true);
      this.write(this.pteGpa(0, v, true), this.w.frameOf(-1, v) * PAGE_SIZE + (P | RW | A | D));
    }
  }

  expand(i: Intent): void {
    const w = this.w;
    const c = w.c;
    const g = w.g;
    switch (i.k) {
      case 'fault': {
        const v = this.vaddr(i.kernel, i.v);
        if (i.write) {
          this.chain(i.t, v, i.kernel);
          this.write(this.pteGpa(i.t, v, i.kernel), this.gpte(i.t, v, i.kernel, i.flavor));
        }
        this.out.push({ op: 'pageFault', args: { vaddr: v + (i.v % 7) * 16, errcode: i.kernel ? i.err & ERR_WRITE : i.err } });
        return;
      }
      case 'setPte': {
        const v = this.vaddr(i.kernel, i.v);
        const gpte = this.gpte(i.t, v, i.kernel, i.flavor);
        if (i.mem) {
          this.chain(i.t, v, i.kernel);
          this.write(this.pteGpa(i.t, v, i.kernel), gpte);
        }
        this.out.push({ op: 'setPte', args: { pgdir: w.pgdirs[i.t]!, vaddr: v, gpte } });
        return;
      }
      case 'newPt':
        this.cur = i.t;
        this.out.push({ op: 'newPagetable', args: { pgtable: w.pgdirs[i.t]!, victim: i.victim } });
        return;
      case 'setPgd': {
        const v = this.vaddr(i.kernel, i.v);
        const idx = i.switcher ? Math.floor(c.switcherAddr / 2 ** g.pgdirShift) : Math.floor(v / 2 ** g.pgdirShift);
        this.out.push({ op: 'setPgd', args: { pgdir: w.pgdirs[i.t]!, idx } });
        return;
      }
      case 'simple':
        if (i.op === 'setPmd') this.out.push({ op: 'setPmd', args: { pmdp: w.pmdPage(-1, w.kernelAddress) * PAGE_SIZE, idx: 0 } });
        else this.out.push({ op: i.op, args: {} });
        return;
      case 'stack':
        this.stackChain();
        this.out.push({ op: 'setStack', args: { vaddr: w.stackEnd, pages: i.pages } });
        return;
      case 'pin':
        this.stackChain();
        this.out.push({ op: 'pinPage', args: { vaddr: w.stackVaddrs[i.which]! } });
        return;
      case 'cpu':
        this.out.push({ op: 'runOnCpu', args: { cpu: i.cpu } });
        return;
      case 'translate':
        this.out.push({ op: 'translate', args: { vaddr: this.vaddr(i.kernel, i.v) } });
        return;
      case 'refs':
        this.out.push({ op: 'hostRefs', args: { gfn: w.frameOf(i.kernel ? -1 : i.t, this.vaddr(i.kernel, i.v)) } });
        return;
      case 'init':
        this.out.push({ op: 'lguestInit', args: { kernelAddress: w.kernelAddress } });
        return;
      case 'destroy':
        this.out.push({ op: 'destroy', args: {} });
        return;
      case 'kshare': {
        // Two distinct top levels in two distinct slots, the same kernel page faulted in each.
        if (c.pgdirSlots < 2 || w.pgdirs.length < 2) return;
        const v = this.vaddr(true, i.v);
        const t1 = i.t;
        const t2 = (i.t + 1) % w.pgdirs.length;
        const s1 = i.victim % c.pgdirSlots;
        const s2 = (s1 + 1) % c.pgdirSlots;
        this.chain(t1, v, true);
        this.write(this.pteGpa(t1, v, true), w.frameOf(-1, v) * PAGE_SIZE + (P | RW | A));
        for (const [tt, slot] of [[t1, s1], [t2, s2]] as const) {
          this.cur = tt;
          this.out.push({ op: 'newPagetable', args: { pgtable: w.pgdirs[tt]!, victim: slot } });
          this.out.push({ op: 'pageFault', args: { vaddr: v, errcode: 0 } });
        }
        this.out.push({ op: 'setPte', args: { pgdir: w.pgdirs[t2]!, vaddr: v, gpte: this.gpte(t2, v, true, i.flavor) } });
        return;
      }
      case 'bad':
        this.bad(i);
        return;
    }
  }

  /** Bad input: kinds 0-7 and 19 kill the guest, 8-18 are answered without killing it. */
  bad(i: { kind: number; v: number; t: number; x: number }): void {
    const w = this.w;
    const c = w.c;
    const g = w.g;
    const kernel = i.x % 2 === 0;
    const v = this.vaddr(kernel, i.v);
    const top = Math.floor(v / 2 ** g.pgdirShift);
    const fault = (err: number) => this.out.push({ op: 'pageFault', args: { vaddr: v, errcode: err } });
    switch (i.kind) {
      case 0: {
        // A directory entry with flags beyond a page table's (PSE, global; PAE: anything but present).
        const extra = g.pae ? [RW, U, _PAGE_PSE][i.x % 3]! : [_PAGE_PSE, G, 0x200][i.x % 3]!;
        for (const pg of w.pgdirs) this.write(pg + top * g.entryBytes, (g.pae ? w.pmdPage(kernel ? -1 : 0, v) : w.ptePage(kernel ? -1 : 0, v)) * PAGE_SIZE + P + extra);
        fault(0);
        return;
      }
      case 1:
        // A directory entry naming a frame beyond guest memory.
        for (const pg of w.pgdirs) this.write(pg + top * g.entryBytes, (c.guestPages + (i.x % 3)) * PAGE_SIZE + P);
        fault(0);
        return;
      case 2:
      case 3: {
        // A PTE naming a frame at (off-by-one) or beyond guestPages, then a fault or an eager setPte.
        const gpte = (c.guestPages + (i.x % 4 === 0 ? 5 : 0)) * PAGE_SIZE + (P | U | RW | A);
        this.chain(i.t, v, kernel);
        this.write(this.pteGpa(i.t, v, kernel), gpte);
        if (i.kind === 2) fault(0);
        else this.out.push({ op: 'setPte', args: { pgdir: w.pgdirs[i.t]!, vaddr: v, gpte } });
        return;
      }
      case 4: {
        // A PTE with the large-page bit.
        const gpte = w.frameOf(0, v) * PAGE_SIZE + (P | U | RW | A | _PAGE_PSE);
        this.chain(i.t, v, kernel);
        this.write(this.pteGpa(i.t, v, kernel), gpte);
        if (i.x % 3 === 0) this.out.push({ op: 'setPte', args: { pgdir: w.pgdirs[i.t]!, vaddr: v, gpte } });
        else fault(0);
        return;
      }
      case 5:
        // setPte into the Switcher's range.
        this.out.push({ op: 'setPte', args: { pgdir: w.pgdirs[i.t]!, vaddr: c.switcherAddr + (i.x % 8) * PAGE_SIZE, gpte: w.dataBase * PAGE_SIZE + (P | RW) } });
        return;
      case 6:
        // setPgd index out of range: exactly PTRS_PER_PGD most of the time (the seed's off-by-one).
        this.out.push({ op: 'setPgd', args: { pgdir: w.pgdirs[i.t]!, idx: g.ptrsPerPgd + (i.x % 4 === 0 ? 1 + (i.x % 100) : 0) } });
        return;
      case 7: {
        // A writable, dirty guest PTE on a frame whose backing cannot be taken writable.
        const ro = c.readOnlyPages.length > 0 ? c.readOnlyPages[i.x % c.readOnlyPages.length]! : w.frameOf(0, v);
        const gpte = ro * PAGE_SIZE + (P | U | RW | A | D);
        if (i.x % 3 === 0) {
          this.chain(i.t, v, kernel);
          this.write(this.pteGpa(i.t, v, kernel), gpte);
          this.out.push({ op: 'setPte', args: { pgdir: w.pgdirs[i.t]!, vaddr: v, gpte } });
        } else {
          // In the top level the guest runs on, clean first, so that a read fault can map it
          // read-only; the write fault then needs it writable.
          this.chain(this.cur, v, kernel);
          this.write(this.pteGpa(this.cur, v, kernel), gpte - D);
          fault(0);
          fault(ERR_WRITE);
        }
        return;
      }
      case 8:
        fault(i.x % 8); // in the Switcher or not: the guest's own fault at worst
        this.out.push({ op: 'pageFault', args: { vaddr: c.switcherAddr + (i.x % 5) * PAGE_SIZE, errcode: 2 } });
        return;
      case 9:
        this.out.push({ op: 'guestWrite', args: { gpa: c.guestPages * PAGE_SIZE + (i.x % 64) * 8, value: 1 } });
        return;
      case 10:
        this.out.push({ op: 'guestWrite', args: { gpa: w.dataBase * PAGE_SIZE + 1 + (i.x % 3), value: 1 } });
        return;
      case 11:
        this.out.push({ op: 'runOnCpu', args: { cpu: c.hostCpus + (i.x % 3) } });
        return;
      case 12:
        this.out.push({ op: 'newPagetable', args: { pgtable: w.pgdirs[i.t]!, victim: c.pgdirSlots + (i.x % 3) } });
        return;
      case 13:
        this.out.push({ op: 'hostRefs', args: { gfn: c.guestPages + (i.x % 4) } });
        return;
      case 14:
        // A user-mode access to a kernel page, or a write to a read-only guest PTE: the guest's own fault.
        this.out.push({ op: 'pageFault', args: { vaddr: this.vaddr(true, i.v), errcode: ERR_USER | (i.x % 2) * ERR_WRITE } });
        return;
      case 15:
        this.out.push({ op: 'lguestInit', args: { kernelAddress: i.x % 2 ? c.switcherAddr : w.kernelAddress + 1 } });
        return;
      case 16:
        this.out.push({ op: 'guestWrite', args: { gpa: this.pteGpa(i.t, v, kernel), value: g.pae ? 2 ** 40 + 1 : 2 ** 32 } });
        return;
      case 17:
        // A not-present guest PTE with accessed/dirty bits (a swap entry): cleared, never installed.
        this.out.push({ op: 'setPte', args: { pgdir: w.pgdirs[i.t]!, vaddr: v, gpte: w.frameOf(i.t, v) * PAGE_SIZE + (A | D | RW | U) } });
        return;
      case 18:
        // A fault on a vaddr whose directory entry is not present.
        this.out.push({ op: 'pageFault', args: { vaddr: 0x40000000 + (i.x % 64) * PAGE_SIZE, errcode: i.x % 8 } });
        return;
      default:
        this.out.push({ op: 'newPagetable', args: { pgtable: (c.guestPages + (i.x % 4)) * PAGE_SIZE + (i.x % 2) * 8, victim: 0 } });
        return;
    }
  }
}

/** The opening: lguestInit, a few faults on the linear mapping, the first page table, the stack. */
function prologueArb(w: World): fc.Arbitrary<{ badInit: number; init: boolean; linear: number[]; newPt: boolean; victim: number; stack: number }> {
  return fc.record({
    // Now and then a bad lguestInit first, while it is still allowed (later ones are EBUSY):
    // 0 kills the guest (at the Switcher), 1-2 are unaligned (EINVAL); the rest, none.
    badInit: fc.integer({ min: 0, max: 39 }),
    init: fc.double({ min: 0, max: 1, noNaN: true }).map((x) => x < 0.85),
    linear: fc.array(fc.integer({ min: 0, max: w.c.guestPages - 1 }), { maxLength: 3 }),
    newPt: fc.double({ min: 0, max: 1, noNaN: true }).map((x) => x < 0.97),
    victim: fc.integer({ min: 0, max: w.c.pgdirSlots - 1 }),
    stack: fc.integer({ min: 0, max: 2 }),
  });
}

/**
 * Bad input that kills the guest (kinds 0-7, 19) ends the useful part of a trace
 * (every later op is DEAD), so a trace carries at most one, at a random
 * point, and a destroy at most once, near the end; bad input the host
 * answers without a kill is spread through the body (~1 op in 10 is bad).
 */
export function opsArb(c: Config, maxOps: number): fc.Arbitrary<Op[]> {
  const w = planWorld(c);
  const t = fc.integer({ min: 0, max: w.pgdirs.length - 1 });
  const killer = fc.option(
    fc.record({ at: fc.double({ min: 0.6, max: 1, noNaN: true }), kind: fc.constantFrom(0, 1, 2, 3, 4, 5, 6, 6, 7, 7, 7, 19), v: fc.nat(), t, x: fc.nat() }),
    { freq: 2 },
  );
  // Swarm testing (harness/swarm.ts): a share of runs draws a subset of the intent table.
  return swarm(intentTable(w)).chain(({ arbitrary, label }) => fc
    .tuple(
      prologueArb(w),
      fc.array(arbitrary, { maxLength: Math.max(1, maxOps), size: 'max' }),
      fc.integer({ min: 0, max: 7 }),
      killer,
      fc.option(fc.double({ min: 0.7, max: 1, noNaN: true }), { freq: 5 }),
    )
    .map(([pro, body, errs, kill, destroyAt]) => {
      const intents: Intent[] = [...body];
      if (kill) intents.splice(Math.floor(kill.at * intents.length), 0, { k: 'bad', kind: kill.kind, v: kill.v, t: kill.t, x: kill.x });
      if (destroyAt !== null) intents.splice(Math.floor(destroyAt * intents.length), 0, { k: 'destroy' });
      const x = new Expander(w);
      if (pro.badInit <= 2) x.out.push({ op: 'lguestInit', args: { kernelAddress: pro.badInit === 0 ? c.switcherAddr : w.kernelAddress + PAGE_SIZE / 2 } });
      if (pro.init) x.out.push({ op: 'lguestInit', args: { kernelAddress: w.kernelAddress } });
      for (const f of pro.linear) x.out.push({ op: 'pageFault', args: { vaddr: f * PAGE_SIZE, errcode: errs & ERR_WRITE } });
      if (pro.newPt) {
        x.out.push({ op: 'newPagetable', args: { pgtable: w.pgdirs[0]!, victim: pro.victim } });
        if (pro.stack > 0) {
          x.stackChain();
          x.out.push({ op: 'setStack', args: { vaddr: w.stackEnd, pages: pro.stack } });
        }
      }
      for (const i of intents) {
        if (x.out.length >= maxOps) break;
        x.expand(i);
      }
      return tagSwarm(x.out.slice(0, maxOps), label);
    }));
}

export const arbitraries = {
  config: configArb,
  ops: opsArb,
};
