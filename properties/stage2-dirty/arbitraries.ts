/**
 * stage2-dirty generators. Small configurations (blocks of 8 or 16 pages so
 * that blocks are reachable with small slots, one to three slots, THP and
 * hugetlb backing most of the time) and traces built from small pieces:
 * single ops, and short scenarios that reach the hazards — a block faulted
 * in before logging starts and then read and written while logged (the
 * dissolution path, with a block TLB entry to go stale), a disable and
 * re-enable cycle (blocks again, then split again), fetch/clear
 * interleavings, unmaps across block boundaries, memslots created, moved,
 * deleted and flag-changed at run time (KVM_SET_USER_MEMORY_REGION, valid
 * and invalid), read-only slots logged, CLEARs with partial bitmaps, and
 * the migration protocol (GET, a write, then CLEAR exactly what was
 * fetched), and a logged slot moved.
 * About one op in ten is bad input (an MMIO address, a free or
 * out-of-range slot id, a misaligned clear, a resize, an overlap).
 */
import * as fc from 'fast-check';
import { DEFAULT_USER_MEM_SLOTS, type Backing, type Config, type Memslot, type Op } from '../../spec/stage2-dirty/types';
import { blockEligible, hostBases } from '../../spec/stage2-dirty/config';
import { swarm, tagSwarm, type WeightedArb } from '../../harness/swarm';

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
      // arm64's KVM_USER_MEM_SLOTS, x86's, or a small limit so that ids at or above it come up.
      userMemSlots: fc.constantFrom(DEFAULT_USER_MEM_SLOTS, 32764, 6),
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
          userMemSlots: r.userMemSlots,
        };
      }),
    );
}

/** Pages worth aiming at in one slot: the first block-eligible block if any, else the slot's start. */
function hotStart(m: Memslot, hostBase: number, bp: number): number {
  const geom = { baseGfn: m.baseGfn, npages: m.npages, backing: m.backing, hostBase };
  for (let g = m.baseGfn; g < m.baseGfn + m.npages; g++) if (blockEligible(geom, g, bp)) return g;
  return m.baseGfn;
}

