/**
 * What a recorded shadow-pt log may leave out (trace validation).
 *
 * `newPagetable.victim`: when the guest switches to a top level the host does
 * not cache, the host picks a slot to reuse (lguest's `new_pgdir` takes a
 * random one: `pgdir_num = random32() % ARRAY_SIZE(...)`), so a log of the
 * hypercall does not say which; every slot is a candidate. No environment
 * step is hidden: every change to the shadow tables is a hypercall or a fault.
 */
import type { HiddenChoices } from '../../harness/domain';
import type { Config, Op, View } from './types';

export const shadowPtHidden: HiddenChoices<Config, Op, View> = {
  choiceArgs: {
    newPagetable: { victim: (c) => Array.from({ length: c.pgdirSlots }, (_, i) => i) },
  },
};
