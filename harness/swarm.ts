/**
 * Swarm testing (Groce, Zhang, Eide, Chen, Regehr: "Swarm Testing", ISSTA
 * 2012; Hypothesis draws its rule subsets the same way): a share of runs
 * draws a random subset of the domain's op table, each kept entry with a
 * random weight. A run without the common ops spends its whole length on
 * the rare ones, so interleavings that a fixed mix drowns (two flushes in a
 * row, a delete right after a move) come up. The other runs use the table
 * as written.
 *
 * Any domain's generator can use it: give it the weighted table the
 * generator would pass to `fc.oneof`, draw the op arbitrary from `swarm`,
 * and tag the finished trace with `tagSwarm` so `check` can say how many
 * runs used which subset.
 */
import * as fc from 'fast-check';

export interface WeightedArb<T> {
  /** Short name, used in the report's subset labels. */
  readonly name: string;
  readonly weight: number;
  readonly arbitrary: fc.Arbitrary<T>;
}

/** Percent of runs that draw a subset (the rest use the whole table). */
export const SWARM_PERCENT = 25;

export interface SwarmDraw<T> {
  readonly arbitrary: fc.Arbitrary<T>;
  /** `all`, or the kept entries' names joined by `+`. */
  readonly label: string;
}

/**
 * The op arbitrary of one run: the whole table (most runs), or a random
 * non-empty subset with weights scaled by 1 to 4.
 */
export function swarm<T>(table: readonly WeightedArb<T>[], percent: number = SWARM_PERCENT): fc.Arbitrary<SwarmDraw<T>> {
  const whole: SwarmDraw<T> = { arbitrary: fc.oneof(...table.map(({ weight, arbitrary }) => ({ weight, arbitrary }))), label: 'all' };
  if (percent <= 0 || table.length < 2) return fc.constant(whole);
  const n = table.length;
  return fc
    .tuple(
      fc.noBias(fc.integer({ min: 0, max: 99 })),
      fc.array(fc.boolean(), { minLength: n, maxLength: n }),
      fc.array(fc.integer({ min: 1, max: 4 }), { minLength: n, maxLength: n }),
    )
    .map(([roll, keep, scale]): SwarmDraw<T> => {
      // Shrinks towards roll 0 ... and then towards the whole table: keep[] all false means "no subset".
      if (roll >= percent) return whole;
      const kept = table.filter((_, i) => keep[i]);
      if (kept.length === 0 || kept.length === n) return whole;
      return {
        arbitrary: fc.oneof(...kept.map((e) => ({ weight: e.weight * scale[table.indexOf(e)]!, arbitrary: e.arbitrary }))),
        label: kept.map((e) => e.name).join('+'),
      };
    });
}

const labels = new WeakMap<object, string>();

/** Record which subset a generated trace was drawn with (read by `check`). */
export function tagSwarm<T extends object>(trace: T, label: string): T {
  if (label !== 'all') labels.set(trace, label);
  return trace;
}

/** The subset a trace was drawn with: `all` when none was recorded. */
export function swarmLabel(trace: object): string {
  return labels.get(trace) ?? 'all';
}
