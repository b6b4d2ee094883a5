/**
 * The vocabulary of the `prefault` domain: configuration, operations, results
 * and the View, as io-ts codecs, plus the geometry shared by model and impl.
 *
 * Sources: seed 003_af5d94ca23cb5f06.txt (KVM_MAP_MEMORY RFC thread, level
 * choice and exact-range mapping for SNP/TDX) and the interface that shipped,
 * KVM_PRE_FAULT_MEMORY (Documentation/virt/kvm/api.rst section 4.143, added by
 * commit 9aed7a6c0b59 "KVM: Document KVM_PRE_FAULT_MEMORY ioctl").
 */
import * as t from 'io-ts';
import { Nat, NoArgs, oneOf, strict, type OpOf } from '../../harness/codec';

// ---------------------------------------------------------------------------
// Geometry

/** 4 KiB pages. */
export const PAGE_SIZE = 4096;
/** Pages per 2 MiB and 1 GiB leaf. */
export const PAGES_2M = 512;
export const PAGES_1G = 512 * 512;
/**
 * The guest-physical frame space the spec covers: 48-bit GPAs, i.e. a 4-level
 * TDP table (PML4 -> PDPT -> PD -> PT). Memslots must lie below it; a request
 * beyond it simply finds no memslot.
 */
export const GFN_LIMIT = 2 ** 36;
/** `gpa + size` overflows a u64 when it reaches 2^64 (kvm_vcpu_pre_fault_memory's `range->gpa + range->size <= range->gpa`). */
export const U64_LIMIT = 2 ** 64;

export type LeafSize = '4k' | '2m' | '1g';
export const LEAF_SIZES: readonly LeafSize[] = ['4k', '2m', '1g'];
/** Level numbers as in x86 KVM: PG_LEVEL_4K = 1, PG_LEVEL_2M = 2, PG_LEVEL_1G = 3. */
export const LEVEL_OF: Readonly<Record<LeafSize, 1 | 2 | 3>> = { '4k': 1, '2m': 2, '1g': 3 };
export const SIZE_OF_LEVEL: readonly LeafSize[] = ['4k', '4k', '2m', '1g'];
/** Pages covered by a leaf of each level (index = level). */
export const PAGES_OF_LEVEL: readonly number[] = [1, 1, PAGES_2M, PAGES_1G];
/** LEVEL_OF as a function: cheaper than a keyed lookup on hot paths. */
export function levelOf(size: LeafSize): 1 | 2 | 3 {
  return size === '4k' ? 1 : size === '2m' ? 2 : 3;
}
export function pagesOf(size: LeafSize): number {
  return size === '4k' ? 1 : size === '2m' ? PAGES_2M : PAGES_1G;
}

export type VmType = 'default' | 'sw-protected' | 'snp' | 'tdx';
export const VM_TYPES: readonly [VmType, ...VmType[]] = ['default', 'sw-protected', 'snp', 'tdx'];
/**
 * Largest leaf of shared memory: KVM_MAX_HUGEPAGE_LEVEL (1 GiB) for every VM
 * type; only the host mapping (the memslot's backing) caps it further. The
 * SNP 2 MiB / TDX 4 KiB caps are the private-fault path's
 * (`private_max_mapping_level`), and private memory is 4 KiB anyway (below).
 */
export const SHARED_MAX_LEVEL = 3;
/**
 * Largest leaf of private memory: guest_memfd hands out order-0 folios
 * (virt/kvm/guest_memfd.c `__kvm_gmem_get_pfn` sets `*max_order = 0`), so
 * every private leaf is 4 KiB whatever the VM type.
 */
export const PRIVATE_MAX_LEVEL = 1;
/** Confidential VMs have an initial, measured launch phase that ends with `finalize`. */
export function isConfidential(vmType: VmType): boolean {
  return vmType === 'snp' || vmType === 'tdx';
}

// ---------------------------------------------------------------------------
// Config

export const Backing = oneOf<LeafSize>(['4k', '2m', '1g'], '"4k" | "2m" | "1g"');

