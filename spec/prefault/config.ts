/**
 * Configuration: decoding with defaults, and the semantic checks a codec
 * cannot express (overlapping memslots, slots beyond the GFN space or the
 * memory budget, private memory on a VM type that has none). The initial
 * memslots obey the same rules as a run-time KVM_SET_USER_MEMORY_REGION2
 * creation; a config that breaks one is refused at decode time (exit 2).
 */
import type { InputError, Json, Resolved } from '../../harness/domain';
import { decode } from '../../harness/codec';
import {
  ConfigInput,
  GFN_LIMIT,
  KVM_MEM_MAX_NR_PAGES,
  MAX_SLOT_ID,
  MEMSLOT_PAGES_BUDGET,
  isConfidential,
  type Memslot,
  type PrefaultConfig,
  type VmType,
} from './types';

/** Default: one 1 GiB slot at gfn 0 backed by 2 MiB host pages (the domain page's default). */
export const DEFAULT_MEMSLOTS: readonly { id: number; baseGfn: number; npages: number; backing: Memslot['backing']; guestMemfd?: boolean }[] = [{ id: 0, baseGfn: 0, npages: 262144, backing: '2m' }];
export const MAX_MEMSLOTS = MAX_SLOT_ID + 1;

/** VM types with private memory get guest_memfd memslots unless a slot says otherwise. */
export function defaultGuestMemfd(vmType: VmType): boolean {
  return vmType !== 'default';
}

export function resolveConfig(input: unknown): Resolved<PrefaultConfig> {
  const d = decode(ConfigInput, input ?? {}, '$.config');
  if (!d.ok) return d;
  const c = d.value;
  const vmType = c.vmType ?? 'default';
  const errors: InputError[] = [];
  const slots: Memslot[] = (c.memslots ?? DEFAULT_MEMSLOTS).map((s) => ({
    id: s.id,
    baseGfn: s.baseGfn,
    npages: s.npages,
    backing: s.backing ?? '2m',
    guestMemfd: s.guestMemfd ?? defaultGuestMemfd(vmType),
  }));
  if (c.memslots !== undefined && slots.length === 0) {
    errors.push({ path: '$.config.memslots', message: 'at least one memslot is needed' });
  }
  if (slots.length > MAX_MEMSLOTS) {
    errors.push({ path: '$.config.memslots', message: `at most ${MAX_MEMSLOTS} memslots (hvspec bound: slot ids 0..${MAX_SLOT_ID})` });
  }
  const ids = new Map<number, number>();
  let total = 0;
  slots.forEach((s, i) => {
    if (s.id > MAX_SLOT_ID) errors.push({ path: `$.config.memslots[${i}].id`, message: `slot id ${s.id} is above hvspec's bound of ${MAX_SLOT_ID}` });
    if (s.npages === 0) errors.push({ path: `$.config.memslots[${i}].npages`, message: 'a memslot has at least one page' });
    else if (s.npages > KVM_MEM_MAX_NR_PAGES) {
      errors.push({ path: `$.config.memslots[${i}].npages`, message: `${s.npages} pages is above KVM_MEM_MAX_NR_PAGES (2^31 - 1)` });
    } else if (s.baseGfn + s.npages > GFN_LIMIT) {
      errors.push({
        path: `$.config.memslots[${i}].npages`,
        message: `memslot ends at gfn ${s.baseGfn + s.npages}, beyond the 48-bit guest-physical space (gfn ${GFN_LIMIT})`,
      });
    }
    total += s.npages;
    const prev = ids.get(s.id);
    if (prev !== undefined) {
      errors.push({ path: `$.config.memslots[${i}].id`, message: `duplicate memslot id ${s.id} (also memslots[${prev}])` });
    } else ids.set(s.id, i);
  });
  if (total > MEMSLOT_PAGES_BUDGET) {
    errors.push({ path: '$.config.memslots', message: `the memslots hold ${total} pages, above hvspec's budget of 2^22 pages (16 GiB) per VM` });
  }
  const order = slots.map((s, i) => ({ s, i })).sort((a, b) => a.s.baseGfn - b.s.baseGfn);
  // Sorted by baseGfn, a slot can only overlap one that starts before its end: compare neighbours.
  for (let k = 1; k < order.length; k++) {
    const a = order[k]!;
    for (let j = k - 1; j >= 0; j--) {
      const b = order[j]!;
      if (b.s.baseGfn + b.s.npages <= a.s.baseGfn) {
        if (j === k - 1) break;
        continue;
      }
      errors.push({
        path: `$.config.memslots[${Math.max(a.i, b.i)}].baseGfn`,
        message: `memslot ${a.s.id} [${a.s.baseGfn}, ${a.s.baseGfn + a.s.npages}) overlaps memslot ${b.s.id} [${b.s.baseGfn}, ${b.s.baseGfn + b.s.npages})`,
      });
      break;
    }
  }
  const privateByDefault = c.privateByDefault ?? isConfidential(vmType);
  if (privateByDefault && vmType === 'default') {
    errors.push({ path: '$.config.privateByDefault', message: 'a default VM has no private memory (use sw-protected, snp or tdx)' });
  }
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, value: { vmType, memslots: order.map((o) => o.s), privateByDefault } };
}

export function encodeConfig(c: PrefaultConfig): Json {
  return {
    vmType: c.vmType,
    memslots: c.memslots.map((s) => ({ id: s.id, baseGfn: s.baseGfn, npages: s.npages, backing: s.backing, guestMemfd: s.guestMemfd })),
    privateByDefault: c.privateByDefault,
  };
}
