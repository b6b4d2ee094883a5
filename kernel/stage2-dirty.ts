/**
 * stage2-dirty on the running kernel: each op as KVM ioctls and guest
 * accesses through the driver (kernel/driver/hvspec-kvm.c).
 *
 *   guestRead/guestWrite   a 32-bit load/store executed by the vCPU at gfn*4096;
 *                          a KVM_EXIT_MMIO exit (no slot, or a store to a
 *                          KVM_MEM_READONLY slot) is the model's MMIO error
 *   enable/disableDirtyLog KVM_SET_USER_MEMORY_REGION of the slot as it is, with
 *                          KVM_MEM_LOG_DIRTY_PAGES set/cleared (a flags-only
 *                          change); a slot the VM does not have is asked as a
 *                          deletion (memory_size 0), which is what
 *                          __kvm_set_memory_region answers EINVAL for
 *   getDirtyLog            KVM_GET_DIRTY_LOG; bit offsets become gfns
 *   clearDirtyLog          KVM_CLEAR_DIRTY_LOG with a user bitmap (`bits`, else all set)
 *   setUserMemoryRegion    one KVM_SET_USER_MEMORY_REGION (agreed op; npages 0 deletes)
 *   unmapRange             mprotect read-only then read-write over the host pages
 *                          of the range: mm/mprotect.c change_protection raises an
 *                          MMU-notifier invalidation (kvm_mmu_notifier_invalidate_range_start
 *                          -> kvm_unmap_gfn_range) and changes no contents, which is
 *                          exactly what the op models: it has no API-visible effect of
 *                          its own, and later accesses, bitmaps and memory are compared
 *                          (checked once with ftrace: each mprotect raises one
 *                          kvm:kvm_unmap_hva_range over exactly those pages)
 *   tlbEvict, mappingOf    not observable on this host: not run
 *
 * Backing (4k/thp/hugetlb) and blockPages only change mapping sizes, which
 * this host does not expose (shadow paging; the pages_* stats stay 0): all
 * slots are backed by anonymous 4 KiB memory and the API-visible answers are
 * compared.
 */
import type { KernelAdapter, KernelDriver, KernelSession, KernelStep, DriverAnswer, HostInfo } from '../harness/conform';
import { dispatch, type OpHandlers } from '../harness/domain';
import { MAX_GFN_END, type Config, type Errno, type Op, type Result, type View } from '../spec/stage2-dirty/types';
import { chooseGuest, GUEST_REACH_GFNS, type GuestPlace } from './guest';

/** KVM_MEM_LOG_DIRTY_PAGES and KVM_MEM_READONLY (uapi kvm.h). */
const KVM_MEM_LOG_DIRTY_PAGES = 1 << 0;
const KVM_MEM_READONLY = 1 << 1;
/** KVM_MEM_MAX_NR_PAGES: larger regions are refused (EINVAL) before anything else is looked at. */
const KVM_MEM_MAX_NR_PAGES = 2 ** 31 - 1;
/** KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 and its two flags (api.rst 7.18). */
const KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 = 168;
const KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE = 1 << 0;
const KVM_DIRTY_LOG_INITIALLY_SET = 1 << 1;
const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/** The agreed op the stage2-dirty branch adds (the lead merges both). */
export type SetRegionArgs = {
  readonly slot: number;
  readonly baseGfn: number;
  readonly npages: number;
  readonly logDirty?: boolean;
  readonly readonly?: boolean;
  readonly backing?: string;
};
type AdapterOp = Op | { readonly op: 'setUserMemoryRegion'; readonly args: SetRegionArgs };

interface SlotEntry {
  baseGfn: number;
  npages: number;
  flags: number;
  /** The model's `backing`: a different one on an existing slot stands for another host address (EINVAL upstream). */
  backing: string;
}

/**
 * A kernel errno as a result. The kernel may answer errnos the model's
 * Errno set does not list (EEXIST, ETIMEDOUT ...): they are kept as they
 * are, so the disagreement names them.
 */
function errnoResult(error: string): Result {
  return { ok: false, error: error as Errno };
}

const OK: Result = { ok: true };
const MMIO: Result = { ok: false, error: 'MMIO' };

function protocolError(cmd: string, a: DriverAnswer): Error {
  return new Error(`the KVM driver refused ${cmd}: ${JSON.stringify(a)}`);
}

/**
 * The IPA limit is arm64's (EFAULT past 2^36 pages, kvm_arch_prepare_memory_region);
 * an x86 host has its own (EINVAL past its MAXPHYADDR). The model answers EFAULT and
 * creates nothing, so leaving the kernel out keeps both sides alike. Sizes KVM refuses
 * before looking at the address still run.
 */
