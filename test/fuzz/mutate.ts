/**
 * Structure-aware mutations for the fuzz suite: a case file is parsed, then
 * changed where its structure is (a value replaced by a boundary number or a
 * prototype name, a key deleted or added, a step duplicated, an op renamed),
 * then written out as JSON — or as bytes that are not quite JSON (a
 * duplicated key, an invalid UTF-8 byte, a cut, a NUL). Also: argument
 * vectors for every command, built from the real option names and values at
 * their edges.
 */
import * as fc from 'fast-check';

export type JsonV = null | boolean | number | string | JsonV[] | { [k: string]: JsonV };

/** Values at the edges of what codecs, models and the harness handle. */
export const NUMBERS: readonly number[] = [-1, 0, 1, 2, 63, 64, 511, 512, 513, 4096, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 36, 2 ** 52, 2 ** 53 - 1, 2 ** 53, -(2 ** 53), 1.5, -0.5, 1e308, -1e308];
export const PROTO_NAMES: readonly string[] = ['toString', 'constructor', '__proto__', 'valueOf', 'hasOwnProperty', 'isPrototypeOf', '__defineGetter__'];
const LONG = 'A'.repeat(1024 * 1024);
const STRINGS: readonly string[] = ['', ...PROTO_NAMES, 'x', '0x10', '-1', '\u0000', '\ud800', 'ℵ', 'A'.repeat(300), LONG];

function valueArb(): fc.Arbitrary<JsonV> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...NUMBERS) },
    { weight: 2, arbitrary: fc.integer() },
    { weight: 3, arbitrary: fc.constantFrom(...STRINGS) },
    { weight: 1, arbitrary: fc.constantFrom<JsonV>(null, true, false, [], {}) },
    { weight: 1, arbitrary: fc.integer({ min: 200, max: 400 }).map((d) => nested(d)) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<JsonV> },
  );
}

function nested(depth: number): JsonV {
  let v: JsonV = 0;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

export type Mutation =
  | { k: 'set'; at: number; v: JsonV }
  | { k: 'num'; at: number; how: number; v: number }
  | { k: 'del'; at: number }
  | { k: 'add'; at: number; key: string; v: JsonV }
  | { k: 'dup'; at: number; times: number }
  | { k: 'op'; at: number; name: string }
  | { k: 'domain'; name: string };

export type Serialization = { how: 'json' | 'pretty' | 'dupKey' | 'badUtf8' | 'truncate' | 'bom' | 'nul'; at: number };

export function mutationArb(opNames: readonly string[], domainIds: readonly string[]): fc.Arbitrary<Mutation> {
  const at = fc.nat();
  return fc.oneof(
    { weight: 5, arbitrary: fc.record({ k: fc.constant('set' as const), at, v: valueArb() }) },
    // Type-preserving: a number stays a number (its neighbour, double, zero or an edge value), so the case
    // still decodes more often and the models and impls see valid but unusual input.
    { weight: 5, arbitrary: fc.record({ k: fc.constant('num' as const), at, how: fc.nat({ max: 5 }), v: fc.constantFrom(...NUMBERS) }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('del' as const), at }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('add' as const), at, key: fc.constantFrom('__proto__', 'constructor', 'toString', 'valueOf', 'expect', 'args', 'op', 'ok', 'error', 'refs', 'typo', 'A'.repeat(5000), ''), v: valueArb() }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('dup' as const), at, times: fc.integer({ min: 1, max: 20 }) }) },
    { weight: 3, arbitrary: fc.record({ k: fc.constant('op' as const), at, name: fc.constantFrom(...opNames, ...PROTO_NAMES, '', 'A'.repeat(LONG.length)) }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('domain' as const), name: fc.constantFrom(...domainIds, ...PROTO_NAMES, '') }) },
  );
}

export function serializationArb(): fc.Arbitrary<Serialization> {
  return fc.record({
    how: fc.constantFrom<Serialization['how']>('json', 'json', 'json', 'json', 'pretty', 'dupKey', 'badUtf8', 'truncate', 'bom', 'nul'),
    at: fc.nat(),
  });
}

