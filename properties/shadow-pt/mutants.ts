/**
 * shadow-pt known-bug mutants: the optimized implementation with one real
 * defect put back. Each is a small subclass overriding one protected step of
 * impl/shadow-pt/impl.ts.
 */
import type { Mutant } from '../../harness/domain';
import { ShadowPtImpl, type TablePage } from '../../impl/shadow-pt/impl';
import {
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_GLOBAL,
  _PAGE_PRESENT,
  PTE_FLAGS_MASK,
  entryFlags,
  entryFrame,
  type Config,
  type Op,
  type Result,
  type Scope,
  type View,
} from '../../spec/shadow-pt/types';

type M = Mutant<Config, Op, Result, View, Scope>;

/**
 * release_pte that forgets put_page: the entry is cleared but the reference
 * taken by get_user_pages_fast stays, so the page is pinned forever (H:350
 * "release_pte() is careful to put that back"; H:460).
 */
class ReleaseKeepsRef extends ShadowPtImpl {
  protected override releasePte(page: TablePage, i: number): void {
    this.clearSpte(page, i);
  }
}

/**
 * release_pte that puts the reference but leaves the entry in place: the CPU
 * still maps a page the host no longer holds, and the next release puts it
 * again (H:450 "zero out the PGD entry so we never release it twice").
 */
class ReleaseKeepsEntry extends ShadowPtImpl {
  protected override releasePte(page: TablePage, i: number): void {
    const e = page.ent[i]!;
    if (e & _PAGE_PRESENT) this.putPage(entryFrame(e));
  }
}

/**
 * guest_set_pte applying a kernel-range change to the current top level only:
 * every other cached top level keeps the stale kernel mapping (H:410 "kernel
 * mappings must be changed on all top levels").
 */
class KernelPteCurrentOnly extends ShadowPtImpl {
  protected override kernelPteSlots(): number[] {
    return this.slotInUse[this.cpuPgd] ? [this.cpuPgd] : [];
  }
}

/**
 * do_set_pte's eager install as in the seed: gpte_to_spte(cpu, gpte, dirty)
 * keeps the guest's RW bit even when the PTE is only accessed, so the guest
 * writes a clean page without the host ever setting its dirty bit (H:420;
 * H:330 "don't set the writable bit ... so we will come back here").
 */
class EagerWritableClean extends ShadowPtImpl {
  protected override spteFlags(gpte: number, path: 'fault' | 'setPte'): number {
    if (path === 'fault') return super.spteFlags(gpte, path);
    return entryFlags(gpte) & PTE_FLAGS_MASK & ~_PAGE_GLOBAL;
  }
}

/**
 * guest_set_pgd's bound as in the seed: `if (idx > PTRS_PER_PGD)` lets
 * idx == PTRS_PER_PGD through, and release_pgd then works one entry past the
 * end of the top level: the first entry of the next slot's page.
 */
class SetPgdOffByOne extends ShadowPtImpl {
  protected override pgdIndexValid(idx: number): boolean {
    return idx <= this.g.ptrsPerPgd;
  }
}

/**
 * new_pgdir reusing a slot without flush_user_mappings: the new top level
 * inherits the old process's user mappings (H:435 "release all the
 * non-kernel mappings").
 */
class ReuseKeepsUser extends ShadowPtImpl {
  protected override flushOnReuse(_slot: number): void {}
}

/**
 * guest_set_pgd as in the seed: after dropping entry idx of the top level it
 * was told about, it re-maps the Switcher in the *current* top level
 * (allocate_switcher_mapping(&lg->cpus[0])), so the other slot stays marked
 * switcher_mapped with no Switcher (H:400; latent in the seed).
 */
