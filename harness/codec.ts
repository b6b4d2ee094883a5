/**
 * io-ts helpers shared by every domain: exact objects that reject unknown
 * fields (io-ts's own `exact` strips them silently, and a silently ignored
 * field in a case file is a bug report waiting to happen), bounded integers,
 * optional fields with defaults, the op union built from per-op argument
 * codecs, and a reporter that turns io-ts errors into `{ path, message }`.
 */
import * as t from 'io-ts';
import { isLeft } from 'fp-ts/lib/Either';
import type { InputError, Json, Resolved } from './domain';
import { clip, clipText } from './input';

/** Own properties only: an op or field named `toString` or `__proto__` is not found on Object.prototype. */
const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

/** JSON Schema fragments of the custom codecs below (see `jsonSchemaOf`). */
const SCHEMAS = new WeakMap<t.Mixed, () => JsonSchema>();
export type JsonSchema = { [key: string]: Json };

function withSchema<T extends t.Mixed>(codec: T, schema: () => JsonSchema): T {
  SCHEMAS.set(codec, schema);
  return codec;
}

/** An integer in [min, max] (inclusive). */
export function intRange(min: number, max: number, name?: string): t.Type<number, number, unknown> {
  const label = name ?? `integer in [${min}, ${max}]`;
  return withSchema(
    new t.Type<number, number, unknown>(
      label,
      (u): u is number => typeof u === 'number' && Number.isInteger(u) && u >= min && u <= max,
      (u, c) =>
        typeof u === 'number' && Number.isInteger(u) && u >= min && u <= max ? t.success(u) : t.failure(u, c),
      (a) => a,
    ),
    () => ({ type: 'integer', minimum: min, maximum: max, description: label }),
  );
}

/** A non-negative safe integer (addresses, frame numbers, sizes). */
export const Nat = intRange(0, Number.MAX_SAFE_INTEGER, 'non-negative integer');
/** A positive safe integer. */
export const PosInt = intRange(1, Number.MAX_SAFE_INTEGER, 'positive integer');
/** Any safe integer (values written to memory). */
export const Int = intRange(Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 'integer');

/** One of the given string literals. */
export function oneOf<L extends string>(values: readonly [L, ...L[]], name?: string): t.Type<L, L, unknown> {
  const set = new Set<string>(values);
  const label = name ?? values.map((v) => JSON.stringify(v)).join(' | ');
  return withSchema(
    new t.Type<L, L, unknown>(
      label,
      (u): u is L => typeof u === 'string' && set.has(u),
      (u, c) => (typeof u === 'string' && set.has(u) ? t.success(u as L) : t.failure(u, c)),
      (a) => a,
    ),
    () => ({ enum: [...values] }),
  );
}

type Props = { [key: string]: t.Mixed };

type StrictOut<R extends Props, O extends Props> = { [K in keyof R]: t.TypeOf<R[K]> } & {
  [K in keyof O]?: t.TypeOf<O[K]>;
};

/**
 * An object with required and optional fields and nothing else: an unknown
 * field is an error at its own path ("unknown field").
 */
