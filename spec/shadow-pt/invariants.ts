/**
 * shadow-pt: the seven invariants, as predicates over the View.
 *
 * Every check works in two modes: with a scope (what the last op changed,
 * from `liveView`) it looks only at those keys, so its cost follows the op's
 * work and not the amount of state; without one it checks the whole View,
 * recomputing what the scoped mode takes from the View's own bookkeeping
 * (the mapcount) from the entries themselves.
 */
import type { Invariant } from '../../harness/domain';
import {
  _PAGE_DIRTY,
  _PAGE_GLOBAL,
  _PAGE_PRESENT,
  _PAGE_PSE,
  _PAGE_RW,
  PAGE_SIZE,
  PTE_FLAGS_MASK,
  SWITCHER_CODE_FLAGS,
  SWITCHER_REGS_FLAGS,
  SWITCHER_RO_FLAGS,
  entryFlags,
  entryFrame,
  hex,
  keySlot,
  keyVpage,
  regsPfn,
  spteKey,
  switcherPages,
  toldKey,
  switcherPfn,
  type Config,
  type Scope,
  type SpteView,
  type View,
} from './types';

const SOURCE = 'seed 004_24ad7b1795c155e0.txt (lguest drivers/lguest/page_tables.c)';

/** Any key of a record (for-in collects every key first: use outside the scoped hot path only). */
function firstKey(o: object): string | undefined {
  for (const k in o) return k;
  return undefined;
}

function vaddrOf(vpage: number): string {
  return hex(vpage * PAGE_SIZE);
}

/** Owner key of the shadow table page that holds the PTE for `vpage` in `slot`. */
export function pteOwner(c: Config, slot: number, vpage: number): string {
  return c.pae ? slot + ':g' + (vpage >>> 18) + ':m' + ((vpage >>> 9) & 511) : slot + ':g' + (vpage >>> 10);
}

/** First virtual page of the Switcher's range (one whole PTE page). */
function switcherVpage(c: Config): number {
  return c.switcherAddr / PAGE_SIZE;
}

// ---------------------------------------------------------------------------

function balanceOf(v: View, pfn: number): string | null {
  const refs = v.refs[pfn] ?? 0;
  const maps = v.mapcount[pfn] ?? 0;
  if (refs !== maps) {
    return `host frame ${pfn} holds ${refs} reference(s) above base but ${maps} present shadow PTE(s) map it`;
  }
  return null;
}

export const refcountBalance: Invariant<Config, View, Scope> = {
  id: 'refcount-balance',
  title: 'references above base equal the present shadow PTEs that map a page',
  statement:
    'For every host page, the references held above its base count equal the number of present shadow PTEs, in all cached top levels and Switcher entries included, that map it.',
  source: `${SOURCE}, H:350 get_pfn ("this holds a reference to the page, so release_pte() is careful to put that back") and H:460 release_pte`,
  check(v, _c, scope) {
    if (scope) {
      for (const p of scope.pfns) {
        const m = balanceOf(v, p);
        if (m) return m;
      }
      return null;
    }
    const counted = new Map<number, number>();
    for (const k in v.sptes) {
      const p = v.sptes[k]!.pfn;
      counted.set(p, (counted.get(p) ?? 0) + 1);
    }
    for (const [p, n] of counted) {
      if ((v.mapcount[p] ?? 0) !== n) return `host frame ${p} is mapped by ${n} present shadow PTE(s) but the View's mapcount says ${v.mapcount[p] ?? 0}`;
      const m = balanceOf(v, p);
      if (m) return m;
    }
    for (const k in v.mapcount) {
      if (!counted.has(+k)) return `host frame ${k} has mapcount ${v.mapcount[k]} but no present shadow PTE maps it`;
    }
    for (const k in v.refs) {
      const m = balanceOf(v, +k);
      if (m) return m;
    }
    return null;
  },
  exercised(v, _c, scope) {
    if (scope) {
      for (const p of scope.pfns) if (v.refs[p] !== undefined || v.mapcount[p] !== undefined) return true;
      return false;
    }
    return firstKey(v.sptes) !== undefined;
  },
};

