/**
 * Bounded exhaustive exploration (TLC-style breadth-first search).
 *
 * From the initial state of a small configuration, every op of the domain's
 * finite alphabet is tried at every reachable state, level by level. States
 * are deduplicated by a fingerprint of the model state and, by default, of
 * the implementation's too: the system under test is the pair, and two pairs
 * that agree on the model but not on the implementation (a stale TLB entry, a
 * table page not freed) are different states — pruning one of them would hide
 * exactly the bugs that live only in the implementation. `dedupe: 'model'`
 * prunes by the model alone (faster). At every new state the op's model and
 * impl results must agree, every invariant must hold on both full Views
 * (computed from scratch, unscoped), and the Views must agree. Because the
 * search is breadth-first, the first violation found has a shortest trace.
 *
 * States. A state is stored as (parent, op index): 8 bytes. Its fingerprint
 * is a 64-bit hash in an open-addressing table (`FpSet`, 8 bytes per slot at
 * most half full), or with `exact` the full canonical fingerprint text.
 *
 * Expansion. Systems are copied, not replayed: a state is rebuilt once per
 * level from a cache of snapshots along the path of the previous frontier
 * state (frontier states are in BFS order, so consecutive ones share all but
 * their last few ops), then each op is tried by restoring that snapshot into
 * one working pair of systems and applying the op. The snapshot is the
 * system's own `snapshot()`/`restore()` where it offers them, else the
 * generic deep copy of `harness/clone.ts`.
 *
 * Verdict. A search that explored every state up to its depth bound (or ran
 * out of new states) is `complete`; one that stopped at `maxStates`, a time
 * limit or an interrupt is `incomplete` — "no violation" then means only "none
 * in the part explored".
 */
import type { Domain, OpShape, ResultShape, System } from './domain';
import { deepEqual, firstDifference } from './codec';
import { copyStateInto } from './clone';
import { collisionProbability, FpSet, Hasher, hashValue } from './fpset';
import type { StepFailure } from './lockstep';

export interface ExploreOptions {
  /** For `--workers`: the module exporting `DOMAINS`, which worker processes load (harness/registry.ts). */
  readonly registry?: string;
  readonly depth: number;
  readonly maxStates: number;
  readonly mutant?: string;
  /** What identifies a state: the (model, impl) pair (default) or the model alone. */
  readonly dedupe?: 'pair' | 'model';
  /** Keep full canonical fingerprints instead of 64-bit hashes (no collision possible). */
  readonly exact?: boolean;
  /** Stop (incomplete) after this many milliseconds. */
  readonly timeLimitMs?: number;
  /** Checked between transitions: answer true to stop (Ctrl-C). */
  readonly shouldStop?: () => boolean;
  readonly onProgress?: (p: ExploreProgress) => void;
}

export interface ExploreProgress {
  readonly depth: number;
  readonly states: number;
  readonly transitions: number;
  readonly frontier: number;
}

export type ExploreVerdict = 'violation' | 'complete' | 'incomplete';

export interface ExploreOutcome<O> {
  readonly states: number;
  readonly transitions: number;
  /** Deepest level whose every state was fully expanded. */
  readonly depthCompleted: number;
  readonly elapsedMs: number;
  readonly statesPerSecond: number;
  readonly peakHeapBytes: number;
  /** Why the search ended. */
  readonly stoppedBy: 'depth' | 'exhausted' | 'max-states' | 'time-limit' | 'interrupted' | 'violation';
  /** complete: every state within the bound explored; incomplete: stopped early (max-states, time, interrupt). */
  readonly verdict: ExploreVerdict;
  /** 'hash64' (default) or 'exact'. */
  readonly fingerprints: 'hash64' | 'exact';
  /** Estimated probability that two distinct states shared a 64-bit hash (0 with exact fingerprints). */
  readonly collisionProbability: number;
  /** Bytes per distinct state held by the search: fingerprint table + (parent, op) + frontier (exact: estimated). */
  readonly bytesPerState: number;
  readonly violation: { readonly ops: O[]; readonly failure: StepFailure } | null;
}

/**
 * The three-valued verdict of a search: a violation; complete (the depth
 * bound was done, or no new state was left); or incomplete (stopped early by
 * --max-states, a time limit or an interrupt), which says nothing beyond the
 * part explored.
 */
