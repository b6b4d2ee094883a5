/**
 * Checking a case step's `expect` against the domain's result codec before
 * anything runs. `expect` is a partial result: every key it names must be a
 * field of some result shape, and its value must have that field's type.
 * Without this check a typo (`"refs"` written `"ref"`, `1` written `"1"`)
 * made a case that could never pass — a failing case (exit 1) instead of an
 * invalid one (exit 2).
 *
 * The result codec is read through its JSON Schema (`jsonSchemaOf`), so the
 * check knows no domain: a union of object shapes, each field with its type.
 */
import type * as t from 'io-ts';
import type { InputError, Json } from './domain';
import { deepEqual, jsonSchemaOf, type JsonSchema } from './codec';
import { clip, clipText } from './input';

const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

function isObj(v: unknown): v is { [k: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The object shapes of a (possibly nested) union schema; `null` when the schema says nothing checkable. */
function objectShapes(s: JsonSchema): JsonSchema[] | null {
  const any = s['anyOf'];
  if (Array.isArray(any)) {
    const out: JsonSchema[] = [];
    for (const m of any) {
      if (!isObj(m)) return null;
      const sub = objectShapes(m);
      if (sub === null) return null;
      out.push(...sub);
    }
    return out;
  }
  if (isObj(s['properties'])) return [s];
  return null;
}

/** Whether `v` satisfies the subset of JSON Schema that `jsonSchemaOf` produces; unknown keywords accept. */
export function satisfies(s: Json, v: unknown): boolean {
  if (!isObj(s)) return true;
  if (hasOwn(s, 'const') && !deepEqual(s['const'], v)) return false;
  const en = s['enum'];
  if (Array.isArray(en) && !en.some((e) => deepEqual(e, v))) return false;
  const any = s['anyOf'];
  if (Array.isArray(any) && !any.some((m) => satisfies(m, v))) return false;
  const all = s['allOf'];
  if (Array.isArray(all) && !all.every((m) => satisfies(m, v))) return false;
  const type = s['type'];
  if (typeof type === 'string') {
    const ok =
      type === 'integer'
        ? typeof v === 'number' && Number.isInteger(v)
        : type === 'number'
          ? typeof v === 'number'
          : type === 'string'
            ? typeof v === 'string'
            : type === 'boolean'
              ? typeof v === 'boolean'
              : type === 'null'
                ? v === null
                : type === 'array'
                  ? Array.isArray(v)
                  : type === 'object'
                    ? isObj(v)
                    : true;
    if (!ok) return false;
  }
  if (typeof v === 'number') {
    if (typeof s['minimum'] === 'number' && v < s['minimum']) return false;
    if (typeof s['maximum'] === 'number' && v > s['maximum']) return false;
  }
  if (Array.isArray(v)) {
    const items = s['items'];
    if (Array.isArray(items)) {
      if (v.length !== items.length) return false;
      if (!items.every((it, i) => satisfies(it, v[i]))) return false;
    } else if (isObj(items) && !v.every((x) => satisfies(items, x))) return false;
  }
  if (isObj(v) && isObj(s['properties'])) {
    const props = s['properties'];
    const req = Array.isArray(s['required']) ? s['required'] : [];
    for (const r of req) if (typeof r === 'string' && !hasOwn(v, r)) return false;
    for (const k of Object.keys(v)) {
      if (hasOwn(props, k)) {
        if (!satisfies(props[k]!, v[k])) return false;
      } else if (s['additionalProperties'] === false) return false;
    }
  }
  return true;
}

/** A short description of what a schema accepts, for error messages. */
function describe(s: Json): string {
  if (!isObj(s)) return 'a value';
  if (hasOwn(s, 'const')) return JSON.stringify(s['const']);
  if (Array.isArray(s['enum'])) return s['enum'].map((e) => JSON.stringify(e)).join(' | ');
  if (Array.isArray(s['anyOf'])) return [...new Set(s['anyOf'].map(describe))].join(' | ');
  if (typeof s['description'] === 'string') return s['description'];
  if (s['type'] === 'array') return `array of ${describe(s['items'] ?? null)}`;
  if (typeof s['type'] === 'string') return s['type'];
  return 'a value';
}

/** Errors of one `expect` object (at JSON path `at`) against a result codec. */
export function checkExpect(resultCodec: t.Mixed, expect: { [k: string]: Json }, at: string): InputError[] {
  const shapes = objectShapes(jsonSchemaOf(resultCodec));
  if (shapes === null) return [];
  const keys = Object.keys(expect);
  const fields = [...new Set(shapes.flatMap((s) => Object.keys(s['properties'] as object)))];
  const errors: InputError[] = [];
  for (const k of keys) {
    const having = shapes.filter((s) => hasOwn(s['properties'] as object, k));
    const kp = /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(k) ? `${at}.${k}` : `${at}[${clip(k, 40)}]`;
    if (having.length === 0) {
      errors.push({ path: kp, message: `no result has a field ${clip(k, 60)} (result fields: ${fields.join(', ')})` });
      continue;
    }
    const schemas = having.map((s) => (s['properties'] as { [f: string]: Json })[k]!);
    if (!schemas.some((sc) => satisfies(sc, expect[k]))) {
      errors.push({ path: kp, message: `expected ${clipText([...new Set(schemas.map(describe))].join(' | '), 160)}, got ${clip(expect[k])}` });
    }
  }
  if (errors.length > 0) return errors;
  const fits = shapes.some((s) => {
    const props = s['properties'] as { [f: string]: Json };
    return keys.every((k) => hasOwn(props, k) && satisfies(props[k]!, expect[k]));
  });
  if (!fits) errors.push({ path: at, message: `no result has these fields together: ${clipText(keys.join(', '), 160)}` });
  return errors;
}
