/**
 * The seven invariants of the `prefault` domain, each a predicate on one View
 * (plus the static config). Per-call rules read the ghost `last` record the
 * systems keep in their View (request, result, leaves before the op, length
 * of the measurement before the op).
 *
 * Every check is linear in the View (leaves, attribute runs, measurement),
 * with binary searches into the sorted leaf and attribute lists.
 */
import type { Invariant } from '../../harness/domain';
import {
  GFN_LIMIT,
  KVM_MEM_MAX_NR_PAGES,
  KVM_USER_MEM_SLOTS,
  PAGE_SIZE,
  coveredUpTo,
  findRun,
  findSlot,
  privateIn,
  findLeaf,
  hex,
  isConfidential,
  firstLeafEndingAfter,
  leavesIn,
  levelOf,
  maxLeafLevel,
  pagesOf,
  preFaultArgsValid,
  reachOf,
  type GhostResult,
  type Leaf,
  type PrefaultConfig,
  type Scope,
  type View,
} from './types';

const SEED = 'seed 003_af5d94ca23cb5f06.txt';
const API = 'Documentation/virt/kvm/api.rst, 4.143 KVM_PRE_FAULT_MEMORY';
const GMEM = 'virt/kvm/guest_memfd.c';

/**
 * The leaves a scoped check looks at: those overlapping the scope, plus one
 * neighbour on each side (for the pairwise `no-alias` check); all leaves
 * without a scope.
 */
function scoped(leaves: readonly Leaf[], scope: Scope | undefined, pad = 0): readonly Leaf[] {
  if (scope === undefined) return leaves;
  if (scope.start >= scope.end) return [];
  const from = Math.max(0, firstLeafEndingAfter(leaves, scope.start) - pad);
  let to = from;
  while (to < leaves.length && leaves[to]!.gfn < scope.end) to++;
  return leaves.slice(from, Math.min(leaves.length, to + pad));
}

/**
 * The added pages as a set, kept per measurement array and extended with what
 * was appended since the last look: both systems hand out their own
 * append-only list in the live View, so this costs the pages an op added, not
 * the whole image (a fresh array from `view()` gets its own entry).
 */
interface AddedInfo {
  readonly set: Set<number>;
  n: number;
  dup: boolean;
}
const addedSets = new WeakMap<readonly number[], AddedInfo>();
function addedInfo(measurement: readonly number[]): AddedInfo {
  let e = addedSets.get(measurement);
  if (e === undefined || e.n > measurement.length) {
    e = { set: new Set<number>(), n: 0, dup: false };
    addedSets.set(measurement, e);
  }
  for (; e.n < measurement.length; e.n++) {
    const g = measurement[e.n]!;
    if (e.set.has(g)) e.dup = true;
    else e.set.add(g);
  }
  return e;
}
function addedSet(measurement: readonly number[]): Set<number> {
  return addedInfo(measurement).set;
}

/**
 * Whether gfn was added by populate. The pages the last populate added are
 * checked first, in O(1) (they are consecutive from its first gfn, which
 * `measure-once` checks); anything else falls back to the memoized set.
 */
function wasAdded(view: View, g: number): boolean {
  const last = view.last;
  if (last !== null && last.op === 'populate' && last.gfn !== null) {
    const i = last.measuredBefore + (g - last.gfn);
    if (g >= last.gfn && i < view.measurement.length && view.measurement[i] === g) return true;
  }
  return addedSet(view.measurement).has(g);
}

function leafName(l: Leaf): string {
  return `${l.size} leaf at gfn ${hex(l.gfn)}`;
}

// ---------------------------------------------------------------------------