class SetPgdRemapsCurrent extends ShadowPtImpl {
  protected override guestSetPgd(gpgdir: number, idx: number): Result {
    if (!this.pgdIndexValid(idx)) return super.guestSetPgd(gpgdir, idx);
    const s = this.findPgdir(gpgdir);
    if (s < 0) return { ok: true };
    this.releasePgd(s, idx);
    if (idx === this.switcherTop) this.allocateSwitcherMapping(this.cpuPgd);
    return { ok: true };
  }
}

/**
 * do_set_pte as in the seed: any guest PTE with accessed or dirty set is
 * installed at once, even one that is not present (a swap entry): get_pfn
 * takes a reference, the shadow entry is not present, and release_pte never
 * puts it back (H:420; latent in the seed).
 */
class EagerNotPresentLeaks extends ShadowPtImpl {
  protected override guestSetPte(gpgdir: number, vaddr: number, gpte: number): Result {
    const f = entryFlags(gpte);
    const r = super.guestSetPte(gpgdir, vaddr, gpte);
    if (r.ok && !(f & _PAGE_PRESENT) && f & (_PAGE_ACCESSED | _PAGE_DIRTY) && vaddr < this.c.switcherAddr && entryFrame(gpte) < this.c.guestPages) {
      const vpage = Math.floor(vaddr / 4096);
      const s = vpage >= this.kernelPage ? this.cpuPgd : this.findPgdir(gpgdir);
      if (s >= 0 && this.ptePage(s, vpage)) this.getPage(this.c.hostBase + entryFrame(gpte));
    }
    return r;
  }
}

/**
 * PAE release_pmd that forgets free_page(ptepage): the PTE page's entries are
 * released and the mid-level entry cleared, but the page itself is never
 * freed: a table page that no entry references (H:450: "Now we can free the
 * page of PTEs").
 */
class ReleasePmdLeaksPage extends ShadowPtImpl {
  protected override releasePmd(pmd: TablePage, j: number): void {
    const e = pmd.ent[j]!;
    if (!(e & _PAGE_PRESENT)) return;
    const page = this.pool[entryFrame(e)]!;
    for (let k = page.n - 1; k >= 0; k--) this.releasePte(page, page.list[k]!);
    delete this.live.tables[page.owner];
    this.scope.owners.push(page.owner);
    this.scope.pages.push(page.id);
    pmd.ent[j] = 0;
    pmd.markAbsent(j);
  }
}

/**
 * free_guest_pagetable without release_all_pagetables: the top-level pages
 * are freed, and with them the only way to find the PTE pages under them and
 * the references their entries hold (H:470; free_guest_pagetable).
 */
class DestroyFreesTopLevelsOnly extends ShadowPtImpl {
  private forget(page: TablePage): void {
    while (page.n > 0) {
      const i = page.list[page.n - 1]!;
      if (page.level === 2) {
        this.forget(this.pool[entryFrame(page.ent[i]!)]!);
        page.ent[i] = 0;
        page.markAbsent(i);
      } else this.clearSpte(page, i);
    }
    delete this.live.tables[page.owner];
    this.scope.owners.push(page.owner);
  }
  protected override destroy(): Result {
    if (this.destroyed) return super.destroy();
    const P = this.g.ptrsPerPgd;
    for (let s = 0; s < this.c.pgdirSlots; s++) {
      if (!this.slotInUse[s]) continue;
      while (this.pgdN[s]! > 0) {
        const idx = this.pgdList[s * P + --this.pgdN[s]!]!;
        this.forget(this.pool[entryFrame(this.pgd[s * P + idx]!)]!);
        this.pgd[s * P + idx] = 0;
        this.pgdPos[s * P + idx] = -1;
      }
    }
    return super.destroy();
  }
}

/**
 * guest_set_pte that acknowledges the guest's change but never applies it:
 * the host learns the new value (the View's `told`) and every shadow entry
 * stays as it was, so the guest keeps running on its old mapping. This is
 * what a user setPte did to the second copy of a top level cached twice
 * (issue 12 item 7): `shadow-sound` holds every user entry to the last value
 * told, `kernel-coherent` every kernel entry to the last change.
 */
