/**
 * Configuration: decoding with defaults, and the semantic checks a codec
 * cannot express (overlapping memslots, slots beyond the GFN space, private
 * memory on a VM type that has none).
 */
import type { InputError, Json, Resolved } from '../../harness/domain';
import { decode } from '../../harness/codec';
import { ConfigInput, GFN_LIMIT, isConfidential, type Memslot, type PrefaultConfig } from './types';

/** Default: one 1 GiB slot at gfn 0 backed by 2 MiB host pages (the domain page's default). */
export const DEFAULT_MEMSLOTS: readonly Memslot[] = [{ id: 0, baseGfn: 0, npages: 262144, backing: '2m' }];
export const MAX_MEMSLOTS = 32;

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
  }));
  if (c.memslots !== undefined && slots.length === 0) {
    errors.push({ path: '$.config.memslots', message: 'at least one memslot is needed' });
  }
  if (slots.length > MAX_MEMSLOTS) {
    errors.push({ path: '$.config.memslots', message: `at most ${MAX_MEMSLOTS} memslots` });
  }
  const ids = new Map<number, number>();
  slots.forEach((s, i) => {
    if (s.npages === 0) errors.push({ path: `$.config.memslots[${i}].npages`, message: 'a memslot has at least one page' });
    if (s.baseGfn + s.npages > GFN_LIMIT) {
      errors.push({
        path: `$.config.memslots[${i}].npages`,
        message: `memslot ends at gfn ${s.baseGfn + s.npages}, beyond the 48-bit guest-physical space (gfn ${GFN_LIMIT})`,
      });
    }
    const prev = ids.get(s.id);
    if (prev !== undefined) {
      errors.push({ path: `$.config.memslots[${i}].id`, message: `duplicate memslot id ${s.id} (also memslots[${prev}])` });
    } else ids.set(s.id, i);
  });
  for (let i = 0; i < slots.length; i++) {
    for (let j = 0; j < i; j++) {
      const a = slots[i]!;
      const b = slots[j]!;
      if (a.baseGfn < b.baseGfn + b.npages && b.baseGfn < a.baseGfn + a.npages) {
        errors.push({
          path: `$.config.memslots[${i}].baseGfn`,
          message: `memslot ${a.id} [${a.baseGfn}, ${a.baseGfn + a.npages}) overlaps memslot ${b.id} [${b.baseGfn}, ${b.baseGfn + b.npages})`,
        });
      }
    }
  }
  const privateByDefault = c.privateByDefault ?? isConfidential(vmType);
  if (privateByDefault && vmType === 'default') {
    errors.push({ path: '$.config.privateByDefault', message: 'a default VM has no private memory (use sw-protected, snp or tdx)' });
  }
  if (errors.length > 0) return { ok: false, errors };
  slots.sort((a, b) => a.baseGfn - b.baseGfn);
  return { ok: true, value: { vmType, memslots: slots, privateByDefault } };
}

export function encodeConfig(c: PrefaultConfig): Json {
  return {
    vmType: c.vmType,
    memslots: c.memslots.map((s) => ({ id: s.id, baseGfn: s.baseGfn, npages: s.npages, backing: s.backing })),
    privateByDefault: c.privateByDefault,
  };
}

/** The memslot containing `gfn`, by linear search (the model's way; slots are few). */
export function slotOf(config: PrefaultConfig, gfn: number): Memslot | undefined {
  for (const s of config.memslots) if (gfn >= s.baseGfn && gfn < s.baseGfn + s.npages) return s;
  return undefined;
}
