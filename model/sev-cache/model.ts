/**
 * The sev-cache reference model: the kernel before the WBNOINVD patch.
 *
 * Every release point (unregister, VMSA free, gmem invalidation, reclaim for
 * SEV/SEV-ES, destroy) runs WBINVD on every CPU; ASID recycling runs WBINVD on
 * every CPU and then DF_FLUSH. Obviously safe, and slow. The hardware is
 * simulated with plain maps keyed by strings.
 *
 * Reads answer the value the reader last wrote when it wrote the line since
 * it acquired the page (the host: since the page became free; a guest: since
 * the page was registered to it) and "unspecified" otherwise.
 */
import { match } from 'ts-pattern';
import type { System } from '../../harness/domain';
import { MinimumTracker, zeroCounters, type SevCounters } from '../../spec/sev-cache/cost';
import {
  OK,
  ciphertext,
  err,
  type Config,
  type GuestLineViewT,
  type SevOp,
  type SevResult,
  type SevView,
  type VmType,
  type WrittenViewT,
} from '../../spec/sev-cache/types';

interface Line {
  readonly page: number;
  readonly line: number;
  readonly key: number;
  value: number;
  dirty: boolean;
}

interface Vm {
  readonly type: VmType;
  readonly asid: number;
  fresh: boolean;
}

type AsidState = 'free' | 'active' | 'reclaim';

const lk = (page: number, line: number): string => `${page}:${line}`;
const tk = (page: number, line: number, key: number): string => `${page}:${line}:${key}`;

export class SevCacheModel implements System<SevOp, SevResult, SevView> {
  /** Per CPU: tag "page:line:key" -> line. */
  private readonly caches: Map<string, Line>[];
  /** "page:line" -> what memory holds (absent: zero, under the host key). */
  private readonly memory = new Map<string, { value: number; key: number }>();
  private readonly vms = new Map<number, Vm>();
  private readonly asidState: AsidState[];
  private readonly asidSnp: boolean[];
  /** page -> VM it is registered to. */
  private readonly owner = new Map<number, number>();
  /** "page:line" -> what the current owner last wrote there. */
  private readonly written = new Map<string, { page: number; line: number; value: number }>();
  /** Firmware: CPUs that ran WBINVD since the last DEACTIVATE. */
  private readonly wbinvdSinceDeactivate = new Set<number>();
  private dfFlushes = 0;
  private lastDfFlushMissing: number[] = [];
  private readonly cost: SevCounters = zeroCounters();
  private readonly minimum: MinimumTracker;

  constructor(private readonly config: Config) {
    this.caches = Array.from({ length: config.cpus }, () => new Map<string, Line>());
    this.asidState = Array.from({ length: config.asids + 1 }, (): AsidState => 'free');
    this.asidSnp = Array.from({ length: config.asids + 1 }, () => false);
    this.minimum = new MinimumTracker(config.cpus);
  }

  // --- hardware -------------------------------------------------------------

  private writeBack(l: Line): void {
    if (l.dirty) this.memory.set(lk(l.page, l.line), { value: l.value, key: l.key });
    l.dirty = false;
  }

  /** With SME_COHERENT, an access under `key` first writes back and drops the address's lines under other keys. */
  private dropAliases(page: number, line: number, key: number): void {
    if (!this.config.smeCoherent) return;
    for (const cache of this.caches) {
      for (const [t, l] of cache) {
        if (l.page === page && l.line === line && l.key !== key) {
          this.writeBack(l);
          cache.delete(t);
        }
      }
    }
  }

  /** What a read under `key` sees, without changing anything. */
  private peek(page: number, line: number, key: number): number {
    const t = tk(page, line, key);
    for (const cache of this.caches) {
      const l = cache.get(t);
      if (l) return l.value;
    }
    if (this.config.smeCoherent) {
      for (const cache of this.caches) {
        for (const l of cache.values()) {
          if (l.page === page && l.line === line && l.dirty) return ciphertext(l.value, l.key, key);
        }
      }
    }
    const m = this.memory.get(lk(page, line)) ?? { value: 0, key: 0 };
    return m.key === key ? m.value : ciphertext(m.value, m.key, key);
  }

