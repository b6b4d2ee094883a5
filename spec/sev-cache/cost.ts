/**
 * The cost report's yardstick: the fewest CPUs a correct kernel must write
 * back at each release.
 *
 * A kernel cannot look into caches; what it can know is where a VM has run.
 * A CPU "could hold a dirty line of VM v" exactly when v has run there since
 * that CPU's cache was last written back (by anyone: WBINVD/WBNOINVD write
 * back every dirty line on the CPU, whatever its key). The ideal policy writes
 * back exactly those CPUs at each release that needs a cache-wide writeback;
 * this tracker follows the ideal policy's own history so the minimum is the
 * same number on the model and on the implementation side.
 *
 * Pure bookkeeping for the report: it never influences a result.
 */
export class MinimumTracker {
  /** Per CPU: the VMs that have run there since the ideal policy last wrote it back. */
  private readonly ranSince: Set<number>[];
  /** Cumulative CPUs the ideal policy writes back. */
  total = 0;

  constructor(cpus: number) {
    this.ranSince = Array.from({ length: cpus }, () => new Set<number>());
  }

  /** A vCPU of `vm` entered the guest on `cpu`. */
  ran(vm: number, cpu: number): void {
    this.ranSince[cpu]!.add(vm);
  }

  /** A release of `vm`'s memory that needs a cache-wide writeback. */
  release(vm: number): number {
    let n = 0;
    for (const s of this.ranSince) {
      if (s.has(vm)) {
        n++;
        s.clear();
      }
    }
    this.total += n;
    return n;
  }

  /** WBINVD on every CPU (ASID recycling): nothing dirty anywhere. */
  allWrittenBack(): void {
    for (const s of this.ranSince) s.clear();
  }

  /** The VM is gone: it can no longer run anywhere (its lines were written back on destroy). */
  forget(vm: number): void {
    for (const s of this.ranSince) s.delete(vm);
  }
}

/** Counter names shared by the model and the implementation. */
export interface SevCounters {
  [k: string]: number;
  /** Successful release points (pages leave a guest, or reclaim for SEV/SEV-ES). */
  releases: number;
  /** Cache-wide writebacks (WBINVD or WBNOINVD on one CPU) at release points. */
  cpusWrittenBack: number;
  /** Valid lines dropped by cache-wide writebacks at release points (WBINVD invalidates, WBNOINVD does not). */
  linesInvalidated: number;
  /** The minimum: CPUs that could hold a dirty line of the VM, summed over release points. */
  minimumCpus: number;
  /** Lines dropped by targeted flushes (CLFLUSH, VM_PAGE_FLUSH). */
  pageFlushLines: number;
  /** ASID recycling rounds (WBINVD on every CPU, then DF_FLUSH). */
  recycles: number;
  /** Lines dropped by the WBINVDs of ASID recycling. */
  recycleLinesInvalidated: number;
  /** Implementation only: CPUs the upstream mask (never cleared) would write back, summed over writebacks. */
  cpusWrittenBackUpstream: number;
  /** Implementation only: CPUs a mask cleared after each writeback would write back, summed over writebacks. */
  cpusWrittenBackClearing: number;
}

export function zeroCounters(): SevCounters {
  return {
    releases: 0,
    cpusWrittenBack: 0,
    linesInvalidated: 0,
    minimumCpus: 0,
    pageFlushLines: 0,
    recycles: 0,
    recycleLinesInvalidated: 0,
    cpusWrittenBackUpstream: 0,
    cpusWrittenBackClearing: 0,
  };
}
