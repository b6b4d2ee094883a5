/**
 * The hardware under the optimized implementation: per-CPU caches whose
 * lines are tagged with (page, line, key), memory holding { value, key } per
 * (page, line), the cache-maintenance instructions, and the PSP firmware's
 * WBINVD indicator that DF_FLUSH checks.
 *
 * A tag packs the address and the key: `tag = addr * nkeys + key` with
 * `addr = page * linesPerPage + line` and key 0 for the host (C=0) and the
 * ASID for a guest (C=1). Lines under the same tag are coherent across CPUs
 * (a write takes the line exclusively, a read sees the newest value); lines
 * under different keys for the same address are unrelated unless the part is
 * SME_COHERENT, in which case an access under one key first writes back and
 * drops the other keys' lines for that address.
 */
import { ciphertext, type Config, type GuestLineViewT } from '../../spec/sev-cache/types';
import { Bitmap } from './cpumask';

/** Line state flag: modified since it was filled (must be written back). */
export const LINE_DIRTY = 1 << 0;

interface CacheLine {
  readonly tag: number;
  value: number;
  flags: number;
}

export class Machine {
  readonly nkeys: number;
  /** Per CPU: tag -> line. Only present lines are stored. */
  readonly caches: Map<number, CacheLine>[];
  /** Memory, per addr: the stored value and the key it is encrypted under. */
  readonly memValue: Float64Array;
  readonly memKey: Uint16Array;
  /** Firmware: CPUs that executed WBINVD since the last DEACTIVATE. */
  readonly wbinvdDone: Bitmap;
  dfFlushes = 0;
  lastDfFlushMissing: number[] = [];

  constructor(private readonly config: Config) {
    this.nkeys = config.asids + 1;
    this.caches = Array.from({ length: config.cpus }, () => new Map<number, CacheLine>());
    const naddr = config.pages * config.linesPerPage;
    this.memValue = new Float64Array(naddr);
    this.memKey = new Uint16Array(naddr);
    this.wbinvdDone = new Bitmap(config.cpus);
  }

  addr(page: number, line: number): number {
    return page * this.config.linesPerPage + line;
  }

  tag(addr: number, key: number): number {
    return addr * this.nkeys + key;
  }

  private writeBack(l: CacheLine): void {
    if (l.flags & LINE_DIRTY) {
      const key = l.tag % this.nkeys;
      const addr = (l.tag - key) / this.nkeys;
      this.memValue[addr] = l.value;
      this.memKey[addr] = key;
      l.flags &= ~LINE_DIRTY;
    }
  }

  /** SME_COHERENT: before an access under `key`, write back and drop the address's lines under other keys. */
  private dropAliases(addr: number, key: number): void {
    if (!this.config.smeCoherent) return;
    for (const cache of this.caches) {
      if (cache.size === 0) continue;
      for (let k = 0; k < this.nkeys; k++) {
        if (k === key) continue;
        const t = this.tag(addr, k);
        const l = cache.get(t);
        if (l) {
          this.writeBack(l);
          cache.delete(t);
        }
      }
    }
  }

  /** The value a read of `addr` under `key` would return now, without side effects. */
  peek(addr: number, key: number): number {
    const t = this.tag(addr, key);
    for (const cache of this.caches) {
      const l = cache.get(t);
      if (l) return l.value;
    }
    if (this.config.smeCoherent) {
      for (const cache of this.caches) {
        if (cache.size === 0) continue;
        for (let k = 0; k < this.nkeys; k++) {
          const l = cache.get(this.tag(addr, k));
          if (l && l.flags & LINE_DIRTY) return ciphertext(l.value, k, key);
        }
      }
    }
    const mk = this.memKey[addr]!;
    return mk === key ? this.memValue[addr]! : ciphertext(this.memValue[addr]!, mk, key);
  }

  read(cpu: number, addr: number, key: number): number {
    this.dropAliases(addr, key);
    const t = this.tag(addr, key);
    const cache = this.caches[cpu]!;
    const own = cache.get(t);
    if (own) return own.value;
    const value = this.peek(addr, key);
    cache.set(t, { tag: t, value, flags: 0 });
    return value;
  }

