/**
 * The shadow-pt domain: lguest-style shadow page tables and the page
 * references their entries hold (seed 004, drivers/lguest/page_tables.c).
 */
import { someDomain, type Domain, type Json } from '../harness/domain';
import { shadowPtHidden } from '../spec/shadow-pt/hidden';
import { ERRORS, SCENARIOS } from '../spec/shadow-pt/scenarios';
import { opCodec } from '../harness/codec';
import {
  ConfigInput,
  OpArgs,
  Result,
  View,
  encodeConfig,
  hex,
  mergeScopes,
  resolveConfig,
  type Config,
  type Op,
  type Scope,
  type SlotView,
  type SpteView,
} from '../spec/shadow-pt/types';
import { INVARIANTS } from '../spec/shadow-pt/invariants';
import { createModel } from '../model/shadow-pt/model';
import { createImpl } from '../impl/shadow-pt/impl';
import { MUTANTS } from '../properties/shadow-pt/mutants';
import { arbitraries } from '../properties/shadow-pt/arbitraries';

type R = Result;
type V = View;

function spteEqual(a: SpteView | undefined, b: SpteView | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.pfn === b.pfn && a.flags === b.flags && a.gpte === b.gpte && a.from === b.from && a.gen === b.gen;
}
function slotEqual(a: SlotView | undefined, b: SlotView | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.gpgdir === b.gpgdir && a.switcherMapped === b.switcherMapped && a.lastHostCpu === b.lastHostCpu;
}
function same<T>(a: T | undefined, b: T | undefined): boolean {
  return a === b;
}

function differ(name: string, k: string | number, a: unknown, b: unknown): string {
  return `views differ at view.${name}[${JSON.stringify(String(k))}]: model ${JSON.stringify(a ?? null)} vs impl ${JSON.stringify(b ?? null)}`;
}

/** Compare two records on the given keys (scoped) or on all keys of both (full). */
function agree<T>(
  name: string,
  a: Record<string, T>,
  b: Record<string, T>,
  eq: (x: T | undefined, y: T | undefined) => boolean,
  keys?: readonly (string | number)[],
): string | null {
  if (keys) {
    for (const k of keys) if (!eq(a[k], b[k])) return differ(name, k, a[k], b[k]);
    return null;
  }
  for (const k in a) if (!eq(a[k], b[k])) return differ(name, k, a[k], b[k]);
  for (const k in b) if (!(k in a)) return differ(name, k, undefined, b[k]);
  return null;
}

/**
 * Model and impl Views agree: the scalars, then each record, on the keys the
 * op changed on either side (scoped) or on every key (full). Every part of
 * the View is observable; only the comparison is made cheap.
 */
export function viewsAgree(m: V, i: V, scope?: Scope): string | null {
  for (const k of ['dead', 'destroyed', 'linear', 'kernelAddress', 'current'] as const) {
    if (m[k] !== i[k]) return `views differ at view.${k}: model ${JSON.stringify(m[k])} vs impl ${JSON.stringify(i[k])}`;
  }
  return (
    agree('sptes', m.sptes, i.sptes, spteEqual, scope?.entries) ??
    agree('refs', m.refs, i.refs, same, scope?.pfns) ??
    agree('mapcount', m.mapcount, i.mapcount, same, scope?.pfns) ??
    agree('underflows', m.underflows, i.underflows, same, scope?.pfns) ??
    agree('tables', m.tables, i.tables, same, scope?.owners) ??
    agree('tablePages', m.tablePages, i.tablePages, same, scope?.pages) ??
    agree('slots', m.slots, i.slots, slotEqual, scope?.slots) ??
    agree('kernelGens', m.kernelGens, i.kernelGens, same, scope?.vpages) ??
    agree('told', m.told, i.told, same, scope ? (scope.told ?? []) : undefined)
  );
}

/** The exploration world (non-PAE): top levels A (gfn 1) and B (gfn 2), kernel PTE page gfn 3, A's user PTE page gfn 4. */
const A = 0x1000;
const B = 0x2000;
const K = 0xc0000000;
const UV = 0x08000000;
const P = 1;
const RW = 2;
const US = 4;
const AC = 0x20;
const DI = 0x40;

