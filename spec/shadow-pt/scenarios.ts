/**
 * shadow-pt's named scenarios (harness/reach.ts): the hazards of the spec
 * page (§1 and §4), each a predicate over (View before, op, result, View
 * after). `check` reports how many runs reached each.
 */
import type { Scenario } from '../../harness/reach';
import type { Config, Op, Result, View } from './types';

type S = Scenario<Config, Op, Result, View>;

/** Host frames mapped (Switcher entries excluded) by shadow PTEs of two or more slots. */
function sharedFrames(v: View): Map<number, Set<string>> {
  const bySlots = new Map<number, Set<string>>();
  for (const key in v.sptes) {
    const e = v.sptes[key]!;
    if (e.from === -1) continue;
    const slot = key.slice(0, key.indexOf(':'));
    let s = bySlots.get(e.pfn);
    if (!s) bySlots.set(e.pfn, (s = new Set()));
    s.add(slot);
  }
  for (const [pfn, s] of bySlots) if (s.size < 2) bySlots.delete(pfn);
  return bySlots;
}

function slotsMapping(v: View, pfn: number): number {
  const slots = new Set<string>();
  for (const key in v.sptes) if (v.sptes[key]!.pfn === pfn) slots.add(key.slice(0, key.indexOf(':')));
  return slots.size;
}

export const SCENARIOS: readonly S[] = [
  {
    id: 'ref-dropped-from-one-of-two',
    title: "a host page mapped from two top levels loses one top level's entry (its reference put once)",
    source: 'spec page §1 and §4 (iii), release_pte (H:460)',
    before(v, op) {
      if (v.dead) return null;
      // Frames whose entries may go: one address (a fault, a setPte), or many (the bulk releases).
      let pfns: number[];
      if (op.op === 'pageFault' || op.op === 'setPte') {
        const vp = op.args.vaddr >>> 12;
        pfns = [];
        for (const slot in v.slots) {
          const e = v.sptes[`${slot}:${vp}`];
          if (e !== undefined && e.from !== -1 && (v.mapcount[e.pfn] ?? 0) >= 2) pfns.push(e.pfn);
        }
      } else if (op.op === 'setPgd' || op.op === 'newPagetable' || op.op === 'flushUser') {
        pfns = [...sharedFrames(v).keys()];
      } else return null;
      if (pfns.length === 0) return null;
      const shared = pfns.filter((pfn) => slotsMapping(v, pfn) >= 2);
      if (shared.length === 0) return null;
      return (_r, after) => shared.some((pfn) => slotsMapping(after, pfn) === 1);
    },
  },
  {
    id: 'kernel-pte-in-every-top-level',
    title: 'a kernel-range setPte reaches shadow entries in two or more cached top levels',
    source: 'spec page §4 (iii), set_pte / guest_set_pte (H:400)',
    before(v, op) {
      if (op.op !== 'setPte' || v.dead || v.kernelAddress === 0 || op.args.vaddr < v.kernelAddress) return null;
      const vp = op.args.vaddr >>> 12;
      let n = 0;
      for (const slot in v.slots) if (v.sptes[`${slot}:${vp}`] !== undefined) n++;
      return n >= 2 ? (r) => r.ok : null;
    },
  },
  {
    id: 'victim-slot-reused',
    title: 'a switch to an uncached top level reuses a victim slot that holds entries (user ones dropped, kernel ones kept)',
    source: 'spec page §4 (iv.3), new_pgdir / guest_new_pagetable (H:430, H:435)',
    before(v, op) {
      if (op.op !== 'newPagetable' || v.dead || v.linear) return null;
      const { pgtable, victim } = op.args;
      const slot = v.slots[String(victim)];
      if (!slot || slot.gpgdir === pgtable || Object.values(v.slots).some((s) => s.gpgdir === pgtable)) return null;
      const prefix = `${victim}:`;
      let held = false;
      for (const key in v.sptes) if (key.startsWith(prefix) && v.sptes[key]!.from !== -1) { held = true; break; }
      return held ? (r) => r.ok : null;
    },
  },
  {
    id: 'switcher-entry-dropped',
    title: "setPgd drops the top-level entry holding the Switcher, which is mapped again with its CPU unknown",
    source: 'spec page §4 (iii), guest_set_pgd / release_pgd (H:410)',
    before(v, op) {
      if (op.op !== 'setPgd' || v.dead) return null;
      const pgdir = op.args.pgdir;
      const slotId = Object.keys(v.slots).find((k) => v.slots[k]!.gpgdir === pgdir);
      if (slotId === undefined || v.slots[slotId]!.lastHostCpu === -1) return null;
      return (r, after) => r.ok && after.slots[slotId]?.switcherMapped === true && after.slots[slotId]!.lastHostCpu === -1;
    },
  },
  {
    id: 'kill-keeps-old-entry',
    title: 'a fault that kills the guest (page not takeable writable) leaves the old shadow entry and its reference',
    source: 'spec page §4 (i.6), demand_page / get_pfn (H:330, H:350)',
    before(v, op) {
      if (op.op !== 'pageFault' || v.dead) return null;
      const key = `${v.current}:${op.args.vaddr >>> 12}`;
      const old = v.sptes[key];
      if (!old || old.from === -1) return null;
      return (r, after) => !r.ok && r.error === 'KILLED' && after.sptes[key]?.pfn === old.pfn;
    },
  },
  {
    id: 'switcher-moved-to-other-cpu',
    title: "runOnCpu on another host CPU: the previous CPU's Switcher pages unmapped, the new one's mapped",
    source: 'spec page §4 (vi), map_switcher_in_guest (H:480, H:481)',
    before(v, op) {
      if (op.op !== 'runOnCpu' || v.dead) return null;
      const last = v.slots[String(v.current)]?.lastHostCpu;
      if (last === undefined || last === -1 || last === op.args.cpu) return null;
      return (r) => r.ok;
    },
  },
  {
    id: 'flush-all-several-top-levels',
    title: 'flushAll empties two or more cached top levels; only the current one gets its stack and Switcher back',
    source: 'spec page §4 (v) and (ii), guest_pagetable_clear_all (H:445)',
    before(v, op) {
      if (op.op !== 'flushAll' || v.dead || Object.keys(v.slots).length < 2) return null;
      return (r) => r.ok;
    },
  },
];

/** Per op, the errors the spec page documents (error coverage). */
export const ERRORS: { readonly [op: string]: readonly string[] } = {
  guestWrite: ['EINVAL', 'EFAULT', 'DEAD'],
  lguestInit: ['KILLED', 'EINVAL', 'EBUSY', 'DEAD'],
  pageFault: ['KILLED', 'DEAD'],
  setPte: ['KILLED', 'DEAD'],
  setPgd: ['KILLED', 'DEAD'],
  setPmd: ['EINVAL', 'DEAD'],
  newPagetable: ['KILLED', 'EINVAL', 'DEAD'],
  setStack: ['KILLED', 'DEAD'],
  runOnCpu: ['EINVAL', 'DEAD'],
  hostRefs: ['EINVAL'],
};
