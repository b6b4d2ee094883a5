/**
 * shadow-pt: the vocabulary. Config (with defaults and semantic checks), the
 * op arguments, the results, the View and the change scope, the x86 entry
 * bits, the geometry of both paging modes, and the kill reasons (shared by
 * the model and the implementation so that both name a bad input the same
 * way).
 *
 * Source: seed 004_24ad7b1795c155e0.txt (lguest drivers/lguest/page_tables.c),
 * H:300 .. H:508.
 */
import * as t from 'io-ts';
import type { InputError, Json, Resolved } from '../../harness/domain';
import { decode, intRange, Nat, NoArgs, strict, type OpOf } from '../../harness/codec';

// ---------------------------------------------------------------------------
// x86 page-table entry bits (arch/x86/include/asm/pgtable_types.h)

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 4096;
export const _PAGE_PRESENT = 1 << 0;
export const _PAGE_RW = 1 << 1;
export const _PAGE_USER = 1 << 2;
export const _PAGE_PWT = 1 << 3;
export const _PAGE_PCD = 1 << 4;
export const _PAGE_ACCESSED = 1 << 5;
export const _PAGE_DIRTY = 1 << 6;
export const _PAGE_PSE = 1 << 7;
export const _PAGE_GLOBAL = 1 << 8;
/** The low 12 bits of an entry are flags, the rest is the frame number. */
export const PTE_FLAGS_MASK = 0xfff;
/** What a page-table (directory) entry may carry: present, writable, user, accessed, dirty. */
export const _PAGE_TABLE = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY;
/** The Switcher code page: read-only, executable, kernel (PAGE_KERNEL_RX). */
export const SWITCHER_CODE_FLAGS = _PAGE_PRESENT | _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_GLOBAL;
/** The guest's register page under the per-CPU Switcher pages (__PAGE_KERNEL & ~_PAGE_GLOBAL). */
export const SWITCHER_REGS_FLAGS = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY;
/** The per-CPU read-only Switcher page (IDT, GDT: __PAGE_KERNEL_RO & ~_PAGE_GLOBAL). */
export const SWITCHER_RO_FLAGS = _PAGE_PRESENT | _PAGE_ACCESSED | _PAGE_DIRTY;

/** Flags of an entry (works for 32-bit words and for Float64-safe 64-bit values below 2^53). */
export function entryFlags(v: number): number {
  return v & PTE_FLAGS_MASK;
}
/** Frame number of an entry (exact for any integer value below 2^53). */
export function entryFrame(v: number): number {
  return (v - (v & PTE_FLAGS_MASK)) / PAGE_SIZE;
}
export function hex(n: number): string {
  return '0x' + n.toString(16);
}

// ---------------------------------------------------------------------------
// Config

export const ConfigInput = strict(
  {},
  {
    pae: t.boolean,
    pgdirSlots: intRange(1, 64),
    guestPages: intRange(1, 1 << 20),
    hostBase: intRange(0, 2 ** 36),
    readOnlyPages: t.array(Nat),
    hostCpus: intRange(1, 256),
    switcherAddr: intRange(0, 0xffffffff),
  },
  'shadow-pt config { pae?, pgdirSlots?, guestPages?, hostBase?, readOnlyPages?, hostCpus?, switcherAddr? }',
);
export type ConfigInput = t.TypeOf<typeof ConfigInput>;

export interface Config {
  readonly pae: boolean;
  readonly pgdirSlots: number;
  readonly guestPages: number;
  readonly hostBase: number;
  readonly readOnlyPages: readonly number[];
  readonly hostCpus: number;
  readonly switcherAddr: number;
}

/** Geometry of one paging mode (the seed's PTRS_PER_* and *_SHIFT). */
export interface Geometry {
  readonly pae: boolean;
  /** Bytes per entry in guest memory (4, or 8 with PAE). */
  readonly entryBytes: number;
  readonly ptrsPerPgd: number;
  readonly pgdirShift: number;
  /** PAE only: entries per mid-level page (1 without PAE). */
  readonly ptrsPerPmd: number;
  readonly pmdShift: number;
  readonly ptrsPerPte: number;
  /** Bytes mapped by one PTE page: the Switcher's whole virtual range. */
  readonly ptePageSpan: number;
  /** Largest entry value a guest can write (32-bit words; PAE: Float64-safe 64-bit values). */
  readonly maxEntry: number;
}