export function exploreVerdict(stoppedBy: ExploreOutcome<unknown>['stoppedBy'], violation: boolean): ExploreOutcome<unknown>['verdict'] {
  return violation ? 'violation' : stoppedBy === 'depth' || stoppedBy === 'exhausted' ? 'complete' : 'incomplete';
}

/** JSON with object keys sorted: a canonical text for any JSON-like value. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return '[' + v.map(canonicalJson).join(',') + ']';
  const o = v as Record<string, unknown>;
  return (
    '{' +
    Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => JSON.stringify(k) + ':' + canonicalJson(o[k]))
      .join(',') +
    '}'
  );
}

/** A copy of a system's state, restorable into any system built from the same config. */
export function snapshotOf<O extends OpShape, R extends ResultShape, V, S>(sys: System<O, R, V, S>): object {
  if (sys.snapshot) return sys.snapshot();
  return copyStateInto<object>({}, sys);
}

/** Make `sys` the state `snap` was taken from. */
export function restoreInto<O extends OpShape, R extends ResultShape, V, S>(sys: System<O, R, V, S>, snap: object): void {
  if (sys.restore) sys.restore(snap);
  else copyStateInto<object>(sys, snap);
}

/**
 * The working (model, impl) pair of a search: restore a snapshot, apply one
 * op to both (results compared), fingerprint, check a new state. Shared by
 * the single-process search and the workers of `exploreInWorkers`.
 */
export class PairRunner<C, O extends OpShape, R extends ResultShape, V, S> {
  readonly hasher = new Hasher();
  private liveM: V | null = null;
  private liveI: V | null = null;
  private readonly resultsAgree: (a: R, b: R) => boolean;
  private readonly viewsAgree: (a: V, b: V) => string | null;

  constructor(
    private readonly d: Domain<C, O, R, V, S>,
    private readonly config: C,
    readonly m: System<O, R, V, S>,
    readonly impl: System<O, R, V, S>,
    private readonly pair: boolean,
  ) {
    this.resultsAgree = d.resultsAgree ?? ((a: R, b: R) => deepEqual(a, b));
    this.viewsAgree = d.viewsAgree ?? ((a: V, b: V) => (deepEqual(a, b) ? null : `views differ at ${firstDifference(a, b, 'view')}`));
  }

  snapshot(): [object, object] {
    return [snapshotOf(this.m), snapshotOf(this.impl)];
  }
  restore(snap: readonly [object, object]): void {
    restoreInto(this.m, snap[0]);
    restoreInto(this.impl, snap[1]);
  }

  /** Apply `op` to both sides; a failure (crash, results differ) or null. */
  step(op: O, step: number): StepFailure | null {
    let rm: R;
    let ri: R;
    try {
      rm = this.m.apply(op);
    } catch (e) {
      return { kind: 'crash', step, side: 'model', message: `model threw ${String(e)}` };
    }
    try {
      ri = this.impl.apply(op);
    } catch (e) {
      return { kind: 'crash', step, side: 'impl', message: `impl threw ${String(e)}` };
    }
    if (!this.resultsAgree(rm, ri)) return { kind: 'result-mismatch', step, message: `results differ: model ${JSON.stringify(rm)} vs impl ${JSON.stringify(ri)}` };
    return null;
  }

  private hashSide(x: System<O, R, V, S>): V | null {
    const h = this.hasher;
    if (x.fingerprintHash) x.fingerprintHash(h);
    else if (x.fingerprint) h.str(x.fingerprint());
    else if (x.liveView) {
      const live = x.liveView().view;
      hashValue(h, live);
      return live;
    } else hashValue(h, x.view());
    return null;
  }

  /** Hash the current state into `hasher` (read it with hi()/lo()). */
  hash(): void {
    this.hasher.reset();
    this.liveM = this.hashSide(this.m);
    this.liveI = null;
    if (this.pair) {
      this.hasher.word(0x1f2e3d4c);
      this.liveI = this.hashSide(this.impl);
    }
  }

  /** The full fingerprint text (--exact). */
  text(): string {
    const fp = (x: System<O, R, V, S>): string => (x.fingerprint ? x.fingerprint() : canonicalJson(x.view()));
    this.liveM = this.liveI = null;
    return this.pair ? fp(this.m) + '\u0000' + fp(this.impl) : fp(this.m);
  }