export const exactRange: Invariant<PrefaultConfig, View, Scope> = {
  id: 'exact-range',
  title: 'Exact ranges for SNP/TDX: the launch image is what was asked for, and only TDX maps it',
  statement:
    'Before a confidential VM is finalized, an SNP VM maps nothing (LAUNCH_UPDATE installs no NPT entry) and a TDX VM maps exactly pages of its launch image, each a private 4 KiB leaf. A populate call adds exactly the pages it reports done (SNP: added = the pages its returned range moved past; TDX: mapped = added, every page it added is mapped); SNP reports a failure on the first page as EIO, or EINVAL when that page is outside a guest_memfd slot.',
  source: `${SEED}: "We'd like to map exact gpa range for SNP or TDX case. We don't want to map zero at around range"; arch/x86/kvm/svm/sev.c snp_launch_update and sev_gmem_post_populate (rmp_make_private at 4K, no NPT mapping; count < 0 -> EIO); ${GMEM} kvm_gmem_populate ("return ret && !i ? ret : i"); arch/x86/kvm/vmx/tdx.c tdx_vcpu_init_mem_region and tdx_gmem_post_populate (kvm_tdp_map_page, then TDH.MEM.PAGE.ADD); ${API}: pre-fault only after finalize.`,
  check(view, config, scope) {
    const confidential = isConfidential(config.vmType);
    if (confidential && !view.finalized) {
      for (const l of scoped(view.leaves, scope)) {
        if (config.vmType === 'snp') return `the ${leafName(l)} is mapped before LAUNCH_FINISH, but SNP's LAUNCH_UPDATE maps nothing and pre-faults are refused until then.`;
        if (l.size !== '4k' || !l.private) return `the ${leafName(l)} is mapped before finalize, where only private 4k leaves of added pages may be.`;
        if (!wasAdded(view, l.gfn)) return `gfn ${hex(l.gfn)} is mapped before finalize but was never added by populate.`;
      }
    }
    const last = view.last;
    const p = last?.populate ?? null;
    if (last === null || p === null || !confidential) return null;
    const added = view.measurement.length - last.measuredBefore;
    const moved = (p.resGpa - p.gpa) / PAGE_SIZE;
    const name = `populate(gpa ${hex(p.gpa)}, ${p.npages} pages)`;
    if (p.ok) {
      if (p.resGpa + p.resNpages * PAGE_SIZE !== p.gpa + p.npages * PAGE_SIZE) return `${name} returned gpa ${hex(p.resGpa)} with ${p.resNpages} pages left, which moves the end of the range.`;
      if (moved <= 0) return `${name} succeeded without adding a page.`;
    }
    const want = config.vmType === 'snp' ? (p.ok ? moved : 0) : p.ok ? p.npages : moved;
    if (added !== want) return `${name} added ${added} page(s) to the launch image but its result accounts for ${want}.`;
    if (config.vmType === 'snp' && !p.ok && p.error !== 'EIO' && p.error !== 'EINVAL') {
      return `${name} failed with ${p.error}; SNP reports an error before the first page as EIO (EINVAL only for a first page outside a guest_memfd slot).`;
    }
    if (config.vmType === 'tdx') {
      for (let i = last.measuredBefore; i < view.measurement.length; i++) {
        const g = view.measurement[i]!;
        if (findLeaf(view.leaves, g) < 0) return `TDX populate added gfn ${hex(g)} but left it unmapped.`;
      }
    }
    return null;
  },
  exercised(view, config) {
    if (!isConfidential(config.vmType)) return false;
    return (!view.finalized && (view.leaves.length > 0 || view.last?.op === 'preFault')) || (view.last?.populate ?? null) !== null;
  },
};

// ---------------------------------------------------------------------------

export const measureOnce: Invariant<PrefaultConfig, View, Scope> = {
  id: 'measure-once',
  title: 'Every page is measured at most once, in populate order',
  statement:
    'Each page appears in the launch image (the `measurement` query: membership in order, not a digest) at most once, and only populate extends it, with the pages of the call in ascending order from its first page; preFault, guest faults and repeated calls never add to it.',
  source: `${SEED}: "For SNP or TDX, we map page to GPA, it's one time operation. It updates measurement." and "the following mapping of GPA2 fails"; commit 9aed7a6c0b59 (api.rst): KVM_PRE_FAULT_MEMORY performs no CoCo operation (no TDH.MEM.PAGE.ADD / TDH.MR.EXTEND).`,
  check(view) {
    const last = view.last;
    const m = view.measurement;
    // Duplicates are found as the set of added pages is extended with what this op appended.
    const dup = addedInfo(m).dup;
    if (dup) {
      const seen = new Set<number>();
      for (const g of view.measurement) {
        if (seen.has(g)) return `gfn ${hex(g)} is measured twice.`;
        seen.add(g);
      }
    }
    if (last === null) return null;
    if (view.measurement.length < last.measuredBefore) return `${last.op} removed pages from the measurement.`;
    if (last.op !== 'populate') {
      if (view.measurement.length !== last.measuredBefore) {
        return `${last.op} measured ${view.measurement.length - last.measuredBefore} page(s) starting at gfn ${hex(view.measurement[last.measuredBefore]!)}; only populate measures.`;
      }
      return null;
    }
    for (let i = last.measuredBefore; i < view.measurement.length; i++) {
      const want = (last.gfn ?? NaN) + (i - last.measuredBefore);
      if (view.measurement[i] !== want) {
        return `populate measured gfn ${hex(view.measurement[i]!)} where the next page of the call is gfn ${hex(want)}.`;
      }
    }
    return null;
  },
  exercised(view) {
    return view.measurement.length > 0;
  },
};