  private read(cpu: number, page: number, line: number, key: number): number {
    this.dropAliases(page, line, key);
    const v = this.peek(page, line, key);
    const t = tk(page, line, key);
    if (!this.caches[cpu]!.has(t)) this.caches[cpu]!.set(t, { page, line, key, value: v, dirty: false });
    return v;
  }

  private write(cpu: number, page: number, line: number, key: number, value: number): void {
    this.dropAliases(page, line, key);
    const t = tk(page, line, key);
    for (const cache of this.caches) cache.delete(t);
    this.caches[cpu]!.set(t, { page, line, key, value, dirty: true });
  }

  private wbinvd(cpu: number): number {
    const cache = this.caches[cpu]!;
    const n = cache.size;
    for (const l of cache.values()) this.writeBack(l);
    cache.clear();
    this.wbinvdSinceDeactivate.add(cpu);
    return n;
  }

  /** The model's only cache maintenance at a release point: WBINVD everywhere. */
  private wbinvdAll(): number {
    let n = 0;
    for (let cpu = 0; cpu < this.config.cpus; cpu++) n += this.wbinvd(cpu);
    return n;
  }

  /** CLFLUSH through the host mapping: the C=0 lines of the pages on every CPU. */
  private clflushC0(page: number, npages: number): void {
    for (const cache of this.caches) {
      for (const [t, l] of cache) {
        if (l.key === 0 && l.page >= page && l.page < page + npages) {
          this.writeBack(l);
          cache.delete(t);
          this.cost.pageFlushLines++;
        }
      }
    }
  }

  // --- kernel ---------------------------------------------------------------

  /** A release point: pages (if any) leave `vm`. */
  private release(vm: number, pages: readonly number[]): void {
    this.cost.releases++;
    this.cost.cpusWrittenBack += this.config.cpus;
    this.cost.linesInvalidated += this.wbinvdAll();
    for (const p of pages) this.free(p);
  }

  private free(page: number): void {
    this.owner.delete(page);
    for (let line = 0; line < this.config.linesPerPage; line++) this.written.delete(lk(page, line));
  }

  private pagesOf(vm: number): number[] {
    const out: number[] = [];
    for (const [p, v] of this.owner) if (v === vm) out.push(p);
    return out;
  }

  private rangeOwnedBy(vm: number, page: number, npages: number): boolean {
    if (npages < 1) return false;
    for (let p = page; p < page + npages; p++) if (this.owner.get(p) !== vm) return false;
    return true;
  }

  private inRange(cpu: number, line: number): boolean {
    return cpu < this.config.cpus && line < this.config.linesPerPage;
  }

  private guestAccess(vmId: number, cpu: number, page: number, line: number, value: number | undefined): SevResult {
    const vm = this.vms.get(vmId);
    if (!vm) return err('ENOENT');
    if (!this.inRange(cpu, line)) return err('EINVAL');
    if (this.owner.get(page) !== vmId) return err('EFAULT');
    vm.fresh = false;
    this.minimum.ran(vmId, cpu);
    const k = lk(page, line);
    if (value !== undefined) {
      this.write(cpu, page, line, vm.asid, value);
      this.written.set(k, { page, line, value });
      return OK;
    }
    const v = this.read(cpu, page, line, vm.asid);
    return { ok: true, value: this.written.has(k) ? v : 'unspecified' };
  }

  private hostAccess(cpu: number, page: number, line: number, value: number | undefined): SevResult {
    if (!this.inRange(cpu, line) || page >= this.config.pages) return err('EINVAL');
    if (this.owner.has(page)) return err('EBUSY');
    const k = lk(page, line);
    if (value !== undefined) {
      this.write(cpu, page, line, 0, value);
      this.written.set(k, { page, line, value });
      return OK;
    }
    const v = this.read(cpu, page, line, 0);
    return { ok: true, value: this.written.has(k) ? v : 'unspecified' };
  }

