/**
 * sev-cache benchmarks.
 *
 *  1. Lockstep throughput on the random-search traces (model + impl + every
 *     invariant on both Views after every op).
 *  2. A 64-CPU machine with 16 SEV VMs pinned to 4 CPUs each: guests write on
 *     their CPUs, regions are released and re-registered, the host reuses
 *     released pages, lines are evicted, VMs are replaced (ASIDs recycle).
 *     The impl must write back exactly the minimum number of CPUs and
 *     invalidate no line outside ASID recycling; the model (WBINVD on every
 *     CPU at every release) is shown beside it. Also lockstep on that trace.
 */
import type { Json } from '../harness/domain';
import { runTrace } from '../harness/lockstep';
import { fmt, lockstepThroughput, steadyMs, timeMs } from './harness';
import { sevCacheDomain } from '../domains/sev-cache';
import type { Config, SevOp } from '../spec/sev-cache/types';

/** Deterministic PRNG (mulberry32): the bench trace is the same on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const PINNED_CONFIG: Config = {
  cpus: 64,
  pages: 16 * 8 + 64,
  linesPerPage: 4,
  asids: 16,
  wbnoinvd: true,
  smeCoherent: false,
  vmPageFlush: 'works',
  haveRunMask: 'upstream',
};

/** The pinned-VM workload: VM slot s runs on CPUs 4s..4s+3 and owns pages 8s..8s+7. */
export function pinnedTrace(rounds: number, seed = 1): SevOp[] {
  const c = PINNED_CONFIG;
  const rnd = prng(seed);
  const int = (n: number): number => Math.floor(rnd() * n);
  const ops: SevOp[] = [];
  const slots = 16;
  const vmOf = Array.from({ length: slots }, (_, s) => s + 1);
  let nextId = slots + 1;
  const hostPage = (): number => slots * 8 + int(64);
  const typeOf = (s: number): 'sev' | 'sev-es' => (s % 2 === 0 ? 'sev' : 'sev-es');
  // Regions of a slot: three of two pages, then two single pages (the last one stands for a VMSA page).
  const registerSlot = (vm: number, s: number): void => {
    for (const [off, n] of [[0, 2], [2, 2], [4, 2], [6, 1], [7, 1]] as const) ops.push({ op: 'registerRegion', args: { vm, page: s * 8 + off, npages: n } });
  };
  for (let s = 0; s < slots; s++) {
    ops.push({ op: 'createVm', args: { vm: vmOf[s]!, type: typeOf(s) } });
    registerSlot(vmOf[s]!, s);
  }
  for (let r = 0; r < rounds; r++) {
    const s = int(slots);
    const vm = vmOf[s]!;
    const cpu = () => s * 4 + int(4);
    for (let k = 0; k < 6; k++) {
      ops.push({ op: 'guestWrite', args: { vm, cpu: cpu(), page: s * 8 + int(8), line: int(c.linesPerPage), value: 1 + int(1000) } });
    }
    ops.push({ op: 'guestRead', args: { vm, cpu: cpu(), page: s * 8 + int(8), line: int(c.linesPerPage) } });
    ops.push({ op: 'hostWrite', args: { cpu: int(64), page: hostPage(), line: int(c.linesPerPage), value: 5000 + int(1000) } });
    ops.push({ op: 'evict', args: { cpu: cpu(), page: s * 8 + int(8), line: int(c.linesPerPage), key: 0 } });
    const roll = int(10);
    if (roll < 3) {
      // Release two pages of the region, let the host reuse them from another VM's CPU, evict, take them back.
      const p = s * 8 + 2 * int(3);
      ops.push({ op: 'unregisterRegion', args: { vm, page: p, npages: 2 } });
      const hc = ((s + 1) % slots) * 4 + int(4);
      ops.push({ op: 'hostWrite', args: { cpu: hc, page: p, line: 0, value: 9000 + r } });
      ops.push({ op: 'evict', args: { cpu: cpu(), page: p, line: 0, key: s + 1 } });
      ops.push({ op: 'hostRead', args: { cpu: hc, page: p, line: 0 } });
      ops.push({ op: 'registerRegion', args: { vm, page: p, npages: 2 } });
    } else if (roll < 5) {
      ops.push({ op: 'memoryReclaimed', args: { vm } });
    } else if (roll < 6 && typeOf(s) === 'sev-es') {
      ops.push({ op: 'flushEncryptedPage', args: { vm, page: s * 8 + 7 } });
      ops.push({ op: 'registerRegion', args: { vm, page: s * 8 + 7, npages: 1 } });
    } else if (roll < 7) {
      // Replace the VM: destroy, then a new VM on the same CPUs and pages; all ASIDs are taken, so it recycles.
      ops.push({ op: 'destroyVm', args: { vm } });
      const nvm = nextId++;
      vmOf[s] = nvm;
      ops.push({ op: 'createVm', args: { vm: nvm, type: typeOf(s) } });
      registerSlot(nvm, s);
    }
  }
  return ops;
}

