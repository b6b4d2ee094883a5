import * as fs from 'fs';
import type { Json } from '../harness/domain';
import { decode } from '../harness/codec';
import { explore, type ExploreOptions } from '../harness/explore';
import { exploreInWorkers } from '../harness/explore-parallel';
import { implFactory } from '../harness/check';
import { caseObject } from '../harness/cases';
import { corpusDir } from '../harness/corpus';
import { formatFailure, formatTrace } from '../harness/format';
import { runTrace } from '../harness/lockstep';
import { domainsOption, implOption, intOption, parse, Progress, UsageError } from './args';
import * as path from 'path';
import { EXIT_INCOMPLETE } from './validate';

export const EXPLORE_HELP = `usage: hvspec explore --domain D [--depth K] [--max-states N] [--config small|FILE]
                      [--impl impl|mutant:ID] [--dedupe pair|model] [--exact] [--workers N] [--json]

Breadth-first exploration of every op sequence over the domain's finite
alphabet for a small configuration, deduplicating states by a canonical
fingerprint of the (model, impl) state; lockstep and every invariant are checked at
every new state. A violation is reported with a shortest trace and saved as
a case file. Ctrl-C stops the search and prints what was completed.

  --domain D       the domain (required)
  --depth K        explore op sequences up to K ops long (default 5)
  --max-states N   stop after N distinct states (default 200000; bounds memory)
  --config X       small (default: the domain's exploration config) or a JSON file
                   holding a config object for the domain
  --impl X         impl (default) or mutant:ID
  --dedupe X       pair (default): a state is the (model, impl) pair, so bugs that live
                   only in the impl are not pruned away; model: the model state alone
  --exact          keep full canonical fingerprints (default: 64-bit hashes, with the
                   estimated probability that a hash collision pruned a state reported)
  --workers N      level-synchronous breadth-first search in N worker processes,
                   states partitioned by fingerprint (default 1); the same states
                   and counts as one process
  --json           one JSON report on stdout

A search that stops before its depth bound is done (--max-states, Ctrl-C) is
incomplete: no violation was found in the part explored, nothing more.

exit: 0 complete, no violation; 1 violation; 2 bad usage; 3 incomplete (no
violation found before --max-states or an interrupt)`;

