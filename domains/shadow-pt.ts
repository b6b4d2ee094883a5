/**
 * The shadow-pt domain: lguest-style shadow page tables and the page
 * references their entries hold (seed 004, drivers/lguest/page_tables.c).
 */
import { someDomain, type Domain, type Json } from '../harness/domain';
import { deepEqual, firstDifference } from '../harness/codec';
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
} from '../spec/shadow-pt/types';
import { INVARIANTS } from '../spec/shadow-pt/invariants';
import { createModel } from '../model/shadow-pt/model';
import { createImpl } from '../impl/shadow-pt/impl';
import { MUTANTS } from '../properties/shadow-pt/mutants';
import { arbitraries } from '../properties/shadow-pt/arbitraries';

type R = Result;
type V = View;

function agreeKeys(
  name: string,
  a: Record<string, unknown>,
  b: Record<string, unknown>,
  keys: readonly (string | number)[],
): string | null {
  for (const k of keys) {
    if (!deepEqual(a[k], b[k])) return `views differ at view.${name}[${JSON.stringify(String(k))}]: model ${JSON.stringify(a[k] ?? null)} vs impl ${JSON.stringify(b[k] ?? null)}`;
  }
  return null;
}

/** Scoped comparison: the scalars, then only the keys the op changed on either side. */
export function viewsAgree(m: V, i: V, scope?: Scope): string | null {
  if (!scope) return deepEqual(m, i) ? null : `views differ at ${firstDifference(m, i, 'view')}`;
  for (const k of ['dead', 'destroyed', 'linear', 'kernelAddress', 'current'] as const) {
    if (m[k] !== i[k]) return `views differ at view.${k}: model ${JSON.stringify(m[k])} vs impl ${JSON.stringify(i[k])}`;
  }
  return (
    agreeKeys('sptes', m.sptes, i.sptes, scope.entries) ??
    agreeKeys('refs', m.refs, i.refs, scope.pfns) ??
    agreeKeys('mapcount', m.mapcount, i.mapcount, scope.pfns) ??
    agreeKeys('underflows', m.underflows, i.underflows, scope.pfns) ??
    agreeKeys('tables', m.tables, i.tables, scope.owners) ??
    agreeKeys('tablePages', m.tablePages, i.tablePages, scope.pages) ??
    agreeKeys('slots', m.slots, i.slots, scope.slots) ??
    agreeKeys('kernelGens', m.kernelGens, i.kernelGens, scope.vpages)
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
    { op: 'pageFault', args: { vaddr: K, errcode: 2 } },
    { op: 'pageFault', args: { vaddr: UV, errcode: 6 } },
    { op: 'pageFault', args: { vaddr: UV, errcode: 4 } },
    { op: 'pageFault', args: { vaddr: 0x5000, errcode: 0 } },
    { op: 'setPte', args: { pgdir: A, vaddr: K, gpte: 0x8000 | P | RW | AC | DI } },
    { op: 'setPte', args: { pgdir: A, vaddr: UV, gpte: 0xa000 | P | US | RW | AC } },
    { op: 'setPte', args: { pgdir: A, vaddr: UV, gpte: 0 } },
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
  budget: { runs: 300, maxOps: 120 },
  mutantBudget: { runs: 300, maxOps: 120 },
  exploration: {
    config: { pgdirSlots: 2, guestPages: 16, hostCpus: 1, readOnlyPages: [12] },
    alphabet,
  },
  describeOp,
};

export const shadowPt = someDomain(shadowPtDomain);

/** The op codec of this domain (case files, CLI). */
export const shadowPtOp = opCodec(OpArgs);
