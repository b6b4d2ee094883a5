/**
 * Explaining a trace step by step: what each op changed in the abstract
 * state (entries added and removed, references moved, lines dirtied ...),
 * and which invariants a trace violates anywhere (not only the first).
 */
import type { Domain, OpShape, ResultShape, System } from './domain';
import { deepEqual } from './codec';

export interface ExplainedStep<O, R> {
  readonly index: number;
  readonly op: O;
  readonly model: R;
  readonly impl: R;
  /** Changes in the model's View made by this step. */
  readonly changes: string[];
  /** Changes in the impl's View where they differ from the model's. */
  readonly implChanges: string[] | null;
  /** The two Views disagree after this step (the domain's `viewsAgree`), with its sentence. */
  readonly viewsDiffer: string | null;
  /** Invariants violated on the impl's View after this step. */
  readonly violated: { readonly id: string; readonly message: string }[];
}

function leaves(v: unknown, prefix: string, out: Map<string, string>): void {
  if (v === null || typeof v !== 'object') {
    out.set(prefix || '(root)', JSON.stringify(v) ?? 'undefined');
    return;
  }
  if (Array.isArray(v) && v.every((x) => x === null || typeof x !== 'object')) {
    // Arrays of scalars read better whole (sets of frames, masks, lists).
    out.set(prefix || '(root)', JSON.stringify(v));
    return;
  }
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 0) {
    out.set(prefix || '(root)', Array.isArray(v) ? '[]' : '{}');
    return;
  }
  for (const k of keys) {
    if (o[k] === undefined) continue;
    leaves(o[k], prefix ? (Array.isArray(v) ? `${prefix}[${k}]` : `${prefix}.${k}`) : k, out);
  }
}

/** A generic description of what changed between two Views: `+ path = v`, `- path (was v)`, `~ path: a -> b`. */
export function diffViews(before: unknown, after: unknown, limit = 40): string[] {
  const a = new Map<string, string>();
  const b = new Map<string, string>();
  leaves(before, '', a);
  leaves(after, '', b);
  const out: string[] = [];
  for (const [k, v] of b) {
    const old = a.get(k);
    if (old === undefined) out.push(`+ ${k} = ${v}`);
    else if (old !== v) out.push(`~ ${k}: ${old} -> ${v}`);
  }
  for (const [k, v] of a) if (!b.has(k)) out.push(`- ${k} (was ${v})`);
  if (out.length > limit) return [...out.slice(0, limit), `... and ${out.length - limit} more changes`];
  return out;
}

/** Replay a trace on model and `impl`, explaining every step; never stops early. */
export function explainTrace<C, O extends OpShape, R extends ResultShape, V, S>(
  d: Domain<C, O, R, V, S>,
  config: C,
  ops: readonly O[],
  createImpl: (c: C) => System<O, R, V, S> = (c) => d.createImpl(c),
): ExplainedStep<O, R>[] {
  const model = d.createModel(config);
  const impl = createImpl(config);
  let mv = model.view();
  let iv = impl.view();
  const out: ExplainedStep<O, R>[] = [];
  ops.forEach((op, index) => {
    let rm: R;
    let ri: R;
    try {
      rm = model.apply(op);
    } catch (e) {
      rm = { ok: false, error: `threw ${String(e)}` } as unknown as R;
    }
    try {
      ri = impl.apply(op);
    } catch (e) {
      ri = { ok: false, error: `threw ${String(e)}` } as unknown as R;
    }
    const mv2 = model.view();
    const iv2 = impl.view();
    const changes = diffViews(mv, mv2);
    const ic = diffViews(iv, iv2);
    const violated: { id: string; message: string }[] = [];
    for (const inv of d.invariants) {
      const msg = inv.check(iv2, config);
      if (msg !== null) violated.push({ id: inv.id, message: msg });
    }
    const viewsDiffer = d.viewsAgree ? d.viewsAgree(mv2, iv2) : deepEqual(mv2, iv2) ? null : 'views differ';
    out.push({ index, op, model: rm, impl: ri, changes, implChanges: deepEqual(changes, ic) ? null : ic, viewsDiffer, violated });
    mv = mv2;
    iv = iv2;
  });
  return out;
}

/** Every invariant a trace violates on the impl side at some step, plus mismatch kinds. */
export function violationsOf<O, R>(steps: readonly ExplainedStep<O, R>[], resultsAgree: (a: R, b: R) => boolean): Set<string> {
  const s = new Set<string>();
  for (const st of steps) {
    for (const v of st.violated) s.add(v.id);
    if (!resultsAgree(st.model, st.impl)) s.add('result-mismatch');
    if (st.viewsDiffer !== null) s.add('view-mismatch');
  }
  return s;
}