// ---------------------------------------------------------------------------

export const leafSound: Invariant<PrefaultConfig, View, Scope> = {
  id: 'leaf-sound',
  title: 'Every leaf obeys the leaf-choice rule',
  statement:
    'Every leaf of level L is L-aligned, lies inside one live memslot, and covers pages of one private/shared attribute (the one it maps). A private leaf is 4 KiB (guest_memfd hands out order-0 folios) and its slot has guest_memfd; a shared leaf is no larger than the slot’s host backing page.',
  source: `${SEED}: the RFC's IS_ALIGNED(base_gfn, KVM_PAGES_PER_HPAGE(level)) level choice; ${GMEM} __kvm_gmem_get_pfn ("*max_order = 0"); arch/x86/kvm/mmu/mmu.c kvm_mmu_max_mapping_level / hugepage_has_attrs (KVM_LPAGE_MIXED_FLAG), kvm_faultin_pfn_private.`,
  check(view, _config, scope) {
    const leaves = scoped(view.leaves, scope);
    const slots = view.memslots;
    const runs = view.attributes;
    // Leaves, slots and attribute runs are all in gfn order: walk them together.
    let si = 0;
    let ri = leaves.length > 0 ? Math.max(0, findRun(runs, leaves[0]!.gfn)) : 0;
    for (let li = 0; li < leaves.length; li++) {
      const l = leaves[li]!;
      const level = levelOf(l.size);
      const n = pagesOf(l.size);
      const end = l.gfn + n;
      if (l.gfn % n !== 0) return `the ${leafName(l)} is not ${l.size}-aligned.`;
      while (si < slots.length && slots[si]!.baseGfn + slots[si]!.npages <= l.gfn) si++;
      const s = slots[si];
      if (s === undefined || s.baseGfn > l.gfn) return `the ${leafName(l)} maps a page in no memslot.`;
      if (end > s.baseGfn + s.npages) {
        return `the ${leafName(l)} crosses the end of memslot ${s.id} at gfn ${hex(s.baseGfn + s.npages)}.`;
      }
      if (l.private) {
        if (level > 1) return `the private ${leafName(l)} is larger than 4k, but guest_memfd memory is mapped at 4k only (max_order 0).`;
        if (!s.guestMemfd) return `the ${leafName(l)} maps private memory from memslot ${s.id}, which has no guest_memfd.`;
      } else if (level > levelOf(s.backing)) {
        return `the ${leafName(l)} is larger than memslot ${s.id}'s ${s.backing} host backing.`;
      }
      while (ri < runs.length && runs[ri]!.gfn + runs[ri]!.npages <= l.gfn) ri++;
      if (ri >= runs.length || runs[ri]!.gfn > l.gfn) return `the ${leafName(l)} covers gfn ${hex(l.gfn)}, which has no attribute.`;
      for (let k = ri; k < runs.length; k++) {
        const r = runs[k]!;
        if (r.gfn >= end) break;
        if (r.private !== l.private) {
          const g = Math.max(r.gfn, l.gfn);
          return `the ${leafName(l)} maps ${l.private ? 'private' : 'shared'} memory over gfn ${hex(g)}, which is ${r.private ? 'private' : 'shared'}.`;
        }
      }
    }
    return null;
  },
  exercised(view, _config, scope) {
    return scoped(view.leaves, scope).length > 0;
  },
};

// ---------------------------------------------------------------------------

/**
 * Whether a fault at gfn can map it: a shared gfn needs a memslot, a private
 * one a guest_memfd memslot. Else the pre-fault stops there with ENOENT
 * (shared: RET_PF_EMULATE) or EFAULT (private: kvm_handle_noslot_fault,
 * kvm_faultin_pfn_private).
 */