function define(o: { [k: string]: JsonV }, k: string, v: JsonV): void {
  // defineProperty: a key "__proto__" stays a plain key, as in parsed JSON.
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

export function clone(v: JsonV): JsonV {
  if (Array.isArray(v)) return v.map(clone);
  if (v !== null && typeof v === 'object') {
    const o: { [k: string]: JsonV } = {};
    for (const k of Object.keys(v)) define(o, k, clone(v[k]!));
    return o;
  }
  return v;
}

type Path = (string | number)[];

/** Every container and leaf path (the root included), at most `limit`. */
function paths(v: JsonV, limit = 20_000): Path[] {
  const out: Path[] = [];
  const walk = (x: JsonV, p: Path) => {
    if (out.length >= limit) return;
    out.push(p);
    if (Array.isArray(x)) x.forEach((y, i) => walk(y, [...p, i]));
    else if (x !== null && typeof x === 'object') for (const k of Object.keys(x)) walk(x[k]!, [...p, k]);
  };
  walk(v, []);
  return out;
}

function get(v: JsonV, p: Path): JsonV | undefined {
  let x: JsonV | undefined = v;
  for (const k of p) {
    if (x === null || typeof x !== 'object') return undefined;
    x = Array.isArray(x) ? x[k as number] : Object.prototype.hasOwnProperty.call(x, k) ? x[k as string] : undefined;
  }
  return x;
}

function setAt(root: JsonV, p: Path, v: JsonV | undefined): JsonV {
  if (p.length === 0) return v === undefined ? null : v;
  const parent = get(root, p.slice(0, -1));
  const k = p[p.length - 1]!;
  if (Array.isArray(parent)) {
    if (v === undefined) parent.splice(k as number, 1);
    else parent[k as number] = v;
  } else if (parent !== null && typeof parent === 'object') {
    if (v === undefined) delete parent[k as string];
    else define(parent, k as string, v);
  }
  return root;
}

export function applyMutations(base: JsonV, muts: readonly Mutation[]): JsonV {
  let v = clone(base);
  for (const m of muts) {
    if (m.k === 'domain') {
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) define(v, 'domain', m.name);
      continue;
    }
    if (m.k === 'op') {
      const steps = get(v, ['steps']);
      if (Array.isArray(steps) && steps.length > 0) {
        const s = steps[m.at % steps.length];
        if (s !== null && typeof s === 'object' && !Array.isArray(s)) define(s, 'op', m.name);
      }
      continue;
    }
    const all = paths(v);
    if (m.k === 'num') {
      const nums = all.filter((q) => typeof get(v, q) === 'number');
      if (nums.length === 0) continue;
      const q = nums[m.at % nums.length]!;
      const x = get(v, q) as number;
      v = setAt(v, q, [x + 1, x - 1, x * 2, 0, m.v, x + m.v][m.how]!);
      continue;
    }
    const p = all[m.at % all.length]!;
    if (m.k === 'set') v = setAt(v, p, m.v);
    else if (m.k === 'del') v = setAt(v, p, undefined);
    else if (m.k === 'add') {
      const target = get(v, p);
      if (target !== null && typeof target === 'object' && !Array.isArray(target)) define(target, m.key, m.v);
      else if (Array.isArray(target)) target.push(m.v);
    } else if (m.k === 'dup') {
      const target = get(v, p);
      if (Array.isArray(target) && target.length > 0) {
        const item = target[m.at % target.length]!;
        for (let i = 0; i < m.times; i++) target.push(clone(item));
      }
    }
  }
  return v;
}

/** JSON text in which the object at the chosen path writes its first key twice. */
function stringifyWithDuplicate(v: JsonV, pick: number): string {
  const objects = paths(v).filter((p) => {
    const x = get(v, p);
    return x !== null && typeof x === 'object' && !Array.isArray(x) && Object.keys(x).length > 0;
  });
  if (objects.length === 0) return `{"a":1,"a":2,"v":${JSON.stringify(v)}}`;
  const target = get(v, objects[pick % objects.length]!);
  const s = (x: JsonV): string => {
    if (Array.isArray(x)) return `[${x.map(s).join(',')}]`;
    if (x !== null && typeof x === 'object') {
      const keys = Object.keys(x);
      const parts = keys.map((k) => `${JSON.stringify(k)}:${s(x[k]!)}`);
      if (x === target) parts.push(parts[0]!);
      return `{${parts.join(',')}}`;
    }
    return JSON.stringify(x);
  };
  return s(v);
}

export function serialize(v: JsonV, how: Serialization): Buffer {
  switch (how.how) {
    case 'json':
      return Buffer.from(JSON.stringify(v));
    case 'pretty':
      return Buffer.from(JSON.stringify(v, null, 2));
    case 'dupKey':
      return Buffer.from(stringifyWithDuplicate(v, how.at));
    case 'bom':
      return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(v))]);
    case 'badUtf8':
    case 'truncate':
    case 'nul': {
      const b = Buffer.from(JSON.stringify(v));
      const at = b.length === 0 ? 0 : how.at % b.length;
      if (how.how === 'truncate') return b.subarray(0, at);
      const insert = how.how === 'nul' ? Buffer.from([0]) : Buffer.from([[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf8]][how.at % 4]!);
      return Buffer.concat([b.subarray(0, at), insert, b.subarray(at)]);
    }
  }
}

/** Argument vectors: a command (or not), its real options and some unknown ones, values at their edges. */
export function argvArb(commands: { [name: string]: readonly string[] }, values: readonly string[]): fc.Arbitrary<string[]> {
  const names = Object.keys(commands);
  const token = (cmd: string) =>
    fc.oneof(
      { weight: 5, arbitrary: fc.tuple(fc.constantFrom(...(commands[cmd] ?? ['--help'])), fc.constantFrom(...values)).map(([o, v]) => [o, v]) },
      { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...(commands[cmd] ?? ['--help'])), fc.constantFrom(...values)).map(([o, v]) => [`${o}=${v}`]) },
      { weight: 2, arbitrary: fc.constantFrom(...(commands[cmd] ?? ['--help'])).map((o) => [o]) },
      { weight: 1, arbitrary: fc.constantFrom('--', '-', '-h', '-x', '--__proto__', '--constructor', '--toString', `--${'a'.repeat(5000)}`, '--no-such-option').map((o) => [o]) },
      { weight: 2, arbitrary: fc.constantFrom(...values).map((v) => [v]) },
    );
  return fc.oneof(
    { weight: 9, arbitrary: fc.constantFrom(...names).chain((cmd) => fc.array(token(cmd), { maxLength: 6 }).map((ts) => [cmd, ...ts.flat()])) },
    { weight: 1, arbitrary: fc.array(fc.constantFrom('', 'help', '--help', '--version', '-V', ...PROTO_NAMES, 'A'.repeat(5000), ...names), { maxLength: 3 }) },
  );
}