function ipaOfAnotherArch(a: { readonly baseGfn: number; readonly npages: number }): string | null {
  return a.npages > 0 && a.npages <= KVM_MEM_MAX_NR_PAGES && a.baseGfn + a.npages > MAX_GFN_END
    ? "a region past arm64's 48-bit IPA space (EFAULT there; this x86 host has its own limit)"
    : null;
}

class Stage2DirtySession implements KernelSession<Op, Result, View> {
  private readonly slots = new Map<number, SlotEntry>();

  constructor(
    private readonly driver: KernelDriver,
    private readonly config: Config,
    private readonly guest: GuestPlace,
    /** KVM_CAP_NR_MEMSLOTS of this host. */
    private readonly hostMemslots: number | undefined,
  ) {}

  async setup(): Promise<string | null> {
    const vm = await this.driver.send({ cmd: 'create_vm', guest_slot: this.guest.slot, guest_gfn: this.guest.gfn });
    if (vm['ok'] !== true) return `KVM_CREATE_VM failed: ${String(vm['error'])}`;
    if (this.config.manualProtect) {
      const arg = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE | (this.config.initiallySet ? KVM_DIRTY_LOG_INITIALLY_SET : 0);
      const r = await this.driver.send({ cmd: 'enable_cap', cap: KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, arg });
      if (r['ok'] !== true) return `KVM_ENABLE_CAP(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, ${arg}) failed: ${String(r['error'])}`;
    }
    for (const m of this.config.memslots) {
      const flags = m.readonly ? KVM_MEM_READONLY : 0;
      const r = await this.driver.send({ cmd: 'set_region', slot: m.id, gfn: m.baseGfn, npages: m.npages, flags });
      if (r['ok'] !== true) return `KVM_SET_USER_MEMORY_REGION of memslot ${m.id} failed: ${String(r['error'])}`;
      this.slots.set(m.id, { baseGfn: m.baseGfn, npages: m.npages, flags, backing: m.backing });
    }
    return null;
  }

  private async call(command: { [k: string]: string | number | boolean | number[] }): Promise<DriverAnswer> {
    const a = await this.driver.send(command);
    if (a['error'] === 'EPROTO') throw protocolError(String(command['cmd']), a);
    return a;
  }

  private async access(gfn: number, write: boolean, value: number): Promise<KernelStep<Result>> {
    if (gfn === this.guest.gfn) return { run: false, reason: 'the gfn of the conform guest program', diverges: write };
    if (gfn >= GUEST_REACH_GFNS) return { run: false, reason: 'gfn at or above 4 GiB: beyond the 32-bit guest', diverges: write };
    if (value < INT32_MIN || value > INT32_MAX) return { run: false, reason: 'value wider than the guest\'s 32-bit store', diverges: true };
    const a = await this.call({ cmd: 'access', gfn, write, value });
    if (a['ok'] !== true) return { run: true, result: errnoResult(String(a['error'])) };
    if (a['exit'] === 'timeout') return { run: true, result: errnoResult('ETIMEDOUT') };
    if (a['exit'] === 'mmio') return { run: true, result: MMIO };
    if (a['exit'] !== 'hlt') throw protocolError('access', a);
    return { run: true, result: write ? OK : { ok: true, value: Number(a['value']) } };
  }

  /** One KVM_SET_USER_MEMORY_REGION; the slot table follows what the kernel accepted. */
  /**
   * A slot id the config's KVM_USER_MEM_SLOTS allows and this host's does not (a
   * case written for arm64's 32767 on an x86 host's 32764): the kernel cannot be
   * asked the same question.
   */
  private otherArchSlot(slot: number): string | null {
    const host = this.hostMemslots;
    return host !== undefined && slot >= host && slot < this.config.userMemSlots
      ? `slot id ${slot}: below the config's KVM_USER_MEM_SLOTS ${this.config.userMemSlots}, not below this host's ${host}`
      : null;
  }

  private async setRegion(slot: number, baseGfn: number, npages: number, flags: number, backing?: string): Promise<KernelStep<Result>> {
    if (slot === this.guest.slot) return { run: false, reason: 'the memslot of the conform guest program', diverges: true };
    const other = this.otherArchSlot(slot);
    if (other !== null) return { run: false, reason: other, diverges: true };
    const old = this.slots.get(slot);
    const newmem = old !== undefined && backing !== undefined && backing !== old.backing ? 1 : 0;
    const a = await this.call({ cmd: 'set_region', slot, gfn: baseGfn, npages, flags, newmem });
    // ENOMEM: KVM accepted a slot the driver has no host memory for (the driver undid it).
    if (a['ok'] !== true && a['error'] === 'ENOMEM') return { run: false, reason: 'a memslot larger than the driver can back with host memory', diverges: true };
    if (a['ok'] !== true) return { run: true, result: errnoResult(String(a['error'])) };
    if (npages === 0) this.slots.delete(slot);
    else this.slots.set(slot, { baseGfn, npages, flags, backing: backing ?? old?.backing ?? 'thp' });
    return { run: true, result: OK };
  }