export const MemslotInput = strict(
  { id: Nat, baseGfn: Nat, npages: Nat },
  { backing: Backing, guestMemfd: t.boolean },
  '{ id, baseGfn, npages, backing?, guestMemfd? }',
);

// Memslot bounds (KVM_SET_USER_MEMORY_REGION2, virt/kvm/kvm_main.c kvm_set_memory_region).
/** Slot ids a user may use: x86 KVM_USER_MEM_SLOTS (the live kernel's KVM_CAP_NR_MEMSLOTS is 32764). */
export const KVM_USER_MEM_SLOTS = 32764;
/** Largest memslot: KVM_MEM_MAX_NR_PAGES = 2^31 - 1 pages (dirty bitmaps are indexed by unsigned int). */
export const KVM_MEM_MAX_NR_PAGES = 2 ** 31 - 1;
/**
 * hvspec's bound on slot ids (a documented departure): ids 0..31, so at most
 * 32 live memslots; larger ids below KVM_USER_MEM_SLOTS are refused as input.
 */
export const MAX_SLOT_ID = 31;
/**
 * hvspec's memory budget (a documented departure): the live memslots of a VM
 * hold at most 2^22 pages (16 GiB) together. A run needs about 250 bytes per
 * mapped leaf (model, implementation and their Views), so even with every
 * page a 4 KiB leaf (private memory) it stays near 1 GB.
 * A creation beyond it answers ENOMEM (upstream's answer when it cannot
 * allocate a memslot); a configuration beyond it is refused at decode time.
 */
export const MEMSLOT_PAGES_BUDGET = 2 ** 22;

/** The configuration input: every field optional, no extra fields. */
export const ConfigInput = strict(
  {},
  {
    vmType: oneOf<VmType>(VM_TYPES),
    memslots: t.array(MemslotInput),
    privateByDefault: t.boolean,
  },
  'prefault config',
);
export type ConfigInput = t.TypeOf<typeof ConfigInput>;

export const MemslotC = t.type({ id: t.number, baseGfn: t.number, npages: t.number, backing: Backing, guestMemfd: t.boolean });
export interface Memslot {
  readonly id: number;
  readonly baseGfn: number;
  readonly npages: number;
  /** Host page size behind the slot: a leaf may not be larger. */
  readonly backing: LeafSize;
  /** KVM_MEM_GUEST_MEMFD: the slot has private (guest_memfd) backing; only such a slot can map private memory. */
  readonly guestMemfd: boolean;
}

export interface PrefaultConfig {
  readonly vmType: VmType;
  /** The initial memslots (setUserMemoryRegion changes them at run time). Sorted by baseGfn, non-overlapping. */
  readonly memslots: readonly Memslot[];
  /** Guest memory starts private (confidential VMs default to true). */
  readonly privateByDefault: boolean;
}

// ---------------------------------------------------------------------------
// Ops

/**
 * An unsigned 64-bit quantity carried as a JSON number. Page-aligned values
 * below 2^64 are k * 2^12 with k < 2^52 and so are exact doubles, which is all
 * the arithmetic here needs (unaligned ones are rejected before any sum).
 */
export const U64 = new t.Type<number, number, unknown>(
  'u64 (integer in [0, 2^64))',
  (u): u is number => typeof u === 'number' && Number.isInteger(u) && u >= 0 && u < U64_LIMIT,
  (u, c) => (typeof u === 'number' && Number.isInteger(u) && u >= 0 && u < U64_LIMIT ? t.success(u) : t.failure(u, c)),
  (a) => a,
);

