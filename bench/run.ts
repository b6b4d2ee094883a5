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
import { DOMAINS, REGISTRY_MODULE } from '../domains';
import { fmt, lockstepThroughput, timeMs } from './harness';
import { explore, type ExploreOutcome } from '../harness/explore';
import { exploreInWorkers } from '../harness/explore-parallel';
import { checkDomain } from '../harness/check';
import { spawnSync } from 'child_process';
import validateBench from './validate';

type BenchModule = { default: (log: (line: string) => void) => Json };

function loadBench(id: string): BenchModule | null {
  const file = path.join(__dirname, `${id}.js`);
  if (!fs.existsSync(file)) return null;
  return require(file) as BenchModule;
}

/**
 * Explore on the domain's exploration config: distinct states/s at depth 6
 * (7 for shadow-pt, the issue's figure) with 64-bit fingerprints, bytes per
 * state, the estimated collision probability, and the same search with 2
 * worker processes (the states must be the same; the speedup is best of 3
 * against best of 3, on a machine that may be shared: say so when quoting it).
 * Each run stops at 60 s (then reported incomplete).
 */
async function exploreBench(id: string, log: (l: string) => void): Promise<Json> {
  const some = DOMAINS.find((d) => d.id === id)!;
  return some.use(async (d) => {
    if (!d.exploration) return null;
    const cfg = d.resolveConfig(d.exploration.config);
    if (!cfg.ok) return null;
    const alphabet = d.exploration.alphabet(cfg.value);
    const depth = id === 'shadow-pt' ? 7 : 6;
    const opts = { depth, maxStates: 5_000_000, timeLimitMs: 60_000 };
    const best = async (run: () => Promise<ExploreOutcome<unknown>>): Promise<ExploreOutcome<unknown>> => {
      let b: ExploreOutcome<unknown> | null = null;
      for (let i = 0; i < 3; i++) {
        const o = await run();
        if (!b || o.elapsedMs < b.elapsedMs) b = o;
      }
      return b!;
    };
    const one = await best(() => explore(d, cfg.value, alphabet, opts) as Promise<ExploreOutcome<unknown>>);
    const two = await best(() => exploreInWorkers(d, cfg.value, alphabet, { ...opts, registry: REGISTRY_MODULE }, 2) as Promise<ExploreOutcome<unknown>>);
    // States/s, not time: a search stopped by the time limit is compared on what it did in that time.
    const speedup = one.statesPerSecond > 0 ? Math.round((two.statesPerSecond / one.statesPerSecond) * 100) / 100 : null;
    log(
      `explore depth ${depth}: ${fmt(one.statesPerSecond)} states/s (${one.states} states, ${one.transitions} transitions, ${one.verdict}${one.verdict === 'incomplete' ? ` at ${one.stoppedBy}` : ''}), ` +
        `${one.bytesPerState} bytes/state, collision probability ~${one.collisionProbability.toExponential(1)}; ` +
        `2 workers: ${fmt(two.statesPerSecond)} states/s (${two.states} states${two.states === one.states ? ', same' : ', DIFFERENT'}), speedup ${speedup}x (best of 3 each)`,
    );
    return {
      depth,
      statesPerSecond: one.statesPerSecond,
      states: one.states,
      transitions: one.transitions,
      depthCompleted: one.depthCompleted,
      verdict: one.verdict,
      bytesPerState: one.bytesPerState,
      collisionProbability: one.collisionProbability,
      workers2: { statesPerSecond: two.statesPerSecond, states: two.states, speedup },
    };
  });
}

/**
 * `hvspec check` with 1 and 2 workers on the same campaign, each timed as
 * the whole command a user runs (process start, module loading, JIT warm-up
 * included). The campaign is sized from a short in-process calibration to
 * take about HVSPEC_BENCH_WORKERS_SECONDS (default 30) on one worker: every
 * worker process pays its own start-up and JIT warm-up (its first 1,000 runs
 * take 1-1.5 s longer than later ones here), so short campaigns show that
 * fixed cost more than the scaling. Each command
 * runs HVSPEC_BENCH_WORKERS_REPEATS times (default 3), best time kept.
 */
