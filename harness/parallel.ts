/**
 * Parallel campaigns on worker processes. A campaign's runs are independent
 * (run k is drawn from its own seed), so W workers take the run indices
 * k ≡ w (mod W) — composed with `--shard I/N` as k ≡ I + w·N (mod N·W) — and
 * the merged outcome has the same runs, verdict and totals as one process.
 * With a failure, the reported counterexample is the one of the lowest
 * failing run index, which is the one a single process would have stopped at.
 *
 * Why processes and not worker threads: measured on the 2-vCPU machine on
 * sev-cache, two worker threads were 1.60x faster than one process at
 * 100,000 runs, two processes 1.88x; at 30,000 runs the threads spent 1.4 s
 * in the kernel, the processes 0.5 s. Threads of one process share its
 * address space, so every heap page one isolate maps or unmaps is paid for
 * by both (mm lock, TLB shootdowns). Separate processes share nothing but
 * the machine.
 */
import { fork, type ChildProcess } from 'child_process';
import * as os from 'os';
import * as path from 'path';
import type { CheckOptions, CheckOutcome } from './check';
import { emptyTallies, mergeTallies } from './lockstep';
import { emptyReach, mergeReach } from './reach';

export interface WorkerRequest {
  readonly kind?: 'run';
  /** Absolute path of the module that exports the domain list as `DOMAINS` (the harness names no domain). */
  readonly registry: string;
  readonly domain: string;
  readonly options: Omit<CheckOptions, 'onProgress' | 'shouldStop'>;
}

/** Parent to worker: stop starting runs and report what ran (Ctrl-C on the parent). */
export interface WorkerStop {
  readonly kind: 'stop';
}

/**
 * How many worker processes to start for `runs` runs: never more than the
 * runs (an idle worker still pays its start-up and JIT warm-up: 64 workers
 * for 2 runs took 19 s, 2 workers 1.1 s) nor than the cores.
 */
export function effectiveWorkers(requested: number, runs: number, cores = os.availableParallelism()): number {
  return Math.max(1, Math.min(requested, runs, cores));
}

export type WorkerMessage =
  | { readonly kind: 'progress'; readonly done: number }
  | { readonly kind: 'done'; readonly outcome: CheckOutcome<unknown, unknown, unknown> }
  | { readonly kind: 'error'; readonly message: string };

/** Merge outcomes of disjoint slices of one campaign. */
export function mergeOutcomes<C, O, R>(parts: readonly CheckOutcome<C, O, R>[], elapsedMs: number): CheckOutcome<C, O, R> {
  const tallies = emptyTallies();
  for (const p of parts) mergeTallies(tallies, p.tallies);
  const reach = emptyReach();
  for (const p of parts) mergeReach(reach, p.reach);
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
    ...(parts.some((p) => p.interruptedBy === 'signal')
      ? { interruptedBy: 'signal' as const }
      : parts.some((p) => p.interruptedBy === 'time-limit')
        ? { interruptedBy: 'time-limit' as const }
        : {}),
    reach,
  };
}

/**
 * Node flags of a worker: the parent's, plus a larger young generation
 * (unless the parent set one). The lockstep allocates fast; with a worker on
 * every core, each scavenge's pass over the young generation competes with
 * the other workers for the shared caches. Fewer, larger scavenges made
 * pairs of workers faster here: sev-cache with 64 MB about 12% (2 of 2
 * paired runs), prefault with 32 MB 8-15% (2 of 2), where a single process
 * gained nothing. 32 MB keeps a worker's young generation under 100 MB.
 */
function workerExecArgv(): string[] {
  const own = process.execArgv;
  return own.some((a) => a.startsWith('--max-semi-space-size')) ? own : [...own, '--max-semi-space-size=32'];
}

/** Run one slice of a campaign in a child process (harness/worker.js). */
function runSlice(req: WorkerRequest, onProgress: (done: number) => void, children: ChildProcess[]): Promise<CheckOutcome<unknown, unknown, unknown>> {
  return new Promise((resolve, reject) => {
    // 'advanced' serialization: the structured clone algorithm, as for worker
    // threads, so an outcome crosses exactly as it was built.
    const child = fork(path.join(__dirname, 'worker.js'), [], { serialization: 'advanced', execArgv: workerExecArgv(), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.push(child);
    let outcome: CheckOutcome<unknown, unknown, unknown> | null = null;
    let error: string | null = null;
    child.on('message', (m: WorkerMessage) => {
      if (m.kind === 'progress') onProgress(m.done);
      else if (m.kind === 'done') outcome = m.outcome;
      else error = m.message;
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (outcome !== null) resolve(outcome);
      else reject(new Error(error ?? `worker process exited with ${signal ?? `code ${code}`} before reporting`));
    });
    child.send(req);
  });
}

export async function checkInWorkers(
  registry: string,
  domain: string,
  options: CheckOptions,
  workers: number,
): Promise<CheckOutcome<unknown, unknown, unknown>> {
  const start = Date.now();
  const base = options.shard ?? { index: 0, count: 1 };
  const done = new Array<number>(workers).fill(0);
  const total = Math.ceil(options.runs / base.count);
  const { onProgress, shouldStop, ...rest } = options;
  const children: ChildProcess[] = [];
  // Ctrl-C on the parent: tell every worker to stop after its current run and report.
  let stopSent = false;
  const poll = setInterval(() => {
    if (!stopSent && shouldStop?.()) {
      stopSent = true;
      for (const c of children) if (c.connected) c.send({ kind: 'stop' } satisfies WorkerStop);
    }
  }, 50);
  try {
    const parts = await Promise.all(
      Array.from({ length: workers }, (_, w) =>
        runSlice(
          { kind: 'run', registry, domain, options: { ...rest, shard: { index: base.index + w * base.count, count: base.count * workers } } },
          (n) => {
            done[w] = n;
            onProgress?.(done.reduce((a, b) => a + b, 0), total);
          },
          children,
        ),
      ),
    );
    return mergeOutcomes(parts, Date.now() - start);
  } finally {
    clearInterval(poll);
  }
}