export const noDoubleRelease: Invariant<Config, View, Scope> = {
  id: 'no-double-release',
  title: 'a reference is never put for an entry that no longer holds one',
  statement:
    'No put finds a page at its base count (no count falls below base), and an entry is cleared when its reference is put, so it is never released twice.',
  source: `${SOURCE}, H:450 release_pgd ("zero out the PGD entry so we never release it twice") and H:340 gpte_to_spte ("make sure we don't think this one is valid")`,
  check(v, _c, scope) {
    const one = (p: string | number): string | null => {
      const u = v.underflows[p as number];
      if (u !== undefined) return `host frame ${p} was put ${u} time(s) when it held no reference above base (double release)`;
      const r = v.refs[p as number];
      if (r !== undefined && r < 0) return `host frame ${p} is ${-r} reference(s) below its base count`;
      return null;
    };
    if (scope) {
      for (const p of scope.pfns) {
        const m = one(p);
        if (m) return m;
      }
      return null;
    }
    for (const k in v.underflows) return one(k);
    for (const k in v.refs) {
      const m = one(k);
      if (m) return m;
    }
    return null;
  },
  exercised(v, _c, scope) {
    return scope ? scope.pfns.length > 0 : firstKey(v.refs) !== undefined || firstKey(v.underflows) !== undefined;
  },
};

export const releaseAllOnDestroy: Invariant<Config, View, Scope> = {
  id: 'release-all-on-destroy',
  title: 'after destroy every count is back at base and every table page is freed',
  statement:
    'Once the guest is destroyed, no host page holds a reference above base, no shadow PTE is present, no shadow table page stays allocated and no top level stays cached.',
  source: `${SOURCE}, H:470 release_all_pagetables and free_guest_pagetable`,
  check(v) {
    if (!v.destroyed) return null;
    let k = firstKey(v.refs);
    if (k !== undefined) return `after destroy host frame ${k} still holds ${v.refs[k]} reference(s) above base`;
    k = firstKey(v.sptes);
    if (k !== undefined) return `after destroy shadow PTE ${k} (slot:vpage) is still present, mapping host frame ${v.sptes[k]!.pfn}`;
    k = firstKey(v.tablePages);
    if (k !== undefined) return `after destroy shadow table page ${k} (allocated for ${v.tablePages[k]}) was never freed`;
    k = firstKey(v.tables);
    if (k !== undefined) return `after destroy table entry ${k} still points to table page ${v.tables[k]}`;
    k = firstKey(v.slots);
    if (k !== undefined) return `after destroy top level slot ${k} (shadowing ${hex(v.slots[k]!.gpgdir)}) is still cached`;
    return null;
  },
  exercised(v) {
    return v.destroyed;
  },
};

function where(slot: number, vpage: number): string {
  return `shadow PTE for vaddr ${vaddrOf(vpage)} in slot ${slot}`;
}

function soundOne(v: View, c: Config, key: string, e: SpteView): string | null {
  const vpage = keyVpage(key);
  if (vpage >= switcherVpage(c)) return null; // the Switcher's own entries: switcher-intact
  const slot = keySlot(key);
  const s = v.slots[slot];
  if (!s) return `${where(slot, vpage)} is present but slot ${slot} is not a cached top level`;
  if (e.gpte < 0) return `${where(slot, vpage)} maps host frame ${e.pfn} without any guest PTE behind it`;
  const gflags = entryFlags(e.gpte);
  const gfn = entryFrame(e.gpte);
  if (!(gflags & _PAGE_PRESENT)) return `${where(slot, vpage)} was made from guest PTE ${hex(e.gpte)}, which is not present`;
  if (gflags & _PAGE_PSE) return `${where(slot, vpage)} was made from guest PTE ${hex(e.gpte)}, which has the large-page (PSE) flag`;
  if (gfn >= c.guestPages) return `${where(slot, vpage)} maps host frame ${e.pfn} for guest frame ${gfn}, which is not below guestPages (${c.guestPages})`;
  if (e.pfn !== c.hostBase + gfn) return `${where(slot, vpage)} maps host frame ${e.pfn}, but guest PTE ${hex(e.gpte)} names guest frame ${gfn}, backed by host frame ${c.hostBase + gfn}`;
  if (!(e.flags & _PAGE_PRESENT)) return `${where(slot, vpage)} is recorded present but lacks the present bit`;
  const allowed = gflags & PTE_FLAGS_MASK & ~_PAGE_GLOBAL;
  if (e.flags & ~allowed & ~_PAGE_GLOBAL) return `${where(slot, vpage)} has flags ${hex(e.flags)}, more rights than guest PTE ${hex(e.gpte)} gives (${hex(allowed)})`;
  if (e.flags & _PAGE_RW && !(gflags & _PAGE_DIRTY)) return `${where(slot, vpage)} is writable but guest PTE ${hex(e.gpte)} is clean (no dirty bit): the guest's dirty tracking would miss writes`;
  if (vpage * PAGE_SIZE < v.kernelAddress) {
    if (e.from !== s.gpgdir) return `user ${where(slot, vpage)} was read from top level ${hex(e.from)} but the slot now shadows ${hex(s.gpgdir)}`;
    // Stale: the guest has since told the host (or the host read) another value for this top level's page.
    const told = v.told[toldKey(s.gpgdir, vpage)];
    if (told === undefined) return `user ${where(slot, vpage)} maps guest PTE ${hex(e.gpte)}, which top level ${hex(s.gpgdir)} never told or showed the host`;
    if (told !== e.gpte) {
      return `user ${where(slot, vpage)} still maps guest PTE ${hex(e.gpte)}, but the last value top level ${hex(s.gpgdir)} told or showed the host for that page is ${hex(told)}: a stale entry`;
    }
  }
  return null;
}

