/**
 * stage2-dirty: the vocabulary. Configuration (memslots, block size,
 * KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 and KVM_DIRTY_LOG_INITIALLY_SET), the
 * operations and their argument codecs, the results, and the View that both
 * the model and the implementation produce. See README.md beside this file
 * for the rules in prose.
 */
import * as t from 'io-ts';
import { Int, Nat, PosInt, intRange, oneOf, strict, type OpOf } from '../../harness/codec';

export const DOMAIN_ID = 'stage2-dirty';

/** How the host backs a memslot: small pages, transparent huge pages, hugetlbfs. */
export const Backing = oneOf(['4k', 'thp', 'hugetlb'] as const, '"4k" | "thp" | "hugetlb"');
export type Backing = t.TypeOf<typeof Backing>;

/** Size of a stage-2 leaf as `mappingOf` reports it. */
export const MapSize = oneOf(['4k', '2m'] as const, '"4k" | "2m"');
export type MapSize = t.TypeOf<typeof MapSize>;

/**
 * KVM_USER_MEM_SLOTS on arm64: include/linux/kvm_host.h defines it as
 * KVM_MEM_SLOTS_NUM (SHRT_MAX = 32767) minus KVM_INTERNAL_MEM_SLOTS, and
 * arm64 defines no internal slots, so ids 0..32766 are user ids. x86 keeps 3
 * internal slots (arch/x86/include/asm/kvm_host.h), so its limit is 32764
 * (KVM_CAP_NR_MEMSLOTS answered 32764 on this project's x86 host). The
 * config field `userMemSlots` carries the limit; this is its default.
 */
export const DEFAULT_USER_MEM_SLOTS = 32767;
/** Largest memslot id a config may name (the id is a u16 below SHRT_MAX). */
export const MAX_SLOT_ID = 32767;
/** KVM_MEM_MAX_NR_PAGES: a region of more pages is EINVAL (include/linux/kvm_host.h, (1UL << 31) - 1). */
export const KVM_MEM_MAX_NR_PAGES = 2 ** 31 - 1;
/** 48-bit IPA space: 2^36 guest frames. */
export const MAX_GFN_END = 2 ** 36;
/** A memslot of at most 64 GiB, so host frames stay addressable and sparse. */
export const MAX_SLOT_PAGES = 2 ** 24;
/** The stage-2 root (level 1) is one table; we refuse configs that need more entries than this. */
export const MAX_ROOT_ENTRIES = 2 ** 16;

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/** One memslot as given in a config (backing and readonly optional). */
export const MemslotInput = strict(
  { id: intRange(0, MAX_SLOT_ID, `integer in [0, ${MAX_SLOT_ID}]`), baseGfn: Nat, npages: intRange(1, MAX_SLOT_PAGES, `integer in [1, ${MAX_SLOT_PAGES}]`) },
  { backing: Backing, readonly: t.boolean },
  'memslot { id, baseGfn, npages, backing?, readonly? }',
);

/** The configuration input: every field optional, no unknown fields. */
export const ConfigInput = strict(
  {},
  {
    memslots: t.array(MemslotInput, 'array of memslots'),
    blockPages: intRange(2, 512, 'power of two in [2, 512]'),
    manualProtect: t.boolean,
    initiallySet: t.boolean,
    userMemSlots: intRange(1, MAX_SLOT_ID, `integer in [1, ${MAX_SLOT_ID}]`),
  },
  'stage2-dirty config',
);
export type ConfigInput = t.TypeOf<typeof ConfigInput>;

export interface Memslot {
  readonly id: number;
  readonly baseGfn: number;
  readonly npages: number;
  readonly backing: Backing;
  readonly readonly: boolean;
}