export const NONPAE: Geometry = {
  pae: false,
  entryBytes: 4,
  ptrsPerPgd: 1024,
  pgdirShift: 22,
  ptrsPerPmd: 1,
  pmdShift: 22,
  ptrsPerPte: 1024,
  ptePageSpan: 4 << 20,
  maxEntry: 0xffffffff,
};
export const PAE: Geometry = {
  pae: true,
  entryBytes: 8,
  ptrsPerPgd: 4,
  pgdirShift: 30,
  ptrsPerPmd: 512,
  pmdShift: 21,
  ptrsPerPte: 512,
  ptePageSpan: 2 << 20,
  maxEntry: Number.MAX_SAFE_INTEGER,
};
export function geometry(c: { pae: boolean }): Geometry {
  return c.pae ? PAE : NONPAE;
}

/** Pages of the Switcher: the code page, then two per host CPU. */
export function switcherPages(c: Config): number {
  return 1 + 2 * c.hostCpus;
}
/** Host frame of Switcher page `i` (they sit just above guest memory, beyond `pfn_limit`). */
export function switcherPfn(c: Config, i: number): number {
  return c.hostBase + c.guestPages + i;
}
/** Host frame of the guest's register page (mapped at the current CPU's first Switcher page). */
export function regsPfn(c: Config): number {
  return c.hostBase + c.guestPages + switcherPages(c);
}
/** Every host frame this guest can ever reference: guest memory, Switcher pages, register page. */
export function hostFrames(c: Config): number {
  return c.guestPages + switcherPages(c) + 1;
}

export const DEFAULTS = {
  pae: false,
  pgdirSlots: 4,
  guestPages: 4096,
  hostBase: 0x10000,
  readOnlyPages: [] as number[],
  hostCpus: 2,
};

export function resolveConfig(input: unknown): Resolved<Config> {
  const d = decode(ConfigInput, input ?? {}, '$.config');
  if (!d.ok) return d;
  const i = d.value;
  const pae = i.pae ?? DEFAULTS.pae;
  const g = geometry({ pae });
  const c: Config = {
    pae,
    pgdirSlots: i.pgdirSlots ?? DEFAULTS.pgdirSlots,
    guestPages: i.guestPages ?? DEFAULTS.guestPages,
    hostBase: i.hostBase ?? DEFAULTS.hostBase,
    readOnlyPages: [...new Set(i.readOnlyPages ?? DEFAULTS.readOnlyPages)].sort((a, b) => a - b),
    hostCpus: i.hostCpus ?? DEFAULTS.hostCpus,
    switcherAddr: i.switcherAddr ?? 2 ** 32 - g.ptePageSpan,
  };
  const errors: InputError[] = [];
  (i.readOnlyPages ?? []).forEach((gfn, k) => {
    if (gfn >= c.guestPages) {
      errors.push({ path: `$.config.readOnlyPages[${k}]`, message: `guest frame ${gfn} is not below guestPages (${c.guestPages})` });
    }
  });
  if (c.switcherAddr % g.ptePageSpan !== 0 || c.switcherAddr === 0) {
    errors.push({
      path: '$.config.switcherAddr',
      message: `the Switcher fills one whole PTE page: ${hex(c.switcherAddr)} must be a non-zero multiple of ${hex(g.ptePageSpan)}`,
    });
  }
  if (switcherPages(c) > g.ptrsPerPte) {
    errors.push({ path: '$.config.hostCpus', message: `${c.hostCpus} host CPUs need ${switcherPages(c)} Switcher pages, more than one PTE page (${g.ptrsPerPte})` });
  }
  if (c.guestPages * PAGE_SIZE > c.switcherAddr && c.switcherAddr % g.ptePageSpan === 0 && c.switcherAddr !== 0) {
    // The guest's fake linear mapping (virtual = physical) must stay below the Switcher.
    errors.push({ path: '$.config.guestPages', message: `guest memory (${c.guestPages} pages) would reach the Switcher at ${hex(c.switcherAddr)}` });
  }
  const topFrame = c.hostBase + hostFrames(c);
  const maxFrame = pae ? 2 ** 40 : 2 ** 20;
  if (topFrame > maxFrame) {
    errors.push({ path: '$.config.hostBase', message: `host frames up to ${topFrame} do not fit in a ${pae ? 'PAE' : '32-bit'} entry (limit ${maxFrame})` });
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value: c };
}