/** Check every cached slot's entry at the page of a `told` key whose top level the slot shadows. */
function soundTold(v: View, c: Config, key: string): string | null {
  const colon = key.indexOf(':');
  const gpgdir = +key.slice(0, colon);
  const vpage = +key.slice(colon + 1);
  for (let slot = 0; slot < c.pgdirSlots; slot++) {
    const s = v.slots[slot];
    if (s === undefined || s.gpgdir !== gpgdir) continue;
    const k = spteKey(slot, vpage);
    const e = v.sptes[k];
    if (e) {
      const m = soundOne(v, c, k, e);
      if (m) return m;
    }
  }
  return null;
}

export const shadowSound: Invariant<Config, View, Scope> = {
  id: 'shadow-sound',
  title: 'a shadow PTE grants no more than the guest PTE it was made from',
  statement:
    'A present guest-range shadow PTE maps the host frame backing the guest frame of the guest PTE it was made from, with no more rights: writable only if that guest PTE is writable and dirty. A user-range entry belongs to the top level its slot shadows now and was made from the last value that top level told the host (setPte) or showed it (fault) for that page.',
  source: `${SOURCE}, H:330 demand_page (read faults map read-only "so we will come back here when a write does actually occur"), H:340 gpte_to_spte, check_gpte, H:420 do_set_pte, H:410 guest_set_pte (user changes reach only the top level find_pgdir names)`,
  check(v, c, scope) {
    if (scope) {
      for (const k of scope.entries) {
        const e = v.sptes[k];
        if (e) {
          const m = soundOne(v, c, k, e);
          if (m) return m;
        }
      }
      // A setPte that changed what the host was told but missed an entry leaves that entry out of `entries`.
      if (scope.told) {
        for (const k of scope.told) {
          const m = soundTold(v, c, k);
          if (m) return m;
        }
      }
      return null;
    }
    for (const k in v.sptes) {
      const m = soundOne(v, c, k, v.sptes[k]!);
      if (m) return m;
    }
    return null;
  },
  exercised(v, c, scope) {
    const sw = switcherVpage(c);
    if (scope) {
      for (const k of scope.entries) if (v.sptes[k] && keyVpage(k) < sw) return true;
      return false;
    }
    for (const k in v.sptes) if (keyVpage(k) < sw) return true;
    return false;
  },
};

function coherentOne(v: View, key: string, e: SpteView, vpage: number): string | null {
  const g = v.kernelGens[vpage];
  if (g !== undefined && e.gen !== g) {
    return `shadow PTE ${key} (slot:vpage) for kernel vaddr ${vaddrOf(vpage)} predates kernel change #${g} of that page (made at #${e.gen}): a stale kernel entry`;
  }
  return null;
}

export const kernelCoherent: Invariant<Config, View, Scope> = {
  id: 'kernel-coherent',
  title: 'a kernel-range change reaches every cached top level',
  statement:
    'After the guest changes a kernel-range PTE, no cached top level keeps a shadow entry for that page made before the change.',
  source: `${SOURCE}, H:410 guest_set_pte ("kernel mappings must be changed on all top levels")`,
  check(v, c, scope) {
    if (scope) {
      for (const vp of scope.vpages) {
        for (let s = 0; s < c.pgdirSlots; s++) {
          const k = spteKey(s, vp);
          const e = v.sptes[k];
          if (e) {
            const m = coherentOne(v, k, e, vp);
            if (m) return m;
          }
        }
      }
      for (const k of scope.entries) {
        const e = v.sptes[k];
        if (e) {
          const m = coherentOne(v, k, e, keyVpage(k));
          if (m) return m;
        }
      }
      return null;
    }
    if (firstKey(v.kernelGens) === undefined) return null;
    for (const k in v.sptes) {
      const m = coherentOne(v, k, v.sptes[k]!, keyVpage(k));
      if (m) return m;
    }
    return null;
  },
  exercised(v, _c, scope) {
    if (scope) return scope.vpages.length > 0; // a kernel-range change happened
    for (const k in v.sptes) if (v.kernelGens[keyVpage(k)] !== undefined) return true;
    return false;
  },
};