export interface Config {
  /** The memslots present when the VM starts; setUserMemoryRegion changes them at run time. */
  readonly memslots: readonly Memslot[];
  /** Pages per level-2 block (512 on arm64 with 4 KiB granule: 2 MiB). */
  readonly blockPages: number;
  /** KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2: getDirtyLog does not re-protect; clearDirtyLog does. */
  readonly manualProtect: boolean;
  /** KVM_DIRTY_LOG_INITIALLY_SET: the bitmap starts all ones when logging is enabled. */
  readonly initiallySet: boolean;
  /** KVM_USER_MEM_SLOTS: a slot id at or above it is EINVAL in every memslot and dirty-log ioctl. */
  readonly userMemSlots: number;
}

export const DEFAULT_MEMSLOT: Memslot = { id: 0, baseGfn: 0, npages: 1024, backing: 'thp', readonly: false };
export const DEFAULT_BLOCK_PAGES = 512;

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

const GfnArgs = strict({ gfn: Nat });
const SlotArgs = strict({ slot: Nat });

export const opArgs = {
  /** A guest load from page `gfn`. */
  guestRead: GfnArgs,
  /** A guest store of `value` (default 0) to page `gfn`. */
  guestWrite: strict({ gfn: Nat }, { value: Int }),
  /** KVM_SET_USER_MEMORY_REGION adding KVM_MEM_LOG_DIRTY_PAGES. */
  enableDirtyLog: SlotArgs,
  /** KVM_SET_USER_MEMORY_REGION dropping KVM_MEM_LOG_DIRTY_PAGES. */
  disableDirtyLog: SlotArgs,
  /** KVM_GET_DIRTY_LOG. */
  getDirtyLog: SlotArgs,
  /**
   * KVM_CLEAR_DIRTY_LOG of pages `first .. first+num-1` (offsets in the
   * slot). `bits` is the user bitmap as a sorted list of bit indices, bit
   * `i` standing for slot page `first + i`; absent means all `num` bits set.
   */
  clearDirtyLog: strict({ slot: Nat, first: Nat, num: Nat }, { bits: t.array(Nat, 'sorted array of bit indices') }),
  /**
   * KVM_SET_USER_MEMORY_REGION: create (a free id), delete (`npages` 0),
   * change KVM_MEM_LOG_DIRTY_PAGES, or move (same id, same size, new base).
   * `backing` stands for the host memory behind `userspace_addr`.
   */
  setUserMemoryRegion: strict(
    { slot: Nat, baseGfn: Nat, npages: Nat },
    { logDirty: t.boolean, readonly: t.boolean, backing: Backing },
  ),
  /** An MMU-notifier invalidation of guest frames `gfn .. gfn+npages-1`. */
  unmapRange: strict({ gfn: Nat, npages: Nat }),
  /** Hardware drops whatever translation it cached for `gfn`. */
  tlbEvict: GfnArgs,
  /** Query: how the stage-2 table maps `gfn`. */
  mappingOf: GfnArgs,
} as const;

export type Op = OpOf<typeof opArgs>;
export type OpName = Op['op'];

// ---------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------

export const Errno = oneOf(['MMIO', 'EINVAL', 'ENOENT', 'EFAULT', 'EEXIST'] as const);
export type Errno = t.TypeOf<typeof Errno>;

const TrueLit = t.literal(true);
const FalseLit = t.literal(false);

export const ResultCodec = t.union(
  [
    strict({ ok: TrueLit }, {}, '{ ok: true }'),
    strict({ ok: TrueLit, value: Int }, {}, '{ ok: true, value }'),
    strict({ ok: TrueLit, dirty: t.array(Nat) }, {}, '{ ok: true, dirty }'),
    strict({ ok: TrueLit, mapped: FalseLit }, {}, '{ ok: true, mapped: false }'),
    strict({ ok: TrueLit, mapped: TrueLit, size: MapSize, writable: t.boolean }, {}, '{ ok: true, mapped: true, size, writable }'),
    strict({ ok: FalseLit, error: Errno }, {}, '{ ok: false, error }'),
  ],
  'stage2-dirty result',
);