export const opArgs = {
  /** KVM_PRE_FAULT_MEMORY on a vCPU; `signalAfter: n` makes a signal pending after n chunks. */
  preFault: strict({ gpa: U64, size: U64, flags: U64 }, { signalAfter: Nat }),
  /** TDX KVM_TDX_INIT_MEM_REGION / SNP KVM_SEV_SNP_LAUNCH_UPDATE: add the initial image. */
  populate: strict({ gpa: U64, npages: Nat }),
  /**
   * KVM_SET_USER_MEMORY_REGION2 on slot `slot`: create (a free id), delete
   * (`npages: 0`), move (same size and backing, new baseGfn) or leave as is.
   * `backing` stands for the host mapping behind userspace_addr (default
   * "2m"); `guestMemfd` is KVM_MEM_GUEST_MEMFD (default false).
   */
  setUserMemoryRegion: strict({ slot: Nat, baseGfn: Nat, npages: Nat }, { backing: Backing, guestMemfd: t.boolean }),
  /** TDX KVM_TDX_FINALIZE_VM / SNP KVM_SEV_SNP_LAUNCH_FINISH. */
  finalize: NoArgs,
  /** A guest access (an EPT/NPT violation if unmapped). */
  guestAccess: strict({ gfn: Nat, write: t.boolean }),
  /** KVM_SET_MEMORY_ATTRIBUTES (PRIVATE or not) over [gfn, gfn + npages). */
  setAttributes: strict({ gfn: Nat, npages: Nat, private: t.boolean }),
  /** An invalidation (MMU notifier): leaves touching the range go. */
  zap: strict({ gfn: Nat, npages: Nat }),
  /** Query: the leaves touching the range. */
  mappings: strict({ gfn: Nat, npages: Nat }),
  /** Query: the launch measurement, in order. */
  measurement: NoArgs,
};
export type PrefaultOp = OpOf<typeof opArgs>;

// ---------------------------------------------------------------------------
// Results

export const ErrorName = t.string;

const PreFaultCallResultC = t.union([
  t.type({ ok: t.literal(true), gpa: t.number, size: t.number }),
  t.type({ ok: t.literal(false), error: ErrorName, gpa: t.number, size: t.number }),
]);
const LeafRefC = t.type({ gfn: t.number, size: Backing });

export const ResultC = t.union([
  PreFaultCallResultC,
  t.type({ ok: t.literal(true), leaves: t.array(LeafRefC) }),
  t.type({ ok: t.literal(true), gpa: t.number, npages: t.number }),
  t.type({ ok: t.literal(false), error: ErrorName, gpa: t.number, npages: t.number }),
  t.type({ ok: t.literal(true), pages: t.array(t.number) }),
  t.type({ ok: t.literal(false), error: ErrorName, gpa: t.number }),
  t.type({ ok: t.literal(false), error: ErrorName }),
  t.type({ ok: t.literal(true) }),
]);

export type PreFaultCallResult =
  | { readonly ok: true; readonly gpa: number; readonly size: number; readonly error?: undefined }
  | { readonly ok: false; readonly error: string; readonly gpa: number; readonly size: number };
/** populate: the range still to do (as the ioctl writes it back), or the error with the range as the kernel left it. */
export type PopulateResult =
  | { readonly ok: true; readonly gpa: number; readonly npages: number; readonly error?: undefined }
  | { readonly ok: false; readonly error: string; readonly gpa: number; readonly npages: number };
export type PrefaultResult =
  | PreFaultCallResult
  | { readonly ok: true; readonly leaves: { gfn: number; size: LeafSize }[]; readonly error?: undefined }
  | PopulateResult
  | { readonly ok: true; readonly pages: number[]; readonly error?: undefined }
  | { readonly ok: false; readonly error: string; readonly gpa: number }
  | { readonly ok: false; readonly error: string }
  | { readonly ok: true; readonly error?: undefined };

// ---------------------------------------------------------------------------
// View

export const LeafC = t.type({ gfn: t.number, size: Backing, private: t.boolean });
export type Leaf = t.TypeOf<typeof LeafC>;
export const AttrRunC = t.type({ gfn: t.number, npages: t.number, private: t.boolean });
export type AttrRun = t.TypeOf<typeof AttrRunC>;