export function strict<R extends Props, O extends Props = Record<never, never>>(
  required: R,
  optional?: O,
  name?: string,
): t.Type<StrictOut<R, O>, unknown, unknown> {
  const opt = (optional ?? {}) as O;
  const known = new Set([...Object.keys(required), ...Object.keys(opt)]);
  const label =
    name ??
    `{ ${[...Object.keys(required).map((k) => `${k}: ${required[k]!.name}`), ...Object.keys(opt).map((k) => `${k}?: ${opt[k]!.name}`)].join(', ')} }`;
  const is = (u: unknown): u is StrictOut<R, O> => {
    if (typeof u !== 'object' || u === null || Array.isArray(u)) return false;
    const o = u as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!known.has(k)) return false;
    for (const k of Object.keys(required)) if (!hasOwn(o, k) || !required[k]!.is(o[k])) return false;
    for (const k of Object.keys(opt)) if (hasOwn(o, k) && o[k] !== undefined && !opt[k]!.is(o[k])) return false;
    return true;
  };
  const codec = new t.Type<StrictOut<R, O>, unknown, unknown>(
    label,
    is,
    (u, c) => {
      if (typeof u !== 'object' || u === null || Array.isArray(u)) return t.failure(u, c, 'expected an object');
      const o = u as Record<string, unknown>;
      const errors: t.Errors = [];
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(o)) {
        if (!known.has(k)) {
          errors.push({
            value: o[k],
            context: [...c, { key: k, type: t.never, actual: o[k] }],
            message: `unknown field ${clip(k)} (expected one of: ${[...known].join(', ') || 'none'})`,
          });
        }
      }
      for (const k of Object.keys(required)) {
        const codec = required[k]!;
        if (!hasOwn(o, k)) {
          errors.push({
            value: undefined,
            context: [...c, { key: k, type: codec, actual: undefined }],
            message: `missing field "${k}" (expected ${codec.name})`,
          });
          continue;
        }
        const r = codec.validate(o[k], [...c, { key: k, type: codec, actual: o[k] }]);
        if (isLeft(r)) errors.push(...r.left);
        else out[k] = r.right;
      }
      for (const k of Object.keys(opt)) {
        if (!hasOwn(o, k) || o[k] === undefined) continue;
        const codec = opt[k]!;
        const r = codec.validate(o[k], [...c, { key: k, type: codec, actual: o[k] }]);
        if (isLeft(r)) errors.push(...r.left);
        else out[k] = r.right;
      }
      return errors.length > 0 ? t.failures(errors) : t.success(out as StrictOut<R, O>);
    },
    (a) => a,
  );
  return withSchema(codec, () => {
    const properties: { [k: string]: Json } = {};
    for (const k of Object.keys(required)) properties[k] = jsonSchemaOf(required[k]!);
    for (const k of Object.keys(opt)) properties[k] = jsonSchemaOf(opt[k]!);
    return { type: 'object', properties, required: Object.keys(required), additionalProperties: false };
  });
}

/** The op type of a table of per-op argument codecs. */
export type OpOf<A extends { [name: string]: t.Mixed }> = {
  [K in keyof A & string]: { readonly op: K; readonly args: t.TypeOf<A[K]> };
}[keyof A & string];

/** No arguments. */
export const NoArgs = strict({}, {}, '{}');

/**
 * The codec of a step `{ op, args }`: the op name is checked first (an
 * unknown op lists the known ones), then the arguments with that op's codec.
 * Extra keys are allowed only where `extraKeys` names them (case files add
 * `expect`).
 */
export function opCodec<A extends { [name: string]: t.Mixed }>(
  opArgs: A,
  extraKeys: readonly string[] = [],
): t.Type<OpOf<A>, unknown, unknown> {
  const names = Object.keys(opArgs);
  const allowed = new Set(['op', 'args', ...extraKeys]);
  const is = (u: unknown): u is OpOf<A> => {
    if (typeof u !== 'object' || u === null) return false;
    const o = u as { op?: unknown; args?: unknown };
    return typeof o.op === 'string' && hasOwn(opArgs, o.op) && opArgs[o.op]!.is(hasOwn(o, 'args') ? o.args : {});
  };
  return new t.Type<OpOf<A>, unknown, unknown>(
    `op (${names.join(' | ')})`,
    is,
    (u, c) => {
      if (typeof u !== 'object' || u === null || Array.isArray(u)) {
        return t.failure(u, c, 'expected a step object { "op": ..., "args": {...} }');
      }
      const o = u as Record<string, unknown>;
      const errors: t.Errors = [];
      for (const k of Object.keys(o)) {
        if (!allowed.has(k)) {
          errors.push({
            value: o[k],
            context: [...c, { key: k, type: t.never, actual: o[k] }],
            message: `unknown field ${clip(k)} (a step has: ${[...allowed].join(', ')})`,
          });
        }
      }
      const name = hasOwn(o, 'op') ? o['op'] : undefined;
      if (typeof name !== 'string' || !hasOwn(opArgs, name)) {
        errors.push({
          value: name,
          context: [...c, { key: 'op', type: t.string, actual: name }],
          message:
            name === undefined
              ? `missing field "op" (expected one of: ${names.join(', ')})`
              : typeof name !== 'string'
                ? `"op" must be a string naming an op, got ${clip(name)} (expected one of: ${names.join(', ')})`
                : `unknown op ${clip(name)} (expected one of: ${names.join(', ')})`,
        });
        return t.failures(errors);
      }
      const codec = opArgs[name]!;
      const args = hasOwn(o, 'args') ? o['args'] : {};
      const r = codec.validate(args, [...c, { key: 'args', type: codec, actual: args }]);
      if (isLeft(r)) errors.push(...r.left);
      if (errors.length > 0 || isLeft(r)) return t.failures(errors);
      return t.success({ op: name, args: r.right } as OpOf<A>);
    },
    (a) => a,
  );
}

