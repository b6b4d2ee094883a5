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

/**
 * One tag's state, shared by every CPU holding it: the copies of a tag are
 * coherent, so they have one value; at most one CPU owns it dirty (a write
 * takes the line exclusively; other CPUs reading it get clean copies while
 * the owner keeps the duty to write it back, as in MOESI's Owned state).
 */
interface TagLine {
  readonly tag: number;
  value: number;
  /** CPUs holding a copy. */
  readonly holders: Bitmap;
  /** The CPU owning the modified copy, or NOT_DIRTY. */
  dirtyCpu: number;
}

const NOT_DIRTY = -1;

export class Machine {
  readonly nkeys: number;
  /** tag -> shared line state (only present lines). */
  readonly lines = new Map<number, TagLine>();
  /** Per CPU: the tags it holds (what WBINVD / WBNOINVD on that CPU walks). */
  readonly percpu: Set<number>[];
  /** Memory, per addr: the stored value and the key it is encrypted under. */
  readonly memValue: Float64Array;
  readonly memKey: Uint16Array;
  /** Firmware: CPUs that executed WBINVD since the last DEACTIVATE. */
  readonly wbinvdDone: Bitmap;
  dfFlushes = 0;
  lastDfFlushMissing: number[] = [];

  /**
   * `touch` is told every address whose lines or memory change (for the
   * incremental View; it has no effect on the hardware).
   */
  constructor(
    private readonly config: Config,
    private readonly touch: (addr: number) => void = () => {},
  ) {
    this.nkeys = config.asids + 1;
    this.percpu = Array.from({ length: config.cpus }, () => new Set<number>());
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

  private addrOf(tag: number): number {
    return Math.floor(tag / this.nkeys);
  }

  private writeBack(l: TagLine): void {
    if (l.dirtyCpu === NOT_DIRTY) return;
    const key = l.tag % this.nkeys;
    const addr = (l.tag - key) / this.nkeys;
    this.touch(addr);
    this.memValue[addr] = l.value;
    this.memKey[addr] = key;
    l.dirtyCpu = NOT_DIRTY;
  }

  /** Drop `cpu`'s copy (written back first if it is the dirty owner). */
  private dropCopy(l: TagLine, cpu: number): void {
    this.touch(this.addrOf(l.tag));
    if (l.dirtyCpu === cpu) this.writeBack(l);
    l.holders.clear(cpu);
    this.percpu[cpu]!.delete(l.tag);
    if (l.holders.isEmpty()) this.lines.delete(l.tag);
  }

  /** Write back and drop every copy of a tag. Returns copies dropped. */
  private dropAll(l: TagLine): number {
    this.touch(this.addrOf(l.tag));
    this.writeBack(l);
    let n = 0;
    l.holders.forEach((cpu) => {
      this.percpu[cpu]!.delete(l.tag);
      n++;
    });
    this.lines.delete(l.tag);
    return n;
  }

  /** SME_COHERENT: before an access under `key`, write back and drop the address's lines under other keys. */
  private dropAliases(addr: number, key: number): void {
    if (!this.config.smeCoherent) return;
    for (let k = 0; k < this.nkeys; k++) {
      if (k === key) continue;
      const l = this.lines.get(this.tag(addr, k));
      if (l) this.dropAll(l);
    }
  }

  /** The value a read of `addr` under `key` would return now, without side effects. */
  peek(addr: number, key: number): number {
    const l = this.lines.get(this.tag(addr, key));
    if (l) return l.value;
    if (this.config.smeCoherent) {
      for (let k = 0; k < this.nkeys; k++) {
        const other = this.lines.get(this.tag(addr, k));
        if (other && other.dirtyCpu !== NOT_DIRTY) return ciphertext(other.value, k, key);
      }
    }
    const mk = this.memKey[addr]!;
    return mk === key ? this.memValue[addr]! : ciphertext(this.memValue[addr]!, mk, key);
  }

  read(cpu: number, addr: number, key: number): number {
    this.touch(addr);
    this.dropAliases(addr, key);
    const t = this.tag(addr, key);
    const l = this.lines.get(t);
    if (l) {
      l.holders.set(cpu);
      this.percpu[cpu]!.add(t);
      return l.value;
    }
    const value = this.peek(addr, key);
    this.insert(cpu, t, value, NOT_DIRTY);
    return value;
  }

  write(cpu: number, addr: number, key: number, value: number): void {
    this.touch(addr);
    this.dropAliases(addr, key);
    const t = this.tag(addr, key);
    const l = this.lines.get(t);
    if (!l) {
      this.insert(cpu, t, value, cpu);
      return;
    }
    // Take the line exclusively: other CPUs' copies are superseded (no writeback needed).
    l.holders.forEach((c) => {
      if (c !== cpu) this.percpu[c]!.delete(t);
    });
    l.holders.clearAll();
    l.holders.set(cpu);
    this.percpu[cpu]!.add(t);
    l.value = value;
    l.dirtyCpu = cpu;
  }

  private insert(cpu: number, t: number, value: number, dirtyCpu: number): void {
    const holders = new Bitmap(this.config.cpus);
    holders.set(cpu);
    this.lines.set(t, { tag: t, value, holders, dirtyCpu });
    this.percpu[cpu]!.add(t);
  }

  /** Hardware eviction of one line (written back if dirty); no-op if absent. */
  evict(cpu: number, addr: number, key: number): void {
    const l = this.lines.get(this.tag(addr, key));
    if (l && l.holders.test(cpu)) this.dropCopy(l, cpu);
  }

  /** WBINVD on one CPU: write back every dirty line and invalidate everything. Returns lines invalidated. */
  wbinvd(cpu: number): number {
    const tags = this.percpu[cpu]!;
    const n = tags.size;
    for (const t of [...tags]) this.dropCopy(this.lines.get(t)!, cpu);
    this.wbinvdDone.set(cpu);
    return n;
  }

  /** WBNOINVD on one CPU: write back every dirty line, keep every line valid. */
  wbnoinvd(cpu: number): void {
    for (const t of this.percpu[cpu]!) {
      const l = this.lines.get(t)!;
      if (l.dirtyCpu === cpu) this.writeBack(l);
    }
  }

  /** Write back and drop the given tags on every CPU. Returns lines dropped. */
  private flushTags(tags: readonly number[]): number {
    let n = 0;
    for (const t of tags) {
      const l = this.lines.get(t);
      if (l) n += this.dropAll(l);
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

  /**
   * Firmware LAUNCH_UPDATE_DATA on one page: the PSP reads what memory holds
   * (as the host sees it, C=0) and writes it back encrypted under `asid`. It
   * reads memory, not caches: on parts without SME_COHERENT a dirty C=0 line
   * still cached is missed now and written back over the ciphertext later.
   * SME_COHERENT parts keep the PSP's accesses coherent: every cached line of
   * the page is written back and dropped first.
   */
  encryptInPlace(page: number, asid: number): void {
    for (let line = 0; line < this.config.linesPerPage; line++) {
      const a = this.addr(page, line);
      if (this.config.smeCoherent) {
        for (let k = 0; k < this.nkeys; k++) {
          const l = this.lines.get(this.tag(a, k));
          if (l) this.dropAll(l);
        }
      }
      this.touch(a);
      const mk = this.memKey[a]!;
      const plain = mk === 0 ? this.memValue[a]! : ciphertext(this.memValue[a]!, mk, 0);
      this.memValue[a] = plain;
      this.memKey[a] = asid;
    }
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

  /**
   * Cached lines under guest keys that the invariants look at: every dirty
   * one, and every one whose key satisfies `all` (ASIDs no VM has run with).
   */
  guestLines(all: (key: number) => boolean): GuestLineViewT[] {
    const out: GuestLineViewT[] = [];
    for (const l of this.lines.values()) this.listLine(l, all, out);
    return out;
  }

  /** The same, for the lines of one address (by key, then CPU). */
  guestLinesAt(addr: number, all: (key: number) => boolean): GuestLineViewT[] {
    const out: GuestLineViewT[] = [];
    for (let key = 1; key < this.nkeys; key++) {
      const l = this.lines.get(this.tag(addr, key));
      if (l) this.listLine(l, all, out);
    }
    return out;
  }

  private listLine(l: TagLine, all: (key: number) => boolean, out: GuestLineViewT[]): void {
    const key = l.tag % this.nkeys;
    if (key === 0) return;
    const dirtyOnly = !all(key);
    if (dirtyOnly && l.dirtyCpu === NOT_DIRTY) return;
    const addr = (l.tag - key) / this.nkeys;
    const line = addr % this.config.linesPerPage;
    const page = (addr - line) / this.config.linesPerPage;
    if (dirtyOnly) out.push({ cpu: l.dirtyCpu, page, line, key, dirty: true });
    else l.holders.forEach((cpu) => out.push({ cpu, page, line, key, dirty: l.dirtyCpu === cpu }));
  }
}
