/**
 * The failure corpus (like Hypothesis's example database): every
 * counterexample `check` finds against the implementation is saved as a case
 * file under `.hvspec/failures/`, and the next `check` replays the corpus
 * before it generates anything new, so a bug once found stays found until it
 * is fixed.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { Domain, OpShape, ResultShape } from './domain';
import type { Counterexample } from './check';
import { caseObject } from './cases';

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
    name: `${d.id}: ${cx.failure.invariant ?? cx.failure.kind} found by seed ${cx.seed}`,
    domain: d.id,
    source: `hvspec check --seed ${cx.seed} (run ${cx.run})`,
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
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${d.id}-${hash}.json`);
  fs.writeFileSync(file, JSON.stringify(body, null, 2) + '\n');
  return path.relative(process.cwd(), file) || file;
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
    .filter((n) => n.endsWith('.json'))
    .filter((n) => !domains || domains.some((d) => n.startsWith(`${d}-`)))
    .sort()
    .map((n) => path.relative(process.cwd(), path.join(dir, n)) || path.join(dir, n));
}