export default function bench(log: (line: string) => void): Json {
  const d = sevCacheDomain;

  // 1. Lockstep on the random-search traces (best of 3 after a warm-up).
  const random = lockstepThroughput(d, { traces: 600, maxOps: d.budget.maxOps, seed: 42 });
  log(`sev-cache lockstep (random-search traces): ${random.ops} ops, best ${fmt(random.opsPerSecond)} ops/s (${random.microsecondsPerOp.toFixed(1)} us/op), median ${fmt(random.medianOpsPerSecond)} ops/s`);

  // 2. The pinned 64-CPU machine.
  const trace = pinnedTrace(3000);
  let mc: Readonly<Record<string, number>> = {};
  let ic: Readonly<Record<string, number>> = {};
  const modelMs = timeMs(() => {
    const model = d.createModel(PINNED_CONFIG);
    for (const op of trace) model.apply(op);
    mc = model.counters!();
  });
  const implMs = timeMs(() => {
    const impl = d.createImpl(PINNED_CONFIG);
    for (const op of trace) impl.apply(op);
    ic = impl.counters!();
  });
  let failure: string | null = null;
  // Steady state, as for the other lockstep figures: warm-up, then best and median.
  const lock = steadyMs(() => {
    const out = runTrace(d, PINNED_CONFIG, trace);
    failure = out.failure ? `step ${out.failure.step}: ${out.failure.message}` : null;
  }, 2000, 4000);
  const lockMs = lock.best;
  const perSec = (ms: number): number => Math.round(trace.length / (ms / 1000));
  const exact = ic['cpusWrittenBack'] === ic['minimumCpus'];
  log(`sev-cache pinned 64 CPUs / 16 VMs x 4 CPUs: ${trace.length} ops, ${ic['releases']} releases, ${ic['recycles']} ASID recycles`);
  log(`  CPUs written back   model ${mc['cpusWrittenBack']}  impl ${ic['cpusWrittenBack']}  minimum ${ic['minimumCpus']}  (impl ${exact ? '=' : '!='} minimum)`);
  log(`  lines invalidated   model ${mc['linesInvalidated']}  impl ${ic['linesInvalidated']}  (outside recycling); by recycling: model ${mc['recycleLinesInvalidated']}  impl ${ic['recycleLinesInvalidated']}`);
  log(`  apply only: model ${fmt(perSec(modelMs))} ops/s, impl ${fmt(perSec(implMs))} ops/s`);
  log(`  lockstep on this trace: best ${fmt(perSec(lockMs))} ops/s, median ${fmt(perSec(lock.median))} ops/s over ${lock.calls} passes, ${failure ?? 'all invariants hold'}`);

  return {
    randomLockstep: { ops: random.ops, opsPerSec: random.opsPerSecond, medianOpsPerSec: random.medianOpsPerSecond, usPerOp: Math.round(random.microsecondsPerOp * 10) / 10 },
    pinned: {
      ops: trace.length,
      releases: ic['releases']!,
      recycles: ic['recycles']!,
      cpusWrittenBack: { model: mc['cpusWrittenBack']!, impl: ic['cpusWrittenBack']!, minimum: ic['minimumCpus']! },
      linesInvalidated: { model: mc['linesInvalidated']!, impl: ic['linesInvalidated']! },
      recycleLinesInvalidated: { model: mc['recycleLinesInvalidated']!, impl: ic['recycleLinesInvalidated']! },
      implExactlyMinimum: exact,
      applyOpsPerSec: { model: perSec(modelMs), impl: perSec(implMs) },
      lockstepOpsPerSec: perSec(lockMs),
      lockstepMedianOpsPerSec: perSec(lock.median),
      lockstepFailure: failure,
    },
  };
}