export const PreFaultRequestC = t.type({
  gpa: t.number,
  size: t.number,
  flags: t.number,
  signalAfter: t.union([t.number, t.null]),
});
export type PreFaultRequest = t.TypeOf<typeof PreFaultRequestC>;
export const GhostResultC = t.type({
  ok: t.boolean,
  error: t.union([t.string, t.null]),
  gpa: t.number,
  size: t.number,
});
export type GhostResult = t.TypeOf<typeof GhostResultC>;
/** populate's request and result, for the per-call rules of `exact-range`. */
export const PopulateGhostC = t.type({
  gpa: t.number,
  npages: t.number,
  ok: t.boolean,
  error: t.union([t.string, t.null]),
  resGpa: t.number,
  resNpages: t.number,
});
export type PopulateGhost = t.TypeOf<typeof PopulateGhostC>;

/**
 * Ghost information about the last op, so that the per-op invariants
 * (`progress-exact`, `idempotent`, the per-call parts of `measure-once` and
 * `exact-range`) are predicates on a single View.
 */
export const LastOpC = t.type({
  op: t.string,
  /** Length of the measurement before the op. */
  measuredBefore: t.number,
  /** guestAccess: the gfn; populate: the first gfn (null when the gpa is unaligned); else null. */
  gfn: t.union([t.number, t.null]),
  /** preFault only: the request as given. */
  request: t.union([PreFaultRequestC, t.null]),
  /** preFault: the result returned; guestAccess: its ok/error with the page's gpa and size 4096; else null. */
  result: t.union([GhostResultC, t.null]),
  /**
   * preFault / guestAccess: the leaves that overlapped the op's reach before
   * it ran (the 1 GiB-aligned span around the request, the furthest a leaf
   * installed by the op can extend), in gfn order.
   */
  before: t.array(LeafC),
  /** populate only: request and result. */
  populate: t.union([PopulateGhostC, t.null]),
});
export type LastOp = t.TypeOf<typeof LastOpC>;

export const ViewC = t.type({
  finalized: t.boolean,
  /** Every leaf, in gfn order. */
  leaves: t.array(LeafC),
  /** The live memslots, in gfn order. */
  memslots: t.array(MemslotC),
  /**
   * The VM's private/shared attribute of every gfn (per VM, not per memslot:
   * KVM_SET_MEMORY_ATTRIBUTES needs no memslot), as maximal alternating runs
   * covering [0, GFN_LIMIT).
   */
  attributes: t.array(AttrRunC),
  /** Measured (added) pages in the order they were measured. */
  measurement: t.array(t.number),
  last: t.union([LastOpC, t.null]),
});
export type View = t.TypeOf<typeof ViewC>;

// ---------------------------------------------------------------------------
// Helpers shared by model, impl and invariants

/**
 * The largest leaf a fault can map with these memslots: 1 GiB capped by the
 * largest host backing among them (private leaves are 4 KiB). Leaves map
 * memslot pages only, so no leaf can reach further from an op's range than
 * this; both systems compute it from their live memslots for the ghost record.
 */
export function maxLeafLevel(slots: readonly Pick<Memslot, 'backing'>[]): number {
  let backing = 1;
  for (const s of slots) backing = Math.max(backing, LEVEL_OF[s.backing]);
  return Math.min(SHARED_MAX_LEVEL, backing);
}

/** Index of the memslot containing gfn in gfn-sorted, disjoint `slots`, or -1. */
export function findSlot(slots: readonly Memslot[], gfn: number): number {
  let lo = 0;
  let hi = slots.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const s = slots[mid]!;
    if (gfn < s.baseGfn) hi = mid - 1;
    else if (gfn >= s.baseGfn + s.npages) lo = mid + 1;
    else return mid;
  }
  return -1;
}

/** Index of the attribute run containing gfn in runs covering [0, GFN_LIMIT), or -1. */
export function findRun(runs: readonly AttrRun[], gfn: number): number {
  let lo = 0;
  let hi = runs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = runs[mid]!;
    if (gfn < r.gfn) hi = mid - 1;
    else if (gfn >= r.gfn + r.npages) lo = mid + 1;
    else return mid;
  }
  return -1;
}

