/**
 * Benchmarks of the `prefault` domain, measured side by side in one run:
 *
 *  - pre-faulting 64 GiB in one KVM_PRE_FAULT_MEMORY call on a default VM
 *    backed by 1 GiB pages, and on an SNP VM backed by 2 MiB pages after
 *    finalize: implementation (radix table, whole leaves) vs the page-by-page
 *    model, with leaves installed vs pages covered;
 *  - lockstep throughput (model + impl + every invariant after every op) on
 *    the domain's own random traces.
 */
import * as os from 'os';
import type { Json } from '../harness/domain';
import { resolveConfig } from '../spec/prefault/config';
import { PAGE_SIZE, type PrefaultConfig, type PrefaultOp } from '../spec/prefault/types';
import { PrefaultModel } from '../model/prefault/model';
import { PrefaultMmu } from '../impl/prefault/mmu';
import { prefaultDomain } from '../domains/prefault';
import { fmt, lockstepThroughput, timeMs } from './harness';

const GIB = 1024 * 1024 * 1024;
const SIZE = 64 * GIB;

function config(input: unknown): PrefaultConfig {
  const r = resolveConfig(input);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.value;
}

function once(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

function scenario(log: (line: string) => void, name: string, input: unknown, setup: PrefaultOp[]): Json {
  const c = config(input);
  const op: PrefaultOp = { op: 'preFault', args: { gpa: 0, size: SIZE, flags: 0 } };
  let impl = new PrefaultMmu(c);
  const implMs = timeMs(() => {
    impl = new PrefaultMmu(c);
    for (const s of setup) impl.apply(s);
    const r = impl.apply(op);
    if (!r.ok || !('size' in r) || r.size !== 0) throw new Error(`${name}: impl pre-fault failed ${JSON.stringify(r)}`);
  }, 15);
  const counters = impl.counters();
  const leaves = impl.view().leaves.length;
  let model: PrefaultModel | null = new PrefaultModel(c);
  const m = model;
  const modelMs = once(() => {
    for (const s of setup) m.apply(s);
    const r = m.apply(op);
    if (!r.ok || !('size' in r) || r.size !== 0) throw new Error(`${name}: model pre-fault failed ${JSON.stringify(r)}`);
  });
  const modelSteps = m.counters()['pageSteps']!;
  const modelLeaves = m.liveView().view.leaves.length;
  model = null;
  if (modelLeaves !== leaves) throw new Error(`${name}: model has ${modelLeaves} leaves, impl ${leaves}`);
  const ratio = modelMs / implMs;
  const pages = SIZE / PAGE_SIZE;
  log(
    `prefault ${name}: 64 GiB in one call: impl ${fmt(implMs, 3)} ms, model ${fmt(modelMs, 0)} ms, ratio ${fmt(ratio, 0)}x; ` +
      `${counters['leavesInstalled']} leaves installed for ${counters['pagesCovered']} pages (${pages} pages requested), ${counters['tablesAllocated']} tables; model ${modelSteps} page steps`,
  );
  return {
    implMs,
    modelMs,
    ratio,
    leavesInstalled: counters['leavesInstalled']!,
    pagesCovered: counters['pagesCovered']!,
    pagesRequested: pages,
    tablesAllocated: counters['tablesAllocated']!,
    modelPageSteps: modelSteps,
  };
}

export default function bench(log: (line: string) => void): Json {
  // Lockstep first: the 64 GiB model runs below leave ~100 MB of garbage whose
  // collection would otherwise land in this measurement.
  const t = lockstepThroughput(prefaultDomain, { traces: 300, maxOps: 40, seed: 20261124 });
  log(
    `prefault lockstep: ${t.ops} ops, best ${fmt(t.opsPerSecond)} ops/s (${fmt(t.microsecondsPerOp, 1)} us/op), median ${fmt(t.medianOpsPerSecond)} ops/s ` +
      `over ${t.calls} timed passes after warm-up; load average ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} CPUs`,
  );
  const npages = SIZE / PAGE_SIZE;
  const default1g = scenario(log, 'default VM, 1 GiB backing', { vmType: 'default', memslots: [{ id: 0, baseGfn: 0, npages, backing: '1g' }] }, []);
  const snp2m = scenario(log, 'SNP VM after finalize, 2 MiB backing', { vmType: 'snp', memslots: [{ id: 0, baseGfn: 0, npages, backing: '2m' }] }, [
    { op: 'finalize', args: {} },
  ]);
  return {
    default1g,
    snp2m,
    lockstep: { ...t, loadAverage: os.loadavg()[0]! },
  };
}
