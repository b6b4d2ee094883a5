/**
 * CONTRIBUTING.md, example 2: a new shadow-pt invariant, and the mutant that
 * shows it can fail. Registering them for real is one entry in INVARIANTS
 * (spec/shadow-pt/invariants.ts) and one in MUTANTS
 * (properties/shadow-pt/mutants.ts); this example leaves those files alone and
 * is exercised by test/contributing/contributing.test.ts on an extended domain.
 */
import type { Invariant, Mutant } from '../../harness/domain';
import { ShadowPtImpl } from '../../impl/shadow-pt/impl';
import { hex, spteKey, type Config, type Op, type Result, type Scope, type View } from '../../spec/shadow-pt/types';

// #region invariant
const SEED = 'seed 004_24ad7b1795c155e0.txt (lguest drivers/lguest/page_tables.c)';

export const currentHasSwitcher: Invariant<Config, View, Scope> = {
  id: 'current-has-switcher',
  title: 'the guest never runs on a top level without the Switcher',
  statement:
    'While the guest is alive, the current slot is a cached top level that is marked as having the Switcher mapped, and its Switcher code page is present: without it the guest cannot trap back to the host.',
  source: `${SEED}, H:501 allocate_switcher_mapping, guest_pagetable_clear_all ("And we need Switcher allocated"), H:430 guest_new_pagetable`,
  // O(1) whatever the scope: `current` is a scalar and may change without the
  // op touching the slot's record, so the scoped check looks at it too.
  check(v, c, _scope) {
    if (v.dead) return null;
    const s = v.slots[v.current];
    if (!s) return `the current slot ${v.current} is not a cached top level`;
    if (!s.switcherMapped) return `the current slot ${v.current} (shadowing ${hex(s.gpgdir)}) is not marked as having the Switcher mapped`;
    const code = spteKey(v.current, c.switcherAddr / 4096);
    if (!v.sptes[code]) return `the current slot ${v.current} has no Switcher code page at ${hex(c.switcherAddr)}`;
    return null;
  },
  // Non-trivial when the op rewrote the current slot's record (a flush, a
  // reuse, a setPgd, a switch to it); the full check, whenever the guest is
  // alive on a cached slot.
  exercised(v, _c, scope) {
    if (v.dead) return false;
    if (scope) return scope.slots.includes(v.current);
    return v.slots[v.current] !== undefined;
  },
};
// #endregion

// #region mutant
/**
 * guest_pagetable_clear_all without its last step: everything is released
 * and the stack re-pinned, but allocate_switcher_mapping() is not called, so
 * after flushAll (or a PAE setPmd) the current top level has no Switcher and
 * the guest's next trap would have nowhere to land (seed 004, H:470
 * guest_pagetable_clear_all: "And we need Switcher allocated").
 */
export class ClearAllForgetsSwitcher extends ShadowPtImpl {
  protected override clearAll(): string | null {
    this.releaseAllPagetables();
    return this.pinStackPages();
  }
}

export const clearAllForgetsSwitcher: Mutant<Config, Op, Result, View, Scope> = {
  id: 'clear-all-forgets-switcher',
  title: 'flushAll releases everything but never maps the Switcher again',
  source: `${SEED}, H:470 guest_pagetable_clear_all ("And we need Switcher allocated")`,
  expectedToViolate: ['current-has-switcher'],
  create: (c) => new ClearAllForgetsSwitcher(c),
};
// #endregion
