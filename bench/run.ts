/**
 * `npm run bench`: every registered domain's generic lockstep throughput,
 * then its own benchmark module (`bench/<domain>.ts`, default export), all
 * in one run so that ratios are measured side by side. Figures go to
 * `bench/results.json`.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Json } from '../harness/domain';
import { DOMAINS } from '../domains';
import { fmt, lockstepThroughput } from './harness';
import { explore } from '../harness/explore';
import { checkDomain } from '../harness/check';
import { checkInWorkers } from '../harness/parallel';

type BenchModule = { default: (log: (line: string) => void) => Json };

function loadBench(id: string): BenchModule | null {
  const file = path.join(__dirname, `${id}.js`);
  if (!fs.existsSync(file)) return null;
  return require(file) as BenchModule;
}

/** Explore states/s on the domain's small configuration (depth-bounded, 5 s at most). */
async function exploreBench(id: string, log: (l: string) => void): Promise<Json> {
  const some = DOMAINS.find((d) => d.id === id)!;
  return some.use(async (d) => {
    if (!d.exploration) return null;
    const cfg = d.resolveConfig(d.exploration.config);
    if (!cfg.ok) return null;
    const deadline = Date.now() + 5000;
    const out = await explore(d, cfg.value, d.exploration.alphabet(cfg.value), { depth: 6, maxStates: 200_000, shouldStop: () => Date.now() > deadline });
    log(`explore: ${fmt(out.statesPerSecond)} states/s (${out.states} states, ${out.transitions} transitions, depth ${out.depthCompleted} complete, ${out.stoppedBy === 'interrupted' ? 'stopped at 5 s' : out.stoppedBy})`);
    return { statesPerSecond: out.statesPerSecond, states: out.states, transitions: out.transitions, depthCompleted: out.depthCompleted };
  });
}

/** check throughput (runs/s) with 1 and 2 worker threads on the same campaign. */
async function workersBench(log: (l: string) => void): Promise<Json> {
  const out: { [k: string]: Json } = {};
  for (const some of DOMAINS) {
    // Long enough (several seconds) that starting the worker threads (each loads every domain) is amortized.
    const runs = some.use((d) => d.budget.runs) * 20;
    const t1 = Date.now();
    const one = some.use((d) => checkDomain(d, { runs, maxOps: some.use((x) => x.budget.maxOps), seed: 3 }));
    const ms1 = Date.now() - t1;
    const t2 = Date.now();
    const two = await checkInWorkers(some.id, { runs, maxOps: some.use((x) => x.budget.maxOps), seed: 3 }, 2);
    const ms2 = Date.now() - t2;
    const same = one.runsExecuted === two.runsExecuted && one.tallies.steps === two.tallies.steps;
    log(`${some.id}: ${runs} runs: 1 worker ${ms1} ms, 2 workers ${ms2} ms: speedup ${(ms1 / ms2).toFixed(2)}x${same ? '' : ' (TOTALS DIFFER)'}`);
    out[some.id] = { runs, oneWorkerMs: ms1, twoWorkersMs: ms2, speedup: Math.round((ms1 / ms2) * 100) / 100, sameTotals: same };
  }
  return out;
}

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const log = (line: string) => process.stdout.write(line + '\n');
  const results: { [k: string]: Json } = {
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? 'unknown', node: process.version },
    date: new Date().toISOString(),
    domains: {},
  };
  const domains = results['domains'] as { [k: string]: Json };
  for (const some of DOMAINS) {
    if (only.length > 0 && !only.includes(some.id)) continue;
    log(`\n== ${some.id} ==`);
    const lockstep = some.use((d) => lockstepThroughput(d, { traces: 200, maxOps: d.budget.maxOps, seed: 1 }));
    log(`lockstep at the check budget: best ${fmt(lockstep.opsPerSecond)} ops/s (${lockstep.microsecondsPerOp.toFixed(1)} us/op over ${lockstep.ops} ops), median ${fmt(lockstep.medianOpsPerSecond)} ops/s`);
    const entry: { [k: string]: Json } = { lockstep: { ...lockstep } };
    const mod = loadBench(some.id);
    if (mod) entry['bench'] = mod.default(log);
    entry['explore'] = await exploreBench(some.id, log);
    domains[some.id] = entry;
  }
  if (only.length === 0 || only.includes('workers')) {
    log('\n== check with 1 and 2 worker threads ==');
    results['workers'] = await workersBench(log);
  }
  const out = path.join(__dirname, '..', '..', 'bench', 'results.json');
  fs.writeFileSync(out, JSON.stringify(results, null, 2) + '\n');
  log(`\nfigures written to ${path.relative(process.cwd(), out)}`);
}

void main();
