/**
 * The six sev-cache invariants, as predicates on a View. Each check is
 * linear in the View and answers null or one sentence naming the lines.
 */
import type { Invariant } from '../../harness/domain';
import type { SevScope } from './live';
import { asidRange, type Config, type GuestLineViewT, type SevView, type VmViewT, type WrittenViewT } from './types';

export type SevInvariant = Invariant<Config, SevView, SevScope>;

/** The `written` entries to check: the op's scope when given, else all. */
function writtenIn(view: SevView, scope: SevScope | undefined): readonly WrittenViewT[] {
  return scope ? scope.written : view.written;
}

/**
 * The guest lines to check: when neither page ownership nor the kernel tables
 * changed, a line can only break an invariant if it changed itself, so the
 * op's changed lines suffice; otherwise all.
 */
function guestLinesIn(view: SevView, scope: SevScope | undefined): readonly GuestLineViewT[] {
  return scope && !scope.pages && !scope.kernel && scope.guestLines ? scope.guestLines : view.guestLines;
}

const SEED_PATCH = 'seeds 000_21c4e5073768e9da.txt / 001_ad1dd143e329dc6d.txt, "KVM: SEV: Prefer WBNOINVD over WBINVD"';

function tag(l: { page: number; line: number; key: number }): string {
  return `line ${l.line} of page ${l.page} under key ${l.key}`;
}

/** The VM a page is registered to (binary search: `pages` is sorted by page). */
function ownerOf(view: SevView, page: number): number | undefined {
  const ps = view.pages;
  let lo = 0;
  let hi = ps.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const p = ps[mid]!;
    if (p.page === page) return p.vm;
    if (p.page < page) lo = mid + 1;
    else hi = mid - 1;
  }
  return undefined;
}

/** The live VM holding an ASID (few VMs: a scan). */
function vmOfAsid(view: SevView, asid: number): VmViewT | undefined {
  for (const v of view.vms) if (v.asid === asid) return v;
  return undefined;
}

export const noStaleC1Dirty: SevInvariant = {
  id: 'no-stale-c1-dirty',
  title: 'no dirty guest-keyed line outlives its page\'s registration',
  statement:
    'After every operation, every dirty cache line tagged with a guest key (an ASID) belongs to a page registered to the live VM that holds that ASID; ' +
    'once a page leaves the guest (unregister, VMSA free, gmem hole-punch, reclaim with a range, destroy) no CPU may still hold a dirty C=1 line for it.',
  source: `${SEED_PATCH}: commit message (the C=1 dirty line written back after the host wrote the page with C=0) and sev_writeback_caches()`,
  check(view, _config, scope) {
    for (const l of guestLinesIn(view, scope)) {
      if (!l.dirty) continue;
      const vm = vmOfAsid(view, l.key);
      const owner = ownerOf(view, l.page);
      if (vm === undefined) {
        return `CPU ${l.cpu} holds a dirty ${tag(l)} but ASID ${l.key} belongs to no live VM.`;
      }
      if (owner !== vm.vm) {
        return `CPU ${l.cpu} holds a dirty ${tag(l)} (VM ${vm.vm}) but page ${l.page} is ${owner === undefined ? 'free (back with the host)' : `registered to VM ${owner}`}.`;
      }
    }
    return null;
  },
  exercised(view, _config, scope) {
    for (const l of guestLinesIn(view, scope)) if (l.dirty) return true;
    return false;
  },
};

export const hostIntegrity: SevInvariant = {
  id: 'host-integrity',
  title: 'the host reads back what it wrote to a free page',
  statement:
    'For every line of a free page that the host has written since the page became free, a host (C=0) read returns the last value the host wrote.',
  source: `${SEED_PATCH}: commit message ("yielding corruption" of memory written with C=0)`,
  check(view, _config, scope) {
    for (const w of writtenIn(view, scope)) {
      if (w.key !== 0 || w.reads === w.value) continue;
      return `host read of line ${w.line} of free page ${w.page} would return ${w.reads}, not ${w.value} which the host wrote last.`;
    }
    return null;
  },
  exercised(view, _config, scope) {
    for (const w of writtenIn(view, scope)) if (w.key === 0) return true;
    return false;
  },
};

export const guestIntegrity: SevInvariant = {
  id: 'guest-integrity',
  title: 'a guest reads back what it wrote to its registered page',
  statement:
    'For every line of a registered page that the owning VM has written during this registration (or that LAUNCH_UPDATE_DATA encrypted from the launch image), a read with the VM\'s key returns that value.',
  source: `${SEED_PATCH}; arch/x86/kvm/svm/sev.c sev_clflush_pages() at KVM_MEMORY_ENCRYPT_REG_REGION (C=0 lines flushed before the guest uses the pages) and in sev_launch_update_data() (the C=0 launch image flushed before LAUNCH_UPDATE_DATA encrypts it in place)`,
  check(view, _config, scope) {
    for (const w of writtenIn(view, scope)) {
      if (w.key === 0 || w.reads === w.value) continue;
      return `guest (ASID ${w.key}) read of line ${w.line} of its page ${w.page} would return ${w.reads}, not ${w.value} which it wrote last.`;
    }
    return null;
  },
  exercised(view, _config, scope) {
    for (const w of writtenIn(view, scope)) if (w.key !== 0) return true;
    return false;
  },
};

