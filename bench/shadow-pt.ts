/**
 * shadow-pt benchmarks, measured side by side in one run:
 *
 *  1. lockstep throughput (model + impl + every invariant on both live Views
 *     after every op, a full check every 64 ops) at a small configuration and
 *     at one ten times larger (guest pages, top-level slots, trace length):
 *     with incremental Views and scoped checks the cost per op must not grow
 *     with the amount of state;
 *  2. implementation vs model on one large workload: 100k demand faults over
 *     16k guest pages and four top levels, with setPte, flushes, top-level
 *     switches, a flushAll and a destroy.
 */
import * as fc from 'fast-check';
import type { Json } from '../harness/domain';
import { runTrace } from '../harness/lockstep';
import { shadowPtDomain as d } from '../domains/shadow-pt';
import { resolveConfig, type Config, type Op } from '../spec/shadow-pt/types';
import { ShadowPtModel } from '../model/shadow-pt/model';
import { ShadowPtImpl } from '../impl/shadow-pt/impl';
import { fmt, steadyMs, timeMs } from './harness';

function config(input: object): Config {
  const r = resolveConfig(input);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.value;
}

interface Lockstep {
  ops: number;
  traces: number;
  ms: number;
  opsPerSecond: number;
  microsecondsPerOp: number;
}

function lockstep(c: Config, maxOps: number, traces: number, seed: number): Lockstep {
  const samples = fc.sample(d.arbitraries.ops(c, maxOps), { seed, numRuns: traces });
  const ops = samples.reduce((n, s) => n + s.length, 0);
  // Steady state (warm-up, then the best pass), as the other lockstep figures.
  const ms = steadyMs(() => {
    for (const s of samples) {
      const out = runTrace(d, c, s);
      if (out.failure) throw new Error(`shadow-pt bench: a trace failed: ${out.failure.message}`);
    }
  }).best;
  return { ops, traces, ms, opsPerSecond: Math.round((ops / ms) * 1000), microsecondsPerOp: (ms * 1000) / ops };
}

/** The large workload: guest tables written first, then 100k faults with changes, flushes and switches. */
export function largeWorkload(faults = 100_000): { config: Config; ops: Op[] } {
  const c = config({ pgdirSlots: 4, guestPages: 32768, hostCpus: 2 });
  const ops: Op[] = [];
  const K = 0xc0000000;
  const UV = 0x08000000;
  const tops = [0x1000, 0x2000, 0x3000, 0x4000, 0x5000];
  const userPages = 16384; // 16 PTE pages per top level
  const kernelPages = 2048; // 2 shared kernel PTE pages
  const userPte = (t: number, i: number) => 0x10 + t * 16 + Math.floor(i / 1024); // guest frames of PTE pages
  const kernelPte = (i: number) => 0x08 + Math.floor(i / 1024);
  const frame = (t: number, i: number) => 1024 + ((i * 7 + t * 131) % 30000);
  ops.push({ op: 'lguestInit', args: { kernelAddress: K } });
  ops.push({ op: 'newPagetable', args: { pgtable: tops[0]!, victim: 0 } });
  for (let t = 0; t < tops.length; t++) {
    for (let p = 0; p < userPages / 1024; p++) ops.push({ op: 'guestWrite', args: { gpa: tops[t]! + ((UV >>> 22) + p) * 4, value: userPte(t, p * 1024) * 4096 + 0x67 } });
    for (let p = 0; p < kernelPages / 1024; p++) ops.push({ op: 'guestWrite', args: { gpa: tops[t]! + ((K >>> 22) + p) * 4, value: kernelPte(p * 1024) * 4096 + 0x63 } });
    for (let i = 0; i < userPages; i++) {
      ops.push({ op: 'guestWrite', args: { gpa: userPte(t, i) * 4096 + (i % 1024) * 4, value: frame(t, i) * 4096 + (i % 5 === 0 ? 0x05 : 0x07) } });
    }
  }
  for (let i = 0; i < kernelPages; i++) ops.push({ op: 'guestWrite', args: { gpa: kernelPte(i) * 4096 + (i % 1024) * 4, value: frame(-1, i) * 4096 + 0x03 } });
  ops.push({ op: 'setStack', args: { vaddr: K + 0x10000, pages: 2 } });
  let x = 12345;
  const rnd = (n: number) => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0), x % n);
  let current = 0;
  for (let f = 0; f < faults; f++) {
    const kernel = rnd(8) === 0;
    const vaddr = kernel ? K + rnd(kernelPages) * 4096 : UV + rnd(userPages) * 4096;
    ops.push({ op: 'pageFault', args: { vaddr, errcode: kernel ? rnd(2) * 2 : 4 | (rnd(3) === 0 ? 2 : 0) } });
    if (f % 97 === 0) {
      const i = rnd(kernelPages);
      ops.push({ op: 'setPte', args: { pgdir: tops[current]!, vaddr: K + i * 4096, gpte: frame(-1, i) * 4096 + 0x23 } });
    }
    if (f % 53 === 0) {
      const i = rnd(userPages);
      ops.push({ op: 'setPte', args: { pgdir: tops[current]!, vaddr: UV + i * 4096, gpte: frame(current, i) * 4096 + (rnd(2) ? 0x67 : 0x07) } });
    }
    if (f % 2000 === 1999) {
      current = rnd(tops.length);
      ops.push({ op: 'newPagetable', args: { pgtable: tops[current]!, victim: rnd(c.pgdirSlots) } });
      ops.push({ op: 'runOnCpu', args: { cpu: rnd(2) } });
    }
    if (f % 5000 === 4999) ops.push({ op: 'flushUser', args: {} });
    if (f === Math.floor(faults / 2)) ops.push({ op: 'flushAll', args: {} });
  }
  ops.push({ op: 'destroy', args: {} });
  return { config: c, ops };
}