function workersBench(log: (l: string) => void): Json {
  const seconds = Number(process.env['HVSPEC_BENCH_WORKERS_SECONDS'] ?? 30);
  const repeats = Number(process.env['HVSPEC_BENCH_WORKERS_REPEATS'] ?? 3);
  const cli = path.join(__dirname, '..', '..', 'bin', 'hvspec.js');
  const out: { [k: string]: Json } = {};
  for (const some of DOMAINS) {
    const maxOps = some.use((d) => d.budget.maxOps);
    const probeRuns = some.use((d) => d.budget.runs) * 5;
    // Two probe passes: the second, warm one predicts the steady rate of a long campaign.
    some.use((d) => checkDomain(d, { runs: probeRuns, maxOps, seed: 3 }));
    const t0 = Date.now();
    some.use((d) => checkDomain(d, { runs: probeRuns, maxOps, seed: 3 }));
    const runs = Math.max(probeRuns, Math.round((probeRuns * seconds * 1000) / Math.max(1, Date.now() - t0)));
    const timed = (workers: number): { ms: number; runs: number; steps: number; verdict: string } => {
      const args = [cli, 'check', '--domain', some.id, '--runs', String(runs), '--seed', '3', '--no-corpus', '--json', '--workers', String(workers)];
      const start = Date.now();
      const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      const ms = Date.now() - start;
      if (r.status !== 0) throw new Error(`${some.id}: hvspec check --workers ${workers} exited ${r.status}: ${r.stderr}`);
      const report = JSON.parse(r.stdout) as { domains: { [d: string]: { runsExecuted: number; steps: number; verdict: string } } };
      const d = report.domains[some.id]!;
      return { ms, runs: d.runsExecuted, steps: d.steps, verdict: d.verdict };
    };
    // Interleaved 1, 2, 1, 2, ... and the best of each: on a shared machine
    // one disturbed command otherwise decides the ratio.
    const best = (a: ReturnType<typeof timed>, b: ReturnType<typeof timed>) => (b.ms < a.ms ? b : a);
    let one = timed(1);
    let two = timed(2);
    for (let k = 1; k < repeats; k++) {
      one = best(one, timed(1));
      two = best(two, timed(2));
    }
    const same = one.runs === two.runs && one.steps === two.steps && one.verdict === two.verdict;
    const speedup = one.ms / two.ms;
    log(
      `${some.id}: ${runs} runs (${one.steps} ops): 1 worker ${(one.ms / 1000).toFixed(1)} s, 2 workers ${(two.ms / 1000).toFixed(1)} s: ` +
        `speedup ${speedup.toFixed(2)}x${same ? ', same runs, ops and verdict' : ' (TOTALS DIFFER)'}`,
    );
    out[some.id] = { runs, ops: one.steps, repeats, oneWorkerMs: one.ms, twoWorkersMs: two.ms, speedup: Math.round(speedup * 100) / 100, sameTotals: same };
  }
  return out;
}

/**
 * A fixed allocation-heavy reference workload (small objects, arrays,
 * strings, like the lockstep's), timed at the start and the end of the run:
 * this shared machine's speed varies by up to a third from minute to minute,
 * and this says what state it was in while the figures were taken.
 */
function machineReference(): number {
  return timeMs(() => {
    let keep: unknown[] = [];
    for (let i = 0; i < 3_000_000; i++) {
      const o = { a: i, b: [i, i + 1], c: 'x' + (i & 7) };
      if ((i & 1023) === 0) keep.push(o);
      if (keep.length > 10_000) keep = [];
    }
  }, 5);
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
  const refStart = machineReference();
  log(`machine reference workload: ${refStart.toFixed(1)} ms (best of 5; lower is a faster machine)`);
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
  if (only.length === 0 || only.includes('validate')) {
    log('\n== hvspec validate ==');
    results['validate'] = await validateBench(log);
  }
  if (only.length === 0 || only.includes('workers')) {
    log('\n== hvspec check with 1 and 2 workers (whole commands) ==');
    results['workers'] = workersBench(log);
  }
  const refEnd = machineReference();
  log(`\nmachine reference workload at the end: ${refEnd.toFixed(1)} ms (at the start: ${refStart.toFixed(1)} ms)`);
  results['machineReferenceMs'] = { start: Math.round(refStart * 10) / 10, end: Math.round(refEnd * 10) / 10 };
  const out = path.join(__dirname, '..', '..', 'bench', 'results.json');
  if (only.length > 0 && fs.existsSync(out)) {
    // A partial run updates its parts of the last full run's figures.
    const prev = JSON.parse(fs.readFileSync(out, 'utf8')) as { [k: string]: Json };
    const prevDomains = (prev['domains'] ?? {}) as { [k: string]: Json };
    results['domains'] = { ...prevDomains, ...domains };
    if (!('workers' in results) && 'workers' in prev) results['workers'] = prev['workers']!;
    if (!('validate' in results) && 'validate' in prev) results['validate'] = prev['validate']!;
  }
  fs.writeFileSync(out, JSON.stringify(results, null, 2) + '\n');
  log(`\nfigures written to ${path.relative(process.cwd(), out)}`);
}

void main();