export function encodeConfig(c: Config): Json {
  return {
    pae: c.pae,
    pgdirSlots: c.pgdirSlots,
    guestPages: c.guestPages,
    hostBase: c.hostBase,
    readOnlyPages: [...c.readOnlyPages],
    hostCpus: c.hostCpus,
    switcherAddr: c.switcherAddr,
  };
}

// ---------------------------------------------------------------------------
// Ops

const Vaddr = intRange(0, 0xffffffff, 'virtual address (32-bit)');

export const OpArgs = {
  guestWrite: strict({ gpa: Nat, value: Nat }),
  lguestInit: strict({ kernelAddress: Vaddr }),
  pageFault: strict({ vaddr: Vaddr, errcode: intRange(0, 0xffff, 'error code') }),
  setPte: strict({ pgdir: Nat, vaddr: Vaddr, gpte: Nat }),
  setPgd: strict({ pgdir: Nat, idx: Nat }),
  setPmd: strict({ pmdp: Nat, idx: Nat }),
  newPagetable: strict({ pgtable: Nat, victim: Nat }),
  flushUser: NoArgs,
  flushAll: NoArgs,
  setStack: strict({ vaddr: Vaddr, pages: intRange(1, 2, '1 or 2') }),
  pinPage: strict({ vaddr: Vaddr }),
  runOnCpu: strict({ cpu: Nat }),
  translate: strict({ vaddr: Vaddr }),
  hostRefs: strict({ gfn: Nat }),
  destroy: NoArgs,
};
export type Op = OpOf<typeof OpArgs>;
export type OpName = Op['op'];
export const OP_NAMES = Object.keys(OpArgs) as OpName[];

/** Error bit 1: the access was a write; bit 2: it came from user mode. */
export const ERR_WRITE = 2;
export const ERR_USER = 4;

// ---------------------------------------------------------------------------
// Results

export const Result = t.union([
  t.type({ ok: t.literal(true) }),
  t.type({ ok: t.literal(true), fixed: t.boolean }),
  t.type({ ok: t.literal(true), present: t.literal(false) }),
  t.type({ ok: t.literal(true), present: t.literal(true), pfn: t.number, writable: t.boolean, user: t.boolean }),
  t.type({ ok: t.literal(true), refs: t.number }),
  t.type({ ok: t.literal(false), error: t.literal('KILLED'), reason: t.string }),
  t.type({ ok: t.literal(false), error: t.keyof({ DEAD: null, EINVAL: null, EFAULT: null, EBUSY: null }) }),
]);
export type Result =
  | { ok: true }
  | { ok: true; fixed: boolean }
  | { ok: true; present: false }
  | { ok: true; present: true; pfn: number; writable: boolean; user: boolean }
  | { ok: true; refs: number }
  | { ok: false; error: 'KILLED'; reason: string }
  | { ok: false; error: 'DEAD' | 'EINVAL' | 'EFAULT' | 'EBUSY' };

export const OK: Result = { ok: true };
export const DEAD: Result = { ok: false, error: 'DEAD' };
export const EINVAL: Result = { ok: false, error: 'EINVAL' };
export const EFAULT: Result = { ok: false, error: 'EFAULT' };
export const EBUSY: Result = { ok: false, error: 'EBUSY' };
export function killed(reason: string): Result {
  return { ok: false, error: 'KILLED', reason };
}

