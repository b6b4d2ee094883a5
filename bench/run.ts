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

type BenchModule = { default: (log: (line: string) => void) => Json };

function loadBench(id: string): BenchModule | null {
  const file = path.join(__dirname, `${id}.js`);
  if (!fs.existsSync(file)) return null;
  return require(file) as BenchModule;
}

function main(): void {
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
    log(`lockstep at the check budget: ${fmt(lockstep.opsPerSecond)} ops/s (${lockstep.microsecondsPerOp.toFixed(1)} us/op over ${lockstep.ops} ops)`);
    const entry: { [k: string]: Json } = { lockstep: { ...lockstep } };
    const mod = loadBench(some.id);
    if (mod) entry['bench'] = mod.default(log);
    domains[some.id] = entry;
  }
  const out = path.join(__dirname, '..', '..', 'bench', 'results.json');
  fs.writeFileSync(out, JSON.stringify(results, null, 2) + '\n');
  log(`\nfigures written to ${path.relative(process.cwd(), out)}`);
}

main();
