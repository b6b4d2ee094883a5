/**
 * Where the conform guest program lives: one page in its own memslot,
 * chosen per trace so that it collides with nothing the trace's config or
 * ops name.
 *
 * The slot id is the highest id below the host's KVM_USER_MEM_SLOTS
 * (KVM_CAP_NR_MEMSLOTS: 32764 on x86, include/linux/kvm_host.h) that the
 * trace does not name; the gfn is the highest page below 4 GiB (the guest
 * runs in 32-bit flat mode, paging off) that no config slot, created slot
 * or guest access of the trace covers. The defaults, slot 32763 at gfn
 * 0xfffff (GPA 0xfffff000), sit above everything the generators produce
 * and clear of the LAPIC/IOAPIC windows, which only matter with an
 * in-kernel irqchip (the driver creates none).
 */
export const GUEST_SLOT = 32763;
export const GUEST_GFN = 0xfffff;
/** The vCPU runs in 32-bit flat mode with paging off: gfns below 2^20 are reachable. */
export const GUEST_REACH_GFNS = 2 ** 20;

export interface GuestPlace {
  readonly slot: number;
  readonly gfn: number;
}

/**
 * The guest's place for a trace that names the slot ids `slots` and covers
 * the gfn ranges `ranges` ([lo, hi)); null when every reachable page or
 * every id is taken (the trace is then not run).
 */
export function chooseGuest(slots: ReadonlySet<number>, ranges: readonly (readonly [number, number])[], userMemSlots: number): GuestPlace | null {
  let slot = Math.min(GUEST_SLOT, userMemSlots - 1);
  while (slot >= 0 && slots.has(slot)) slot--;
  // Highest free gfn: walk down past every range that covers the candidate.
  const sorted = ranges.filter(([lo, hi]) => hi > lo && lo < GUEST_REACH_GFNS).map(([lo, hi]) => [lo, Math.min(hi, GUEST_REACH_GFNS)] as const);
  let gfn = GUEST_GFN;
  for (let moved = true; moved && gfn >= 0; ) {
    moved = false;
    for (const [lo, hi] of sorted) {
      if (gfn >= lo && gfn < hi) {
        gfn = lo - 1;
        moved = true;
      }
    }
  }
  return slot < 0 || gfn < 0 ? null : { slot, gfn };
}
