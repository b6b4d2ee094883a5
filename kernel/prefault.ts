/**
 * prefault on the running kernel. On a TDP host every op could be asked
 * (KVM_PRE_FAULT_MEMORY, KVM_SET_MEMORY_ATTRIBUTES, the pages_* stats as
 * the trace of leaf sizes); on this host (shadow paging, so
 * KVM_CAP_PRE_FAULT_MEMORY is 0) only the argument checks of
 * KVM_PRE_FAULT_MEMORY are observable: kvm_vcpu_pre_fault_memory
 * (virt/kvm/kvm_main.c) rejects non-zero flags, an unaligned gpa or size
 * and an empty or wrapping range with EINVAL before it asks the
 * architecture, and x86's kvm_arch_vcpu_pre_fault_memory then answers
 * EOPNOTSUPP. So:
 *   - preFault with arguments the spec rejects (preFaultArgsValid false) is
 *     run and compared: the kernel must answer EINVAL with gpa/size unchanged;
 *   - preFault with arguments the spec accepts is run too, and an answer of
 *     EOPNOTSUPP means "not run on this host: no TDP" (any other answer is
 *     compared, so a kernel that rejects what the spec accepts is reported);
 *   - the other ops change or query state this host cannot build or show
 *     (populate/finalize need SNP/TDX, setAttributes needs
 *     KVM_CAP_MEMORY_ATTRIBUTES, leaves need TDP): not run. They do not
 *     make later steps incomparable: the argument checks come first and
 *     depend on no state.
 * Only the default VM type can be created here; other configs are not run.
 */
import type { KernelAdapter, KernelDriver, KernelSession, KernelStep, HostInfo } from '../harness/conform';
import { dispatch, type OpHandlers } from '../harness/domain';
import { preFaultArgsValid, PAGE_SIZE, type PrefaultConfig, type PrefaultOp, type PrefaultResult, type View } from '../spec/prefault/types';
import { chooseGuest, GUEST_SLOT, type GuestPlace } from './guest';

const NO_TDP = 'not run on this host: no TDP (KVM_CAP_PRE_FAULT_MEMORY is 0, valid calls answer EOPNOTSUPP)';

function notRun(reason: string): Promise<KernelStep<PrefaultResult>> {
  return Promise.resolve({ run: false, reason, diverges: false });
}

class PrefaultSession implements KernelSession<PrefaultOp, PrefaultResult, View> {
  constructor(
    private readonly driver: KernelDriver,
    private readonly host: HostInfo,
  ) {}

  private async preFault(gpa: number, size: number, flags: number, signalAfter: number | undefined): Promise<KernelStep<PrefaultResult>> {
    const valid = preFaultArgsValid(gpa, size, flags);
    if (valid && signalAfter !== undefined) return notRun('a signal after n chunks cannot be timed on a live vCPU');
    // Every value here is an integer below 2^64 held exactly in a double; the client writes it digit for digit.
    const a = await this.driver.send({ cmd: 'prefault', gpa, size, flags });
    if (a['error'] === 'EPROTO') throw new Error(`the KVM driver refused prefault: ${JSON.stringify(a)}`);
    if (a['error'] === 'EOPNOTSUPP' && valid && (this.host.caps['preFaultMemory'] ?? 0) === 0) return notRun(NO_TDP);
    const g = Number(a['gpa']);
    const s = Number(a['size']);
    const result: PrefaultResult = a['ok'] === true ? { ok: true, gpa: g, size: s } : { ok: false, error: String(a['error']), gpa: g, size: s };
    return { run: true, result };
  }

  private readonly handlers: OpHandlers<PrefaultOp, Promise<KernelStep<PrefaultResult>>> = {
    preFault: ({ gpa, size, flags, signalAfter }) => this.preFault(gpa, size, flags, signalAfter),
    populate: () => notRun('needs an SNP or TDX VM'),
    // The argument checks compared here come before any memslot lookup; the layout
    // matters only to valid pre-faults, which need TDP.
    setUserMemoryRegion: () => notRun('memslot layout only matters to valid pre-faults, which need TDP here'),
    finalize: () => notRun('needs an SNP or TDX VM'),
    guestAccess: () => notRun('leaf levels are not observable on this host (no TDP)'),
    setAttributes: () => notRun((this.host.caps['memoryAttributes'] ?? 0) === 0 ? 'no KVM_CAP_MEMORY_ATTRIBUTES' : 'attributes only matter for private memory (no TDP here)'),
    zap: () => notRun('leaf levels are not observable on this host (no TDP)'),
    mappings: () => notRun('leaf levels are not observable on this host (no TDP)'),
    measurement: () => notRun('needs an SNP or TDX VM'),
  };

  apply(op: PrefaultOp): Promise<KernelStep<PrefaultResult>> {
    return dispatch(this.handlers, op);
  }

  async observe(): Promise<string | null> {
    // Nothing here is observable without TDP: the pages_* stats stay 0.
    return null;
  }
}

export const prefaultAdapter: KernelAdapter<PrefaultConfig, PrefaultOp, PrefaultResult, View> = {
  domainId: 'prefault',
  configNotRunnable(config: PrefaultConfig): string | null {
    if (config.vmType !== 'default') return `VM type ${config.vmType} cannot be created on this host`;
    return null;
  },
  opNotRunnable(op: PrefaultOp): string | null {
    // Random traces keep only the calls whose argument checks can be compared here.
    if (op.op !== 'preFault') return 'only KVM_PRE_FAULT_MEMORY argument checks are observable on this host';
    return null;
  },
  async open(config: PrefaultConfig, driver: KernelDriver, host: HostInfo) {
    // No op here runs the guest; its page only has to stay clear of the config's slots
    // (prefault slots may cover all of the first 4 GiB: then it goes above them).
    const ranges = config.memslots.map((m) => [m.baseGfn, m.baseGfn + m.npages] as const);
    const place: GuestPlace = chooseGuest(new Set(config.memslots.map((m) => m.id)), ranges, host.caps['nrMemslots'] ?? GUEST_SLOT + 1) ?? {
      slot: GUEST_SLOT,
      gfn: config.memslots.reduce((end, m) => Math.max(end, m.baseGfn + m.npages), 0),
    };
    const vm = await driver.send({ cmd: 'create_vm', guest_slot: place.slot, guest_gfn: place.gfn });
    if (vm['ok'] !== true) return { notRun: `KVM_CREATE_VM failed: ${String(vm['error'])}` };
    for (const m of config.memslots) {
      const r = await driver.send({ cmd: 'set_region', slot: m.id, gfn: m.baseGfn, npages: m.npages, flags: 0 });
      if (r['ok'] !== true) return { notRun: `KVM_SET_USER_MEMORY_REGION of memslot ${m.id} (${m.npages * (PAGE_SIZE / 1024)} KiB) failed: ${String(r['error'] ?? r['message'])}` };
    }
    return new PrefaultSession(driver, host);
  },
};