export type Result =
  | { readonly ok: true }
  | { readonly ok: true; readonly value: number }
  | { readonly ok: true; readonly dirty: number[] }
  | { readonly ok: true; readonly mapped: false }
  | { readonly ok: true; readonly mapped: true; readonly size: MapSize; readonly writable: boolean }
  | { readonly ok: false; readonly error: Errno };

export const OK: Result = { ok: true };
export const MMIO: Result = { ok: false, error: 'MMIO' };
export const EINVAL: Result = { ok: false, error: 'EINVAL' };
export const ENOENT: Result = { ok: false, error: 'ENOENT' };
export const EFAULT: Result = { ok: false, error: 'EFAULT' };
export const EEXIST: Result = { ok: false, error: 'EEXIST' };

// ---------------------------------------------------------------------------
// View
// ---------------------------------------------------------------------------

/**
 * One memslot: its logging state and bitmap, plus the ghost state the
 * dirty-log invariants need (kept by each side at the level of guest
 * accesses, never by the MMU code under test):
 *   - `written`: pages written while the slot was logged, since the page's
 *     bit was last cleared (by a non-manual getDirtyLog, or clearDirtyLog);
 *   - `initial`: pages whose bit KVM_DIRTY_LOG_INITIALLY_SET set at enable
 *     time and that were not cleared since;
 *   - `kept`: only right after a clearDirtyLog, the pages whose bit was set
 *     before it and that the caller did not pass (they must still be set).
 * The lists are sorted guest frame numbers. Slots are listed by id, with
 * their current place (`baseGfn`, `npages`) and KVM_MEM_READONLY.
 */
export const SlotView = t.type({
  id: Nat,
  baseGfn: Nat,
  npages: Nat,
  readonly: t.boolean,
  logging: t.boolean,
  dirty: t.array(Nat),
  written: t.array(Nat),
  initial: t.array(Nat),
  kept: t.array(Nat),
});
export type SlotView = t.TypeOf<typeof SlotView>;

/**
 * A valid stage-2 leaf: a 4 KiB page at `gfn`, or (`size` "2m") a block of
 * `blockPages` pages starting at the aligned `gfn`, mapped to frames from
 * `pfn`. Sorted by `gfn`. (The model keeps a block as `blockPages` flat
 * entries marked as one block and lists it the same way.)
 */
export const MappingView = t.type({ gfn: Nat, pfn: Nat, writable: t.boolean, size: MapSize });
export type MappingView = t.TypeOf<typeof MappingView>;

/** A cached translation: `npages` pages from `gfn` to frames from `pfn` (1 for a page, blockPages for a block). */
export const TlbView = t.type({ gfn: Nat, npages: PosInt, pfn: Nat, writable: t.boolean });
export type TlbView = t.TypeOf<typeof TlbView>;

/**
 * A stage-2 table page (implementation only). `count` is the page's
 * reference count as the code keeps it; `valid` the valid entries counted
 * from the descriptors; `refs` how many table descriptors point at it;
 * `free` whether it is on the free list; `freedTwice` whether it was freed
 * while already free.
 */
export const TableView = t.type({
  id: Nat,
  level: intRange(1, 3),
  baseGfn: Nat,
  count: Int,
  valid: Nat,
  refs: Nat,
  free: t.boolean,
  freedTwice: t.boolean,
});
export type TableView = t.TypeOf<typeof TableView>;

/**
 * A page the guest wrote (ghost): the value it last wrote, what the host
 * frame backing the page holds, and what the current stage-2 mapping leads
 * to (`null` when unmapped).
 */
export const MemoryView = t.type({ gfn: Nat, expected: Int, host: Int, mapped: t.union([Int, t.null]) });
export type MemoryView = t.TypeOf<typeof MemoryView>;

export const ViewCodec = t.type({
  slots: t.array(SlotView),
  mappings: t.array(MappingView),
  tlb: t.array(TlbView),
  tables: t.array(TableView),
  memory: t.array(MemoryView),
  /** Ghost: block mappings installed by a fault while the target slot was logged. */
  blocksWhileLogging: Nat,
});
export type View = t.TypeOf<typeof ViewCodec>;
