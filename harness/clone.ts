/**
 * Copying a running system, for searches that branch (trace validation).
 *
 * A system's state is plain data (numbers, strings, arrays, typed arrays, Maps,
 * Sets and class instances of them) plus its op-handler table, whose closures
 * capture the system itself. So a copy is made by constructing a fresh system
 * from the same config — which builds handlers bound to the fresh object — and
 * then giving it a deep copy of every non-function field of the original.
 * References back to the original system inside its own state are rebound to
 * the copy. A domain whose state holds closures elsewhere must offer its own
 * copy; `test/validate/clone.test.ts` runs every domain's model through a
 * clone-and-continue round trip to show this one is enough for them.
 */

/** Deep copy of `value`; `memo` maps originals to copies (shared structure and cycles stay shared). */
function copyValue(value: unknown, memo: Map<object, unknown>): unknown {
  if (typeof value !== 'object' || value === null) return value; // primitives; functions are kept by reference
  const known = memo.get(value);
  if (known !== undefined) return known;
  if (value instanceof ArrayBuffer) {
    const copy = value.slice(0);
    memo.set(value, copy);
    return copy;
  }
  if (ArrayBuffer.isView(value)) {
    const buffer = value.buffer as ArrayBuffer;
    let copy: unknown;
    if (value.byteLength === buffer.byteLength && value.byteOffset === 0 && !(value instanceof DataView) && !memo.has(buffer)) {
      // The common case: the view owns its buffer.
      copy = (value as unknown as { slice(): ArrayBufferView }).slice();
      if (!memo.has(buffer)) memo.set(buffer, (copy as ArrayBufferView).buffer);
    } else {
      // Views sharing one buffer stay sharing one (copied once) buffer: per-view
      // slices would un-share them, and a write through one would stop showing in the other.
      let nb = memo.get(buffer) as ArrayBuffer | undefined;
      if (nb === undefined) memo.set(buffer, (nb = buffer.slice(0)));
      const Ctor = value.constructor as new (b: ArrayBuffer, offset: number, length: number) => ArrayBufferView;
      const length = value instanceof DataView ? value.byteLength : (value as unknown as { length: number }).length;
      copy = new Ctor(nb, value.byteOffset, length);
    }
    memo.set(value, copy);
    return copy;
  }
  if (Array.isArray(value)) {
    const copy: unknown[] = new Array(value.length);
    memo.set(value, copy);
    for (let i = 0; i < value.length; i++) copy[i] = copyValue(value[i], memo);
    return copy;
  }
  if (value instanceof Map) {
    const copy = new Map<unknown, unknown>();
    memo.set(value, copy);
    for (const [k, v] of value) copy.set(copyValue(k, memo), copyValue(v, memo));
    return copy;
  }
  if (value instanceof Set) {
    const copy = new Set<unknown>();
    memo.set(value, copy);
    for (const v of value) copy.add(copyValue(v, memo));
    return copy;
  }
  const copy = Object.create(Object.getPrototypeOf(value) as object | null) as Record<PropertyKey, unknown>;
  memo.set(value, copy);
  const src = value as Record<PropertyKey, unknown>;
  for (const key of Reflect.ownKeys(src)) copy[key] = copyValue(src[key], memo);
  return copy;
}

/**
 * Make `fresh` (a system just constructed from the same config as `original`)
 * a copy of `original`'s current state. Function-valued own fields of the
 * system (its handler table, bound methods) keep `fresh`'s own.
 */
export function copyStateInto<T extends object>(fresh: T, original: T): T {
  const memo = new Map<object, unknown>([[original, fresh]]);
  const src = original as Record<PropertyKey, unknown>;
  const dst = fresh as Record<PropertyKey, unknown>;
  for (const key of Reflect.ownKeys(src)) {
    const v = src[key];
    if (typeof v === 'function') continue;
    // The handler table is an object of closures over the system: keep the fresh one.
    if (typeof v === 'object' && v !== null && !Array.isArray(v) && isTableOfFunctions(v)) continue;
    dst[key] = copyValue(v, memo);
  }
  return fresh;
}

function isTableOfFunctions(o: object): boolean {
  // Prototype first: typed arrays and class instances are never handler tables, and
  // listing a typed array's keys would cost one string per element.
  if (Object.getPrototypeOf(o) !== Object.prototype) return false;
  let any = false;
  for (const k in o) {
    if (typeof (o as Record<string, unknown>)[k] !== 'function') return false;
    any = true;
  }
  return any;
}