/** A trace of at most `maxOps` ops for `config`. */
export function ops(config: Config, maxOps: number): fc.Arbitrary<Op[]> {
  const bp = config.blockPages;
  const slots = config.memslots;
  const end = slots.reduce((e, m) => Math.max(e, m.baseGfn + m.npages), 0);
  const writableSlots = slots.filter((m) => !m.readonly);
  const ids = slots.map((m) => m.id);
  // Read-only slots may be logged too (check_memory_region_flags allows both flags).
  const loggable = ids;
  const bases = hostBases(config);
  const hostOf = new Map(slots.map((m, i) => [m.id, bases[i]!] as const));
  /** Where slots created at run time go: past the config's slots, block aligned. */
  const spareBase = Math.ceil((end + bp) / bp) * bp;
  const spareIds = [3, 4, 5].filter((i) => !ids.includes(i));
  const spareEnd = spareBase + 3 * bp + 8;

  const value = fc.oneof({ weight: 9, arbitrary: fc.integer({ min: 1, max: 999 }) }, { weight: 1, arbitrary: fc.constant(undefined) });
  /** A page in slot `m`: most often near its first eligible block. */
  const pageIn = (m: Memslot): fc.Arbitrary<number> => {
    const hot = hotStart(m, hostOf.get(m.id)!, bp);
    const hotEnd = Math.min(m.baseGfn + m.npages, hot + 2 * bp);
    return fc.oneof(
      { weight: 3, arbitrary: fc.integer({ min: hot, max: hotEnd - 1 }) },
      { weight: 1, arbitrary: fc.integer({ min: m.baseGfn, max: m.baseGfn + m.npages - 1 }) },
    );
  };
  const slotArb = fc.constantFrom(...slots);
  const goodGfn = slotArb.chain(pageIn);
  const mmioGfn = fc.oneof(fc.integer({ min: end, max: end + 2 * bp }), fc.integer({ min: 0, max: end + 4 }));
  const spareGfn = fc.integer({ min: spareBase, max: spareEnd });
  const gfn = fc.oneof({ weight: 12, arbitrary: goodGfn }, { weight: 1, arbitrary: mmioGfn }, { weight: 2, arbitrary: spareGfn });
  // A free id below the limit (ENOENT for the log ioctls) or one at or above it (EINVAL).
  const badSlot = fc.oneof(
    fc.integer({ min: 0, max: 8 }).filter((i) => !ids.includes(i)),
    fc.integer({ min: config.userMemSlots, max: config.userMemSlots + 2 }),
  );
  const slotId = fc.oneof(
    { weight: 12, arbitrary: fc.constantFrom(...loggable) },
    { weight: 2, arbitrary: spareIds.length > 0 ? fc.constantFrom(...spareIds) : fc.constantFrom(...ids) },
    { weight: 1, arbitrary: badSlot },
  );

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
        partial: fc.option(fc.uniqueArray(fc.nat(m.npages + 8), { maxLength: 6 }), { freq: 2 }),
      })
      .map(({ first, kind, small, partial }): Op => {
        const toEnd = Math.max(0, m.npages - first);
        const num = kind < 5 ? toEnd : kind < 7 ? Math.min(64, toEnd) : kind < 8 ? 0 : small;
        if (partial === null) return { op: 'clearDirtyLog', args: { slot: m.id, first, num } };
        // A partial user bitmap: some bits of the range.
        const bits = partial.filter((b) => b < num).sort((a, b) => a - b);
        return { op: 'clearDirtyLog', args: { slot: m.id, first, num, bits } };
      });
  });

  /** KVM_SET_USER_MEMORY_REGION: creations, deletions, flag changes, moves; valid and not. */
  const region: fc.Arbitrary<Op> = fc
    .record({
      m: fc.constantFrom(...slots),
      kind: fc.integer({ min: 0, max: 13 }),
      spareId: spareIds.length > 0 ? fc.constantFrom(...spareIds) : fc.constant(config.userMemSlots),
      off: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2 * bp })),
      n: fc.integer({ min: 1, max: 2 * bp + 3 }),
      log: fc.boolean(),
      ro: fc.oneof({ weight: 5, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
      backing: fc.option(backingArb, { freq: 2 }),
    })
    .map(({ m, kind, spareId, off, n, log, ro, backing }): Op => {
      const op = (slot: number, baseGfn: number, npages: number, logDirty: boolean, readonly: boolean, b: Backing | null): Op => ({
        op: 'setUserMemoryRegion',
        args: b === null ? { slot, baseGfn, npages, logDirty, readonly } : { slot, baseGfn, npages, logDirty, readonly, backing: b },
      });
      switch (kind) {
        case 0:
        case 1:
        case 2: // create a slot in the spare range (or, if it exists, move/flag it there)
          return op(spareId, spareBase + off, n, log, ro, backing);
        case 3: // delete a config slot or a spare one
          return op(off % 2 === 0 ? m.id : spareId, 0, 0, false, false, null);
        case 4:
        case 5:
        case 6: // flags only: logging on or off, the slot's own place and RO flag
          return op(m.id, m.baseGfn, m.npages, log, m.readonly, null);
        case 7: // move a config slot into the spare range (same size, same host memory)
          return op(m.id, spareBase + off, m.npages, log, m.readonly, null);
        case 8: // resize: EINVAL
          return op(m.id, m.baseGfn, m.npages + 1, log, m.readonly, null);
        case 9: // KVM_MEM_READONLY flipped on an existing slot: EINVAL
          return op(m.id, m.baseGfn, m.npages, log, !m.readonly, null);
        case 10: // overlap with a config slot: EEXIST
          return op(spareId, m.baseGfn, n, log, ro, backing);
        case 11: // id at or above KVM_USER_MEM_SLOTS: EINVAL
          return op(config.userMemSlots + (off % 3), spareBase, n, log, ro, backing);
        case 12: // more than KVM_MEM_MAX_NR_PAGES: EINVAL
          return op(spareId, spareBase, 2 ** 31, log, ro, null);
        default: // beyond the 48-bit IPA: EFAULT (arm64 kvm_arch_prepare_memory_region)
          return op(spareId, 2 ** 36 - 1, 2, log, ro, null);
      }
    });

  const unmap: fc.Arbitrary<Op> = fc
    .record({ g: goodGfn, back: fc.integer({ min: 0, max: 3 }), n: fc.integer({ min: 1, max: bp + 3 }) })
    .map(({ g, back, n }): Op => ({ op: 'unmapRange', args: { gfn: Math.max(0, g - back), npages: n } }));
  const evict = goodGfn.map((g): Op => ({ op: 'tlbEvict', args: { gfn: g } }));
  const query = gfn.map((g): Op => ({ op: 'mappingOf', args: { gfn: g } }));

  /** Single ops, weighted (also the swarm table's first part). */
  const singles: WeightedArb<Op>[] = [
    { name: 'guestWrite', weight: 22, arbitrary: write(gfn) },
    { name: 'guestRead', weight: 14, arbitrary: read(gfn) },
    { name: 'enableDirtyLog', weight: 6, arbitrary: slotOp('enableDirtyLog') },
    { name: 'disableDirtyLog', weight: 3, arbitrary: slotOp('disableDirtyLog') },
    { name: 'getDirtyLog', weight: 8, arbitrary: slotOp('getDirtyLog') },
    { name: 'clearDirtyLog', weight: 5, arbitrary: clear },
    { name: 'setUserMemoryRegion', weight: 5, arbitrary: region },
    { name: 'unmapRange', weight: 5, arbitrary: unmap },
    { name: 'tlbEvict', weight: 5, arbitrary: evict },
    { name: 'mappingOf', weight: 5, arbitrary: query },
  ];
  const single: fc.Arbitrary<Op[]> = fc.oneof(...singles.map(({ weight, arbitrary }) => ({ weight, arbitrary }))).map((o) => [o]);

  /**
   * A block faulted in before logging, then logging, a read through the
   * (read-only) block that leaves a block TLB entry, writes in the same
   * block (dissolution), and a fetch.
   */
  const blockThenLog: fc.Arbitrary<Op[]> =
    writableSlots.length === 0
      ? single
      : fc.constantFrom(...writableSlots).chain((m) => {
          const hot = hotStart(m, hostOf.get(m.id)!, bp);
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

  /**
   * The migration protocol with manual protect: CLEAR the whole slot, write
   * some pages, GET, write again (maybe a page not fetched), then CLEAR
   * exactly the bits that were fetched: the page written after the GET must
   * keep its bit. The fetched set is known here because the slot was just
   * cleared (with INITIALLY_SET too).
   */
  const getThenClear: fc.Arbitrary<Op[]> =
    writableSlots.length === 0 || !config.manualProtect
      ? single
      : fc.constantFrom(...writableSlots).chain((m) =>
          fc.tuple(fc.uniqueArray(pageIn(m), { minLength: 1, maxLength: 3 }), pageIn(m), value).map(([ws, after, v]) => {
            const out: Op[] = [
              { op: 'enableDirtyLog', args: { slot: m.id } },
              { op: 'clearDirtyLog', args: { slot: m.id, first: 0, num: m.npages } },
            ];
            for (const g of ws) out.push({ op: 'guestWrite', args: { gfn: g, value: 11 } });
            out.push({ op: 'getDirtyLog', args: { slot: m.id } });
            out.push({ op: 'guestWrite', args: v === undefined ? { gfn: after } : { gfn: after, value: v } });
            const bits = ws.map((g) => g - m.baseGfn).sort((a, b) => a - b);
            out.push({ op: 'clearDirtyLog', args: { slot: m.id, first: 0, num: m.npages, bits } });
            return out;
          }),
        );

  /** A logged slot moved to the spare range (bitmap kept, old range unmapped), then fetched. */
  const moveLogged: fc.Arbitrary<Op[]> =
    writableSlots.length === 0
      ? single
      : fc.constantFrom(...writableSlots).chain((m) =>
          fc.tuple(pageIn(m), fc.integer({ min: 0, max: 2 * bp }), fc.boolean()).map(([g, off, log]): Op[] => [
            { op: 'enableDirtyLog', args: { slot: m.id } },
            { op: 'guestWrite', args: { gfn: g, value: 5 } },
            { op: 'setUserMemoryRegion', args: { slot: m.id, baseGfn: spareBase + off, npages: m.npages, logDirty: log, readonly: m.readonly } },
            { op: 'getDirtyLog', args: { slot: m.id } },
          ]),
        );

  // The pieces: single ops (their weights sum to 78) and the bursts, at the
  // same odds as a 20 : 3 : 2 : 2 : 2 mix of "a single op" and each burst.
  // Swarm testing (harness/swarm.ts) draws a subset of this table for a share of runs.
  const table: WeightedArb<Op[]>[] = [
    ...singles.map((e) => ({ name: e.name, weight: e.weight, arbitrary: e.arbitrary.map((o) => [o]) })),
    { name: 'blockThenLog', weight: 12, arbitrary: blockThenLog },
    { name: 'cycle', weight: 8, arbitrary: cycle },
    { name: 'round', weight: 8, arbitrary: round },
    { name: 'getThenClear', weight: 8, arbitrary: getThenClear },
    { name: 'moveLogged', weight: 3, arbitrary: moveLogged },
  ];
  return swarm(table).chain(({ arbitrary, label }) =>
    fc.array(arbitrary, { maxLength: maxOps, size: '+1' }).map((pieces) => tagSwarm(pieces.flat().slice(0, maxOps), label)),
  );
}