export function faultError(view: View, gfn: number): 'ENOENT' | 'EFAULT' | null {
  const priv = gfn < GFN_LIMIT && privateIn(view.attributes, gfn);
  const i = gfn < GFN_LIMIT ? findSlot(view.memslots, gfn) : -1;
  if (priv && (i < 0 || !view.memslots[i]!.guestMemfd)) return 'EFAULT';
  return i < 0 ? 'ENOENT' : null;
}

/**
 * The result KVM_PRE_FAULT_MEMORY must return for `last.request`, given the
 * leaves after the call; `stop` is the page where the walk stopped short of
 * the end without a signal (null otherwise), which a fault must be unable to map.
 */
export function expectedPreFault(view: View, config: PrefaultConfig): { result: GhostResult; chunks: number; stop: number | null } | null {
  const last = view.last;
  if (last === null || last.request === null) return null;
  const { gpa, size, flags, signalAfter } = last.request;
  const fail = (error: string, stop: number | null = null) => ({ result: { ok: false, error, gpa, size }, chunks: 0, stop });
  if (!preFaultArgsValid(gpa, size, flags)) return fail('EINVAL');
  if (signalAfter === 0) return fail('EINTR');
  if (isConfidential(config.vmType) && !view.finalized) return fail('EOPNOTSUPP');
  const end = gpa + size;
  // Chunk k maps the leaf covering gpa_k and advances to min(end, leafEnd): walk the
  // leaves after the call (at most signalAfter of them); a gap is a page in no memslot.
  const walk = coveredUpTo(view.leaves, gpa / PAGE_SIZE, Math.ceil(end / PAGE_SIZE), signalAfter ?? Infinity);
  const g = Math.min(end, walk.gfn * PAGE_SIZE);
  const chunks = walk.count;
  const stop = g < end && chunks < (signalAfter ?? Infinity) ? g / PAGE_SIZE : null;
  if (chunks === 0) return fail(faultError(view, gpa / PAGE_SIZE) ?? 'ENOENT', stop);
  return { result: { ok: true, error: null, gpa: g, size: end - g }, chunks, stop };
}

export const progressExact: Invariant<PrefaultConfig, View, Scope> = {
  id: 'progress-exact',
  title: 'preFault reports exactly the range it processed',
  statement:
    'After preFault, gpa + size is unchanged, gpa only grew and stays page aligned, every page of the processed part is mapped, and the call advanced chunk by chunk by min(size, leafEnd - gpa) from the leaf covering gpa; it stops early only at a page a fault cannot map (shared outside memslots: ENOENT; private outside guest_memfd memslots: EFAULT) or at a signal; it succeeds iff at least one chunk was processed, else the error keeps the range as given.',
  source: `${API}: "When the ioctl returns, the input values are updated to point to the remaining range" and "Returns: 0 if at least one page is processed"; virt/kvm/kvm_main.c kvm_vcpu_pre_fault_memory; arch/x86/kvm/mmu/mmu.c kvm_arch_vcpu_pre_fault_memory ("return min(range->size, end - range->gpa)"), kvm_handle_noslot_fault (private: -EFAULT), kvm_tdp_map_page (RET_PF_EMULATE: -ENOENT).`,
  check(view, config) {
    const last = view.last;
    if (last === null || last.request === null || last.result === null) return null;
    const req = last.request;
    const res = last.result;
    const name = (): string => `preFault(gpa ${hex(req.gpa)}, size ${hex(req.size)})`;
    if (!res.ok) {
      if (res.gpa !== req.gpa || res.size !== req.size) return `${name()} failed with ${res.error} but changed the range to gpa ${hex(res.gpa)}, size ${hex(res.size)}.`;
    } else {
      if (res.gpa + res.size !== req.gpa + req.size) return `${name()} returned gpa ${hex(res.gpa)} + size ${hex(res.size)}, which moves the end of the range.`;
      if (res.size < 0) return `${name()} returned a negative size (${res.size}): it counted bytes beyond the request, up to gpa ${hex(res.gpa)}.`;
      if (res.gpa <= req.gpa) return `${name()} succeeded without processing a page (returned gpa ${hex(res.gpa)}, size ${hex(res.size)}).`;
      if (res.gpa % PAGE_SIZE !== 0) return `${name()} returned unaligned gpa ${hex(res.gpa)}.`;
      const done = Math.ceil(res.gpa / PAGE_SIZE);
      const hole = coveredUpTo(view.leaves, req.gpa / PAGE_SIZE, done).gfn;
      if (hole < done) return `${name()} reports gfn ${hex(hole)} as processed but it is not mapped.`;
    }
    const exp = expectedPreFault(view, config)!;
    if (exp.stop !== null && faultError(view, exp.stop) === null) {
      return `${name()} stopped at gfn ${hex(exp.stop)}, which is in a memslot a fault can map it from.`;
    }
    const want = exp.result;
    if (want.ok !== res.ok || want.gpa !== res.gpa || want.size !== res.size || (!want.ok && want.error !== res.error)) {
      const got = res.ok ? `gpa ${hex(res.gpa)}, size ${hex(res.size)}` : res.error;
      const exp = want.ok ? `gpa ${hex(want.gpa)}, size ${hex(want.size)}` : want.error;
      return `${name()} returned ${got} but its chunks (leaf covering gpa, advance min(size, leafEnd - gpa)) give ${exp}.`;
    }
    return null;
  },
  exercised(view) {
    return view.last !== null && view.last.request !== null;
  },
};

