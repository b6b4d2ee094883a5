/**
 * stage2-dirty generators. Small configurations (blocks of 8 or 16 pages so
 * that blocks are reachable with small slots, one to three slots, THP and
 * hugetlb backing most of the time) and traces built from small pieces:
 * single ops, and short scenarios that reach the hazards — a block faulted
 * in before logging starts and then read and written while logged (the
 * dissolution path, with a block TLB entry to go stale), a disable and
 * re-enable cycle (blocks again, then split again), fetch/clear
 * interleavings, unmaps across block boundaries. About one op in ten is bad
 * input (an MMIO address, an unknown slot, a misaligned clear, logging a
 * read-only slot).
 */
import * as fc from 'fast-check';
import type { Backing, Config, Memslot, Op } from '../../spec/stage2-dirty/types';
import { blockEligible } from '../../spec/stage2-dirty/config';

interface SlotSpec {
  npages: number;
  gap: number;
  aligned: boolean;
  backing: Backing;
  readonly: boolean;
}

const backingArb: fc.Arbitrary<Backing> = fc.oneof(
  { weight: 5, arbitrary: fc.constant<Backing>('thp') },
  { weight: 3, arbitrary: fc.constant<Backing>('hugetlb') },
  { weight: 2, arbitrary: fc.constant<Backing>('4k') },
);

function slotSpec(bp: number): fc.Arbitrary<SlotSpec> {
  return fc.record({
    npages: fc.oneof(
      { weight: 6, arbitrary: fc.integer({ min: 1, max: 3 * bp + 3 }) },
      { weight: 1, arbitrary: fc.integer({ min: 64, max: 136 }) },
    ),
    gap: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 2 * bp })),
    aligned: fc.boolean(),
    backing: backingArb,
    readonly: fc.oneof({ weight: 7, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  });
}

/** Small configurations for random search. */
export function config(): fc.Arbitrary<Config> {
  return fc
    .record({
      bp: fc.constantFrom(8, 16),
      start: fc.nat(40),
      manualProtect: fc.boolean(),
      initiallySet: fc.boolean(),
      reverseIds: fc.boolean(),
    })
    .chain((r) =>
      fc.array(slotSpec(r.bp), { minLength: 1, maxLength: 3 }).map((specs): Config => {
        const memslots: Memslot[] = [];
        let cursor = r.start;
        specs.forEach((s, i) => {
          if (s.aligned) cursor = Math.ceil(cursor / r.bp) * r.bp;
          memslots.push({
            id: r.reverseIds ? specs.length - 1 - i : i,
            baseGfn: cursor,
            npages: s.npages,
            backing: s.backing,
            readonly: s.readonly,
          });
          cursor += s.npages + s.gap;
        });
        return {
          memslots,
          blockPages: r.bp,
          manualProtect: r.manualProtect,
          initiallySet: r.manualProtect && r.initiallySet,
        };
      }),
    );
}

/** Pages worth aiming at in one slot: the first block-eligible block if any, else the slot's start. */
function hotStart(m: Memslot, bp: number): number {
  for (let g = m.baseGfn; g < m.baseGfn + m.npages; g++) if (blockEligible(m, g, bp)) return g;
  return m.baseGfn;
}