export async function exploreCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      domain: { type: 'string' },
      depth: { type: 'string' },
      'max-states': { type: 'string' },
      config: { type: 'string' },
      impl: { type: 'string' },
      dedupe: { type: 'string' },
      exact: { type: 'boolean' },
      workers: { type: 'string' },
      json: { type: 'boolean' },
    },
    false,
  );
  if (values.help) {
    process.stdout.write(EXPLORE_HELP + '\n');
    return 0;
  }
  if (values.domain === undefined) throw new UsageError('explore needs --domain D');
  const [some] = domainsOption(values.domain);
  const depth = intOption('depth', values.depth, 0, 64) ?? 5;
  const maxStates = intOption('max-states', values['max-states'], 1, 100_000_000) ?? 200_000;
  const mutant = implOption(values.impl);
  const json = values.json === true;
  const dedupe = values.dedupe ?? 'pair';
  const workers = intOption('workers', values.workers, 1, 64) ?? 1;
  if (workers > 1 && values.exact === true) throw new UsageError('--exact needs one worker (--workers 1)');
  if (dedupe !== 'pair' && dedupe !== 'model') throw new UsageError(`--dedupe takes pair or model, got ${JSON.stringify(dedupe)}`);

  return some!.use(async (d) => {
    if (!d.exploration) throw new UsageError(`domain ${d.id} declares no exploration alphabet`);
    let input: unknown = d.exploration.config;
    if (values.config !== undefined && values.config !== 'small') {
      try {
        input = JSON.parse(fs.readFileSync(values.config, 'utf8'));
      } catch (e) {
        throw new UsageError(`--config ${values.config}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
      }
    }
    const decoded = decode(d.configCodec, input, '$.config');
    const resolved = decoded.ok ? d.resolveConfig(decoded.value) : decoded;
    if (!resolved.ok) {
      process.stderr.write(`hvspec explore: invalid config\n${resolved.errors.map((e) => `  ${e.path}: ${e.message}`).join('\n')}\n`);
      return 2;
    }
    if (mutant !== undefined && !d.mutants.some((m) => m.id === mutant)) {
      throw new UsageError(`unknown mutant ${JSON.stringify(mutant)} for ${d.id} (known: ${d.mutants.map((m) => m.id).join(', ')})`);
    }
    const config = resolved.value;
    const alphabet = d.exploration.alphabet(config);
    let interrupted = false;
    const onSigint = () => {
      interrupted = true;
    };
    process.on('SIGINT', onSigint);
    const progress = new Progress(!json && process.stderr.isTTY === true);
    const exploreOptions: ExploreOptions = {
      depth,
      maxStates,
      dedupe,
      exact: values.exact === true,
      ...(mutant !== undefined ? { mutant } : {}),
      shouldStop: () => interrupted,
      onProgress: (p) => progress.update(`${d.id}: depth ${p.depth}, ${p.states} states, ${p.transitions} transitions`),
    };
    const out =
      workers > 1
        ? await exploreInWorkers(d, config, alphabet, exploreOptions, workers, implFactory(d, mutant))
        : await explore(d, config, alphabet, exploreOptions, implFactory(d, mutant));
    process.off('SIGINT', onSigint);
    progress.done();
    let saved: string | null = null;
    if (out.violation) {
      const body = caseObject({
        name: `${d.id}: ${out.violation.failure.invariant ?? out.violation.failure.kind} (shortest trace, explore)`,
        domain: d.id,
        source: `hvspec explore --depth ${depth}${mutant ? ` --impl mutant:${mutant}` : ''}`,
        config: d.encodeConfig(config),
        ops: out.violation.ops,
      });
      if (mutant === undefined) {
        fs.mkdirSync(corpusDir(), { recursive: true });
        saved = path.relative(process.cwd(), path.join(corpusDir(), `${d.id}-explore-${Date.now().toString(36)}.json`));
        fs.writeFileSync(saved, JSON.stringify(body, null, 2) + '\n');
      }
    }
    const report: { [k: string]: Json } = {
      domain: d.id,
      ...(mutant ? { mutant } : {}),
      alphabet: alphabet.length,
      depth,
      maxStates,
      workers,
      states: out.states,
      transitions: out.transitions,
      depthCompleted: out.depthCompleted,
      elapsedMs: out.elapsedMs,
      statesPerSecond: out.statesPerSecond,
      peakHeapMiB: Math.round((out.peakHeapBytes / 1048576) * 10) / 10,
      stoppedBy: out.stoppedBy,
      verdict: out.verdict,
      fingerprints: out.fingerprints,
      collisionProbability: out.collisionProbability,
      bytesPerState: out.bytesPerState,
      violation: out.violation ? { length: out.violation.ops.length, ops: out.violation.ops as unknown as Json, failure: out.violation.failure as unknown as Json, saved } : null,
    };
    if (json) {
      process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    } else {
      const why = { depth: `depth ${depth} done`, exhausted: 'no new states: the state space is exhausted', 'max-states': `--max-states ${maxStates} reached`, 'time-limit': 'time limit reached', interrupted: 'interrupted', violation: 'violation found' }[out.stoppedBy];
      process.stdout.write(
        `${d.id}${mutant ? ` (mutant ${mutant})` : ''}: ${out.states} distinct states, ${out.transitions} transitions, depth completed ${out.depthCompleted}/${depth}, ` +
          `${out.statesPerSecond} states/s, peak heap ${report['peakHeapMiB']} MiB, ${(out.elapsedMs / 1000).toFixed(2)}s (${why}; alphabet of ${alphabet.length} ops)\n`,
      );
      const fp = out.fingerprints === 'exact' ? 'exact fingerprints' : `64-bit fingerprints, collision probability ~${out.collisionProbability.toExponential(1)}`;
      const verdictText = { complete: 'complete: no violation within the bound', incomplete: 'INCOMPLETE: stopped before the bound; no violation in the part explored', violation: 'violation' }[out.verdict];
      process.stdout.write(`verdict: ${verdictText} (${fp}, ${out.bytesPerState} bytes/state)\n`);
      if (out.violation) {
        const replay = runTrace(d, config, out.violation.ops, { fullCheckEvery: 1 }, implFactory(d, mutant));
        process.stdout.write(`shortest counterexample (${out.violation.ops.length} ops):\n`);
        process.stdout.write(formatTrace(d, out.violation.ops, replay.results, out.violation.failure) + '\n');
        process.stdout.write(formatFailure(out.violation.failure) + '\n');
        if (saved) process.stdout.write(`saved: ${saved}\n`);
      }
    }
    return out.verdict === 'violation' ? 1 : out.verdict === 'incomplete' ? EXIT_INCOMPLETE : 0;
  });
}