export const asidReuseClean: SevInvariant = {
  id: 'asid-reuse-clean',
  title: 'a recycled ASID starts with no lines in any cache',
  statement:
    'When an ASID is given to a VM (the VM has not run yet), no CPU holds a line tagged with it; and every DF_FLUSH ran after WBINVD on every CPU since the last DEACTIVATE ' +
    '(the SNP firmware refuses otherwise).',
  source: `${SEED_PATCH}: sev_flush_asids() "SNP firmware requires use of WBINVD for ASID recycling", and the commit message (WBINVD stays when the ASID is recycled)`,
  check(view, _config, scope) {
    const missing = view.firmware.lastDfFlushMissingWbinvd;
    if (missing.length > 0) {
      return `DF_FLUSH ran while CPU${missing.length > 1 ? 's' : ''} ${missing.join(', ')} had not executed WBINVD since the last DEACTIVATE.`;
    }
    let fresh: Map<number, number> | undefined;
    for (const v of view.vms) if (v.fresh) (fresh ??= new Map()).set(v.asid, v.vm);
    if (fresh === undefined) return null;
    for (const l of guestLinesIn(view, scope)) {
      const vm = fresh.get(l.key);
      if (vm !== undefined) {
        return `ASID ${l.key} was given to VM ${vm} while CPU ${l.cpu} still holds ${l.dirty ? 'a dirty' : 'a valid'} ${tag(l)} from its previous owner.`;
      }
    }
    return null;
  },
  exercised(view) {
    if (view.firmware.dfFlushes > 0) return true;
    for (const v of view.vms) if (v.fresh) return true;
    return false;
  },
};

export const writebackCovers: SevInvariant = {
  id: 'writeback-covers',
  title: 'the writeback set covers every CPU holding a dirty line of the VM',
  statement:
    'For every live VM, each CPU that holds a dirty line under the VM\'s ASID is in the set of CPUs a writeback for that VM would cover, ' +
    'so the release that follows cannot miss one. The cost report counts the CPUs actually written back and lines invalidated against the minimum.',
  source: `${SEED_PATCH}: sev_writeback_caches() "in anticipation of forthcoming optimizations to limit the WBNOINVD only to physical CPUs that have executed SEV guests"`,
  check(view, _config, scope) {
    for (const l of guestLinesIn(view, scope)) {
      if (!l.dirty) continue;
      const vm = vmOfAsid(view, l.key);
      if (vm === undefined || vm.writebackCpus === 'all') continue;
      if (!vm.writebackCpus.includes(l.cpu)) {
        return `CPU ${l.cpu} holds a dirty ${tag(l)} of VM ${vm.vm} but is not in its writeback set [${vm.writebackCpus.join(', ')}].`;
      }
    }
    return null;
  },
  exercised(view, _config, scope) {
    if (view.vms.length === 0) return false;
    for (const l of guestLinesIn(view, scope)) if (l.dirty) return true;
    return false;
  },
};

export const asidInRange: SevInvariant = {
  id: 'asid-in-range',
  title: 'every VM holds an ASID of its type\'s range',
  statement:
    'Every live VM holds an ASID of its type\'s range: SEV-ES and SNP VMs 1 .. minSevAsid-1, plain SEV VMs minSevAsid .. asids (every type 1 .. asids when the config does not split them); ' +
    'no two live VMs hold the same ASID.',
  source: 'arch/x86/kvm/svm/sev.c sev_asid_new() ("SEV-enabled guests must use asid from min_sev_asid to max_sev_asid. SEV-ES-enabled guest can use from 1 to min_sev_asid - 1")',
  check(view, config, scope) {
    if (scope && !scope.kernel) return null;
    const seen = new Map<number, number>();
    for (const v of view.vms) {
      const { lo, hi } = asidRange(config, v.type);
      if (v.asid < lo || v.asid > hi) return `VM ${v.vm} (${v.type}) holds ASID ${v.asid}, outside its range ${lo} .. ${hi}.`;
      const other = seen.get(v.asid);
      if (other !== undefined) return `VMs ${other} and ${v.vm} both hold ASID ${v.asid}.`;
      seen.set(v.asid, v.vm);
    }
    return null;
  },
  exercised(view, config, scope) {
    if (scope && !scope.kernel) return false;
    return config.minSevAsid !== undefined && view.vms.length > 0;
  },
};

export const INVARIANTS: readonly SevInvariant[] = [noStaleC1Dirty, hostIntegrity, guestIntegrity, asidReuseClean, writebackCovers, asidInRange];
