/**
 * stage2-dirty: resolving a configuration, and the geometry both sides
 * share — where each memslot lives in host memory, which pages a block can
 * cover, the 64-page granule of KVM_CLEAR_DIRTY_LOG.
 */
import type { InputError, Json, Resolved } from '../../harness/domain';
import { decode } from '../../harness/codec';
import {
  ConfigInput,
  DEFAULT_BLOCK_PAGES,
  DEFAULT_MEMSLOT,
  DEFAULT_USER_MEM_SLOTS,
  KVM_MEM_MAX_NR_PAGES,
  MAX_GFN_END,
  MAX_ROOT_ENTRIES,
  MAX_SLOT_PAGES,
  type Backing,
  type Config,
  type Memslot,
  type Op,
} from './types';

/**
 * KVM_CLEAR_DIRTY_LOG works on the kernel's `unsigned long` words of the
 * bitmap: `first` must be a multiple of 64 and so must `num`, unless the
 * range ends exactly at the end of the slot (api.rst, KVM_CLEAR_DIRTY_LOG;
 * upstream fix "KVM: fix KVM_CLEAR_DIRTY_LOG for memory slots of unaligned size").
 */
export const DIRTY_LOG_GRANULE = 64;

export function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

/** Decode a config input, fill defaults, and check what types cannot. */
export function resolveConfig(input: unknown): Resolved<Config> {
  const d = decode(ConfigInput, input ?? {}, '$.config');
  if (!d.ok) return d;
  const v = d.value;
  const errors: InputError[] = [];
  const blockPages = v.blockPages ?? DEFAULT_BLOCK_PAGES;
  if (!isPowerOfTwo(blockPages)) {
    errors.push({ path: '$.config.blockPages', message: `blockPages must be a power of two (a block covers an aligned run of pages), got ${blockPages}` });
  }
  const manualProtect = v.manualProtect ?? false;
  const initiallySet = v.initiallySet ?? false;
  if (initiallySet && !manualProtect) {
    errors.push({
      path: '$.config.initiallySet',
      message:
        'initiallySet (KVM_DIRTY_LOG_INITIALLY_SET) needs manualProtect (KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE): it cannot be set on its own',
    });
  }
  const memslots: Memslot[] = (v.memslots ?? [DEFAULT_MEMSLOT]).map((m) => ({
    id: m.id,
    baseGfn: m.baseGfn,
    npages: m.npages,
    backing: m.backing ?? 'thp',
    readonly: m.readonly ?? false,
  }));
  const userMemSlots = v.userMemSlots ?? DEFAULT_USER_MEM_SLOTS;
  const ids = new Map<number, number>();
  memslots.forEach((m, i) => {
    const at = `$.config.memslots[${i}]`;
    if (m.id >= userMemSlots) errors.push({ path: `${at}.id`, message: `memslot id ${m.id} is not below userMemSlots (${userMemSlots}, KVM_USER_MEM_SLOTS)` });
    const prev = ids.get(m.id);
    if (prev !== undefined) errors.push({ path: `${at}.id`, message: `memslot id ${m.id} is already used by memslots[${prev}]` });
    else ids.set(m.id, i);
    if (m.baseGfn + m.npages > MAX_GFN_END) {
      errors.push({ path: `${at}.npages`, message: `the memslot ends at gfn ${m.baseGfn + m.npages}, beyond the 48-bit IPA space (${MAX_GFN_END} pages)` });
    }
    for (let j = 0; j < i; j++) {
      const o = memslots[j]!;
      if (m.baseGfn < o.baseGfn + o.npages && o.baseGfn < m.baseGfn + m.npages) {
        errors.push({
          path: `${at}.baseGfn`,
          message: `memslot ${m.id} (gfn ${m.baseGfn}..${m.baseGfn + m.npages - 1}) overlaps memslots[${j}] (gfn ${o.baseGfn}..${o.baseGfn + o.npages - 1})`,
        });
        break;
      }
    }
  });
  if (errors.length === 0) {
    const end = memslots.reduce((e, m) => Math.max(e, m.baseGfn + m.npages), 0);
    const rootEntries = Math.ceil(end / (blockPages * blockPages));
    if (rootEntries > MAX_ROOT_ENTRIES) {
      errors.push({
        path: '$.config.memslots',
        message: `the memslots reach gfn ${end}: with blockPages ${blockPages} the stage-2 root would need ${rootEntries} entries (at most ${MAX_ROOT_ENTRIES})`,
      });
    }
  }
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, value: { memslots, blockPages, manualProtect, initiallySet, userMemSlots } };
}

/** The input that reproduces a config (every field spelled out). */
export function encodeConfig(c: Config): Json {
  return {
    memslots: c.memslots.map((m) => ({ id: m.id, baseGfn: m.baseGfn, npages: m.npages, backing: m.backing, readonly: m.readonly })),
    blockPages: c.blockPages,
    manualProtect: c.manualProtect,
    initiallySet: c.initiallySet,
    userMemSlots: c.userMemSlots,
  };
}

/**
 * Host layout: the slots are laid out one after another in host frames, in
 * config order; each starts at a frame congruent to its `baseGfn` modulo
 * `blockPages`, so wherever a guest block fits in the slot the host frames
 * under it form an aligned huge page ("the host maps the slot with 2 MiB
 * pages where aligned"). Returns the host frame of each slot's first page.
 */