  private createVm(vm: number, type: VmType): SevResult {
    if (type === 'snp' && !this.config.smeCoherent) return err('EINVAL');
    if (this.vms.has(vm)) return err('EEXIST');
    let asid = this.asidState.indexOf('free', 1);
    if (asid < 0 && this.asidState.includes('reclaim')) {
      // Recycling: WBINVD on every CPU, then DF_FLUSH.
      this.cost.recycles++;
      this.cost.recycleLinesInvalidated += this.wbinvdAll();
      this.minimum.allWrittenBack();
      this.dfFlush();
      for (let a = 1; a <= this.config.asids; a++) if (this.asidState[a] === 'reclaim') this.asidState[a] = 'free';
      asid = this.asidState.indexOf('free', 1);
    }
    if (asid < 0) return err('EBUSY');
    this.asidState[asid] = 'active';
    this.asidSnp[asid] = type === 'snp';
    this.vms.set(vm, { type, asid, fresh: true });
    return { ok: true, asid };
  }

  private dfFlush(): void {
    this.dfFlushes++;
    this.lastDfFlushMissing = [];
    for (let cpu = 0; cpu < this.config.cpus; cpu++) if (!this.wbinvdSinceDeactivate.has(cpu)) this.lastDfFlushMissing.push(cpu);
  }

  private registerRegion(vm: number, page: number, npages: number): SevResult {
    if (!this.vms.has(vm)) return err('ENOENT');
    if (npages < 1 || page + npages > this.config.pages) return err('EINVAL');
    for (let p = page; p < page + npages; p++) if (this.owner.has(p)) return err('EINVAL');
    this.clflushC0(page, npages);
    for (let p = page; p < page + npages; p++) {
      this.owner.set(p, vm);
      for (let line = 0; line < this.config.linesPerPage; line++) this.written.delete(lk(p, line));
    }
    return OK;
  }

  private unregisterRegion(vm: number, page: number, npages: number): SevResult {
    if (!this.vms.has(vm)) return err('ENOENT');
    if (!this.rangeOwnedBy(vm, page, npages)) return err('EINVAL');
    this.minimum.release(vm);
    this.release(vm, range(page, npages));
    return OK;
  }

  private flushEncryptedPage(vm: number, page: number): SevResult {
    if (!this.vms.has(vm)) return err('ENOENT');
    if (this.owner.get(page) !== vm) return err('EFAULT');
    if (!this.config.smeCoherent && this.config.vmPageFlush === 'faults') this.minimum.release(vm);
    this.release(vm, [page]);
    return OK;
  }

  private memoryReclaimed(vmId: number): SevResult {
    const vm = this.vms.get(vmId);
    if (!vm) return err('ENOENT');
    if (vm.type === 'snp') return OK;
    this.minimum.release(vmId);
    this.release(vmId, []);
    return OK;
  }

  private gmemInvalidate(vmId: number, page: number, npages: number): SevResult {
    const vm = this.vms.get(vmId);
    if (!vm) return err('ENOENT');
    if (vm.type !== 'snp' || !this.rangeOwnedBy(vmId, page, npages)) return err('EINVAL');
    this.release(vmId, range(page, npages));
    return OK;
  }

  private destroyVm(vmId: number): SevResult {
    const vm = this.vms.get(vmId);
    if (!vm) return err('ENOENT');
    this.minimum.release(vmId);
    this.minimum.forget(vmId);
    this.release(vmId, this.pagesOf(vmId));
    // DEACTIVATE: the firmware forgets which CPUs ran WBINVD.
    this.wbinvdSinceDeactivate.clear();
    this.asidState[vm.asid] = 'reclaim';
    this.vms.delete(vmId);
    return OK;
  }

  private evict(cpu: number, page: number, line: number, key: number): SevResult {
    if (!this.inRange(cpu, line) || page >= this.config.pages || key > this.config.asids) return err('EINVAL');
    const cache = this.caches[cpu]!;
    const t = tk(page, line, key);
    const l = cache.get(t);
    if (l) {
      this.writeBack(l);
      cache.delete(t);
    }
    return OK;
  }