/** Kill reasons: each names what was bad. Shared so model and impl agree word for word. */
export const Reason = {
  badPgd: (gpgd: number, vaddr: number, limit: number) =>
    `bad page directory entry ${hex(gpgd)} for vaddr ${hex(vaddr)}: ` +
    (entryFrame(gpgd) >= limit ? `frame ${entryFrame(gpgd)} is not below guestPages (${limit})` : `flags ${hex(entryFlags(gpgd))} beyond a page table's`),
  badPmd: (gpmd: number, vaddr: number, limit: number) =>
    `bad page middle directory entry ${hex(gpmd)} for vaddr ${hex(vaddr)}: ` +
    (entryFrame(gpmd) >= limit ? `frame ${entryFrame(gpmd)} is not below guestPages (${limit})` : `flags ${hex(entryFlags(gpmd))} beyond a page table's`),
  badPte: (gpte: number, vaddr: number, limit: number) =>
    `bad page table entry ${hex(gpte)} for vaddr ${hex(vaddr)}: ` +
    (entryFlags(gpte) & _PAGE_PSE ? 'large-page (PSE) flag set' : `frame ${entryFrame(gpte)} is not below guestPages (${limit})`),
  setPteSwitcher: (vaddr: number) => `attempt to set pte into Switcher pages at vaddr ${hex(vaddr)}`,
  setPgdIdx: (idx: number, ptrs: number) => `attempt to set pgd ${idx}/${ptrs}`,
  kernelAddress: (ka: number, sw: number) => `bad kernel address ${hex(ka)}: at or above the Switcher at ${hex(sw)}`,
  getPage: (gfn: number) => `failed to get page ${gfn}: its backing cannot be taken writable`,
  stackPage: (vaddr: number) => `bad stack page ${hex(vaddr)}`,
  pgdirAddress: (gpa: number) => `bad pgdir address ${hex(gpa)}: not a page of guest memory`,
};

// ---------------------------------------------------------------------------
// View

/** A present shadow PTE. */
export const SpteView = t.type({
  /** Host frame mapped. */
  pfn: t.number,
  /** Low 12 bits of the shadow entry. */
  flags: t.number,
  /** The guest PTE the host made it from (after its own accessed/dirty update); -1 for Switcher entries. */
  gpte: t.number,
  /** The guest top level (gpa) the entry was read or told from; -1 for Switcher entries. */
  from: t.number,
  /** Kernel-change generation of its virtual page when it was made (see `kernelGens`). */
  gen: t.number,
});
export type SpteView = t.TypeOf<typeof SpteView>;

export const SlotView = t.type({
  /** Guest top level this slot shadows (gpa). */
  gpgdir: t.number,
  switcherMapped: t.boolean,
  /** Host CPU whose per-CPU Switcher pages were last mapped here; -1: unknown. */
  lastHostCpu: t.number,
});
export type SlotView = t.TypeOf<typeof SlotView>;

export const View = t.type({
  dead: t.boolean,
  destroyed: t.boolean,
  /** Still on the fake linear mapping (no newPagetable yet). */
  linear: t.boolean,
  kernelAddress: t.number,
  /** Current slot (cpu_pgd). */
  current: t.number,
  /** Cached top levels by slot. */
  slots: t.record(t.string, SlotView),
  /** Present shadow PTEs by `slot:vpage` (vpage = vaddr >> 12), Switcher entries included. */
  sptes: t.record(t.string, SpteView),
  /** References above base, by host frame (non-zero only). */
  refs: t.record(t.string, t.number),
  /** Present shadow PTEs mapping each host frame (non-zero only). */
  mapcount: t.record(t.string, t.number),
  /** Puts that found no reference, by host frame (non-zero only). */
  underflows: t.record(t.string, t.number),
  /** Table entries that point to a shadow table page: owner `slot:g<i>` or `slot:g<i>:m<j>` -> page id. */
  tables: t.record(t.string, t.number),
  /** Allocated shadow table pages: page id -> the owner it was allocated for. */
  tablePages: t.record(t.string, t.string),
  /** Number of kernel-range setPte calls per virtual page (non-zero only). */
  kernelGens: t.record(t.string, t.number),
  /**
   * What the host last learnt of each guest PTE, by `gpgdir:vpage` (gpgdir the
   * top level's gpa): the value a setPte reaching a cached top level told it,
   * or the value (accessed/dirty updated) a fault read and installed. Only
   * ever overwritten: `shadow-sound` holds every user-range entry to it.
   */
  told: t.record(t.string, t.number),
});
export type View = t.TypeOf<typeof View>;

