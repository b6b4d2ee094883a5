/**
 * sev-cache's named scenarios (harness/reach.ts): the hazards of the spec
 * page (§1, §3), each a predicate over (View before, op, result, View
 * after). `check` reports how many runs reached each.
 */
import type { Scenario } from '../../harness/reach';
import type { Config, SevResult, SevView } from './types';
import type { SevOp } from './types';

type S = Scenario<Config, SevOp, SevResult, SevView>;

function asidOf(v: SevView, vm: number): number | undefined {
  return v.vms.find((x) => x.vm === vm)?.asid;
}

export const SCENARIOS: readonly S[] = [
  {
    id: 'asid-recycled-with-dirty-lines',
    title: 'createVm recycles ASIDs (WBINVD on every CPU, then DF_FLUSH) while dirty guest lines are cached',
    source: 'spec page §3 createVm; __sev_recycle_asids / sev_flush_asids (arch/x86/kvm/svm/sev.c)',
    before(v, op) {
      if (op.op !== 'createVm' || !v.guestLines.some((l) => l.dirty)) return null;
      const flushes = v.firmware.dfFlushes;
      return (r, after) => r.ok && after.firmware.dfFlushes > flushes;
    },
  },
  {
    id: 'region-released-with-dirty-lines',
    title: 'unregisterRegion gives pages back to the host while dirty guest lines of them are cached',
    source: 'spec page §1 and §3 unregisterRegion; sev_mem_enc_unregister_region, sev_writeback_caches',
    before(v, op) {
      if (op.op !== 'unregisterRegion') return null;
      const asid = asidOf(v, op.args.vm);
      const { page, npages } = op.args;
      if (asid === undefined || !v.guestLines.some((l) => l.dirty && l.key === asid && l.page >= page && l.page < page + npages)) return null;
      return (r) => r.ok;
    },
  },
  {
    id: 'destroy-with-dirty-lines',
    title: "destroyVm while dirty lines under the VM's ASID are cached (writeback, then the ASID joins the reclaim set)",
    source: 'spec page §3 destroyVm and §3.2; sev_vm_destroy',
    before(v, op) {
      if (op.op !== 'destroyVm') return null;
      const asid = asidOf(v, op.args.vm);
      if (asid === undefined || !v.guestLines.some((l) => l.dirty && l.key === asid)) return null;
      return (r) => r.ok;
    },
  },
  {
    id: 'vm-page-flush-faults',
    title: 'flushEncryptedPage where VM_PAGE_FLUSH faults and the kernel falls back to a full writeback',
    source: 'spec page §3 flushEncryptedPage; sev_flush_encrypted_page / sev_free_vcpu',
    before(v, op, c) {
      if (op.op !== 'flushEncryptedPage' || c.smeCoherent || c.vmPageFlush !== 'faults') return null;
      return (r) => r.ok;
    },
  },
  {
    id: 'launch-image-encrypted',
    title: 'launchUpdateData encrypts a launch image written through C=0 lines (it becomes the guest data)',
    source: 'spec page §1 (last paragraph) and §3 launchUpdateData; sev_launch_update_data, sev_clflush_pages',
    before(v, op) {
      if (op.op !== 'launchUpdateData') return null;
      const { page, npages } = op.args;
      const had = v.written.filter((w) => w.page >= page && w.page < page + npages).length;
      return (r, after) => r.ok && after.written.filter((w) => w.page >= page && w.page < page + npages).length > had;
    },
  },
  {
    id: 'reclaim-returns-pages',
    title: 'memoryReclaimed with a range gives registered pages back to the host after the writeback',
    source: 'spec page §3 memoryReclaimed; sev_guest_memory_reclaimed',
    before(v, op) {
      if (op.op !== 'memoryReclaimed' || op.args.page === undefined || op.args.npages === undefined || op.args.npages === 0) return null;
      const { vm, page } = op.args;
      const end = page + op.args.npages;
      if (!v.pages.some((p) => p.vm === vm && p.page >= page && p.page < end)) return null;
      return (r, after) => r.ok && !after.pages.some((p) => p.vm === vm && p.page >= page && p.page < end);
    },
  },
  {
    id: 'host-data-registered',
    title: 'registerRegion takes pages the host wrote (their C=0 data must be flushed before the guest owns them)',
    source: 'spec page §1 and §3 registerRegion; sev_mem_enc_register_region, sev_clflush_pages',
    before(v, op) {
      if (op.op !== 'registerRegion') return null;
      const { page, npages } = op.args;
      if (!v.written.some((w) => w.key === 0 && w.page >= page && w.page < page + npages)) return null;
      return (r) => r.ok;
    },
  },
  {
    id: 'vmsa-freed-with-dirty-line',
    title: "flushEncryptedPage frees a VMSA page with a dirty line under the VM's ASID",
    source: 'spec page §3 flushEncryptedPage; sev_free_vcpu / sev_flush_encrypted_page',
    before(v, op) {
      if (op.op !== 'flushEncryptedPage') return null;
      const asid = asidOf(v, op.args.vm);
      const page = op.args.page;
      if (asid === undefined || !v.guestLines.some((l) => l.dirty && l.key === asid && l.page === page)) return null;
      return (r) => r.ok;
    },
  },
];

/** Per op, the errors the spec page documents (error coverage). */
export const ERRORS: { readonly [op: string]: readonly string[] } = {
  createVm: ['EBUSY', 'ENOTTY', 'EINVAL', 'EEXIST'],
  registerRegion: ['EINVAL', 'ENOENT'],
  unregisterRegion: ['EINVAL', 'ENOENT'],
  guestWrite: ['EFAULT', 'ENOENT'],
  guestRead: ['EFAULT', 'ENOENT'],
  hostWrite: ['EBUSY'],
  hostRead: ['EBUSY'],
  launchWrite: ['EINVAL', 'EFAULT', 'ENOENT'],
  launchUpdateData: ['EINVAL', 'ENOENT'],
  flushEncryptedPage: ['EINVAL', 'EFAULT', 'ENOENT'],
  memoryReclaimed: ['EINVAL', 'ENOENT'],
  gmemInvalidate: ['EINVAL', 'ENOENT'],
  destroyVm: ['ENOENT'],
};