  private async logFlag(slot: number, on: boolean): Promise<KernelStep<Result>> {
    const s = this.slots.get(slot);
    // No such slot: the only ioctl that names a slot and no memory is a deletion.
    if (!s) return this.setRegion(slot, 0, 0, on ? KVM_MEM_LOG_DIRTY_PAGES : 0);
    const flags = on ? s.flags | KVM_MEM_LOG_DIRTY_PAGES : s.flags & ~KVM_MEM_LOG_DIRTY_PAGES;
    return this.setRegion(slot, s.baseGfn, s.npages, flags);
  }

  private async getLog(slot: number): Promise<KernelStep<Result>> {
    if (slot === this.guest.slot) return { run: false, reason: 'the memslot of the conform guest program', diverges: false };
    const a = await this.call({ cmd: 'get_log', slot });
    if (a['ok'] !== true) return { run: true, result: errnoResult(String(a['error'])) };
    const base = this.slots.get(slot)?.baseGfn ?? 0;
    const dirty = (a['dirty'] as number[]).map((i) => base + i);
    return { run: true, result: { ok: true, dirty } };
  }

  private async clearLog(slot: number, first: number, num: number, bits: readonly number[] | undefined): Promise<KernelStep<Result>> {
    if (slot === this.guest.slot) return { run: false, reason: 'the memslot of the conform guest program', diverges: true };
    if (num > 2 ** 26) return { run: false, reason: 'num beyond the driver\'s bitmap', diverges: true };
    const a = await this.call({ cmd: 'clear_log', slot, first, num, ...(bits !== undefined ? { bits: [...bits] } : {}) });
    return { run: true, result: a['ok'] === true ? OK : errnoResult(String(a['error'])) };
  }

  private readonly handlers: OpHandlers<AdapterOp, Promise<KernelStep<Result>>> = {
    guestRead: ({ gfn }) => this.access(gfn, false, 0),
    guestWrite: ({ gfn, value }) => this.access(gfn, true, value ?? 0),
    enableDirtyLog: ({ slot }) => this.logFlag(slot, true),
    disableDirtyLog: ({ slot }) => this.logFlag(slot, false),
    getDirtyLog: ({ slot }) => this.getLog(slot),
    clearDirtyLog: (args) => this.clearLog(args.slot, args.first, args.num, (args as { readonly bits?: readonly number[] }).bits),
    setUserMemoryRegion: async (a) =>
      ipaOfAnotherArch(a)
        ? { run: false, reason: ipaOfAnotherArch(a)!, diverges: false }
        : this.setRegion(a.slot, a.baseGfn, a.npages, (a.logDirty === true ? KVM_MEM_LOG_DIRTY_PAGES : 0) | (a.readonly === true ? KVM_MEM_READONLY : 0), a.backing),
    unmapRange: async ({ gfn, npages }) => {
      const a = await this.call({ cmd: 'protect', gfn, npages });
      if (a['ok'] !== true) throw protocolError('protect', a);
      return { run: true, result: OK };
    },
    tlbEvict: async () => ({ run: false, reason: 'TLB contents are not observable on this host', diverges: false }),
    mappingOf: async () => ({ run: false, reason: 'stage-2 leaf sizes are not observable on this host (no TDP, no per-gfn query)', diverges: false }),
  };

  apply(op: Op): Promise<KernelStep<Result>> {
    return dispatch(this.handlers, op as AdapterOp);
  }

