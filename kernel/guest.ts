/**
 * Where the conform guest program lives, for every adapter: one page in its
 * own memslot, outside anything a config or an op may name.
 *
 * Slot id 32763 is the last id below x86's KVM_USER_MEM_SLOTS (32764,
 * KVM_CAP_NR_MEMSLOTS on this host; include/linux/kvm_host.h: KVM_MEM_SLOTS_NUM
 * SHRT_MAX minus KVM_INTERNAL_MEM_SLOTS 3); gfn 0xfffff is the last page
 * below 4 GiB (GPA 0xfffff000), above every gfn the generators produce and
 * clear of the LAPIC/IOAPIC windows, which only matter with an in-kernel
 * irqchip (the driver creates none). Configs whose memslots use this id or
 * cover this gfn, and ops that name them, are not run (reported as such).
 */
export const GUEST_SLOT = 32763;
export const GUEST_GFN = 0xfffff;
/** The vCPU runs in 32-bit flat mode with paging off: gfns below 2^20 are reachable. */
export const GUEST_REACH_GFNS = 2 ** 20;
