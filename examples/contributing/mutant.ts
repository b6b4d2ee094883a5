/**
 * CONTRIBUTING.md, example 4: a known-bug mutant with its source. None of
 * the ten shadow-pt mutants in properties/shadow-pt/mutants.ts touches the
 * per-CPU Switcher cache (`last_host_cpu`); this one does.
 */
import type { Mutant } from '../../harness/domain';
import { ShadowPtImpl } from '../../impl/shadow-pt/impl';
import type { Config, Op, Result, Scope, View } from '../../spec/shadow-pt/types';

// #region mutant
/**
 * guest_set_pgd without its last line, `lg->pgdirs[pgdir].last_host_cpu = -1`.
 * Dropping the top-level entry that holds the Switcher's PTE page drops the
 * per-CPU Switcher pages with it; allocate_switcher_mapping() puts back only
 * the code page. The slot still says it last ran on this CPU, so
 * map_switcher_in_guest() takes its fast path ("since we usually run on the
 * same CPU, we cache that") and the guest runs without its register page and
 * IDT/GDT page mapped (seed 004, H:400 guest_set_pgd and H:480
 * map_switcher_in_guest).
 */
export class SetPgdKeepsLastCpu extends ShadowPtImpl {
  protected override guestSetPgd(gpgdir: number, idx: number): Result {
    if (!this.pgdIndexValid(idx)) return super.guestSetPgd(gpgdir, idx);
    const s = this.findPgdir(gpgdir);
    if (s < 0) return { ok: true };
    this.releasePgd(s, idx);
    if (idx === this.switcherTop) this.allocateSwitcherMapping(s); // ... and lastHostCpu[s] stays
    return { ok: true };
  }
}

export const setPgdKeepsLastCpu: Mutant<Config, Op, Result, View, Scope> = {
  id: 'set-pgd-keeps-last-cpu',
  title: 'setPgd on the Switcher\'s entry drops the per-CPU pages but keeps the slot\'s last host CPU',
  source: 'seed 004_24ad7b1795c155e0.txt (lguest page_tables.c), H:400 guest_set_pgd ("last_host_cpu = -1") and H:480 map_switcher_in_guest',
  expectedToViolate: ['switcher-intact'],
  create: (c) => new SetPgdKeepsLastCpu(c),
};
// #endregion