/** What must sit at Switcher page `i`, or null if nothing may. */
function switcherExpected(c: Config, i: number): { pfn: number; flags: number; what: () => string } | null {
  if (i === 0) return { pfn: switcherPfn(c, 0), flags: SWITCHER_CODE_FLAGS, what: () => 'the Switcher code page (read-only)' };
  if (i >= switcherPages(c)) return null;
  const cpu = (i - 1) >> 1;
  return (i - 1) % 2 === 0
    ? { pfn: regsPfn(c), flags: SWITCHER_REGS_FLAGS, what: () => `the guest register page at CPU ${cpu}'s first Switcher page` }
    : { pfn: switcherPfn(c, i), flags: SWITCHER_RO_FLAGS, what: () => `CPU ${cpu}'s read-only Switcher page` };
}

function switcherEntryOne(c: Config, key: string, e: SpteView | undefined, slot: number, i: number): string | null {
  if (!e) return null;
  // The common case first, without building any text.
  if (i === 0 && e.gpte === -1 && e.pfn === switcherPfn(c, 0) && e.flags === SWITCHER_CODE_FLAGS) return null;
  const want = switcherExpected(c, i);
  if (want && e.gpte === -1 && e.pfn === want.pfn && e.flags === want.flags) return null;
  const va = hex(c.switcherAddr + i * PAGE_SIZE);
  if (!want) return `slot ${slot} maps vaddr ${va} in the Switcher's range, where nothing may be mapped (host frame ${e.pfn})`;
  if (e.gpte !== -1) return `slot ${slot} maps Switcher vaddr ${va} from guest PTE ${hex(e.gpte)}: the guest mapped over the Switcher`;
  if (e.pfn !== want.pfn || e.flags !== want.flags) {
    return `slot ${slot} maps Switcher vaddr ${va} to host frame ${e.pfn} flags ${hex(e.flags)}, not ${want.what()} (frame ${want.pfn}, flags ${hex(want.flags)}) [${key}]`;
  }
  return null;
}

function switcherSlotOne(v: View, c: Config, slot: number): string | null {
  const s = v.slots[slot];
  if (!s) return null;
  const base = switcherVpage(c);
  if (s.switcherMapped) {
    const k = spteKey(slot, base);
    const e = v.sptes[k];
    if (!e) return `slot ${slot} is marked as having the Switcher mapped but its code page at ${hex(c.switcherAddr)} is not present`;
    const m = switcherEntryOne(c, k, e, slot, 0);
    if (m) return m;
  }
  if (s.lastHostCpu >= 0) {
    for (let cpu = 0; cpu < c.hostCpus; cpu++) {
      for (let j = 1; j <= 2; j++) {
        const i = 2 * cpu + j;
        const k = spteKey(slot, base + i);
        const e = v.sptes[k];
        if (cpu === s.lastHostCpu) {
          if (!e) return `slot ${slot} last ran on CPU ${cpu} but that CPU's Switcher page ${hex(c.switcherAddr + i * PAGE_SIZE)} is not mapped`;
          const m = switcherEntryOne(c, k, e, slot, i);
          if (m) return m;
        } else if (e) {
          return `slot ${slot} last ran on CPU ${s.lastHostCpu} but still maps CPU ${cpu}'s Switcher page ${hex(c.switcherAddr + i * PAGE_SIZE)}`;
        }
      }
    }
  }
  return null;
}

