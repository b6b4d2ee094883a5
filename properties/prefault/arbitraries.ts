/**
 * fast-check generators for the `prefault` domain. Small configurations
 * (memslots of a few MiB placed at and around 2 MiB and 1 GiB boundaries)
 * and traces aimed at the hazards: ranges starting/ending at block and slot
 * edges, mixed attributes inside a 2 MiB block, two populates in one 2 MiB
 * block (the GPA1/GPA2 story of seed 003), pre-faults before and after
 * finalize, signals mid-range, and bad input about one op in ten.
 */
import * as fc from 'fast-check';
import {
  GFN_LIMIT,
  PAGES_1G,
  PAGES_2M,
  PAGE_SIZE,
  U64_LIMIT,
  isConfidential,
  maxLeafLevel,
  type LeafSize,
  type Memslot,
  type PrefaultConfig,
  type PrefaultOp,
  type VmType,
} from '../../spec/prefault/types';

const slotShape = fc.record({
  noGmem: fc.integer({ min: 0, max: 9 }),
  gap: fc.constantFrom(0, 1, 256, 511, 512, 1024),
  npages: fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(1, 2, 511, 512, 513, 1023, 1024, 1025, 1536, 2048) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 2048 }) },
  ),
  backing: fc.constantFrom<LeafSize>('4k', '2m', '2m', '2m', '1g'),
});

/**
 * A small configuration: 1-3 slots of up to 8 MiB each, placed at and around
 * 2 MiB and 1 GiB boundaries. A slot may be 1 GiB-backed, but no slot holds a
 * whole 1 GiB block: a 1 GiB leaf is 262144 page steps for the page-by-page
 * model, so 1 GiB leaves are left to the case files, unit tests and bench.
 */
export function config(): fc.Arbitrary<PrefaultConfig> {
  return fc
    .record({
      vmType: fc.constantFrom<VmType>('default', 'sw-protected', 'snp', 'tdx'),
      privateRoll: fc.noBias(fc.integer({ min: 0, max: 99 })),
      start: fc.constantFrom(0, 1, 512, 1021, 1536, PAGES_1G - 512, PAGES_1G - 1),
      shapes: fc.array(slotShape, { minLength: 1, maxLength: 3 }),
    })
    .map(({ vmType, privateRoll, start, shapes }) => {
      const memslots: Memslot[] = [];
      let base = start;
      shapes.forEach((s, i) => {
        base += i === 0 ? 0 : s.gap;
        // VM types with private memory mostly get guest_memfd slots; one in ten has none (private faults there: EFAULT).
        memslots.push({ id: i, baseGfn: base, npages: s.npages, backing: s.backing, guestMemfd: vmType !== 'default' && s.noGmem > 0 });
        base += s.npages;
      });
      const privateByDefault =
        vmType === 'default' ? false : isConfidential(vmType) ? privateRoll < 85 : privateRoll < 50;
      return { vmType, memslots, privateByDefault };
    });
}

/** Gfns worth aiming at: slot edges, 2 MiB/1 GiB boundaries inside and around slots, gaps. */
export function interestingGfns(c: PrefaultConfig): number[] {
  const out = new Set<number>();
  for (const s of c.memslots) {
    const end = s.baseGfn + s.npages;
    for (const g of [s.baseGfn, s.baseGfn + 1, end - 1, end, Math.max(0, s.baseGfn - 1)]) out.add(g);
    const firstBlock = Math.ceil(s.baseGfn / PAGES_2M) * PAGES_2M;
    for (let b = firstBlock, k = 0; b <= end && k < 4; b += PAGES_2M, k++) {
      out.add(b);
      if (b > 0) out.add(b - 1);
      out.add(b + 1);
    }
    const g1 = Math.floor(end / PAGES_1G) * PAGES_1G;
    if (g1 > s.baseGfn) out.add(g1);
  }
  return [...out].filter((g) => g >= 0 && g < GFN_LIMIT).sort((a, b) => a - b);
}

function slotInterior(c: PrefaultConfig): fc.Arbitrary<number> {
  return fc
    .record({ i: fc.integer({ min: 0, max: c.memslots.length - 1 }), off: fc.nat() })
    .map(({ i, off }) => {
      const s = c.memslots[i]!;
      return s.baseGfn + (off % s.npages);
    });
}

