/**
 * Bounded exhaustive exploration (TLC-style breadth-first search).
 *
 * From the initial state of a small configuration, every op of the domain's
 * finite alphabet is tried at every reachable state, level by level. States
 * are deduplicated by a canonical fingerprint of the model state and, by
 * default, of the implementation's View too: the system under test is the
 * pair, and two pairs that agree on the model but not on the implementation
 * (a stale TLB entry, a table page not freed) are different states — pruning
 * one of them would hide exactly the bugs that live only in the
 * implementation. `dedupe: 'model'` prunes by the model alone (faster); at every
 * new state the op's model and impl results must agree, every invariant must
 * hold on both full Views, and the Views must agree. Because the search is
 * breadth-first, the first violation found has a shortest trace.
 *
 * Systems are not cloneable, so a state is stored as (parent, op index) and
 * rebuilt by replaying its path from the initial state: memory per state is
 * a few words, and the cost per transition is the depth of the state.
 */
import type { Domain, OpShape, ResultShape, System } from './domain';
import { deepEqual, firstDifference } from './codec';
import type { StepFailure } from './lockstep';

export interface ExploreOptions {
  readonly depth: number;
  readonly maxStates: number;
  readonly mutant?: string;
  /** What identifies a state: the (model, impl) pair (default) or the model alone. */
  readonly dedupe?: 'pair' | 'model';
  /** Checked between transitions: answer true to stop (Ctrl-C, time limit). */
  readonly shouldStop?: () => boolean;
  readonly onProgress?: (p: ExploreProgress) => void;
}

export interface ExploreProgress {
  readonly depth: number;
  readonly states: number;
  readonly transitions: number;
  readonly frontier: number;
}

export interface ExploreOutcome<O> {
  readonly states: number;
  readonly transitions: number;
  /** Deepest level whose every state was fully expanded. */
  readonly depthCompleted: number;
  readonly elapsedMs: number;
  readonly statesPerSecond: number;
  readonly peakHeapBytes: number;
  /** Why the search ended. */
  readonly stoppedBy: 'depth' | 'exhausted' | 'max-states' | 'interrupted' | 'violation';
  readonly violation: { readonly ops: O[]; readonly failure: StepFailure } | null;
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

export async function explore<C, O extends OpShape, R extends ResultShape, V, S>(
  d: Domain<C, O, R, V, S>,
  config: C,
  alphabet: readonly O[],
  options: ExploreOptions,
  createImpl: (c: C) => System<O, R, V, S> = (c) => d.createImpl(c),
): Promise<ExploreOutcome<O>> {
  const start = Date.now();
  let lastYield = start;
  const resultsAgree = d.resultsAgree ?? ((a: R, b: R) => deepEqual(a, b));
  const viewsAgree = d.viewsAgree ?? ((a: V, b: V) => (deepEqual(a, b) ? null : `views differ at ${firstDifference(a, b, 'view')}`));
  const fpOf = (m: System<O, R, V, S>): string => (m.fingerprint ? m.fingerprint() : canonicalJson(m.view()));
  const pair = (options.dedupe ?? 'pair') === 'pair';
  const fingerprint = (m: System<O, R, V, S>, i: System<O, R, V, S>): string => (pair ? fpOf(m) + '\u0000' + fpOf(i) : fpOf(m));

  // State table: parent index and op index per state (state 0: the initial state).
  let parent = new Int32Array(1024);
  let via = new Int32Array(1024);
  const seen = new Set<string>();
  let states = 0;
  let transitions = 0;
  let peakHeap = process.memoryUsage().heapUsed;

  const pathTo = (s: number): number[] => {
    const p: number[] = [];
    for (let x = s; x !== 0; x = parent[x]!) p.push(via[x]!);
    return p.reverse();
  };
  const opsOf = (p: readonly number[]): O[] => p.map((i) => alphabet[i]!);

  const checkState = (m: System<O, R, V, S>, impl: System<O, R, V, S>, step: number): StepFailure | null => {
    const mv = m.view();
    const iv = impl.view();
    for (const [side, v] of [
      ['model', mv],
      ['impl', iv],
    ] as const) {
      for (const inv of d.invariants) {
        const msg = inv.check(v, config);
        if (msg !== null) return { kind: 'invariant', step, side, invariant: inv.id, message: msg };
      }
    }
    const diff = viewsAgree(mv, iv);
    return diff === null ? null : { kind: 'view-mismatch', step, message: diff };
  };

  const finish = (stoppedBy: ExploreOutcome<O>['stoppedBy'], depthCompleted: number, violation: ExploreOutcome<O>['violation']): ExploreOutcome<O> => {
    const elapsedMs = Date.now() - start;
    return {
      states,
      transitions,
      depthCompleted,
      elapsedMs,
      statesPerSecond: elapsedMs > 0 ? Math.round((states / elapsedMs) * 1000) : states,
      peakHeapBytes: peakHeap,
      stoppedBy,
      violation,
    };
  };

  // The initial state.
  {
    const m = d.createModel(config);
    const i = createImpl(config);
    const f = checkState(m, i, -1);
    if (f) return finish('violation', 0, { ops: [], failure: f });
    seen.add(fingerprint(m, i));
    states = 1;
  }

  let frontier: number[] = [0];
  for (let depth = 0; depth < options.depth; depth++) {
    const next: number[] = [];
    for (const s of frontier) {
      const prefix = pathTo(s);
      for (let a = 0; a < alphabet.length; a++) {
        if ((transitions & 255) === 0 && Date.now() - lastYield > 50) {
          // Let signal handlers (Ctrl-C) and progress output run.
          await new Promise<void>((r) => setImmediate(r));
          lastYield = Date.now();
        }
        if (options.shouldStop?.()) return finish('interrupted', depth, null);
        const m = d.createModel(config);
        const impl = createImpl(config);
        // Replay the prefix: already checked when its state was first reached.
        for (const k of prefix) {
          m.apply(alphabet[k]!);
          impl.apply(alphabet[k]!);
        }
        const op = alphabet[a]!;
        transitions++;
        let failure: StepFailure | null = null;
        let rm: R | undefined;
        let ri: R | undefined;
        try {
          rm = m.apply(op);
        } catch (e) {
          failure = { kind: 'crash', step: prefix.length, side: 'model', message: `model threw ${String(e)}` };
        }
        if (!failure) {
          try {
            ri = impl.apply(op);
          } catch (e) {
            failure = { kind: 'crash', step: prefix.length, side: 'impl', message: `impl threw ${String(e)}` };
          }
        }
        if (!failure && !resultsAgree(rm!, ri!)) {
          failure = { kind: 'result-mismatch', step: prefix.length, message: `results differ: model ${JSON.stringify(rm)} vs impl ${JSON.stringify(ri)}` };
        }
        const fp = failure ? '' : fingerprint(m, impl);
        if (!failure && seen.has(fp)) continue;
        if (!failure) failure = checkState(m, impl, prefix.length);
        if (failure) return finish('violation', depth, { ops: opsOf([...prefix, a]), failure });
        seen.add(fp);
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
        next.push(states);
        states++;
        if ((states & 1023) === 0) {
          peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
          options.onProgress?.({ depth: depth + 1, states, transitions, frontier: next.length });
        }
        if (states >= options.maxStates) return finish('max-states', depth, null);
      }
    }
    peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
    if (next.length === 0) return finish('exhausted', depth + 1, null);
    frontier = next;
  }
  return finish('depth', options.depth, null);
}
