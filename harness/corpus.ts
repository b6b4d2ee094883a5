/**
 * The failure corpus (like Hypothesis's example database): every
 * counterexample `check` finds against the implementation is saved as a case
 * file under `.hvspec/failures/`, and the next `check` replays the corpus
 * before it generates anything new, so a bug once found stays found until it
 * is fixed.
 *
 * A counterexample found against a known-bug mutant (`--impl mutant:ID`) is
 * saved too, tagged with the mutant (`found.mutant`), under
 * `.hvspec/failures/mutants/`: it shows the check → saved → promote path
 * without breaking the impl, and `check` does not replay it against the impl
 * (where it passes). Files are written atomically (temp file + rename), so
 * two `check`s in one folder lose nothing and a reader never sees half a file.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { Domain, OpShape, ResultShape } from './domain';
import type { Counterexample } from './check';
import { caseObject } from './cases';
import { writeFileAtomic } from './input';

export function corpusDir(root = process.cwd()): string {
  return path.join(root, '.hvspec', 'failures');
}

/** Save a counterexample; answers the path written (stable per trace). */
export function saveCounterexample<C, O extends OpShape, R extends ResultShape, V, S>(
  d: Domain<C, O, R, V, S>,
  cx: Counterexample<C, O, R>,
  dir = corpusDir(),
): string {
  const body = caseObject({
    name: `${d.id}: ${cx.failure.invariant ?? cx.failure.kind} found by seed ${cx.seed}${cx.mutant ? ` against mutant ${cx.mutant}` : ''}`,
    domain: d.id,
    source: `hvspec check --seed ${cx.seed} (run ${cx.run})${cx.mutant ? ` --impl mutant:${cx.mutant}` : ''}`,
    config: cx.configInput,
    ops: cx.ops,
    found: {
      seed: cx.seed,
      run: cx.run,
      path: cx.path,
      originalLength: cx.originalLength,
      foundAt: new Date().toISOString(),
      failure: {
        kind: cx.failure.kind,
        step: cx.failure.step,
        message: cx.failure.message,
        ...(cx.failure.invariant ? { invariant: cx.failure.invariant } : {}),
        ...(cx.failure.side ? { side: cx.failure.side } : {}),
      },
      ...(cx.mutant ? { mutant: cx.mutant } : {}),
    },
  });
  const hash = crypto
    .createHash('sha256')
    .update(JSON.stringify([cx.configInput, cx.ops]))
    .digest('hex')
    .slice(0, 12);
  return saveCaseBody(body, cx.mutant === undefined ? `${d.id}-${hash}.json` : `${d.id}-${cx.mutant}-${hash}.json`, cx.mutant, dir);
}

/** Write a case body into the corpus (mutants' under `mutants/`), atomically; answers the path written. */
export function saveCaseBody(body: unknown, name: string, mutant: string | undefined, dir = corpusDir()): string {
  const into = mutant === undefined ? dir : mutantsDir(dir);
  fs.mkdirSync(into, { recursive: true });
  const file = path.join(into, name);
  writeFileAtomic(file, JSON.stringify(body, null, 2) + '\n');
  return path.relative(process.cwd(), file) || file;
}

/** Where counterexamples found against mutants are kept. */
export function mutantsDir(dir = corpusDir()): string {
  return path.join(dir, 'mutants');
}

/** Hash naming a trace's file (stable per config and ops). */
export function traceHash(config: unknown, ops: unknown): string {
  return crypto.createHash('sha256').update(JSON.stringify([config, ops])).digest('hex').slice(0, 12);
}

/** Saved failure files, sorted; only those of the given domains when `domains` is set. */
export function listCorpus(domains?: readonly string[], dir = corpusDir()): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith('.json') && !n.startsWith('.'))
    .filter((n) => !domains || domains.some((d) => n.startsWith(`${d}-`)))
    .sort()
    .map((n) => path.relative(process.cwd(), path.join(dir, n)) || path.join(dir, n));
}
