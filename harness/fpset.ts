/**
 * Compact sets of state fingerprints for bounded exploration.
 *
 * TLC stores a 64-bit hash of each state, not the state: a set of millions of
 * states then costs 8 bytes each (plus the table's slack), and the chance that
 * two distinct states share a hash — which would prune a state unexplored —
 * is estimated and reported instead of excluded. `FpSet` is that table: open
 * addressing with linear probing over one Uint32Array of (hi, lo) pairs,
 * doubled at half load. `ExactFpSet` keeps the full canonical fingerprint
 * text (`explore --exact`) for a search with no doubt at all.
 *
 * The hash is built without building text: `Hasher` mixes numbers and string
 * characters into two independent 32-bit lanes (murmur3-style multiply-rotate
 * steps), and `hashValue` walks a JSON-like value. Object keys, Maps and Sets
 * are combined by a commutative sum of per-entry hashes, so two Views that
 * differ only in key insertion order hash alike without sorting keys.
 */

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;
const C3 = 0x85ebca6b;
const C4 = 0xc2b2ae35;

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, C3);
  h ^= h >>> 13;
  h = Math.imul(h, C4);
  h ^= h >>> 16;
  return h;
}

/** A running 64-bit hash (two 32-bit lanes with different seeds and steps). */
export class Hasher {
  a = 0x9747b28c;
  b = 0x5bd1e995;
  n = 0;

  reset(): this {
    this.a = 0x9747b28c;
    this.b = 0x5bd1e995;
    this.n = 0;
    return this;
  }

  /** Mix one 32-bit word. */
  word(k: number): void {
    let x = Math.imul(k | 0, C1);
    x = rotl(x, 15);
    x = Math.imul(x, C2);
    this.a ^= x;
    this.a = rotl(this.a, 13);
    this.a = (Math.imul(this.a, 5) + 0xe6546b64) | 0;
    let y = Math.imul((k | 0) ^ 0x2545f491, C3);
    y = rotl(y, 17);
    y = Math.imul(y, C4);
    this.b ^= y;
    this.b = rotl(this.b, 11);
    this.b = (Math.imul(this.b, 9) + 0x38495ab5) | 0;
    this.n++;
  }

  /** Mix a number: small integers as one word, anything else as its 64-bit float. */
  num(x: number): void {
    if ((x | 0) === x) {
      this.word(x);
    } else {
      f64[0] = x;
      this.word(u32[0]! ^ 0x7ff80000);
      this.word(u32[1]!);
    }
  }

  str(s: string): void {
    const n = s.length;
    this.word(n ^ 0x53000000);
    let i = 0;
    for (; i + 1 < n; i += 2) this.word(s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16));
    if (i < n) this.word(s.charCodeAt(i));
  }

  /** The finished high and low words (the hasher is left as it was). */
  hi(): number {
    return fmix(this.a ^ this.n ^ rotl(this.b, 7)) >>> 0;
  }
  lo(): number {
    return fmix(this.b ^ Math.imul(this.n, C2) ^ rotl(this.a, 19)) >>> 0;
  }
}

/** Mix a JSON-like value (and Maps, Sets, typed arrays) into `h`. */
export function hashValue(h: Hasher, v: unknown): void {
  hashAt(h, v, 0);
}