// ---------------------------------------------------------------------------

export const idempotent: Invariant<PrefaultConfig, View, Scope> = {
  id: 'idempotent',
  title: 'Pre-faulting mapped memory changes nothing it should not',
  statement:
    'A preFault or guest access never unmaps a page nor changes whether it maps private or shared memory; a leaf may only be replaced by a larger leaf that contains it; pre-faulting an already mapped range succeeds; a guest access to a mapped page changes nothing, and a successful one leaves its page mapped.',
  source: `${SEED}: "KVM_MAP_MEMORY on already mapped area potentially with large page: It succeeds. Not error."; upstream tdp_mmu map path replaces a smaller mapping with the huge leaf the fault's level allows.`,
  check(view, config) {
    const last = view.last;
    if (last === null || (last.op !== 'preFault' && last.op !== 'guestAccess')) return null;
    let i = last.before.length > 0 ? firstLeafEndingAfter(view.leaves, last.before[0]!.gfn) : 0;
    for (const b of last.before) {
      // The leaf now covering b.gfn: leaves and before are both in gfn order.
      while (i < view.leaves.length && view.leaves[i]!.gfn + pagesOf(view.leaves[i]!.size) <= b.gfn) i++;
      const a = view.leaves[i];
      if (a === undefined || a.gfn > b.gfn) return `${last.op} unmapped the ${leafName(b)}.`;
      if (a.gfn + pagesOf(a.size) < b.gfn + pagesOf(b.size)) {
        return `${last.op} replaced the ${leafName(b)} by the smaller ${leafName(a)}.`;
      }
      if (a.private !== b.private) return `${last.op} changed gfn ${hex(b.gfn)} from ${b.private ? 'private' : 'shared'} to ${a.private ? 'private' : 'shared'} memory.`;
    }
    if (last.op === 'guestAccess' && last.gfn !== null && last.result !== null && last.result.ok && findLeaf(view.leaves, last.gfn) < 0) {
      return `a guest access to gfn ${hex(last.gfn)} succeeded but left the page unmapped.`;
    }
    if (last.op === 'guestAccess' && last.gfn !== null && findLeaf(last.before, last.gfn) >= 0) {
      const [s, e] = reachOf(last.gfn, 1, maxLeafLevel(view.memslots));
      const after = leavesIn(view.leaves, s, e);
      const same =
        after.length === last.before.length &&
        after.every((l, k) => l.gfn === last.before[k]!.gfn && l.size === last.before[k]!.size && l.private === last.before[k]!.private);
      if (!same) return `a guest access to mapped gfn ${hex(last.gfn)} changed the mappings around it.`;
    }
    if (last.op === 'preFault' && last.request !== null && last.result !== null && !last.result.ok) {
      const { gpa, size, flags, signalAfter } = last.request;
      const allowed = !isConfidential(config.vmType) || view.finalized;
      if (preFaultArgsValid(gpa, size, flags) && signalAfter !== 0 && allowed) {
        const end = (gpa + size) / PAGE_SIZE;
        if (coveredUpTo(last.before, gpa / PAGE_SIZE, end).gfn >= end) return `preFault of the already mapped range at gpa ${hex(gpa)} failed with ${last.result.error}.`;
      }
    }
    return null;
  },
  exercised(view) {
    const last = view.last;
    if (last === null || (last.op !== 'preFault' && last.op !== 'guestAccess')) return false;
    return last.before.length > 0 || (last.op === 'guestAccess' && last.result !== null && last.result.ok);
  },
};

