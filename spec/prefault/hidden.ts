/**
 * What a recorded prefault log may leave out (trace validation).
 *
 * `preFault.signalAfter`: whether, and after how many chunks, a signal
 * became pending during KVM_PRE_FAULT_MEMORY is the environment's choice; a
 * log shows only the answer (EINTR, or the range left to do). The candidates
 * are "no signal" and a signal after 0 .. SIGNAL_CHOICES-1 chunks; a trace
 * whose answer needs a later signal must spell `signalAfter` out.
 */
import type { HiddenChoices } from '../../harness/domain';
import type { PrefaultConfig, PrefaultOp, View } from './types';

/** How many signal positions a trace's omitted `signalAfter` stands for (besides none). */
export const SIGNAL_CHOICES = 16;

export const prefaultHidden: HiddenChoices<PrefaultConfig, PrefaultOp, View> = {
  choiceArgs: {
    preFault: { signalAfter: () => [undefined, ...Array.from({ length: SIGNAL_CHOICES }, (_, i) => i)] },
  },
};