/** `$.a.b[3].c` from an io-ts context. */
export function pathOf(context: t.Context, root = '$'): string {
  let p = root;
  for (const entry of context.slice(1)) {
    if (entry.key === '') continue;
    p += /^\d+$/.test(entry.key) ? `[${entry.key}]` : /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(entry.key) ? `.${clipText(entry.key, 60)}` : `[${clip(entry.key, 60)}]`;
  }
  return p;
}

function show(u: unknown): string {
  if (u === undefined) return 'nothing';
  try {
    const s = JSON.stringify(u);
    return s.length > 60 ? s.slice(0, 57) + '...' : s;
  } catch {
    return String(u);
  }
}

/** io-ts errors as `{ path, message }`, deepest first, deduplicated. */
export function reportErrors(errors: t.Errors, root = '$'): InputError[] {
  const out: InputError[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    const path = pathOf(e.context, root);
    const last = e.context[e.context.length - 1];
    const message = e.message ?? `expected ${last?.type.name ?? 'a valid value'}, got ${show(e.value)}`;
    const key = path + '\u0000' + message;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ path, message });
  }
  return out;
}

/** Decode with a codec; errors as `{ path, message }`. */
export function decode<A>(codec: t.Type<A, unknown, unknown>, input: unknown, root = '$'): Resolved<A> {
  const r = codec.validate(input, [{ key: '', type: codec, actual: input }]);
  if (isLeft(r)) return { ok: false, errors: reportErrors(r.left, root) };
  return { ok: true, value: r.right };
}

/** Deep equality of JSON-like values (objects compared by own enumerable keys; `undefined` fields ignored). */
export function deepEqual(a: unknown, b: unknown): boolean {
  // Hot path: the harness compares whole Views with it, so no arrays are
  // built and equal leaves are settled with one `===`.
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) {
    return typeof a === 'number' && typeof b === 'number' && Number.isNaN(a) && Number.isNaN(b);
  }
  const isArray = Array.isArray(a);
  if (isArray !== Array.isArray(b)) return false;
  if (isArray) {
    const aa = a as unknown[];
    const bb = b as unknown[];
    if (aa.length !== bb.length) return false;
    for (let i = 0; i < aa.length; i++) {
      const x = aa[i];
      const y = bb[i];
      if (x !== y && !deepEqual(x, y)) return false;
    }
    return true;
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  let defined = 0;
  for (const k in ao) {
    const x = ao[k];
    if (x === undefined) continue;
    defined++;
    const y = bo[k];
    if (x !== y && !deepEqual(x, y)) return false;
  }
  // Every defined field of `a` is defined and equal in `b`; equal only if `b` has no more.
  for (const k in bo) if (bo[k] !== undefined && --defined < 0) return false;
  return true;
}

/**
 * Two arrays of flat records equal row by row under `same`: what a domain's
 * `viewsAgree` uses on its hot path, where the fields to compare are known
 * and a generic deepEqual would look each one up by name.
 */
export function rowsEqual<T>(a: readonly T[], b: readonly T[], same: (x: T, y: T) => boolean): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!same(a[i]!, b[i]!)) return false;
  return true;
}

/** Number of nodes (objects, arrays, leaves) of a JSON-like value: the size a full comparison visits. */
export function jsonSize(v: unknown): number {
  if (typeof v !== 'object' || v === null) return 1;
  let n = 1;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) n += jsonSize(v[i]);
    return n;
  }
  const o = v as Record<string, unknown>;
  for (const k in o) n += jsonSize(o[k]);
  return n;
}

