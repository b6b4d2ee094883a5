/**
 * Level-synchronous parallel breadth-first exploration (`explore --workers N`).
 *
 * The coordinator keeps the fingerprint table and the frontier; each level,
 * the frontier's states are partitioned among N worker processes by their
 * fingerprint (state s goes to worker hash(s) mod N). A worker rebuilds each
 * of its states from its own cache of snapshots along the previous state's
 * path (a state is sent as its path of op indices), checks it (every
 * invariant on both fresh Views, the Views compared: the check the one-process
 * search makes when it first meets the state), then tries every op and sends
 * back, per transition, the successor's 64-bit fingerprint — or the failure
 * (crash, results differ). The coordinator adds the fingerprints in the
 * frontier's order, so the states of each level, their order and the counts
 * are exactly those of one process. The last level's states, and the partial
 * level of a search stopped by `maxStates`, are checked in a final pass.
 *
 * Violations: a failing state of depth k is reported before any failing
 * transition out of depth k (a trace of k + 1 ops), and ties go to the first
 * in frontier order: traces are shortest, as in one process.
 *
 * Processes, not threads, for the reason given in harness/parallel.ts.
 */
import { fork, type ChildProcess } from 'child_process';
import * as path from 'path';
import type { Domain, Json, OpShape, ResultShape } from './domain';
import { collisionProbability, FpSet } from './fpset';
import { exploreVerdict, PairRunner, type ExploreOptions, type ExploreOutcome } from './explore';
import type { StepFailure } from './lockstep';

export interface ExploreInit {
  readonly kind: 'init';
  /** The module exporting `DOMAINS` (harness/registry.ts). */
  readonly registry: string;
  readonly domain: string;
  readonly config: Json;
  readonly alphabet: Json[];
  readonly mutant: string | null;
  readonly pair: boolean;
}

export interface ExploreLevel {
  readonly kind: 'level';
  /** Paths of `depth` op indices each, concatenated. */
  readonly paths: Int32Array;
  readonly n: number;
  readonly depth: number;
  /** Check each state (false only for the initial state, checked by the coordinator). */
  readonly check: boolean;
  /** Try every op at each state (false: a check-only pass). */
  readonly expand: boolean;
}

export interface ExploreLevelReply {
  readonly kind: 'level';
  readonly n: number;
  readonly hi: Uint32Array;
  readonly lo: Uint32Array;
  /** Index (in the level request) of the state each transition leaves, and its op index. */
  readonly from: Int32Array;
  readonly op: Int32Array;
  readonly transitions: number;
  /** The first failure met: at a state (op -1) or on a transition. */
  readonly failure: { readonly index: number; readonly op: number; readonly failure: StepFailure } | null;
}

export type ExploreWorkerReply = ExploreLevelReply | { readonly kind: 'error'; readonly message: string };

class WorkerHandle {
  private readonly child: ChildProcess;
  private pending: ((r: ExploreWorkerReply) => void) | null = null;
  private dead: string | null = null;