function alphabet(c: Config): Op[] {
  const ops: Op[] = [
    { op: 'guestWrite', args: { gpa: A + (K >>> 22) * 4, value: 0x3000 | 0x63 } },
    { op: 'guestWrite', args: { gpa: B + (K >>> 22) * 4, value: 0x3000 | 0x63 } },
    { op: 'guestWrite', args: { gpa: A + (UV >>> 22) * 4, value: 0x4000 | 0x67 } },
    { op: 'guestWrite', args: { gpa: 0x3000, value: 0x8000 | P | RW } },
    { op: 'guestWrite', args: { gpa: 0x4000, value: 0x9000 | P | US | RW } },
    { op: 'guestWrite', args: { gpa: 0x4000, value: 0xc000 | P | US | RW | DI } },
    { op: 'lguestInit', args: { kernelAddress: K } },
    { op: 'newPagetable', args: { pgtable: A, victim: 0 } },
    { op: 'newPagetable', args: { pgtable: B, victim: 1 } },
    { op: 'newPagetable', args: { pgtable: B, victim: 0 } },
    // Top level 0 into slot 1: the seed caches "top level 0" twice when this is the first switch.
    { op: 'newPagetable', args: { pgtable: 0, victim: 1 } },
    { op: 'pageFault', args: { vaddr: K, errcode: 2 } },
    { op: 'pageFault', args: { vaddr: UV, errcode: 6 } },
    { op: 'pageFault', args: { vaddr: UV, errcode: 4 } },
    { op: 'pageFault', args: { vaddr: 0x5000, errcode: 0 } },
    { op: 'setPte', args: { pgdir: A, vaddr: K, gpte: 0x8000 | P | RW | AC | DI } },
    { op: 'setPte', args: { pgdir: A, vaddr: UV, gpte: 0xa000 | P | US | RW | AC } },
    { op: 'setPte', args: { pgdir: A, vaddr: UV, gpte: 0 } },
    { op: 'setPte', args: { pgdir: A, vaddr: UV, gpte: 0xa000 | AC | DI } },
    { op: 'setPgd', args: { pgdir: A, idx: 1024 } },
    { op: 'setPgd', args: { pgdir: A, idx: UV >>> 22 } },
    { op: 'setPgd', args: { pgdir: A, idx: 1023 } },
    { op: 'flushUser', args: {} },
    { op: 'flushAll', args: {} },
    { op: 'runOnCpu', args: { cpu: 0 } },
    { op: 'setStack', args: { vaddr: K + 0x1000, pages: 1 } },
    { op: 'destroy', args: {} },
  ];
  void c;
  return ops;
}

/**
 * Mutants the exploration world cannot show within the search budget: PAE-only
 * bugs (the world is non-PAE), and bugs that need 7 to 9 ops over addresses
 * the world's alphabet does not name. For each: the configuration of the
 * campaign's shrunk counterexample and its ops as the alphabet.
 */