/** Partial match: every key of `expected` deep-equals the same key of `actual`. */
export function partialMatch(expected: { [k: string]: Json }, actual: unknown): string | null {
  if (typeof actual !== 'object' || actual === null) return `expected an object, got ${show(actual)}`;
  const a = actual as Record<string, unknown>;
  for (const k of Object.keys(expected)) {
    const got = hasOwn(a, k) ? a[k] : undefined;
    if (!deepEqual(expected[k], got)) {
      return `${clipText(k, 60)}: expected ${show(expected[k])}, got ${show(got)}`;
    }
  }
  return null;
}

/** First difference between two JSON-like values, as `path: a vs b`, or null. */
export function firstDifference(a: unknown, b: unknown, path = '$'): string | null {
  if (deepEqual(a, b)) return null;
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null && Array.isArray(a) === Array.isArray(b)) {
    const ao = a as Record<string, unknown>;
    const bo = b as Record<string, unknown>;
    const keys = [...new Set([...Object.keys(ao), ...Object.keys(bo)])];
    for (const k of keys) {
      const sub = Array.isArray(a) ? `${path}[${k}]` : `${path}.${k}`;
      const d = firstDifference(ao[k], bo[k], sub);
      if (d !== null) return d;
    }
  }
  return `${path}: ${show(a)} vs ${show(b)}`;
}

/**
 * A JSON Schema (draft-07) fragment for a codec: the custom codecs above
 * carry their own; io-ts's built-in combinators are translated by tag.
 */
export function jsonSchemaOf(codec: t.Mixed): JsonSchema {
  const own = SCHEMAS.get(codec);
  if (own) return own();
  const c = codec as t.Mixed & { _tag?: string };
  if (c instanceof t.StringType) return { type: 'string' };
  if (c instanceof t.NumberType) return { type: 'number' };
  if (c instanceof t.BooleanType) return { type: 'boolean' };
  if (c instanceof t.NullType) return { type: 'null' };
  if (c instanceof t.LiteralType) return { const: c.value as Json };
  if (c instanceof t.KeyofType) return { enum: Object.keys(c.keys) };
  if (c instanceof t.ArrayType || c instanceof t.ReadonlyArrayType) return { type: 'array', items: jsonSchemaOf(c.type as t.Mixed) };
  if (c instanceof t.UnionType) return { anyOf: (c.types as t.Mixed[]).map(jsonSchemaOf) };
  if (c instanceof t.IntersectionType) return { allOf: (c.types as t.Mixed[]).map(jsonSchemaOf) };
  if (c instanceof t.TupleType) return { type: 'array', items: (c.types as t.Mixed[]).map(jsonSchemaOf), minItems: c.types.length, maxItems: c.types.length };
  if (c instanceof t.InterfaceType || c instanceof t.StrictType) {
    const props = c.props as { [k: string]: t.Mixed };
    const properties: { [k: string]: Json } = {};
    for (const k of Object.keys(props)) properties[k] = jsonSchemaOf(props[k]!);
    return { type: 'object', properties, required: Object.keys(props) };
  }
  if (c instanceof t.PartialType) {
    const props = c.props as { [k: string]: t.Mixed };
    const properties: { [k: string]: Json } = {};
    for (const k of Object.keys(props)) properties[k] = jsonSchemaOf(props[k]!);
    return { type: 'object', properties };
  }
  if (c instanceof t.ExactType || c instanceof t.ReadonlyType) return jsonSchemaOf(c.type as t.Mixed);
  if (c instanceof t.RefinementType) {
    const base = jsonSchemaOf(c.type as t.Mixed);
    return c.name === 'Int' ? { ...base, type: 'integer' } : base;
  }
  if (c instanceof t.DictionaryType) return { type: 'object', additionalProperties: jsonSchemaOf(c.codomain as t.Mixed) };
  if (c instanceof t.RecursiveType) return { description: c.name };
  return { description: codec.name };
}
