/**
 * Worker-process entry of the parallel exploration (see explore-parallel.ts):
 * receives the domain and config once, then one level of states at a time.
 */
import { domainsFrom } from './registry';
import { implFactory } from './check';
import type { Domain, OpShape, ResultShape } from './domain';
import { PairRunner } from './explore';
import type { ExploreInit, ExploreLevel, ExploreLevelReply, ExploreWorkerReply } from './explore-parallel';

function post(m: ExploreWorkerReply): void {
  process.send!(m);
}

function serve<C, O extends OpShape, R extends ResultShape, V, S>(d: Domain<C, O, R, V, S>, init: ExploreInit): (level: ExploreLevel) => ExploreLevelReply {
  const resolved = d.resolveConfig(init.config);
  if (!resolved.ok) throw new Error(`config does not resolve: ${resolved.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`);
  const config = resolved.value;
  const alphabet = init.alphabet as unknown as O[];
  const w = new PairRunner(d, config, d.createModel(config), implFactory(d, init.mutant ?? undefined)(config), init.pair);
  // Snapshots along the path last loaded: cache[k] is the state after its first k ops.
  const cache: [object, object][] = [w.snapshot()];
  const cachedOps: number[] = [];

  return (level) => {
    const { paths, n, depth } = level;
    const cap = level.expand ? n * alphabet.length : 0;
    const hi = new Uint32Array(cap);
    const lo = new Uint32Array(cap);
    const from = new Int32Array(cap);
    const opOf = new Int32Array(cap);
    let k = 0;
    let transitions = 0;
    let failure: ExploreLevelReply['failure'] = null;
    // After a failing transition (a trace of depth + 1 ops), states are still
    // checked: a failing state (depth ops) is a shorter trace.
    let expand = level.expand;
    for (let i = 0; i < n; i++) {
      const base = i * depth;
      let common = 0;
      while (common < depth && common < cachedOps.length && cachedOps[common] === paths[base + common]) common++;
      w.restore(cache[common]!);
      for (let j = common; j < depth; j++) {
        const op = paths[base + j]!;
        w.m.apply(alphabet[op]!);
        w.impl.apply(alphabet[op]!);
        cachedOps[j] = op;
        cache[j + 1] = w.snapshot();
      }
      cachedOps.length = depth;
      const snap = cache[depth]!;
      if (level.check) {
        w.restore(snap);
        w.hash();
        const f = w.check(depth - 1);
        if (f) {
          failure = { index: i, op: -1, failure: f };
          break;
        }
      }
      if (!expand) continue;
      // As in one process: no restore after an op that led back to this state's fingerprint.
      w.restore(snap);
      w.hash();
      const selfHi = w.hasher.hi();
      const selfLo = w.hasher.lo();
      let dirty = false;
      for (let a = 0; a < alphabet.length; a++) {
        if (dirty) w.restore(snap);
        dirty = true;
        transitions++;
        const f = w.step(alphabet[a]!, depth);
        if (f) {
          failure = { index: i, op: a, failure: f };
          expand = false;
          if (!level.check) i = n;
          break;
        }
        w.hash();
        hi[k] = w.hasher.hi();
        lo[k] = w.hasher.lo();
        dirty = hi[k] !== selfHi || lo[k] !== selfLo;
        from[k] = i;
        opOf[k] = a;
        k++;
      }
    }
    return { kind: 'level', n: k, hi: hi.slice(0, k), lo: lo.slice(0, k), from: from.slice(0, k), op: opOf.slice(0, k), transitions, failure };
  };
}

let handler: ((level: ExploreLevel) => ExploreLevelReply) | null = null;
process.on('message', (m: ExploreInit | ExploreLevel) => {
  try {
    if (m.kind === 'init') {
      const some = domainsFrom(m.registry).find((x) => x.id === m.domain);
      if (!some) throw new Error(`unknown domain ${m.domain}`);
      handler = some.use((d) => serve(d, m));
    } else {
      if (!handler) throw new Error('level before init');
      post(handler(m));
    }
  } catch (e) {
    post({ kind: 'error', message: e instanceof Error ? e.message : String(e) });
  }
});
process.on('disconnect', () => process.exit(0));
