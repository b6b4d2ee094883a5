/**
 * A fixed-size bitmap over small integers (CPU numbers, ASIDs), one bit per
 * member in 32-bit words: the kernel's cpumask / DECLARE_BITMAP. The set is
 * only ever walked through its set bits, so a walk costs the number of words
 * plus the number of members, not a loop over every possible CPU.
 */
export class Bitmap {
  readonly words: Uint32Array;

  constructor(readonly nbits: number) {
    this.words = new Uint32Array(Math.max(1, (nbits + 31) >>> 5));
  }

  // Callers pass bit < nbits, so the word exists (the `!`s below rely on it).
  set(bit: number): void {
    const w = bit >>> 5;
    this.words[w] = this.words[w]! | (1 << (bit & 31));
  }

  clear(bit: number): void {
    const w = bit >>> 5;
    this.words[w] = this.words[w]! & ~(1 << (bit & 31));
  }

  test(bit: number): boolean {
    return (this.words[bit >>> 5]! & (1 << (bit & 31))) !== 0;
  }

  isEmpty(): boolean {
    for (let i = 0; i < this.words.length; i++) if (this.words[i] !== 0) return false;
    return true;
  }

  clearAll(): void {
    this.words.fill(0);
  }

  setAll(): void {
    this.words.fill(0xffffffff);
    const tail = this.nbits & 31;
    if (tail !== 0) this.words[this.words.length - 1] = (1 << tail) - 1;
  }

  /** Number of set bits. */
  weight(): number {
    let n = 0;
    for (let i = 0; i < this.words.length; i++) {
      let w = this.words[i]!;
      while (w !== 0) {
        w &= w - 1;
        n++;
      }
    }
    return n;
  }

  /** Lowest clear bit at or above `from`, or `nbits` if none (find_next_zero_bit). */
  findNextZero(from: number): number {
    for (let b = from; b < this.nbits; b++) if (!this.test(b)) return b;
    return this.nbits;
  }

  /** Calls `f` for every set bit, lowest first (for_each_cpu). */
  forEach(f: (bit: number) => void): void {
    for (let i = 0; i < this.words.length; i++) {
      let w = this.words[i]!;
      while (w !== 0) {
        const low = w & -w;
        f((i << 5) + (31 - Math.clz32(low)));
        w ^= low;
      }
    }
  }

  toArray(): number[] {
    const out: number[] = [];
    this.forEach((b) => out.push(b));
    return out;
  }

  /** this &= ~other */
  andNot(other: Bitmap): void {
    // Both masks are sized for the same CPU count: every index exists in both.
    for (let i = 0; i < this.words.length; i++) this.words[i] = this.words[i]! & ~other.words[i]!;
  }
}