export default function bench(log: (line: string) => void): Json {
  const small = config({ pgdirSlots: 4, guestPages: 256, hostCpus: 2 });
  const large = config({ pgdirSlots: 40, guestPages: 2560, hostCpus: 2 });
  const ls = lockstep(small, 100, 300, 1);
  const ll = lockstep(large, 1000, 30, 1);
  const perOpRatio = ll.microsecondsPerOp / ls.microsecondsPerOp;
  log(`lockstep small (4 slots, 256 guest pages, traces <= 100 ops): ${fmt(ls.opsPerSecond)} ops/s (${ls.microsecondsPerOp.toFixed(2)} us/op over ${ls.ops} ops)`);
  log(`lockstep 10x   (40 slots, 2560 guest pages, traces <= 1000 ops): ${fmt(ll.opsPerSecond)} ops/s (${ll.microsecondsPerOp.toFixed(2)} us/op over ${ll.ops} ops)`);
  log(`per-op cost at 10x / small: ${perOpRatio.toFixed(2)} (must be <= 2)`);

  const w = largeWorkload();
  const faults = w.ops.filter((o) => o.op === 'pageFault').length;
  const runOn = (mk: () => { apply(op: Op): unknown }) => () => {
    const s = mk();
    for (const op of w.ops) s.apply(op);
  };
  const implMs = timeMs(runOn(() => new ShadowPtImpl(w.config)), 3);
  const modelMs = timeMs(runOn(() => new ShadowPtModel(w.config)), 3);
  // The same workload must end in the same state on both sides.
  const m = new ShadowPtModel(w.config);
  const i = new ShadowPtImpl(w.config);
  for (const op of w.ops) {
    const a = JSON.stringify(m.apply(op));
    const b = JSON.stringify(i.apply(op));
    if (a !== b) throw new Error(`shadow-pt bench: model and impl disagree on ${JSON.stringify(op)}: ${a} vs ${b}`);
  }
  log(`large workload (${w.ops.length} ops, ${faults} faults, 16k pages x 5 top levels, flushes, destroy):`);
  log(`  impl ${implMs.toFixed(1)} ms (${fmt((w.ops.length / implMs) * 1000)} ops/s), model ${modelMs.toFixed(1)} ms: model/impl = ${(modelMs / implMs).toFixed(2)}x`);
  log(`  entries visited by the impl's releases: ${i.counters().entriesVisited}; entries scanned by the model: ${m.counters().entriesScanned}`);
  return {
    lockstepSmall: { ...ls },
    lockstep10x: { ...ll },
    perOpCostRatio10x: Number(perOpRatio.toFixed(3)),
    largeWorkload: {
      ops: w.ops.length,
      faults,
      implMs: Number(implMs.toFixed(2)),
      modelMs: Number(modelMs.toFixed(2)),
      modelOverImpl: Number((modelMs / implMs).toFixed(2)),
      implEntriesVisited: i.counters().entriesVisited ?? 0,
      modelEntriesScanned: m.counters().entriesScanned ?? 0,
    },
  };
}
