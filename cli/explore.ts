import { io, verdictWord } from './io';
import type { Json } from '../harness/domain';
import { decode } from '../harness/codec';
import { explore, type ExploreOptions } from '../harness/explore';
import { exploreInWorkers } from '../harness/explore-parallel';
import { implFactory } from '../harness/check';
import { caseObject } from '../harness/cases';
import { saveCaseBody, traceHash } from '../harness/corpus';
import { clip, clipText, errorLines, loadJsonFile } from '../harness/input';
import { formatFailure, formatTrace } from '../harness/format';
import { runTrace } from '../harness/lockstep';
import { domainsOption, implOption, intOption, parse, Progress, UsageError } from './args';
import { EXIT_INCOMPLETE } from './validate';
import { REGISTRY_MODULE } from '../domains';

export const EXPLORE_HELP = `usage: hvspec explore --domain D [--depth K] [--max-states N] [--config small|FILE]
                      [--impl impl|mutant:ID] [--dedupe pair|model] [--exact] [--workers N] [--json]

Breadth-first exploration of every op sequence over the domain's finite
alphabet for a small configuration, deduplicating states by a canonical
fingerprint of the (model, impl) state; lockstep and every invariant are checked at
every new state. A violation is reported with a shortest trace and saved as
a case file (against a mutant: under .hvspec/failures/mutants/, tagged).
Ctrl-C stops the search, prints what was completed and exits 130: an
interrupted search is not a complete one.

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

A search that stops before its depth bound is done (--max-states, a time
limit) is incomplete: no violation was found in the part explored, nothing more.

exit: 0 complete, no violation; 1 violation; 2 bad usage; 3 incomplete (no
violation found before --max-states or a time limit); 130 interrupted`;

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
    io.out(EXPLORE_HELP + '\n');
    return 0;
  }
  if (values.domain === undefined) throw new UsageError('explore needs --domain D');
  const selected = domainsOption(values.domain);
  if (selected.length !== 1) throw new UsageError(`explore takes one domain, got ${selected.length}`);
  const some = selected[0]!;
  const depth = intOption('depth', values.depth, 0, 64) ?? 5;
  const maxStates = intOption('max-states', values['max-states'], 1, 100_000_000) ?? 200_000;
  const mutant = implOption(values.impl);
  const json = values.json === true;
  const dedupe = values.dedupe ?? 'pair';
  const workers = intOption('workers', values.workers, 1, 64) ?? 1;
  if (workers > 1 && values.exact === true) throw new UsageError('--exact needs one worker (--workers 1)');
  if (dedupe !== 'pair' && dedupe !== 'model') throw new UsageError(`--dedupe takes pair or model, got ${clip(dedupe)}`);

  return some.use(async (d) => {
    if (!d.exploration) throw new UsageError(`domain ${d.id} declares no exploration alphabet`);
    let input: unknown = d.exploration.config;
    if (values.config !== undefined && values.config !== 'small') {
      const r = loadJsonFile(values.config);
      if (!r.ok) throw new UsageError(`--config ${clipText(values.config)}: ${errorLines(r.errors, 1)[0]!.trim()}`);
      input = r.value;
    }
    const decoded = decode(d.configCodec, input, '$.config');
    const resolved = decoded.ok ? d.resolveConfig(decoded.value) : decoded;
    if (!resolved.ok) {
      io.err(`hvspec explore: invalid config\n${errorLines(resolved.errors).join('\n')}\n`);
      return 2;
    }
    if (mutant !== undefined && !d.mutants.some((m) => m.id === mutant)) {
      throw new UsageError(`unknown mutant ${clip(mutant)} for ${d.id} (known: ${d.mutants.map((m) => m.id).join(', ')})`);
    }
    const config = resolved.value;
    const alphabet = d.exploration.alphabet(config);
    let interrupted = false;
    const onSigint = () => {
      if (interrupted) process.exit(130);
      interrupted = true;
    };
    process.on('SIGINT', onSigint);
    const progress = new Progress(!json && process.stderr.isTTY === true);
    const exploreOptions: ExploreOptions = {
      registry: REGISTRY_MODULE,
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
      const hash = traceHash(body['config'], body['steps']);
      saved = saveCaseBody(
        mutant === undefined ? body : { ...body, found: { seed: 0, failure: out.violation.failure as unknown as Json, mutant } },
        mutant === undefined ? `${d.id}-explore-${hash}.json` : `${d.id}-${mutant}-explore-${hash}.json`,
        mutant,
      );
    }
    // One vocabulary across commands: pass (complete, no violation), fail, incomplete (stopped early).
    const verdict = out.violation ? 'fail' : out.verdict === 'incomplete' || out.stoppedBy === 'interrupted' ? 'incomplete' : 'pass';
    const report: { [k: string]: Json } = {
      verdict,
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
      fingerprints: out.fingerprints,
      collisionProbability: out.collisionProbability,
      bytesPerState: out.bytesPerState,
      violation: out.violation ? { length: out.violation.ops.length, ops: out.violation.ops as unknown as Json, failure: out.violation.failure as unknown as Json, saved } : null,
    };
    if (json) {
      io.out(JSON.stringify(report, null, 2) + '\n');
    } else {
      const why = { depth: `depth ${depth} done`, exhausted: 'no new states: the state space is exhausted', 'max-states': `--max-states ${maxStates} reached`, 'time-limit': 'time limit reached', interrupted: 'interrupted', violation: 'violation found' }[out.stoppedBy];
      io.out(
        `${d.id}${mutant ? ` (mutant ${mutant})` : ''}: ${verdictWord(verdict)} — ${out.states} distinct states, ${out.transitions} transitions, depth completed ${out.depthCompleted}/${depth}, ` +
          `${out.statesPerSecond} states/s, peak heap ${report['peakHeapMiB']} MiB, ${(out.elapsedMs / 1000).toFixed(2)}s (${why}; alphabet of ${alphabet.length} ops)\n`,
      );
      const fp = out.fingerprints === 'exact' ? 'exact fingerprints' : `64-bit fingerprints, collision probability ~${out.collisionProbability.toExponential(1)}`;
      const verdictText = { complete: 'complete: no violation within the bound', incomplete: 'INCOMPLETE: stopped before the bound; no violation in the part explored', violation: 'violation' }[out.verdict];
      io.out(`verdict: ${verdictText} (${fp}, ${out.bytesPerState} bytes/state)\n`);
      if (out.violation) {
        const replay = runTrace(d, config, out.violation.ops, { fullCheckEvery: 1 }, implFactory(d, mutant));
        io.out(`shortest counterexample (${out.violation.ops.length} ops):\n`);
        io.out(formatTrace(d, out.violation.ops, replay.results, out.violation.failure) + '\n');
        io.out(formatFailure(out.violation.failure) + '\n');
        if (saved) io.out(`saved: ${saved}\n`);
      }
    }
    return out.verdict === 'violation' ? 1 : out.stoppedBy === 'interrupted' ? 130 : out.verdict === 'incomplete' ? EXIT_INCOMPLETE : 0;
  });
}