  /**
   * Side-effect-free observations: the host's copy of every page the model
   * says the guest wrote (through the driver's mapping, not the guest, so
   * no dirty bit moves), and, with manual protect (where KVM_GET_DIRTY_LOG
   * neither clears nor re-protects: kvm_get_dirty_log_protect), every
   * slot's bitmap (a slot the model says is not logged must answer ENOENT).
   */
  async observe(view: View): Promise<string | null> {
    const pages = view.memory.filter((m) => this.slotOf(m.gfn) !== undefined && m.expected >= INT32_MIN && m.expected <= INT32_MAX);
    if (pages.length > 0) {
      const a = await this.call({ cmd: 'peek', gfns: pages.map((m) => m.gfn) });
      const values = a['values'] as (number | null)[];
      for (let i = 0; i < pages.length; i++) {
        if (values[i] !== pages[i]!.expected) {
          return `memory: the host's copy of gfn ${pages[i]!.gfn} holds ${String(values[i])}, the model says the guest last wrote ${pages[i]!.expected}`;
        }
      }
    }
    if (!this.config.manualProtect) return null;
    for (const s of view.slots) {
      if (s.id === this.guest.slot || !this.slots.has(s.id)) continue;
      const k = await this.getLog(s.id);
      if (!k.run) continue;
      const r = k.result;
      if (!s.logging) {
        if (!('error' in r && r.error === 'ENOENT')) return `slot ${s.id}: the model says it is not logged, but KVM_GET_DIRTY_LOG answered ${JSON.stringify(r)}`;
        continue;
      }
      if (!('dirty' in r)) return `slot ${s.id}: the model says it is logged, but KVM_GET_DIRTY_LOG answered ${JSON.stringify(r)}`;
      const a = r.dirty.join(',');
      const b = s.dirty.join(',');
      if (a !== b) return `slot ${s.id} dirty bitmap: kernel [${a}] vs model [${b}]`;
    }
    return null;
  }

  private slotOf(gfn: number): SlotEntry | undefined {
    for (const s of this.slots.values()) if (gfn >= s.baseGfn && gfn < s.baseGfn + s.npages) return s;
    return undefined;
  }
}

export const stage2DirtyAdapter: KernelAdapter<Config, Op, Result, View> = {
  domainId: 'stage2-dirty',
  hostConfig(config: Config, host: HostInfo): Config {
    // KVM_USER_MEM_SLOTS is the host's (KVM_CAP_NR_MEMSLOTS: 32764 on x86, where the
    // model's default is arm64's 32767): the model is asked about this host's limit.
    const n = host.caps['nrMemslots'];
    return n !== undefined ? { ...config, userMemSlots: n } : config;
  },
  configNotRunnable(config: Config, host: HostInfo): string | null {
    if (!host.guestsRun) return `guests do not run on this host (${host.guestReason ?? 'unknown'})`;
    if (config.manualProtect && (host.caps['manualDirtyLogProtect2'] ?? 0) === 0) return 'no KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2';
    if (config.initiallySet && ((host.caps['manualDirtyLogProtect2'] ?? 0) & KVM_DIRTY_LOG_INITIALLY_SET) === 0) return 'KVM_DIRTY_LOG_INITIALLY_SET not offered';
    if (config.memslots.some((m) => m.readonly) && (host.caps['readonlyMem'] ?? 0) === 0) return 'no KVM_CAP_READONLY_MEM';
    return null;
  },
  opNotRunnable(op: Op): string | null {
    if (op.op === 'tlbEvict') return 'TLB contents are not observable on this host';
    if (op.op === 'mappingOf') return 'stage-2 leaf sizes are not observable on this host (no TDP, no per-gfn query)';
    if ((op.op === 'guestRead' || op.op === 'guestWrite') && op.args.gfn >= GUEST_REACH_GFNS) return 'gfn at or above 4 GiB: beyond the 32-bit guest';
    if (op.op === 'setUserMemoryRegion') return ipaOfAnotherArch(op.args);
    return null;
  },
  async open(config: Config, driver: KernelDriver, host: HostInfo, ops: readonly Op[]) {
    // The guest program goes where nothing in the config or the trace reaches.
    const slots = new Set<number>(config.memslots.map((m) => m.id));
    const ranges: [number, number][] = config.memslots.map((m) => [m.baseGfn, m.baseGfn + m.npages]);
    for (const op of ops as readonly AdapterOp[]) {
      const a = op.args as { readonly slot?: number; readonly gfn?: number; readonly baseGfn?: number; readonly npages?: number };
      if (a.slot !== undefined) slots.add(a.slot);
      if (op.op === 'setUserMemoryRegion') ranges.push([op.args.baseGfn, op.args.baseGfn + op.args.npages]);
      else if (op.op === 'guestRead' || op.op === 'guestWrite') ranges.push([op.args.gfn, op.args.gfn + 1]);
    }
    const guest = chooseGuest(slots, ranges, host.caps['nrMemslots'] ?? GUEST_REACH_GFNS);
    if (guest === null) return { notRun: 'no memslot id or page below 4 GiB is left for the conform guest program' };
    const s = new Stage2DirtySession(driver, config, guest, host.caps['nrMemslots']);
    const why = await s.setup();
    return why === null ? s : { notRun: why };
  },
};