class SetPteIgnored extends ShadowPtImpl {
  protected override setPteIn(slot: number, vpage: number): boolean {
    return this.ptePage(slot, vpage) !== undefined;
  }
}

/**
 * guest_new_pagetable as in the seed: leaving the linear mapping it forces
 * new_pgdir without find_pgdir, so loading top level 0 into another victim
 * slot leaves "top level 0" cached twice. find_pgdir then names the lower,
 * empty copy, and a user setPte never reaches the one the guest runs on
 * (H:430, H:435, find_pgdir; latent in the seed).
 */
class LinearExitDuplicatesTopLevel extends ShadowPtImpl {
  protected override linearExitSlot(): number {
    return -1;
  }
}

/**
 * do_set_pte's check as placed in the seed: check_gpte runs only inside a
 * cached top level's shadow PTE page, so an accessed guest PTE with the PSE
 * bit (or a frame beyond pfn_limit) told for any other top level is let
 * through, and the guest lives until it faults on it (H:420; spec page §5,
 * issue 12 item 8).
 */
class EagerBadPteOnlyWhereCached extends ShadowPtImpl {
  protected override guestSetPte(gpgdir: number, vaddr: number, gpte: number): Result {
    const f = entryFlags(gpte);
    const eager = (f & _PAGE_PRESENT) !== 0 && (f & (_PAGE_ACCESSED | _PAGE_DIRTY)) !== 0;
    if (eager && vaddr < this.c.switcherAddr && !this.checkGpte(gpte)) {
      const vpage = Math.floor(vaddr / 4096);
      const slots = vpage >= this.kernelPage ? this.kernelPteSlots() : [this.findPgdir(gpgdir)].filter((s) => s >= 0);
      if (!slots.some((s) => this.ptePage(s, vpage) !== undefined)) return { ok: true };
    }
    return super.guestSetPte(gpgdir, vaddr, gpte);
  }
}

/**
 * demand_page's order as in the seed: release_pte(*spte) runs before
 * gpte_to_spte's get_pfn fails, so the kill leaves the old entry released
 * (H:330, H:340 "failed to get page"; spec page §5, issue 12 item 8).
 */
class WriteFaultReleasesBeforeKill extends ShadowPtImpl {
  protected override faultCannotGet(vpage: number, gfn: number): string {
    const page = this.ptePage(this.cpuPgd, vpage);
    if (page) this.releasePte(page, vpage - page.baseVpage);
    return super.faultCannotGet(vpage, gfn);
  }
}

/**
 * guest_pagetable_clear_all without pin_stack_pages: after a flushAll the
 * current top level no longer maps the kernel stack, which direct traps
 * into the guest need ("We need the Guest kernel stack mapped again";
 * issue 12 item 9).
 */
class ClearAllSkipsStack extends ShadowPtImpl {
  protected override clearAll(): string | null {
    this.releaseAllPagetables();
    this.allocateSwitcherMapping(this.cpuPgd);
    return null;
  }
}

function mk(
  id: string,
  title: string,
  source: string,
  expectedToViolate: string[],
  ctor: new (c: Config) => ShadowPtImpl,
): M {
  return { id, title, source, expectedToViolate, create: (c) => new ctor(c) };
}

const SEED = 'seed 004_24ad7b1795c155e0.txt (lguest page_tables.c)';

