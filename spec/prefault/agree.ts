/**
 * Comparing the model's and the implementation's Views. The whole View is
 * observable; with a scope (the gfn range the op changed) only the leaves in
 * that range are compared, the rest having been compared before. Written by
 * hand (no JSON, no generic deep equality) because it runs after every step.
 */
import { firstLeafEndingAfter, hex, type Leaf, type LastOp, type Scope, type View } from './types';

function leafEq(a: Leaf, b: Leaf): boolean {
  return a.gfn === b.gfn && a.size === b.size && a.private === b.private;
}

function showLeaf(l: Leaf | undefined): string {
  return l === undefined ? 'nothing' : `${l.size} ${l.private ? 'private' : 'shared'} leaf at gfn ${hex(l.gfn)}`;
}

function compareLeaves(what: string, a: readonly Leaf[], b: readonly Leaf[], from: number, to: number, bFrom: number, bTo: number): string | null {
  for (let i = from, j = bFrom; i < to || j < bTo; i++, j++) {
    const x = i < to ? a[i] : undefined;
    const y = j < bTo ? b[j] : undefined;
    if (x === undefined || y === undefined || !leafEq(x, y)) return `${what}: the model has ${showLeaf(x)} where the implementation has ${showLeaf(y)}.`;
  }
  return null;
}

function range(leaves: readonly Leaf[], scope: Scope): [number, number] {
  const i = firstLeafEndingAfter(leaves, scope.start);
  let j = i;
  while (j < leaves.length && leaves[j]!.gfn < scope.end) j++;
  return [i, j];
}

function lastEq(a: LastOp | null, b: LastOp | null): string | null {
  if (a === null || b === null) return a === b ? null : 'one side has no record of the last op';
  if (a.op !== b.op || a.measuredBefore !== b.measuredBefore || a.gfn !== b.gfn) return `the records of the last op differ (${a.op} vs ${b.op}).`;
  const ra = a.request;
  const rb = b.request;
  if ((ra === null) !== (rb === null)) return 'one side recorded a preFault request, the other did not.';
  if (ra !== null && rb !== null && (ra.gpa !== rb.gpa || ra.size !== rb.size || ra.flags !== rb.flags || ra.signalAfter !== rb.signalAfter)) {
    return 'the recorded preFault requests differ.';
  }
  const xa = a.result;
  const xb = b.result;
  if ((xa === null) !== (xb === null)) return 'one side recorded a preFault result, the other did not.';
  if (xa !== null && xb !== null && (xa.ok !== xb.ok || xa.error !== xb.error || xa.gpa !== xb.gpa || xa.size !== xb.size)) {
    return 'the recorded preFault results differ.';
  }
  const pa = a.populate;
  const pb = b.populate;
  if ((pa === null) !== (pb === null)) return 'one side recorded a populate, the other did not.';
  if (pa !== null && pb !== null && (pa.gpa !== pb.gpa || pa.npages !== pb.npages || pa.ok !== pb.ok || pa.error !== pb.error || pa.resGpa !== pb.resGpa || pa.resNpages !== pb.resNpages)) {
    return 'the recorded populate calls differ.';
  }
  return compareLeaves(`leaves before ${a.op}`, a.before, b.before, 0, a.before.length, 0, b.before.length);
}

function slotsEq(a: View['memslots'], b: View['memslots']): string | null {
  if (a === b) return null;
  const n = Math.max(a.length, b.length);
  for (let k = 0; k < n; k++) {
    const x = a[k];
    const y = b[k];
    if (x === undefined || y === undefined || x.id !== y.id || x.baseGfn !== y.baseGfn || x.npages !== y.npages || x.backing !== y.backing || x.guestMemfd !== y.guestMemfd) {
      const show = (s: typeof x): string => (s === undefined ? 'nothing' : `slot ${s.id} [${hex(s.baseGfn)}, ${hex(s.baseGfn + s.npages)})`);
      return `the memslots differ: the model has ${show(x)} where the implementation has ${show(y)}.`;
    }
  }
  return null;
}

export function viewsAgree(m: View, i: View, scope?: Scope): string | null {
  if (m.finalized !== i.finalized) return `the model is ${m.finalized ? '' : 'not '}finalized, the implementation is ${i.finalized ? '' : 'not '}.`;
  // The measurement only grows by appending: with a scope, compare what this op may have appended.
  const from = scope !== undefined && m.last !== null ? Math.min(m.last.measuredBefore, m.measurement.length) : 0;
  let same = m.measurement.length === i.measurement.length;
  for (let k = from; same && k < m.measurement.length; k++) same = m.measurement[k] === i.measurement[k];
  if (!same) {
    return `the measurements differ: model [${m.measurement.slice(0, 8).map(hex).join(', ')}${m.measurement.length > 8 ? ', ...' : ''}] vs implementation [${i.measurement.slice(0, 8).map(hex).join(', ')}${i.measurement.length > 8 ? ', ...' : ''}].`;
  }
  const sd = slotsEq(m.memslots, i.memslots);
  if (sd !== null) return sd;
  if (m.attributes.length !== i.attributes.length) return `the attribute runs differ (${m.attributes.length} vs ${i.attributes.length} runs).`;
  for (let k = 0; k < m.attributes.length; k++) {
    const a = m.attributes[k]!;
    const b = i.attributes[k]!;
    if (a.gfn !== b.gfn || a.npages !== b.npages || a.private !== b.private) return `the attribute runs differ at gfn ${hex(Math.min(a.gfn, b.gfn))}.`;
  }
  const d = lastEq(m.last, i.last);
  if (d !== null) return d;
  if (scope === undefined) {
    if (m.leaves.length !== i.leaves.length) {
      const c = compareLeaves('leaves', m.leaves, i.leaves, 0, m.leaves.length, 0, i.leaves.length);
      return c ?? `the model has ${m.leaves.length} leaves, the implementation ${i.leaves.length}.`;
    }
    return compareLeaves('leaves', m.leaves, i.leaves, 0, m.leaves.length, 0, i.leaves.length);
  }
  if (scope.start >= scope.end) return null;
  const [a0, a1] = range(m.leaves, scope);
  const [b0, b1] = range(i.leaves, scope);
  return compareLeaves(`leaves in gfn [${hex(scope.start)}, ${hex(scope.end)})`, m.leaves, i.leaves, a0, a1, b0, b1);
}