  /** Every invariant on both fresh Views, the live Views hashed, and the Views compared. */
  check(step: number): StepFailure | null {
    const mv = this.m.view();
    const iv = this.impl.view();
    for (const inv of this.d.invariants) {
      const msg = inv.check(mv, this.config);
      if (msg !== null) return { kind: 'invariant', step, side: 'model', invariant: inv.id, message: msg };
    }
    for (const inv of this.d.invariants) {
      const msg = inv.check(iv, this.config);
      if (msg !== null) return { kind: 'invariant', step, side: 'impl', invariant: inv.id, message: msg };
    }
    // A live View that was hashed must be the View: else states could be merged wrongly.
    if (this.liveM !== null && !deepEqual(this.liveM, mv)) {
      return { kind: 'live-view-stale', step, side: 'model', message: `model live View differs from a fresh view() at ${firstDifference(this.liveM, mv, 'view')}` };
    }
    if (this.liveI !== null && !deepEqual(this.liveI, iv)) {
      return { kind: 'live-view-stale', step, side: 'impl', message: `impl live View differs from a fresh view() at ${firstDifference(this.liveI, iv, 'view')}` };
    }
    const diff = this.viewsAgree(mv, iv);
    return diff === null ? null : { kind: 'view-mismatch', step, message: diff };
  }
}