export const MUTANTS: readonly M[] = [
  mk('release-keeps-ref', 'release_pte clears the entry but never puts the page reference', `${SEED}, H:350 get_pfn and H:460 release_pte`, ['refcount-balance'], ReleaseKeepsRef),
  mk(
    'release-keeps-entry',
    'release_pte puts the reference but leaves the entry present',
    `${SEED}, H:450 release_pgd ("so we never release it twice")`,
    ['refcount-balance', 'no-double-release'],
    ReleaseKeepsEntry,
  ),
  mk('kernel-pte-current-only', 'a kernel-range setPte reaches only the current top level', `${SEED}, H:410 guest_set_pte`, ['kernel-coherent'], KernelPteCurrentOnly),
  mk(
    'eager-writable-clean',
    'setPte installs a writable shadow entry for an accessed but clean guest PTE',
    `${SEED}, H:420 do_set_pte (gpte_to_spte(cpu, gpte, dirty) keeps RW)`,
    ['shadow-sound'],
    EagerWritableClean,
  ),
  mk(
    'set-pgd-off-by-one',
    'setPgd accepts idx == PTRS_PER_PGD and drops the next slot\'s first entry',
    `${SEED}, H:400 guest_set_pgd ("if (idx > PTRS_PER_PGD)")`,
    [],
    SetPgdOffByOne,
  ),
  mk('reuse-keeps-user', 'a reused top-level slot keeps the previous process\'s user entries', `${SEED}, H:435 new_pgdir`, ['shadow-sound'], ReuseKeepsUser),
  mk(
    'set-pgd-remaps-current',
    'setPgd on the Switcher\'s entry re-maps the Switcher in the current top level, not the one it dropped',
    `${SEED}, H:400 guest_set_pgd (allocate_switcher_mapping(&lg->cpus[0]))`,
    ['switcher-intact'],
    SetPgdRemapsCurrent,
  ),
  mk(
    'eager-not-present-leaks',
    'setPte with accessed/dirty but not present takes a page reference that nothing holds',
    `${SEED}, H:420 do_set_pte (no present check before gpte_to_spte)`,
    ['refcount-balance'],
    EagerNotPresentLeaks,
  ),
  mk(
    'release-pmd-leaks-page',
    'PAE release_pmd releases the entries but never frees the PTE page',
    `${SEED}, PAE release_pmd ("Now we can free the page of PTEs")`,
    ['tables-owned'],
    ReleasePmdLeaksPage,
  ),
  mk(
    'destroy-frees-top-levels-only',
    'destroy frees the top-level pages without releasing the tables and references under them',
    `${SEED}, H:470 release_all_pagetables and free_guest_pagetable`,
    ['release-all-on-destroy'],
    DestroyFreesTopLevelsOnly,
  ),
  mk(
    'set-pte-ignored',
    'setPte is acknowledged but reaches no shadow entry: the old mapping stays',
    `${SEED}, H:410 guest_set_pte and H:420 do_set_pte`,
    ['shadow-sound', 'kernel-coherent'],
    SetPteIgnored,
  ),
  mk(
    'linear-exit-duplicates-top-level',
    'leaving the linear mapping onto top level 0 with another victim caches top level 0 twice',
    `${SEED}, H:430 guest_new_pagetable ("force allocation of a new pgdir"), H:435 new_pgdir, find_pgdir`,
    ['shadow-sound'],
    LinearExitDuplicatesTopLevel,
  ),
  mk(
    'eager-bad-pte-only-where-cached',
    'an eager setPte with a bad guest PTE kills only where a cached top level has a shadow PTE page for it (the seed)',
    `${SEED}, H:420 do_set_pte (check_gpte under a present shadow PGD entry), H:410 guest_set_pte`,
    [],
    EagerBadPteOnlyWhereCached,
  ),
  mk(
    'write-fault-releases-before-kill',
    'a write fault whose page cannot be taken writable releases the old entry before killing (the seed)',
    `${SEED}, H:330 demand_page (release_pte before gpte_to_spte), H:340 gpte_to_spte ("failed to get page")`,
    [],
    WriteFaultReleasesBeforeKill,
  ),
  mk(
    'clear-all-skips-stack',
    'flushAll drops everything and re-maps the Switcher but never re-pins the stack',
    `${SEED}, guest_pagetable_clear_all ("We need the Guest kernel stack mapped again")`,
    [],
    ClearAllSkipsStack,
  ),
];