type Step = PrefaultOp[];

function one(op: PrefaultOp): Step {
  return [op];
}

export function ops(c: PrefaultConfig, maxOps: number): fc.Arbitrary<PrefaultOp[]> {
  const interesting = interestingGfns(c);
  const gfn = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...interesting) }, { weight: 2, arbitrary: slotInterior(c) });
  // Mostly a few pages; block-sized ranges (the 2 MiB hazards) less often, since on
  // 4 KiB-only VMs they cost hundreds of leaves.
  const hugeOk = maxLeafLevel(c.memslots) > 1;
  const npages = fc.oneof(
    { weight: 40, arbitrary: fc.constantFrom(1, 1, 2, 3, 4, 8, 16) },
    { weight: hugeOk ? 2 : 1, arbitrary: fc.constantFrom(511, 512, 513) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 600 }) },
  );
  const signalAfter = fc.oneof(
    { weight: 6, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 3 }) },
  );
  const pf = (gpa: number, size: number, flags: number, sig: number | undefined): PrefaultOp =>
    sig === undefined
      ? { op: 'preFault', args: { gpa, size, flags } }
      : { op: 'preFault', args: { gpa, size, flags, signalAfter: sig } };
  const slotIdx = fc.integer({ min: 0, max: c.memslots.length - 1 });
  const last = c.memslots[c.memslots.length - 1]!;
  const outside = fc.constantFrom(
    ...[last.baseGfn + last.npages + 7, GFN_LIMIT - 1, GFN_LIMIT + 5].concat(
      c.memslots.slice(1).flatMap((s, i) => {
        const prevEnd = c.memslots[i]!.baseGfn + c.memslots[i]!.npages;
        return s.baseGfn > prevEnd ? [prevEnd] : [];
      }),
      c.memslots[0]!.baseGfn > 0 ? [0] : [],
    ),
  );

  const preFaultValid: fc.Arbitrary<Step> = fc.oneof(
    { weight: 32, arbitrary: fc.tuple(gfn, npages, signalAfter).map(([g, n, sig]) => one(pf(g * PAGE_SIZE, n * PAGE_SIZE, 0, sig))) },
    {
      // pre_fault_memory_test: the whole slot, and a range running past the slot's end
      weight: 1,
      arbitrary: fc.tuple(slotIdx, fc.integer({ min: 0, max: 2 }), signalAfter).map(([i, extra, sig]) => {
        const s = c.memslots[i]!;
        return one(pf(s.baseGfn * PAGE_SIZE, (s.npages + extra) * PAGE_SIZE, 0, sig));
      }),
    },
  );

  const preFaultBad: fc.Arbitrary<Step> = fc.oneof(
    fc.tuple(gfn, npages, fc.integer({ min: 1, max: PAGE_SIZE - 1 })).map(([g, n, d]) => one(pf(g * PAGE_SIZE + d, n * PAGE_SIZE, 0, undefined))),
    fc.tuple(gfn, npages, fc.integer({ min: 1, max: PAGE_SIZE - 1 })).map(([g, n, d]) => one(pf(g * PAGE_SIZE, n * PAGE_SIZE + d, 0, undefined))),
    gfn.map((g) => one(pf(g * PAGE_SIZE, 0, 0, undefined))),
    fc.constantFrom(
      one(pf(U64_LIMIT - PAGE_SIZE, 2 * PAGE_SIZE, 0, undefined)),
      one(pf(2 ** 63, 2 ** 63, 0, undefined)),
      one(pf(U64_LIMIT - 2 * PAGE_SIZE, 2 * PAGE_SIZE, 0, undefined)),
    ),
    fc.tuple(gfn, npages, fc.integer({ min: 1, max: 8 })).map(([g, n, f]) => one(pf(g * PAGE_SIZE, n * PAGE_SIZE, f, undefined))),
    fc.tuple(outside, npages).map(([g, n]) => one(pf(g * PAGE_SIZE, n * PAGE_SIZE, 0, undefined))),
  );

  // A 2 MiB block start inside a slot (for the whole-block populates the RFC rule would map huge).
  const blocks = interesting.filter((g) => g % PAGES_2M === 0 && c.memslots.some((s) => g >= s.baseGfn && g + PAGES_2M <= s.baseGfn + s.npages));
  // Whole-block populates matter where a 2 MiB leaf could be chosen (SNP); on TDX they are only costly.
  const populate: fc.Arbitrary<Step> = fc.oneof(
    { weight: 12, arbitrary: fc.tuple(gfn, fc.constantFrom(1, 1, 2, 3, 8)).map(([g, n]) => one({ op: 'populate', args: { gpa: g * PAGE_SIZE, npages: n } })) },
    {
      weight: c.vmType === 'snp' && blocks.length > 0 ? 6 : 1,
      arbitrary: fc
        .tuple(blocks.length > 0 ? fc.constantFrom(...blocks) : gfn, fc.constant(512))
        .map(([g, n]) => one({ op: 'populate', args: { gpa: g * PAGE_SIZE, npages: n } })),
    },
  );

  // Seed 003: "populate GPA1 and GPA2 ... within same 2M range", then GPA1 again.
  const gpa1gpa2: fc.Arbitrary<Step> = fc
    .tuple(gfn, fc.integer({ min: 0, max: PAGES_2M - 1 }), fc.integer({ min: 0, max: PAGES_2M - 1 }))
    .map(([g, k1, k2]) => {
      const b = g - (g % PAGES_2M);
      const p = (k: number): PrefaultOp => ({ op: 'populate', args: { gpa: (b + k) * PAGE_SIZE, npages: 1 } });
      return [p(k1), p(k2), p(k1)];
    });

  // KVM_SET_USER_MEMORY_REGION2: delete a slot (and maybe pre-fault the hole), put it back,
  // move it, resize it (EINVAL), create a new slot in a gap or over a slot (EEXIST), bad ids and sizes.
  const slotOp = (id: number, baseGfn: number, npages: number, s?: Memslot): PrefaultOp => ({
    op: 'setUserMemoryRegion',
    args: s === undefined ? { slot: id, baseGfn, npages } : { slot: id, baseGfn, npages, backing: s.backing, guestMemfd: s.guestMemfd },
  });
  const memslotOps: fc.Arbitrary<Step> = fc.oneof(
    {
      weight: 4,
      arbitrary: fc.tuple(slotIdx, fc.boolean(), fc.boolean()).map(([i, hole, back]) => {
        const s = c.memslots[i]!;
        const steps: PrefaultOp[] = [slotOp(s.id, s.baseGfn, 0)];
        if (hole) steps.push(pf(s.baseGfn * PAGE_SIZE, Math.min(s.npages, 4) * PAGE_SIZE, 0, undefined));
        if (back) steps.push(slotOp(s.id, s.baseGfn, s.npages, s));
        return steps;
      }),
    },
    {
      weight: 2,
      arbitrary: fc.tuple(slotIdx, fc.constantFrom(512, 1024, -512, PAGES_1G, 2 ** 20)).map(([i, delta]) => {
        const s = c.memslots[i]!;
        return [slotOp(s.id, Math.max(0, s.baseGfn + delta), s.npages, { ...s, guestMemfd: false })];
      }),
    },
    { weight: 1, arbitrary: slotIdx.map((i) => { const s = c.memslots[i]!; return [slotOp(s.id, s.baseGfn, s.npages + 1, s)]; }) },
    {
      weight: 3,
      arbitrary: fc
        .tuple(fc.integer({ min: c.memslots.length, max: 31 }), outside, fc.constantFrom(1, 16, 512, 1024), fc.constantFrom<LeafSize>('4k', '2m', '1g'), fc.boolean())
        .map(([id, g, n, backing, gm]) => [slotOp(id, g, n, { id, baseGfn: g, npages: n, backing, guestMemfd: gm && c.vmType !== 'default' })]),
    },
    { weight: 1, arbitrary: fc.tuple(fc.integer({ min: c.memslots.length, max: 31 }), gfn).map(([id, g]) => [slotOp(id, g, 8)]) },
    {
      weight: 1,
      arbitrary: fc.constantFrom<Step>(
        [slotOp(32764, 0, 1)],
        [slotOp(65536 + 3, 0, 1)],
        [slotOp(31, 0, 2 ** 31)],
        [slotOp(31, GFN_LIMIT - 4, 8)],
        [slotOp(31, 2 ** 30, 2 ** 22 + 1)],
        [slotOp(30, 0, 0)],
      ),
    },
  );

  // A 2 MiB block mapped at 4 KiB while one page of it is private, then made all shared: the next
  // fault writes a 2 MiB leaf over the lower table that holds the remaining 4 KiB leaves.
  const hugeAfterMixed: fc.Arbitrary<Step> = fc
    .tuple(gfn, fc.integer({ min: 0, max: PAGES_2M - 1 }), fc.integer({ min: 0, max: PAGES_2M - 1 }))
    .map(([g, k1, k2]) => {
      const b = g - (g % PAGES_2M);
      const attr = (at: number, n: number, p: boolean): PrefaultOp => ({ op: 'setAttributes', args: { gfn: at, npages: n, private: p } });
      return [attr(b, PAGES_2M, false), attr(b + k1, 1, true), pf(b * PAGE_SIZE, PAGES_2M * PAGE_SIZE, 0, undefined), attr(b + k1, 1, false), pf((b + k2) * PAGE_SIZE, PAGE_SIZE, 0, undefined)];
    });

  const launch = isConfidential(c.vmType);
  const finalizeOp = fc.constant(one({ op: 'finalize', args: {} }));
  const guestAccess = fc.tuple(gfn, fc.boolean()).map(([g, w]) => one({ op: 'guestAccess', args: { gfn: g, write: w } }));
  const setAttributes = fc
    .tuple(gfn, fc.constantFrom(1, 2, 17, 256, 512, 513), fc.boolean())
    .map(([g, n, p]) => one({ op: 'setAttributes', args: { gfn: g, npages: n, private: p } }));
  const zap = fc.tuple(gfn, npages).map(([g, n]) => one({ op: 'zap', args: { gfn: g, npages: n } }));
  const mappings = fc.tuple(gfn, npages).map(([g, n]) => one({ op: 'mappings', args: { gfn: g, npages: n } }));
  const measurement = fc.constant(one({ op: 'measurement', args: {} }));

  // The running VM: pre-faults, guest accesses, conversions and invalidations.
  // populate/finalize here are late or misdirected calls (EINVAL).
  const running: fc.Arbitrary<Step> = fc.oneof(
    { weight: 12, arbitrary: preFaultValid },
    { weight: 4, arbitrary: preFaultBad },
    { weight: 1, arbitrary: populate },
    { weight: 1, arbitrary: finalizeOp },
    { weight: 6, arbitrary: guestAccess },
    { weight: 4, arbitrary: setAttributes },
    { weight: 2, arbitrary: zap },
    { weight: 2, arbitrary: mappings },
    { weight: 1, arbitrary: measurement },
    { weight: 2, arbitrary: memslotOps },
    { weight: c.vmType === 'default' ? 0 : 1, arbitrary: hugeAfterMixed },
  );
  const steps = (arb: fc.Arbitrary<Step>, n: number) => fc.array(arb, { maxLength: Math.max(0, n), size: 'max' });
  const flat = (parts: Step[][]): PrefaultOp[] => parts.flat(2).slice(0, maxOps);
  if (!launch) return steps(running, maxOps).map((s) => flat([s]));

  // SNP/TDX: a launch phase (populate, GPA1/GPA2, pre-faults refused with
  // EOPNOTSUPP), usually finalize, then the running phase.
  const launching: fc.Arbitrary<Step> = fc.oneof(
    { weight: 8, arbitrary: populate },
    { weight: 2, arbitrary: gpa1gpa2 },
    { weight: 3, arbitrary: preFaultValid },
    { weight: 1, arbitrary: preFaultBad },
    { weight: 1, arbitrary: guestAccess },
    { weight: 2, arbitrary: setAttributes },
    { weight: 1, arbitrary: zap },
    { weight: 2, arbitrary: mappings },
    { weight: 1, arbitrary: measurement },
    { weight: 1, arbitrary: memslotOps },
  );
  const half = Math.ceil(maxOps / 2);
  return fc
    .tuple(steps(launching, half), fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }), steps(running, maxOps))
    .map(([a, fin, b]) => flat([a, fin ? [[{ op: 'finalize', args: {} }]] : [], b]));
}