export async function explore<C, O extends OpShape, R extends ResultShape, V, S>(
  d: Domain<C, O, R, V, S>,
  config: C,
  alphabet: readonly O[],
  options: ExploreOptions,
  createImpl: (c: C) => System<O, R, V, S> = (c) => d.createImpl(c),
): Promise<ExploreOutcome<O>> {
  const start = Date.now();
  let lastYield = start;
  const deadline = options.timeLimitMs !== undefined ? start + options.timeLimitMs : Infinity;
  const pair = (options.dedupe ?? 'pair') === 'pair';
  const exact = options.exact === true;

  // Fingerprints: 64-bit hashes in a typed-array table, or full text with --exact.
  const fpSet = new FpSet();
  const exactSet = new Set<string>();
  let exactChars = 0;

  // State table: parent index and op index per state (state 0: the initial state).
  let parent = new Int32Array(1024);
  let via = new Int32Array(1024);
  let states = 0;
  let transitions = 0;
  let peakHeap = process.memoryUsage().heapUsed;
  let peakFrontier = 1;

  const pathTo = (s: number): number[] => {
    const p: number[] = [];
    for (let x = s; x !== 0; x = parent[x]!) p.push(via[x]!);
    return p.reverse();
  };
  const opsOf = (p: readonly number[]): O[] => p.map((i) => alphabet[i]!);

  const finish = (stoppedBy: ExploreOutcome<O>['stoppedBy'], depthCompleted: number, violation: ExploreOutcome<O>['violation']): ExploreOutcome<O> => {
    const elapsedMs = Date.now() - start;
    const tableBytes = exact ? exactChars * 2 + exactSet.size * 48 : fpSet.bytes();
    const bytes = tableBytes + (parent.byteLength + via.byteLength) * (states / Math.max(1, parent.length)) + peakFrontier * 4;
    return {
      states,
      transitions,
      depthCompleted,
      elapsedMs,
      statesPerSecond: elapsedMs > 0 ? Math.round((states / elapsedMs) * 1000) : states,
      peakHeapBytes: peakHeap,
      stoppedBy,
      verdict: exploreVerdict(stoppedBy, violation !== null),
      fingerprints: exact ? 'exact' : 'hash64',
      collisionProbability: exact ? 0 : collisionProbability(states),
      bytesPerState: states > 0 ? Math.round((bytes / states) * 10) / 10 : 0,
      violation,
    };
  };

  // The working pair: every transition restores a snapshot into it and applies one op.
  let w: PairRunner<C, O, R, V, S>;
  try {
    w = new PairRunner(d, config, d.createModel(config), createImpl(config), pair);
  } catch (e) {
    return finish('violation', 0, { ops: [], failure: { kind: 'crash', step: -1, message: `creating the systems threw ${String(e)}` } });
  }
  /** Record the current state's fingerprint; true when it is new. */
  let lastText = '';
  const addState = (): boolean => {
    if (exact) {
      const fp = (lastText = w.text());
      if (exactSet.has(fp)) return false;
      exactSet.add(fp);
      exactChars += fp.length;
      return true;
    }
    w.hash();
    return fpSet.add(w.hasher.hi(), w.hasher.lo());
  };
  addState();
  {
    const f = w.check(-1);
    if (f) return finish('violation', 0, { ops: [], failure: f });
    states = 1;
  }
  // Snapshots along the path of the state being expanded: cacheState[k] is the
  // state at depth k on that path, cache[k] its snapshot.
  const cacheState: number[] = [0];
  const cache: [object, object][] = [w.snapshot()];
  const anc: number[] = [];

  /** Leave the snapshot of `s` (at `depth`) in cache[depth], rebuilding from the longest cached prefix. */
  const load = (s: number, depth: number): void => {
    anc.length = depth + 1;
    for (let x = s, k = depth; k >= 0; k--, x = parent[x]!) anc[k] = x;
    let k = depth;
    while (k > 0 && cacheState[k] !== anc[k]) k--;
    if (k === depth) return;
    w.restore(cache[k]!);
    for (let j = k + 1; j <= depth; j++) {
      // Already checked when this state was first reached.
      const op = alphabet[via[anc[j]!]!]!;
      w.m.apply(op);
      w.impl.apply(op);
      cacheState[j] = anc[j]!;
      cache[j] = w.snapshot();
    }
    // Deeper cache entries belong to another path now.
    for (let j = depth + 1; j < cacheState.length; j++) cacheState[j] = -1;
  };

  let frontier = new Int32Array([0]);
  let frontierN = 1;
  for (let depth = 0; depth < options.depth; depth++) {
    let next = new Int32Array(Math.max(1024, frontierN * 4));
    let nextN = 0;
    for (let fi = 0; fi < frontierN; fi++) {
      const s = frontier[fi]!;
      load(s, depth);
      const snap = cache[depth]!;
      // The state's own fingerprint: an op that leads back to it (an error, an
      // idempotent op) leaves the working pair equivalent to the snapshot —
      // as equivalent as deduplication already takes two states with one
      // fingerprint to be — so the next op needs no restore.
      w.restore(snap);
      let dirty = false;
      let selfHi = 0;
      let selfLo = 0;
      let selfText = '';
      if (exact) selfText = w.text();
      else {
        w.hash();
        selfHi = w.hasher.hi();
        selfLo = w.hasher.lo();
      }
      for (let a = 0; a < alphabet.length; a++) {
        if ((transitions & 255) === 0) {
          const now = Date.now();
          if (now - lastYield > 50) {
            // Let signal handlers (Ctrl-C) and progress output run.
            await new Promise<void>((r) => setImmediate(r));
            lastYield = Date.now();
          }
          if (now > deadline) return finish('time-limit', depth, null);
        }
        if (options.shouldStop?.()) return finish('interrupted', depth, null);
        if (dirty) w.restore(snap);
        dirty = true;
        transitions++;
        let failure = w.step(alphabet[a]!, depth);
        if (!failure && !addState()) {
          dirty = exact ? lastText !== selfText : w.hasher.hi() !== selfHi || w.hasher.lo() !== selfLo;
          continue;
        }
        if (!failure) failure = w.check(depth);
        if (failure) return finish('violation', depth, { ops: opsOf([...pathTo(s), a]), failure });
        if (states === parent.length) {
          const np = new Int32Array(parent.length * 2);
          np.set(parent);
          parent = np;
          const nv = new Int32Array(via.length * 2);
          nv.set(via);
          via = nv;
        }
        parent[states] = s;
        via[states] = a;
        if (nextN === next.length) {
          const nn = new Int32Array(next.length * 2);
          nn.set(next);
          next = nn;
        }
        next[nextN++] = states;
        states++;
        if ((states & 1023) === 0) {
          peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
          options.onProgress?.({ depth: depth + 1, states, transitions, frontier: nextN });
        }
        if (states >= options.maxStates) return finish('max-states', depth, null);
      }
    }
    peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
    peakFrontier = Math.max(peakFrontier, frontierN + nextN);
    if (nextN === 0) return finish('exhausted', depth + 1, null);
    frontier = next;
    frontierN = nextN;
  }
  return finish('depth', options.depth, null);
}