/** What one op changed (keys of the View's records); duplicates allowed. */
export interface Scope {
  entries: string[];
  pfns: number[];
  owners: string[];
  pages: number[];
  slots: number[];
  vpages: number[];
  /** `told` keys (`gpgdir:vpage`) the op wrote. Optional so that a scope written before it existed still type-checks. */
  told?: string[];
}
export function emptyScope(): Scope {
  return { entries: [], pfns: [], owners: [], pages: [], slots: [], vpages: [], told: [] };
}
export function mergeScopes(a: Scope, b: Scope): Scope {
  return {
    entries: a.entries.concat(b.entries),
    pfns: a.pfns.concat(b.pfns),
    owners: a.owners.concat(b.owners),
    pages: a.pages.concat(b.pages),
    slots: a.slots.concat(b.slots),
    vpages: a.vpages.concat(b.vpages),
    told: (a.told ?? []).concat(b.told ?? []),
  };
}

export function emptyView(): View {
  return {
    dead: false,
    destroyed: false,
    linear: true,
    kernelAddress: 0,
    current: 0,
    slots: {},
    sptes: {},
    refs: {},
    mapcount: {},
    underflows: {},
    tables: {},
    tablePages: {},
    kernelGens: {},
    told: {},
  };
}

export function spteKey(slot: number, vpage: number): string {
  return slot + ':' + vpage;
}
/** Key of the `told` record: a guest top level (gpa) and a virtual page. */
export function toldKey(gpgdir: number, vpage: number): string {
  return gpgdir + ':' + vpage;
}
export function parseSpteKey(k: string): [number, number] {
  return [keySlot(k), keyVpage(k)];
}
/** The slot of a `slot:vpage` key (digit by digit: no allocation on the hot path). */
export function keySlot(k: string): number {
  let n = 0;
  for (let i = 0; i < k.length; i++) {
    const ch = k.charCodeAt(i);
    if (ch === 58) break;
    n = n * 10 + (ch - 48);
  }
  return n;
}
/** The virtual page of a `slot:vpage` key. */
export function keyVpage(k: string): number {
  let n = 0;
  for (let i = k.indexOf(':') + 1; i < k.length; i++) n = n * 10 + (k.charCodeAt(i) - 48);
  return n;
}
/** Owner key of a table entry: top-level entry `i`, or (PAE) mid-level entry `j` under it. */
export function ownerKey(slot: number, i: number, j?: number): string {
  return j === undefined ? slot + ':g' + i : slot + ':g' + i + ':m' + j;
}

/** A copy of a View: records copied, their entries shared (entries are replaced, never changed in place). */
export function copyView(v: View): View {
  return {
    dead: v.dead,
    destroyed: v.destroyed,
    linear: v.linear,
    kernelAddress: v.kernelAddress,
    current: v.current,
    slots: { ...v.slots },
    sptes: { ...v.sptes },
    refs: { ...v.refs },
    mapcount: { ...v.mapcount },
    underflows: { ...v.underflows },
    tables: { ...v.tables },
    tablePages: { ...v.tablePages },
    kernelGens: { ...v.kernelGens },
    told: { ...v.told },
  };
}

/** A copy of a Scope (snapshots of systems that keep a live View). */
export function copyScope(s: Scope): Scope {
  return {
    entries: s.entries.slice(),
    pfns: s.pfns.slice(),
    owners: s.owners.slice(),
    pages: s.pages.slice(),
    slots: s.slots.slice(),
    vpages: s.vpages.slice(),
    ...(s.told ? { told: s.told.slice() } : {}),
  };
}