/** The attribute of gfn according to the View's runs (false outside them). */
export function privateIn(runs: readonly AttrRun[], gfn: number): boolean {
  const i = findRun(runs, gfn);
  return i >= 0 && runs[i]!.private;
}

/**
 * The reach of an op on `[gfn, gfn + npages)`: that range widened to the
 * largest leaf the configuration can map (`level`), i.e. the furthest a leaf
 * installed by the op can extend. Clamped to the GFN space.
 */
export function reachOf(gfn: number, npages: number, level: number): [number, number] {
  const n = PAGES_OF_LEVEL[level]!;
  const start = Math.floor(gfn / n) * n;
  const end = Math.min(GFN_LIMIT, Math.ceil((gfn + npages) / n) * n);
  return [Math.min(start, end), end];
}

/**
 * Scope of an op's change (from `liveView`): the gfn range `[start, end)`
 * whose leaves or attributes may have changed (empty when start >= end).
 */
export interface Scope {
  readonly start: number;
  readonly end: number;
}
export const EMPTY_SCOPE: Scope = { start: 0, end: 0 };
export function mergeScopes(a: Scope, b: Scope): Scope {
  if (a.start >= a.end) return b;
  if (b.start >= b.end) return a;
  return { start: Math.min(a.start, b.start), end: Math.max(a.end, b.end) };
}

/** Whether the request passes kvm_vcpu_pre_fault_memory's argument checks. */
export function preFaultArgsValid(gpa: number, size: number, flags: number): boolean {
  if (flags !== 0) return false;
  if (gpa % PAGE_SIZE !== 0 || size % PAGE_SIZE !== 0) return false;
  // size == 0 and wrap-around both make `gpa + size <= gpa` true.
  return size > 0 && gpa + size < U64_LIMIT;
}

/** Index of the leaf covering `gfn` in gfn-sorted, non-overlapping `leaves`, or -1. */
export function findLeaf(leaves: readonly Leaf[], gfn: number): number {
  let lo = 0;
  let hi = leaves.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const l = leaves[mid]!;
    if (gfn < l.gfn) hi = mid - 1;
    else if (gfn >= l.gfn + pagesOf(l.size)) lo = mid + 1;
    else return mid;
  }
  return -1;
}

/**
 * Walk the leaves covering `[start, end)` from `start`, in order: the first
 * gfn not covered (or `end`), after at most `maxLeaves` leaves (then the gfn
 * reached). Sorted, disjoint leaves make each step the next index.
 */
export function coveredUpTo(leaves: readonly Leaf[], start: number, end: number, maxLeaves = Infinity): { gfn: number; count: number } {
  let g = start;
  let count = 0;
  let i = findLeaf(leaves, g);
  while (g < end && count < maxLeaves && i >= 0 && i < leaves.length) {
    const l = leaves[i]!;
    if (l.gfn > g || l.gfn + pagesOf(l.size) <= g) break;
    g = l.gfn + pagesOf(l.size);
    count++;
    i++;
  }
  return { gfn: Math.min(g, Math.max(end, start)), count };
}

/** Index of the first leaf ending after `gfn` (the first that may overlap a range starting at gfn). */
export function firstLeafEndingAfter(leaves: readonly Leaf[], gfn: number): number {
  let lo = 0;
  let hi = leaves.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const l = leaves[mid]!;
    if (l.gfn + pagesOf(l.size) <= gfn) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The leaves overlapping `[start, end)`, in order. */
export function leavesIn(leaves: readonly Leaf[], start: number, end: number): Leaf[] {
  const out: Leaf[] = [];
  for (let i = firstLeafEndingAfter(leaves, start); i < leaves.length; i++) {
    const l = leaves[i]!;
    if (l.gfn >= end) break;
    out.push(l);
  }
  return out;
}

export function hex(n: number): string {
  return '0x' + n.toString(16);
}