export function hostBases(c: Config): number[] {
  const out: number[] = [];
  let next = 0;
  for (const m of c.memslots) {
    const base = nextHostBase(next, m.baseGfn, c.blockPages);
    out.push(base);
    next = base + m.npages;
  }
  return out;
}

/**
 * Host frame for a slot created when host frames below `next` are taken:
 * the first frame at or after `next` congruent to `baseGfn` modulo
 * `blockPages`. A slot created at run time gets fresh host memory (new
 * frames, all zero), the way user space mmaps a new region for it.
 */
export function nextHostBase(next: number, baseGfn: number, bp: number): number {
  return Math.ceil(next / bp) * bp + (baseGfn % bp);
}

/**
 * Pages the stage-2 root can reach: MAX_ROOT_ENTRIES level-2 tables of
 * `bp * bp` pages each. A modelling limit below the 48-bit IPA space for
 * small blocks; `validateOp` refuses a region that would end beyond it.
 */
export function rootReach(bp: number): number {
  return Math.min(MAX_GFN_END, MAX_ROOT_ENTRIES * bp * bp);
}

/** Index (in `memslots`) of the slot holding `gfn`, or -1. */
export function slotIndexOf(c: Config, gfn: number): number {
  const s = c.memslots;
  for (let i = 0; i < s.length; i++) {
    const m = s[i]!;
    if (gfn >= m.baseGfn && gfn < m.baseGfn + m.npages) return i;
  }
  return -1;
}

/** Index of the slot with id `id`, or -1. */
export function slotIndexById(c: Config, id: number): number {
  const s = c.memslots;
  for (let i = 0; i < s.length; i++) if (s[i]!.id === id) return i;
  return -1;
}

/**
 * Whether a fault on `gfn` may be mapped with a block: the slot is backed
 * by huge pages (THP or hugetlbfs) and the whole aligned block around `gfn`
 * lies inside the slot (upstream: fault_supports_stage2_huge_mapping). This
 * is the static half of the rule; the other half is "and the slot is not
 * being logged" (seed 002, user_mem_abort: `!logging_active`).
 */
export function blockEligible(m: SlotGeom, gfn: number, blockPages: number): boolean {
  if (m.backing === '4k') return false;
  // fault_supports_stage2_huge_mapping: the guest and host offsets inside a
  // block must agree. Always so for a slot where it was created; a moved
  // slot keeps its host memory and may lose it.
  if ((m.hostBase - m.baseGfn) % blockPages !== 0) return false;
  const start = gfn - (gfn % blockPages);
  return start >= m.baseGfn && start + blockPages <= m.baseGfn + m.npages;
}

/** What blockEligible needs to know of a slot: where it is, its backing, its host frames. */
export interface SlotGeom {
  readonly baseGfn: number;
  readonly npages: number;
  readonly backing: Backing;
  readonly hostBase: number;
}

/**
 * Op arguments the page gives no result for (a case file naming one is
 * invalid, exit 2):
 * - clearDirtyLog `bits` must be strictly increasing and each below `num`
 *   (the user bitmap covers the `num` pages of the range);
 * - setUserMemoryRegion with more than MAX_SLOT_PAGES pages (up to
 *   KVM_MEM_MAX_NR_PAGES, which upstream accepts) or ending beyond the
 *   root's reach inside the IPA space: the model does not go that far.
 */
export function validateOp(op: Op, config: Config): InputError[] {
  const errors: InputError[] = [];
  if (op.op === 'clearDirtyLog' && op.args.bits !== undefined) {
    const { bits, num } = op.args;
    for (let i = 0; i < bits.length; i++) {
      const b = bits[i]!;
      if (b >= num) {
        errors.push({ path: `$.args.bits[${i}]`, message: `bit ${b} is outside the ${num} pages of the range (bit i stands for page first + i)` });
        break;
      }
      if (i > 0 && b <= bits[i - 1]!) {
        errors.push({ path: `$.args.bits[${i}]`, message: `bits must be strictly increasing (${bits[i - 1]} then ${b})` });
        break;
      }
    }
  }
  if (op.op === 'setUserMemoryRegion') {
    const { npages, baseGfn } = op.args;
    if (npages > MAX_SLOT_PAGES && npages <= KVM_MEM_MAX_NR_PAGES) {
      errors.push({ path: '$.args.npages', message: `${npages} pages: hvspec models slots of at most ${MAX_SLOT_PAGES} pages (upstream takes up to ${KVM_MEM_MAX_NR_PAGES})` });
    } else if (npages <= MAX_SLOT_PAGES && baseGfn + npages > rootReach(config.blockPages) && baseGfn + npages <= MAX_GFN_END) {
      errors.push({
        path: '$.args.baseGfn',
        message: `the region ends at gfn ${baseGfn + npages}: with blockPages ${config.blockPages} the modelled stage-2 root reaches gfn ${rootReach(config.blockPages)}`,
      });
    }
  }
  return errors;
}

/**
 * The KVM_CLEAR_DIRTY_LOG range rule (kvm_clear_dirty_log_protect): `first`
 * within the slot and a multiple of 64; `num` within what is left and a
 * multiple of 64 unless `first + num` is the slot's end.
 */
export function clearRangeValid(npages: number, first: number, num: number): boolean {
  if (first % DIRTY_LOG_GRANULE !== 0) return false;
  if (first > npages || num > npages - first) return false;
  if (num < npages - first && num % DIRTY_LOG_GRANULE !== 0) return false;
  return true;
}
