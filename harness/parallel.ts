/**
 * Parallel campaigns on worker threads. A campaign's runs are independent
 * (run k is drawn from its own seed), so W workers take the run indices
 * k ≡ w (mod W) — composed with `--shard I/N` as k ≡ I + w·N (mod N·W) — and
 * the merged outcome has the same runs, verdict and totals as one thread.
 * With a failure, the reported counterexample is the one of the lowest
 * failing run index, which is the one a single thread would have stopped at.
 */
import * as path from 'path';
import { Worker } from 'worker_threads';
import type { CheckOptions, CheckOutcome } from './check';
import { emptyTallies, mergeTallies } from './lockstep';

export interface WorkerRequest {
  readonly domain: string;
  readonly options: Omit<CheckOptions, 'onProgress'>;
}

export type WorkerMessage =
  | { readonly kind: 'progress'; readonly done: number }
  | { readonly kind: 'done'; readonly outcome: CheckOutcome<unknown, unknown, unknown> }
  | { readonly kind: 'error'; readonly message: string };

/** Merge outcomes of disjoint slices of one campaign. */
export function mergeOutcomes<C, O, R>(parts: readonly CheckOutcome<C, O, R>[], elapsedMs: number): CheckOutcome<C, O, R> {
  const tallies = emptyTallies();
  for (const p of parts) mergeTallies(tallies, p.tallies);
  const failures = parts.map((p) => p.failure).filter((f): f is NonNullable<typeof f> => f !== null);
  failures.sort((a, b) => a.run - b.run);
  return {
    domain: parts[0]!.domain,
    seed: parts[0]!.seed,
    runsPlanned: parts.reduce((n, p) => n + p.runsPlanned, 0),
    runsExecuted: parts.reduce((n, p) => n + p.runsExecuted, 0),
    elapsedMs,
    failure: failures[0] ?? null,
    tallies,
    interrupted: parts.some((p) => p.interrupted),
  };
}

export async function checkInWorkers(
  domain: string,
  options: CheckOptions,
  workers: number,
): Promise<CheckOutcome<unknown, unknown, unknown>> {
  const start = Date.now();
  const base = options.shard ?? { index: 0, count: 1 };
  const done = new Array<number>(workers).fill(0);
  const total = Math.ceil(options.runs / base.count);
  const script = path.join(__dirname, 'worker.js');
  const parts = await Promise.all(
    Array.from({ length: workers }, (_, w) => {
      const { onProgress: _drop, ...rest } = options;
      void _drop;
      const req: WorkerRequest = { domain, options: { ...rest, shard: { index: base.index + w * base.count, count: base.count * workers } } };
      return new Promise<CheckOutcome<unknown, unknown, unknown>>((resolve, reject) => {
        const worker = new Worker(script, { workerData: req });
        worker.on('message', (m: WorkerMessage) => {
          if (m.kind === 'progress') {
            done[w] = m.done;
            options.onProgress?.(done.reduce((a, b) => a + b, 0), total);
          } else if (m.kind === 'done') resolve(m.outcome);
          else reject(new Error(m.message));
        });
        worker.on('error', reject);
        worker.on('exit', (code) => {
          if (code !== 0) reject(new Error(`worker ${w} exited with code ${code}`));
        });
      });
    }),
  );
  return mergeOutcomes(parts, Date.now() - start);
}