const FOR_MUTANT: { readonly [id: string]: { readonly config: Json; alphabet(c: Config): readonly Op[] } } = {
  'release-keeps-entry': {
    config: { pae: false, pgdirSlots: 1, guestPages: 64, hostBase: 65536, readOnlyPages: [], hostCpus: 1, switcherAddr: 4290772992 },
    alphabet: () => [
      { op: 'lguestInit', args: { kernelAddress: 3221225472 } },
      { op: 'newPagetable', args: { pgtable: 0, victim: 0 } },
      { op: 'guestWrite', args: { gpa: 3072, value: 12387 } },
      { op: 'guestWrite', args: { gpa: 11264, value: 12387 } },
      { op: 'guestWrite', args: { gpa: 12348, value: 131171 } },
      { op: 'guestWrite', args: { gpa: 12344, value: 192611 } },
      { op: 'pinPage', args: { vaddr: 3221286912 } },
      { op: 'setPte', args: { pgdir: 0, vaddr: 3221319680, gpte: 229475 } },
      { op: 'setPte', args: { pgdir: 0, vaddr: 3221319680, gpte: 229379 } },
    ],
  },
  'eager-writable-clean': {
    config: { pae: true, pgdirSlots: 4, guestPages: 256, hostBase: 65536, readOnlyPages: [], hostCpus: 1, switcherAddr: 4292870144 },
    alphabet: () => [
      { op: 'lguestInit', args: { kernelAddress: 3221225472 } },
      { op: 'newPagetable', args: { pgtable: 0, victim: 0 } },
      { op: 'guestWrite', args: { gpa: 0, value: 57345 } },
      { op: 'guestWrite', args: { gpa: 57856, value: 49255 } },
      { op: 'guestWrite', args: { gpa: 49152, value: 196615 } },
      { op: 'pageFault', args: { vaddr: 134217728, errcode: 0 } },
      { op: 'setPte', args: { pgdir: 0, vaddr: 134217728, gpte: 196647 } },
    ],
  },
  'reuse-keeps-user': {
    config: { pae: false, pgdirSlots: 1, guestPages: 64, hostBase: 65536, readOnlyPages: [], hostCpus: 1, switcherAddr: 4290772992 },
    alphabet: () => [
      { op: 'lguestInit', args: { kernelAddress: 3221225472 } },
      { op: 'newPagetable', args: { pgtable: 0, victim: 0 } },
      { op: 'newPagetable', args: { pgtable: 8192, victim: 0 } },
      { op: 'guestWrite', args: { gpa: 8320, value: 28775 } },
      { op: 'guestWrite', args: { gpa: 28672, value: 258055 } },
      { op: 'pageFault', args: { vaddr: 134217728, errcode: 0 } },
    ],
  },
  'eager-not-present-leaks': {
    config: { pae: false, pgdirSlots: 1, guestPages: 64, hostBase: 65536, readOnlyPages: [], hostCpus: 1, switcherAddr: 4290772992 },
    alphabet: () => [
      { op: 'lguestInit', args: { kernelAddress: 3221225472 } },
      { op: 'newPagetable', args: { pgtable: 0, victim: 0 } },
      { op: 'guestWrite', args: { gpa: 3072, value: 12387 } },
      { op: 'guestWrite', args: { gpa: 11264, value: 12387 } },
      { op: 'guestWrite', args: { gpa: 12348, value: 131171 } },
      { op: 'guestWrite', args: { gpa: 12344, value: 192611 } },
      { op: 'setStack', args: { vaddr: 3221291008, pages: 1 } },
      { op: 'setPte', args: { pgdir: 0, vaddr: 3221291008, gpte: 65638 } },
    ],
  },
  'release-pmd-leaks-page': {
    config: { pae: true, pgdirSlots: 1, guestPages: 64, hostBase: 65536, readOnlyPages: [], hostCpus: 1, switcherAddr: 4292870144 },
    alphabet: () => [
      { op: 'lguestInit', args: { kernelAddress: 3221225472 } },
      { op: 'newPagetable', args: { pgtable: 0, victim: 0 } },
    ],
  },
  'eager-bad-pte-only-where-cached': {
    config: { pae: true, pgdirSlots: 1, guestPages: 256, hostBase: 65536, readOnlyPages: [146, 209, 234], hostCpus: 3, switcherAddr: 4292870144 },
    alphabet: () => [
      { op: 'lguestInit', args: { kernelAddress: 3221225472 } },
      { op: 'newPagetable', args: { pgtable: 0, victim: 0 } },
      { op: 'guestWrite', args: { gpa: 24, value: 32769 } },
      { op: 'guestWrite', args: { gpa: 32768, value: 12391 } },
      { op: 'guestWrite', args: { gpa: 8216, value: 32769 } },
      { op: 'guestWrite', args: { gpa: 12416, value: 458919 } },
      { op: 'setPte', args: { pgdir: 0, vaddr: 3221291008, gpte: 458919 } },
    ],
  },
  'write-fault-releases-before-kill': {
    config: { pae: true, pgdirSlots: 1, guestPages: 64, hostBase: 65536, readOnlyPages: [36], hostCpus: 3, switcherAddr: 4292870144 },
    alphabet: () => [
      { op: 'lguestInit', args: { kernelAddress: 3221225472 } },
      { op: 'newPagetable', args: { pgtable: 0, victim: 0 } },
      { op: 'guestWrite', args: { gpa: 0, value: 45057 } },
      { op: 'guestWrite', args: { gpa: 45568, value: 36967 } },
      { op: 'guestWrite', args: { gpa: 36864, value: 147495 } },
      { op: 'pageFault', args: { vaddr: 134217728, errcode: 0 } },
      { op: 'pageFault', args: { vaddr: 134217728, errcode: 2 } },
    ],
  },
};

function describeOp(op: Op): string {
  const a = op.args as Record<string, number>;
  const parts = Object.keys(a).map((k) => `${k}=${['gpa', 'vaddr', 'pgdir', 'pgtable', 'gpte', 'value', 'kernelAddress', 'pmdp'].includes(k) ? hex(a[k]!) : a[k]}`);
  return parts.length ? `${op.op} ${parts.join(' ')}` : op.op;
}

export const shadowPtDomain: Domain<Config, Op, R, V, Scope> = {
  id: 'shadow-pt',
  title: 'Shadow page tables and page references (lguest)',
  summary:
    'A paravirtual hypervisor keeps shadow page tables: guest page tables verified and converted into the real tables the CPU walks, filled lazily on guest faults. Every present shadow PTE holds one reference on a host page; releasing the entry puts it back exactly once. Kernel-range changes reach every cached top level, the Switcher stays mapped read-only, and bad guest input kills the guest without leaking or double-dropping a reference.',
  source: 'seed 004_24ad7b1795c155e0.txt: lguest drivers/lguest/page_tables.c (H:300 .. H:508)',
  configCodec: ConfigInput,
  resolveConfig,
  encodeConfig: (c) => encodeConfig(c) as Json,
  opArgs: OpArgs,
  resultCodec: Result,
  viewCodec: View,
  invariants: INVARIANTS,
  createModel,
  createImpl,
  mutants: MUTANTS,
  viewsAgree,
  mergeScopes,
  arbitraries,
  scenarios: SCENARIOS,
  errors: ERRORS,
  budget: { runs: 300, maxOps: 120 },
  mutantBudget: { runs: 300, maxOps: 120 },
  exploration: {
    config: { pgdirSlots: 2, guestPages: 16, hostCpus: 1, readOnlyPages: [12] },
    alphabet,
    forMutant: FOR_MUTANT,
  },
  describeOp,
  hidden: shadowPtHidden,
};

export const shadowPt = someDomain(shadowPtDomain);

/** The op codec of this domain (case files, CLI). */
export const shadowPtOp = opCodec(OpArgs);
