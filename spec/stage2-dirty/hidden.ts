/**
 * What a recorded stage2-dirty log may leave out (trace validation).
 *
 * - A TLB entry dropped by the hardware (`tlbEvict`): translations are cached
 *   and evicted at will; no log shows it.
 * - A host-side invalidation of a mapped leaf (`unmapRange` over exactly that
 *   leaf): the MMU notifier runs when the host reclaims or migrates a page,
 *   which a VMM's log of KVM ioctls does not see.
 * Both are tried only where they change something: for each cached
 * translation and each valid leaf in the View.
 */
import type { HiddenChoices } from '../../harness/domain';
import type { Config, Op, View } from './types';

export const stage2DirtyHidden: HiddenChoices<Config, Op, View> = {
  hiddenOps: (c, view) => [
    ...view.tlb.map((e): Op => ({ op: 'tlbEvict', args: { gfn: e.gfn } })),
    ...view.mappings.map((m): Op => ({ op: 'unmapRange', args: { gfn: m.gfn, npages: m.size === '2m' ? c.blockPages : 1 } })),
  ],
};