  apply(op: SevOp): SevResult {
    return match(op)
      .with({ op: 'createVm' }, ({ args }) => this.createVm(args.vm, args.type))
      .with({ op: 'registerRegion' }, ({ args }) => this.registerRegion(args.vm, args.page, args.npages))
      .with({ op: 'unregisterRegion' }, ({ args }) => this.unregisterRegion(args.vm, args.page, args.npages))
      .with({ op: 'guestWrite' }, ({ args }) => this.guestAccess(args.vm, args.cpu, args.page, args.line, args.value))
      .with({ op: 'guestRead' }, ({ args }) => this.guestAccess(args.vm, args.cpu, args.page, args.line, undefined))
      .with({ op: 'hostWrite' }, ({ args }) => this.hostAccess(args.cpu, args.page, args.line, args.value))
      .with({ op: 'hostRead' }, ({ args }) => this.hostAccess(args.cpu, args.page, args.line, undefined))
      .with({ op: 'evict' }, ({ args }) => this.evict(args.cpu, args.page, args.line, args.key))
      .with({ op: 'flushEncryptedPage' }, ({ args }) => this.flushEncryptedPage(args.vm, args.page))
      .with({ op: 'memoryReclaimed' }, ({ args }) => this.memoryReclaimed(args.vm))
      .with({ op: 'gmemInvalidate' }, ({ args }) => this.gmemInvalidate(args.vm, args.page, args.npages))
      .with({ op: 'destroyVm' }, ({ args }) => this.destroyVm(args.vm))
      .exhaustive();
  }

  view(): SevView {
    const vmIds = [...this.vms.keys()].sort((a, b) => a - b);
    const vms = vmIds.map((id) => {
      const v = this.vms.get(id)!;
      return { vm: id, type: v.type, asid: v.asid, fresh: v.fresh, writebackCpus: 'all' as const };
    });
    const asids: SevView['asids'] = [];
    for (let a = 1; a <= this.config.asids; a++) {
      const s = this.asidState[a]!;
      if (s !== 'free') asids.push({ asid: a, state: s, snp: this.asidSnp[a]! });
    }
    const pages = [...this.owner].sort((a, b) => a[0] - b[0]).map(([page, vm]) => ({ page, vm }));
    const guestLines: GuestLineViewT[] = [];
    this.caches.forEach((cache, cpu) => {
      for (const l of cache.values()) if (l.key !== 0) guestLines.push({ cpu, page: l.page, line: l.line, key: l.key, dirty: l.dirty });
    });
    const written: WrittenViewT[] = [];
    for (const w of this.written.values()) {
      const owner = this.owner.get(w.page);
      const key = owner === undefined ? 0 : this.vms.get(owner)!.asid;
      written.push({ page: w.page, line: w.line, key, value: w.value, reads: this.peek(w.page, w.line, key) });
    }
    written.sort((a, b) => a.page - b.page || a.line - b.line);
    return {
      vms,
      asids,
      pages,
      guestLines,
      written,
      firmware: { dfFlushes: this.dfFlushes, lastDfFlushMissingWbinvd: [...this.lastDfFlushMissing] },
    };
  }

  counters(): Readonly<Record<string, number>> {
    return { ...this.cost, minimumCpus: this.minimum.total };
  }

  /** Canonical abstract state: kernel tables, ghost writes, caches and memory. */
  fingerprint(): string {
    const vms = [...this.vms].sort((a, b) => a[0] - b[0]).map(([id, v]) => `${id}:${v.type}:${v.asid}:${v.fresh ? 1 : 0}`);
    const caches = this.caches.map((c) =>
      [...c.values()]
        .map((l) => `${l.page}.${l.line}.${l.key}=${l.value}${l.dirty ? '*' : ''}`)
        .sort()
        .join(','),
    );
    const mem = [...this.memory].filter(([, m]) => m.value !== 0 || m.key !== 0).map(([k, m]) => `${k}=${m.value}/${m.key}`).sort();
    const owner = [...this.owner].sort((a, b) => a[0] - b[0]).map(([p, v]) => `${p}>${v}`);
    const written = [...this.written].map(([k, w]) => `${k}=${w.value}`).sort();
    const wb = [...this.wbinvdSinceDeactivate].sort((a, b) => a - b);
    return [
      vms.join(';'),
      this.asidState.join(','),
      this.asidSnp.map((s) => (s ? 1 : 0)).join(''),
      owner.join(','),
      written.join(','),
      caches.join('|'),
      mem.join(','),
      wb.join(','),
      this.lastDfFlushMissing.join(','),
    ].join('#');
  }
}

function range(page: number, npages: number): number[] {
  return Array.from({ length: npages }, (_, i) => page + i);
}

export function createModel(config: Config): SevCacheModel {
  return new SevCacheModel(config);
}