// ---------------------------------------------------------------------------

export const noAlias: Invariant<PrefaultConfig, View, Scope> = {
  id: 'no-alias',
  title: 'No two leaves overlap',
  statement: 'The leaves, in gfn order, are disjoint: a huge leaf that replaced smaller ones left none of them behind.',
  source: `${SEED}: "what if the requested region is already mapped with a larger page?" (Matlack); a TDP entry is either a leaf or points to a lower table, never both.`,
  check(view, _config, scope) {
    const leaves = scoped(view.leaves, scope, 1);
    for (let i = 1; i < leaves.length; i++) {
      const p = leaves[i - 1]!;
      const l = leaves[i]!;
      if (l.gfn < p.gfn) return `the ${leafName(l)} is listed after the ${leafName(p)} (leaves out of gfn order).`;
      if (l.gfn < p.gfn + pagesOf(p.size)) return `the ${leafName(l)} overlaps the ${leafName(p)}.`;
    }
    return null;
  },
  exercised(view, _config, scope) {
    return scoped(view.leaves, scope, 1).length > 1;
  },
};

// ---------------------------------------------------------------------------

export const memslotsSound: Invariant<PrefaultConfig, View, Scope> = {
  id: 'memslots-sound',
  title: 'The memslots are a valid KVM memslot table',
  statement:
    'The live memslots, in gfn order, are disjoint, have distinct ids below KVM_USER_MEM_SLOTS, and each holds 1 to KVM_MEM_MAX_NR_PAGES pages inside the guest-physical space: a creation or move onto another slot is EEXIST, a resize EINVAL.',
  source: 'virt/kvm/kvm_main.c kvm_set_memory_region (kvm_check_memslot_overlap: EEXIST; npages/userspace_addr change: EINVAL; KVM_MEM_MAX_NR_PAGES); Documentation/virt/kvm/api.rst 4.35 KVM_SET_USER_MEMORY_REGION ("it is not allowed to ... overlap"); checked on the live kernel (probe, see spec page).',
  check(view, _config, scope) {
    // Only setUserMemoryRegion changes the table: a scoped check after any other op has nothing new to see.
    if (scope !== undefined && view.last?.op !== 'setUserMemoryRegion') return null;
    const slots = view.memslots;
    const ids = new Set<number>();
    for (let i = 0; i < slots.length; i++) {
      const s = slots[i]!;
      if (ids.has(s.id)) return `memslot id ${s.id} appears twice.`;
      ids.add(s.id);
      if (s.id >= KVM_USER_MEM_SLOTS) return `memslot id ${s.id} is not below KVM_USER_MEM_SLOTS (${KVM_USER_MEM_SLOTS}).`;
      if (s.npages < 1 || s.npages > KVM_MEM_MAX_NR_PAGES) return `memslot ${s.id} has ${s.npages} pages.`;
      if (s.baseGfn + s.npages > GFN_LIMIT) return `memslot ${s.id} ends beyond the guest-physical space.`;
      const p = slots[i - 1];
      if (p !== undefined && p.baseGfn + p.npages > s.baseGfn) {
        return `memslot ${s.id} [${hex(s.baseGfn)}, ${hex(s.baseGfn + s.npages)}) overlaps memslot ${p.id} [${hex(p.baseGfn)}, ${hex(p.baseGfn + p.npages)}).`;
      }
    }
    return null;
  },
  exercised(view, _config, scope) {
    return scope === undefined ? view.memslots.length > 0 : view.last?.op === 'setUserMemoryRegion';
  },
};

export const INVARIANTS: readonly Invariant<PrefaultConfig, View, Scope>[] = [
  exactRange,
  measureOnce,
  leafSound,
  progressExact,
  idempotent,
  noAlias,
  memslotsSound,
];
