import { io, verdictWord } from './io';
import * as fs from 'fs';
import * as path from 'path';
import type { Json } from '../harness/domain';
import { runMutant } from '../harness/mutants';
import { explore } from '../harness/explore';
import { implFactory } from '../harness/check';
import { formatCounterexample } from '../harness/format';
import { domainsOption, intOption, parse, Progress, seedOption } from './args';
import { clip, writeFileAtomic } from '../harness/input';

export const MUTANTS_HELP = `usage: hvspec mutants [--domain D] [--mutant ID] [--runs N] [--max-ops K] [--seed S]
                      [--no-explore] [--verbose] [--json]

Runs the lockstep property against every known-bug mutant (the optimized
implementation with one real defect put back). A mutant is killed when a
counterexample is found within the domain's mutant budget. Reports, per
mutant: killed or survived, runs and time to kill, the shrunk trace length,
the shortest trace length found by breadth-first exploration (bfs) where it
reaches one, and what caught it (an invariant id, or a result/state mismatch).

  --domain D    only this domain (repeatable); default all
  --mutant ID   only this mutant
  --runs N      runs per mutant (default: the domain's mutant budget)
  --max-ops K   longest trace (default: the domain's mutant budget)
  --seed S      campaign seed (default 1: mutant kills are reproducible by default)
  --verbose     print each mutant's shrunk counterexample
  --no-explore  skip the breadth-first search for each mutant's shortest trace
  --explore-depth K, --explore-states N
                budget of that search (default depth 10, 50000 states; stops at 60 s; a domain may
                name a small config and alphabet per mutant)
  --json        one JSON report on stdout

exit: 0 pass (every mutant killed), 1 fail (a mutant survived), 2 bad usage`;

export function lastMutantsFile(): string {
  return path.join(process.cwd(), '.hvspec', 'last-mutants.json');
}

export async function mutantsCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      domain: { type: 'string', multiple: true },
      mutant: { type: 'string' },
      runs: { type: 'string' },
      'max-ops': { type: 'string' },
      seed: { type: 'string' },
      verbose: { type: 'boolean' },
      json: { type: 'boolean' },
      'no-explore': { type: 'boolean' },
      'explore-depth': { type: 'string' },
      'explore-states': { type: 'string' },
    },
    false,
  );
  if (values.help) {
    io.out(MUTANTS_HELP + '\n');
    return 0;
  }
  const domains = domainsOption(values.domain);
  const runs = intOption('runs', values.runs, 1, 10_000_000);
  const maxOps = intOption('max-ops', values['max-ops'], 1, 100_000);
  const seed = seedOption(values.seed) ?? 1;
  const json = values.json === true;
  const doExplore = values['no-explore'] !== true;
  const exploreDepth = intOption('explore-depth', values['explore-depth'], 1, 64) ?? 10;
  const exploreStates = intOption('explore-states', values['explore-states'], 1, 10_000_000) ?? 50_000;
  if (values.mutant !== undefined && !domains.some((d) => d.use((x) => x.mutants.some((m) => m.id === values.mutant)))) {
    io.err(`hvspec mutants: no domain selected has a mutant ${clip(values.mutant)}\n`);
    return 2;
  }
  const progress = new Progress(!json && process.stderr.isTTY === true);
  const rows: Json[] = [];
  let survived = 0;
  let total = 0;
  const lines: string[] = [];
  lines.push(`${'domain'.padEnd(13)} ${'mutant'.padEnd(34)} ${'verdict'.padEnd(8)} ${'runs'.padStart(5)} ${'time'.padStart(8)} ${'shrunk'.padStart(6)} ${'bfs'.padStart(5)}  caught by`);
  for (const some of domains) {
    await some.use(async (d) => {
      for (const m of d.mutants) {
        if (values.mutant !== undefined && m.id !== values.mutant) continue;
        total++;
        progress.update(`${d.id}: mutant ${m.id}`);
        const r = runMutant(d, m.id, { seed, ...(runs !== undefined ? { runs } : {}), ...(maxOps !== undefined ? { maxOps } : {}) });
        // The shortest counterexample, if breadth-first exploration reaches one within its budget.
        // The budget is in states (the same reach on a loaded machine); 60 s is only a safety stop.
        let bfs: number | null = null;
        let bfsNote = 'no exploration alphabet';
        if (doExplore && d.exploration) {
          const special = d.exploration.forMutant?.[m.id];
          const cfg = d.resolveConfig(special ? special.config : d.exploration.config);
          if (cfg.ok) {
            const alphabet = special ? special.alphabet(cfg.value) : d.exploration.alphabet(cfg.value);
            const e = await explore(d, cfg.value, alphabet, { depth: exploreDepth, maxStates: exploreStates, timeLimitMs: 60_000 }, implFactory(d, m.id));
            if (e.violation) bfs = e.violation.ops.length;
            bfsNote = e.violation
              ? 'found'
              : `not reached (${e.states} states, depth ${e.depthCompleted} complete, ${e.verdict === 'complete' ? 'search complete' : `incomplete: ${e.stoppedBy}`})`;
          } else bfsNote = `exploration config invalid: ${cfg.errors.map((x) => `${x.path}: ${x.message}`).join('; ')}`;
        } else if (!doExplore) bfsNote = 'not run';
        progress.done();
        if (!r.killed) survived++;
        lines.push(
          `${d.id.padEnd(13)} ${m.id.padEnd(34)} ${(r.killed ? 'killed' : 'SURVIVED').padEnd(8)} ${String(r.runsToKill ?? '-').padStart(5)} ${((r.elapsedMs / 1000).toFixed(2) + 's').padStart(8)} ${String(r.shrunkLength ?? '-').padStart(6)} ${String(bfs ?? '-').padStart(5)}  ${r.caughtBy ?? '-'}${bfs === null && doExplore ? `   (bfs: ${bfsNote})` : ''}`,
        );
        if (values.verbose && r.counterexample) lines.push(formatCounterexample(d, r.counterexample, null).replace(/^/gm, '    '));
        rows.push({
          domain: d.id,
          mutant: m.id,
          title: m.title,
          source: m.source,
          expectedToViolate: [...m.expectedToViolate],
          killed: r.killed,
          runsToKill: r.runsToKill,
          elapsedMs: r.elapsedMs,
          shrunkLength: r.shrunkLength,
          bfsLength: bfs,
          bfs: bfsNote,
          caughtBy: r.caughtBy,
          counterexample: r.counterexample
            ? { seed: r.counterexample.seed, path: r.counterexample.path, config: r.counterexample.configInput, ops: r.counterexample.ops as unknown as Json, failure: r.counterexample.failure as unknown as Json }
            : null,
        });
      }
    });
  }
  const report = { verdict: survived > 0 ? 'fail' : 'pass', seed, mutants: rows, killed: total - survived, survived };
  try {
    fs.mkdirSync(path.dirname(lastMutantsFile()), { recursive: true });
    writeFileAtomic(lastMutantsFile(), JSON.stringify(report, null, 2) + '\n');
  } catch {
    // Recording is a convenience only.
  }
  if (json) io.out(JSON.stringify(report, null, 2) + '\n');
  else {
    io.out(lines.join('\n') + '\n');
    io.out(`${verdictWord(survived > 0 ? 'fail' : 'pass')}: ${total - survived} of ${total} mutants killed${survived > 0 ? `, ${survived} SURVIVED` : ''} (seed ${seed})\n`);
  }
  return survived > 0 ? 1 : 0;
}