  write(cpu: number, addr: number, key: number, value: number): void {
    this.dropAliases(addr, key);
    const t = this.tag(addr, key);
    // Take the line exclusively: other CPUs' copies of this tag are superseded.
    for (let c = 0; c < this.caches.length; c++) if (c !== cpu) this.caches[c]!.delete(t);
    const cache = this.caches[cpu]!;
    const l = cache.get(t);
    if (l) {
      l.value = value;
      l.flags |= LINE_DIRTY;
    } else cache.set(t, { tag: t, value, flags: LINE_DIRTY });
  }

  /** Hardware eviction of one line (written back if dirty); no-op if absent. */
  evict(cpu: number, addr: number, key: number): void {
    const cache = this.caches[cpu]!;
    const t = this.tag(addr, key);
    const l = cache.get(t);
    if (l) {
      this.writeBack(l);
      cache.delete(t);
    }
  }

  /** WBINVD on one CPU: write back every dirty line and invalidate everything. Returns lines invalidated. */
  wbinvd(cpu: number): number {
    const cache = this.caches[cpu]!;
    const n = cache.size;
    for (const l of cache.values()) this.writeBack(l);
    cache.clear();
    this.wbinvdDone.set(cpu);
    return n;
  }

  /** WBNOINVD on one CPU: write back every dirty line, keep every line valid. */
  wbnoinvd(cpu: number): void {
    for (const l of this.caches[cpu]!.values()) this.writeBack(l);
  }

  /** Write back and drop the given tags on every CPU. Returns lines dropped. */
  private flushTags(tags: readonly number[]): number {
    let n = 0;
    for (const cache of this.caches) {
      if (cache.size === 0) continue;
      for (const t of tags) {
        const l = cache.get(t);
        if (l) {
          this.writeBack(l);
          cache.delete(t);
          n++;
        }
      }
    }
    return n;
  }

  /**
   * CLFLUSH of a page through the host's (C=0) mapping, on every CPU (CLFLUSH
   * is broadcast). Without SME_COHERENT it only reaches the C=0 lines; with
   * it, every key's lines for those addresses.
   */
  clflushPage(page: number): number {
    const tags: number[] = [];
    for (let line = 0; line < this.config.linesPerPage; line++) {
      const a = this.addr(page, line);
      if (this.config.smeCoherent) for (let k = 0; k < this.nkeys; k++) tags.push(this.tag(a, k));
      else tags.push(this.tag(a, 0));
    }
    return this.flushTags(tags);
  }

  /** VM_PAGE_FLUSH (MSR write succeeded): write back and drop the page's lines under `asid` on every CPU. */
  vmPageFlush(page: number, asid: number): number {
    const tags: number[] = [];
    for (let line = 0; line < this.config.linesPerPage; line++) tags.push(this.tag(this.addr(page, line), asid));
    return this.flushTags(tags);
  }

  /** Firmware DEACTIVATE: the WBINVD indicator of every CPU is cleared. */
  deactivate(): void {
    this.wbinvdDone.clearAll();
  }

  /** Firmware DF_FLUSH: records the CPUs that had not run WBINVD since the last DEACTIVATE. */
  dfFlush(): void {
    this.dfFlushes++;
    const missing: number[] = [];
    for (let cpu = 0; cpu < this.config.cpus; cpu++) if (!this.wbinvdDone.test(cpu)) missing.push(cpu);
    this.lastDfFlushMissing = missing;
  }

  /** Every cached line under a guest key, for the View. */
  guestLines(): GuestLineViewT[] {
    const out: GuestLineViewT[] = [];
    const L = this.config.linesPerPage;
    for (let cpu = 0; cpu < this.caches.length; cpu++) {
      for (const l of this.caches[cpu]!.values()) {
        const key = l.tag % this.nkeys;
        if (key === 0) continue;
        const addr = (l.tag - key) / this.nkeys;
        const line = addr % L;
        out.push({ cpu, page: (addr - line) / L, line, key, dirty: (l.flags & LINE_DIRTY) !== 0 });
      }
    }
    return out;
  }
}