  constructor(init: ExploreInit) {
    this.child = fork(path.join(__dirname, 'explore-worker.js'), [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (m: ExploreWorkerReply) => {
      const p = this.pending;
      this.pending = null;
      p?.(m);
    });
    this.child.on('exit', (code, signal) => {
      this.dead = `explore worker exited with ${signal ?? `code ${code}`}`;
      const p = this.pending;
      this.pending = null;
      p?.({ kind: 'error', message: this.dead });
    });
    this.child.send(init);
  }

  run(level: ExploreLevel): Promise<ExploreLevelReply> {
    return new Promise((resolve, reject) => {
      if (this.dead) return reject(new Error(this.dead));
      this.pending = (r) => (r.kind === 'error' ? reject(new Error(r.message)) : resolve(r));
      this.child.send(level);
    });
  }

  close(): void {
    if (this.child.connected) this.child.disconnect();
  }
}

export async function exploreInWorkers<C, O extends OpShape, R extends ResultShape, V, S>(
  d: Domain<C, O, R, V, S>,
  config: C,
  alphabet: readonly O[],
  options: ExploreOptions,
  workers: number,
  createImpl: (c: C) => ReturnType<Domain<C, O, R, V, S>['createImpl']> = (c) => d.createImpl(c),
): Promise<ExploreOutcome<O>> {
  if (options.exact) throw new Error('exact fingerprints need one worker (the table of texts is not partitioned)');
  if (options.registry === undefined) throw new Error('exploring in workers needs options.registry: the module that exports DOMAINS');
  const start = Date.now();
  const deadline = options.timeLimitMs !== undefined ? start + options.timeLimitMs : Infinity;
  const pair = (options.dedupe ?? 'pair') === 'pair';
  const fpSet = new FpSet();
  let states = 0;
  let transitions = 0;
  let peakFrontier = 1;
  let peakHeap = process.memoryUsage().heapUsed;

  const finish = (stoppedBy: ExploreOutcome<O>['stoppedBy'], depthCompleted: number, violation: ExploreOutcome<O>['violation']): ExploreOutcome<O> => {
    const elapsedMs = Date.now() - start;
    // Table, plus the frontier's paths (depth words each) and fingerprints.
    const bytes = fpSet.bytes() + peakFrontier * 4 * (depthCompleted + 3);
    return {
      states,
      transitions,
      depthCompleted,
      elapsedMs,
      statesPerSecond: elapsedMs > 0 ? Math.round((states / elapsedMs) * 1000) : states,
      peakHeapBytes: peakHeap,
      stoppedBy,
      verdict: exploreVerdict(stoppedBy, violation !== null),
      fingerprints: 'hash64',
      collisionProbability: collisionProbability(states),
      bytesPerState: states > 0 ? Math.round((bytes / states) * 10) / 10 : 0,
      violation,
    };
  };

  // The initial state, hashed and checked here.
  const w0 = new PairRunner(d, config, d.createModel(config), createImpl(config), pair);
  w0.hash();
  fpSet.add(w0.hasher.hi(), w0.hasher.lo());
  states = 1;
  const f0 = w0.check(-1);
  if (f0) return finish('violation', 0, { ops: [], failure: f0 });

  const init: ExploreInit = {
    kind: 'init',
    registry: options.registry ?? '',
    domain: d.id,
    config: d.encodeConfig(config),
    alphabet: alphabet as unknown as Json[],
    mutant: options.mutant ?? null,
    pair,
  };
  const pool = Array.from({ length: workers }, () => new WorkerHandle(init));
  const opsOf = (p: ArrayLike<number>): O[] => Array.from(p, (i) => alphabet[i]!);

  /** Send the frontier (paths of `depth` ops, and each state's owner) out; replies in worker order, with each state's local index. */
  const runLevel = async (paths: Int32Array, n: number, owner: Int32Array, depth: number, check: boolean, expand: boolean) => {
    const local = new Int32Array(n);
    const counts = new Int32Array(workers);
    for (let i = 0; i < n; i++) local[i] = counts[owner[i]!]!++;
    const parts = Array.from({ length: workers }, (_, w) => new Int32Array(counts[w]! * depth));
    const fill = new Int32Array(workers);
    for (let i = 0; i < n; i++) {
      const w = owner[i]!;
      parts[w]!.set(paths.subarray(i * depth, (i + 1) * depth), fill[w]! * depth);
      fill[w]!++;
    }
    const replies = await Promise.all(pool.map((h, w) => h.run({ kind: 'level', paths: parts[w]!, n: counts[w]!, depth, check, expand })));
    return { replies, local };
  };

  /** The first failure in frontier order, preferring failures at states (shorter traces). */
  const firstFailure = (paths: Int32Array, n: number, owner: Int32Array, local: Int32Array, replies: readonly ExploreLevelReply[], depth: number): ExploreOutcome<O>['violation'] => {
    let best: { i: number; op: number; failure: StepFailure } | null = null;
    for (let i = 0; i < n; i++) {
      const f = replies[owner[i]!]!.failure;
      if (!f || f.index !== local[i]) continue;
      if (!best || (f.op < 0 && best.op >= 0)) best = { i, op: f.op, failure: f.failure };
    }
    if (!best) return null;
    const p = Array.from(paths.subarray(best.i * depth, (best.i + 1) * depth));
    return { ops: opsOf(best.op < 0 ? p : [...p, best.op]), failure: best.failure };
  };

  try {
    let paths = new Int32Array(0);
    let owner = new Int32Array([0]);
    let n = 1;
    for (let depth = 0; ; depth++) {
      if (options.shouldStop?.()) return finish('interrupted', depth, null);
      if (Date.now() > deadline) return finish('time-limit', depth, null);
      const expand = depth < options.depth;
      const { replies, local } = await runLevel(paths, n, owner, depth, depth > 0, expand);
      const v = firstFailure(paths, n, owner, local, replies, depth);
      if (v) return finish('violation', Math.max(0, depth - 1), v);
      if (!expand) return finish('depth', options.depth, null);
      // Successors in frontier order: state i's transitions are a run in its owner's reply.
      const cursor = new Int32Array(workers);
      let next = new Int32Array(Math.max(16, n * 4) * (depth + 1));
      let nextOwner = new Int32Array(Math.max(16, n * 4));
      let nextN = 0;
      let capped = false;
      for (let i = 0; i < n && !capped; i++) {
        const w = owner[i]!;
        const r = replies[w]!;
        for (let c = cursor[w]!; c < r.n && r.from[c] === local[i]; c++, cursor[w]!++) {
          const hi = r.hi[c]!;
          if (!fpSet.add(hi, r.lo[c]!)) continue;
          if (nextN === nextOwner.length) {
            const no = new Int32Array(nextOwner.length * 2);
            no.set(nextOwner);
            nextOwner = no;
            const np = new Int32Array(next.length * 2);
            np.set(next);
            next = np;
          }
          next.set(paths.subarray(i * depth, (i + 1) * depth), nextN * (depth + 1));
          next[nextN * (depth + 1) + depth] = r.op[c]!;
          nextOwner[nextN] = hi % workers;
          nextN++;
          states++;
          if (states >= options.maxStates) {
            capped = true;
            break;
          }
        }
      }
      for (const r of replies) transitions += r.transitions;
      peakFrontier = Math.max(peakFrontier, n + nextN);
      peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
      options.onProgress?.({ depth: depth + 1, states, transitions, frontier: nextN });
      if (capped) {
        // The states met so far are checked, as one process checks each when it meets it.
        const last = await runLevel(next, nextN, nextOwner, depth + 1, true, false);
        const lv = firstFailure(next, nextN, nextOwner, last.local, last.replies, depth + 1);
        return finish(lv ? 'violation' : 'max-states', depth, lv);
      }
      if (nextN === 0) return finish('exhausted', depth + 1, null);
      paths = next;
      owner = nextOwner;
      n = nextN;
    }
  } finally {
    for (const h of pool) h.close();
  }
}