export const switcherIntact: Invariant<Config, View, Scope> = {
  id: 'switcher-intact',
  title: 'the Switcher stays mapped, read-only, and only by the host',
  statement:
    'Every cached top level marked as having the Switcher mapped maps its code page read-only; where a top level last ran on a host CPU it maps that CPU\'s two pages and no other CPU\'s; nothing in the Switcher\'s range comes from the guest.',
  source: `${SOURCE}, H:501 allocate_switcher_mapping, H:480 map_switcher_in_guest, H:481 remove_switcher_percpu_map, H:410 guest_set_pte ("we don't let you remap the Switcher")`,
  check(v, c, scope) {
    const base = switcherVpage(c);
    if (scope) {
      let last = -1;
      for (const s of scope.slots) {
        if (s === last) continue;
        last = s;
        const m = switcherSlotOne(v, c, s);
        if (m) return m;
      }
      for (const k of scope.entries) {
        const vp = keyVpage(k);
        if (vp < base) continue;
        const slot = keySlot(k);
        const m = switcherEntryOne(c, k, v.sptes[k], slot, vp - base) ?? (slot === last ? null : switcherSlotOne(v, c, slot));
        if (m) return m;
        last = slot;
      }
      return null;
    }
    for (const s in v.slots) {
      const m = switcherSlotOne(v, c, +s);
      if (m) return m;
    }
    for (const k in v.sptes) {
      const vp = keyVpage(k);
      if (vp >= base) {
        const slot = keySlot(k);
        const m = switcherEntryOne(c, k, v.sptes[k], slot, vp - base);
        if (m) return m;
      }
    }
    return null;
  },
  exercised(v, _c, scope) {
    if (scope) {
      for (const s of scope.slots) if (v.slots[s]?.switcherMapped) return true;
      return false;
    }
    for (const s in v.slots) if (v.slots[s]!.switcherMapped) return true;
    return false;
  },
};

function ownerSlot(o: string): number {
  return +o.slice(0, o.indexOf(':'));
}

function ownerOne(v: View, o: string): string | null {
  const id = v.tables[o];
  if (id === undefined) return null;
  const slot = ownerSlot(o);
  if (!v.slots[slot]) return `table entry ${o} points to table page ${id} but slot ${slot} is not a cached top level`;
  const alloc = v.tablePages[id];
  if (alloc === undefined) return `table entry ${o} points to table page ${id}, which is not allocated (freed or never allocated)`;
  if (alloc !== o) return `table page ${id} was allocated for ${alloc} but table entry ${o} also points to it: it is shared`;
  const m = o.indexOf(':m');
  if (m >= 0 && v.tables[o.slice(0, m)] === undefined) return `mid-level entry ${o} sits in a table page whose top-level entry ${o.slice(0, m)} is gone`;
  return null;
}

function pageOne(v: View, id: number | string): string | null {
  const o = v.tablePages[id as number];
  if (o === undefined) return null;
  if (v.tables[o] !== +id) return `table page ${id} (allocated for ${o}) is referenced by no table entry: it leaked`;
  return null;
}

function entryTableOne(v: View, c: Config, k: string): string | null {
  if (v.sptes[k] === undefined) return null;
  const o = pteOwner(c, keySlot(k), keyVpage(k));
  if (v.tables[o] === undefined) return `shadow PTE ${k} (slot:vpage) is present but no table entry ${o} holds its PTE page`;
  return null;
}

export const tablesOwned: Invariant<Config, View, Scope> = {
  id: 'tables-owned',
  title: 'every shadow table page belongs to exactly one entry of one cached top level',
  statement:
    'Every allocated shadow table page is referenced by exactly one table entry, of one cached top level, and every table entry and present PTE lives in an allocated page: none shared, none leaked, none used after free.',
  source: `${SOURCE}, H:331 find_spte (allocates a zeroed page per missing level), H:450 release_pgd, PAE release_pmd, H:470 release_all_pagetables`,
  check(v, c, scope) {
    if (scope) {
      for (const o of scope.owners) {
        const m = ownerOne(v, o);
        if (m) return m;
      }
      for (const p of scope.pages) {
        const m = pageOne(v, p);
        if (m) return m;
      }
      for (const k of scope.entries) {
        const m = entryTableOne(v, c, k);
        if (m) return m;
      }
      return null;
    }
    for (const o in v.tables) {
      const m = ownerOne(v, o);
      if (m) return m;
    }
    for (const p in v.tablePages) {
      const m = pageOne(v, p);
      if (m) return m;
    }
    for (const k in v.sptes) {
      const m = entryTableOne(v, c, k);
      if (m) return m;
    }
    return null;
  },
  exercised(v, _c, scope) {
    if (scope) return scope.owners.length > 0 || scope.pages.length > 0;
    return firstKey(v.tables) !== undefined;
  },
};

export const INVARIANTS: readonly Invariant<Config, View, Scope>[] = [
  releaseAllOnDestroy,
  noDoubleRelease,
  refcountBalance,
  tablesOwned,
  switcherIntact,
  kernelCoherent,
  shadowSound,
];