function hashAt(h: Hasher, v: unknown, depth: number): void {
  switch (typeof v) {
    case 'number':
      h.word(0x4e);
      h.num(v);
      return;
    case 'string':
      h.str(v);
      return;
    case 'boolean':
      h.word(v ? 0x7401 : 0x7400);
      return;
    case 'undefined':
      h.word(0x7500);
      return;
    case 'bigint':
      h.str(v.toString());
      return;
    case 'object':
      break;
    default:
      h.word(0x7600);
      return;
  }
  if (v === null) {
    h.word(0x6e00);
    return;
  }
  if (Array.isArray(v)) {
    h.word(0x5b000000 ^ v.length);
    for (let i = 0; i < v.length; i++) hashAt(h, v[i], depth);
    return;
  }
  if (ArrayBuffer.isView(v)) {
    const a = v as unknown as ArrayLike<number>;
    h.word(0x5d000000 ^ a.length);
    for (let i = 0; i < a.length; i++) h.num(a[i]!);
    return;
  }
  // Unordered collections: sum of independent entry hashes (order does not matter).
  const sub = subHasher(depth);
  let sa = 0;
  let sb = 0;
  let count = 0;
  if (v instanceof Map) {
    for (const [k, val] of v) {
      sub.reset();
      hashAt(sub, k, depth + 1);
      hashAt(sub, val, depth + 1);
      sa = (sa + sub.hi()) | 0;
      sb = (sb + sub.lo()) | 0;
      count++;
    }
  } else if (v instanceof Set) {
    for (const k of v) {
      sub.reset();
      hashAt(sub, k, depth + 1);
      sa = (sa + sub.hi()) | 0;
      sb = (sb + sub.lo()) | 0;
      count++;
    }
  } else {
    const o = v as Record<string, unknown>;
    for (const k in o) {
      const val = o[k];
      if (val === undefined) continue;
      sub.reset();
      sub.str(k);
      hashAt(sub, val, depth + 1);
      sa = (sa + sub.hi()) | 0;
      sb = (sb + sub.lo()) | 0;
      count++;
    }
  }
  h.word(0x7b000000 ^ count);
  h.word(sa);
  h.word(sb);
}

/** One scratch hasher per nesting depth: hashing allocates nothing once warm. */
const scratch: Hasher[] = [];
function subHasher(depth: number): Hasher {
  return (scratch[depth] ??= new Hasher());
}

/** A set of 64-bit fingerprints: open addressing, linear probing, typed arrays. */
export class FpSet {
  private table: Uint32Array;
  private mask: number;
  size = 0;

  constructor(capacityPow2 = 1 << 12) {
    this.table = new Uint32Array(capacityPow2 * 2);
    this.mask = capacityPow2 - 1;
  }

  /** Add (hi, lo); true when it was not there. (0, 0) is the empty slot, so it is stored as (0, 1). */
  add(hi: number, lo: number): boolean {
    hi >>>= 0;
    lo >>>= 0;
    if (hi === 0 && lo === 0) lo = 1;
    const i = this.probe(hi, lo);
    const t = this.table;
    if (t[2 * i] !== 0 || t[2 * i + 1] !== 0) return false;
    t[2 * i] = hi;
    t[2 * i + 1] = lo;
    if (++this.size * 2 > this.mask + 1) this.grow();
    return true;
  }

  has(hi: number, lo: number): boolean {
    hi >>>= 0;
    lo >>>= 0;
    if (hi === 0 && lo === 0) lo = 1;
    const i = this.probe(hi, lo);
    return this.table[2 * i] !== 0 || this.table[2 * i + 1] !== 0;
  }

  /** Linear probing: the slot holding (hi, lo), or the empty slot where it would go. */
  private probe(hi: number, lo: number): number {
    const t = this.table;
    let i = (lo ^ Math.imul(hi, 0x9e3779b1)) & this.mask;
    for (;;) {
      const h = t[2 * i]!;
      const l = t[2 * i + 1]!;
      if ((h === 0 && l === 0) || (h === hi && l === lo)) return i;
      i = (i + 1) & this.mask;
    }
  }


  private grow(): void {
    const old = this.table;
    this.table = new Uint32Array(old.length * 2);
    this.mask = old.length - 1; // old.length / 2 slots before: now old.length slots
    this.size = 0;
    for (let i = 0; i < old.length; i += 2) {
      if (old[i] !== 0 || old[i + 1] !== 0) this.add(old[i]!, old[i + 1]!);
    }
  }

  /** Bytes held by the table. */
  bytes(): number {
    return this.table.byteLength;
  }
}

/**
 * The probability that some two of `n` distinct states share a 64-bit hash
 * (birthday bound n^2 / 2^65), as TLC reports it: the chance that the search
 * pruned at least one state it had not seen.
 */
export function collisionProbability(n: number): number {
  return (n * n) / 2 ** 65;
}