/** A trace of at most `maxOps` ops for `config`. */
export function ops(config: Config, maxOps: number): fc.Arbitrary<Op[]> {
  const bp = config.blockPages;
  const slots = config.memslots;
  const end = slots.reduce((e, m) => Math.max(e, m.baseGfn + m.npages), 0);
  const writableSlots = slots.filter((m) => !m.readonly);
  const ids = slots.map((m) => m.id);
  const loggable = writableSlots.map((m) => m.id);

  const value = fc.oneof({ weight: 9, arbitrary: fc.integer({ min: 1, max: 999 }) }, { weight: 1, arbitrary: fc.constant(undefined) });
  /** A page in slot `m`: most often near its first eligible block. */
  const pageIn = (m: Memslot): fc.Arbitrary<number> => {
    const hot = hotStart(m, bp);
    const hotEnd = Math.min(m.baseGfn + m.npages, hot + 2 * bp);
    return fc.oneof(
      { weight: 3, arbitrary: fc.integer({ min: hot, max: hotEnd - 1 }) },
      { weight: 1, arbitrary: fc.integer({ min: m.baseGfn, max: m.baseGfn + m.npages - 1 }) },
    );
  };
  const slotArb = fc.constantFrom(...slots);
  const goodGfn = slotArb.chain(pageIn);
  const mmioGfn = fc.oneof(fc.integer({ min: end, max: end + 2 * bp }), fc.integer({ min: 0, max: end + 4 }));
  const gfn = fc.oneof({ weight: 12, arbitrary: goodGfn }, { weight: 1, arbitrary: mmioGfn });
  const badSlot = fc.integer({ min: 0, max: 8 }).filter((i) => !ids.includes(i));
  const slotId = fc.oneof({ weight: 12, arbitrary: fc.constantFrom(...(loggable.length > 0 ? loggable : ids)) }, { weight: 1, arbitrary: fc.constantFrom(...ids) }, { weight: 1, arbitrary: badSlot });

  const write = (g: fc.Arbitrary<number>): fc.Arbitrary<Op> =>
    fc.record({ g, v: value }).map(({ g, v }): Op => ({ op: 'guestWrite', args: v === undefined ? { gfn: g } : { gfn: g, value: v } }));
  const read = (g: fc.Arbitrary<number>): fc.Arbitrary<Op> => g.map((x): Op => ({ op: 'guestRead', args: { gfn: x } }));
  const slotOp = (op: 'enableDirtyLog' | 'disableDirtyLog' | 'getDirtyLog', s: fc.Arbitrary<number> = slotId): fc.Arbitrary<Op> =>
    s.map((slot): Op => ({ op, args: { slot } }));

  const clear: fc.Arbitrary<Op> = fc.constantFrom(...slots).chain((m) => {
    const firsts = [0];
    for (let f = 64; f <= m.npages; f += 64) firsts.push(f);
    return fc
      .record({
        first: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...firsts) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: m.npages + 70 }) }),
        kind: fc.integer({ min: 0, max: 9 }),
        small: fc.integer({ min: 1, max: 70 }),
      })
      .map(({ first, kind, small }): Op => {
        const toEnd = Math.max(0, m.npages - first);
        const num = kind < 5 ? toEnd : kind < 7 ? Math.min(64, toEnd) : kind < 8 ? 0 : small;
        return { op: 'clearDirtyLog', args: { slot: m.id, first, num } };
      });
  });

  const unmap: fc.Arbitrary<Op> = fc
    .record({ g: goodGfn, back: fc.integer({ min: 0, max: 3 }), n: fc.integer({ min: 1, max: bp + 3 }) })
    .map(({ g, back, n }): Op => ({ op: 'unmapRange', args: { gfn: Math.max(0, g - back), npages: n } }));
  const evict = goodGfn.map((g): Op => ({ op: 'tlbEvict', args: { gfn: g } }));
  const query = gfn.map((g): Op => ({ op: 'mappingOf', args: { gfn: g } }));

  const single: fc.Arbitrary<Op[]> = fc
    .oneof(
      { weight: 22, arbitrary: write(gfn) },
      { weight: 14, arbitrary: read(gfn) },
      { weight: 6, arbitrary: slotOp('enableDirtyLog') },
      { weight: 3, arbitrary: slotOp('disableDirtyLog') },
      { weight: 8, arbitrary: slotOp('getDirtyLog') },
      { weight: 5, arbitrary: clear },
      { weight: 5, arbitrary: unmap },
      { weight: 5, arbitrary: evict },
      { weight: 5, arbitrary: query },
    )
    .map((o) => [o]);

  /**
   * A block faulted in before logging, then logging, a read through the
   * (read-only) block that leaves a block TLB entry, writes in the same
   * block (dissolution), and a fetch.
   */
  const blockThenLog: fc.Arbitrary<Op[]> =
    writableSlots.length === 0
      ? single
      : fc.constantFrom(...writableSlots).chain((m) => {
          const hot = hotStart(m, bp);
          const inBlock = fc.integer({ min: hot, max: Math.min(hot + bp, m.baseGfn + m.npages) - 1 });
          return fc
            .tuple(
              fc.oneof(write(inBlock), read(inBlock)),
              read(inBlock),
              write(inBlock),
              write(inBlock),
              fc.boolean(),
              fc.boolean(),
            )
            .map(([pre, r, w1, w2, fetch, evictFirst]) => {
              const out: Op[] = [pre, { op: 'enableDirtyLog', args: { slot: m.id } }, r];
              if (evictFirst) out.push({ op: 'tlbEvict', args: { gfn: hot } });
              out.push(w1, w2);
              if (fetch) out.push({ op: 'getDirtyLog', args: { slot: m.id } });
              return out;
            });
        });

  /** Logging cancelled and restarted: blocks come back, then split again. */
  const cycle: fc.Arbitrary<Op[]> =
    writableSlots.length === 0
      ? single
      : fc.constantFrom(...writableSlots).chain((m) => {
          const g = pageIn(m);
          return fc.tuple(g, g, value, fc.boolean()).map(([a, b, v, reenable]) => {
            const out: Op[] = [
              { op: 'disableDirtyLog', args: { slot: m.id } },
              { op: 'guestWrite', args: v === undefined ? { gfn: a } : { gfn: a, value: v } },
              { op: 'mappingOf', args: { gfn: a } },
              { op: 'guestRead', args: { gfn: b } },
            ];
            if (reenable) out.push({ op: 'enableDirtyLog', args: { slot: m.id } }, { op: 'guestWrite', args: { gfn: b, value: 7 } });
            return out;
          });
        });

  /** dirty_log_test-style round: writes, then fetch (and clear with manual protect). */
  const round: fc.Arbitrary<Op[]> =
    writableSlots.length === 0
      ? single
      : fc.constantFrom(...writableSlots).chain((m) =>
          fc.array(write(pageIn(m)), { minLength: 1, maxLength: 4 }).map((ws) => {
            const out: Op[] = [...ws, { op: 'getDirtyLog', args: { slot: m.id } }];
            if (config.manualProtect) out.push({ op: 'clearDirtyLog', args: { slot: m.id, first: 0, num: m.npages } });
            return out;
          }),
        );

  const piece = fc.oneof(
    { weight: 20, arbitrary: single },
    { weight: 3, arbitrary: blockThenLog },
    { weight: 2, arbitrary: cycle },
    { weight: 2, arbitrary: round },
  );
  return fc.array(piece, { maxLength: maxOps, size: '+1' }).map((pieces) => pieces.flat().slice(0, maxOps));
}
