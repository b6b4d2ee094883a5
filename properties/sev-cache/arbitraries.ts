/**
 * fast-check generators for sev-cache.
 *
 * A trace is generated as a list of *intents* (an op kind plus a few random
 * numbers) that a small resolver turns into concrete ops while tracking a
 * rough picture of the state (live VMs, their ASIDs and pages, lines recently
 * touched). That keeps most ops valid and aimed at the hazards — guest writes
 * on many CPUs, releases, host writes to just-released pages from other CPUs,
 * evictions of lines that are actually cached, ASIDs recycled — while
 * shrinking still works on the intent list. Two burst intents replay the
 * alias stories (release then host write; host write then registration) in
 * one go, since their six ops rarely line up by chance; a third burst replays
 * the launch story (C=0 image, LAUNCH_UPDATE_DATA, eviction, guest read).
 * Regions are tracked as the kernel lists them, so unregistration, VMSA frees,
 * gmem hole-punches and reclaims with a range name whole regions. About one
 * intent in ten is turned into bad input on purpose (unknown or duplicate VM
 * ids, pages the VM does not own, sub-ranges of a region, busy pages, SNP
 * without SME_COHERENT, plain-SEV VMSA frees, empty ranges).
 */
import * as fc from 'fast-check';
import { asidRange, type Config, type HaveRunMask, type SevOp, type VmType } from '../../spec/sev-cache/types';
import { swarm, tagSwarm } from '../../harness/swarm';

type Kind =
  | 'create'
  | 'register'
  | 'guestWrite'
  | 'guestRead'
  | 'hostWrite'
  | 'hostRead'
  | 'evict'
  | 'unregister'
  | 'flushPage'
  | 'reclaim'
  | 'gmem'
  | 'destroy'
  /** A burst: the guest dirties a line, the page is released, the host writes it from another CPU, both lines are evicted. */
  | 'storyRelease'
  /** A burst: the host dirties a line, the page is registered, the guest writes it, both lines are evicted. */
  | 'storyRegister'
  /** User space writes the launch image into a registered page of a VM that has not run (C=0). */
  | 'launchWrite'
  /** KVM_SEV_LAUNCH_UPDATE_DATA over one region. */
  | 'launchUpdate'
  /** A burst: a fresh VM gets a launch image written with C=0, encrypted in place, the C=0 line evicted, the guest reads it. */
  | 'storyLaunch';

export interface Intent {
  readonly kind: Kind;
  readonly a: number;
  readonly b: number;
  readonly c: number;
  readonly d: number;
  readonly bad: boolean;
}

const WEIGHTS: ReadonlyArray<readonly [Kind, number]> = [
  ['create', 4],
  ['register', 4],
  ['guestWrite', 10],
  ['guestRead', 3],
  ['hostWrite', 6],
  ['hostRead', 4],
  ['evict', 8],
  ['unregister', 3],
  ['flushPage', 2],
  ['reclaim', 2],
  ['gmem', 2],
  ['destroy', 3],
  ['storyRelease', 2],
  ['storyRegister', 2],
  ['launchWrite', 2],
  ['launchUpdate', 2],
  ['storyLaunch', 2],
];

/** The intent kinds as a weighted table (swarm testing draws subsets of it). */
const KIND_TABLE = WEIGHTS.map(([k, weight]) => ({ name: k, weight, arbitrary: fc.constant(k) }));

export function intent(kind: fc.Arbitrary<Kind> = fc.oneof(...KIND_TABLE)): fc.Arbitrary<Intent> {
  return fc.record({
    kind,
    a: fc.nat(1023),
    b: fc.nat(1023),
    c: fc.nat(1023),
    d: fc.nat(1023),
    bad: fc.nat(9).map((x) => x === 0),
  });
}

/** Small machines: few CPUs, pages and ASIDs (so ASIDs get recycled), every feature combination, one or two ASID ranges, both mask policies. */
export function config(): fc.Arbitrary<Config> {
  return fc
    .record({
      cpus: fc.integer({ min: 1, max: 4 }),
      pages: fc.integer({ min: 2, max: 6 }),
      linesPerPage: fc.integer({ min: 1, max: 2 }),
      asids: fc.integer({ min: 1, max: 4 }),
      wbnoinvd: fc.boolean(),
      smeCoherent: fc.boolean(),
      vmPageFlush: fc.constantFrom('works' as const, 'faults' as const),
      haveRunMask: fc.constantFrom<HaveRunMask>('upstream', 'clear-after-writeback'),
      split: fc.nat(4),
    })
    .map(({ split, ...c }): Config => {
      // About half the machines split the ASIDs (min_sev_asid in 2..asids+1 keeps both ranges usable but small).
      if (split < 2 || c.asids < 2) return c;
      // split 4: min_sev_asid past the last ASID, so plain SEV's range is empty (createVm ENOTTY).
      return { ...c, minSevAsid: split === 4 ? c.asids + 1 : 2 + (split % c.asids) };
    });
}

interface Region {
  readonly page: number;
  readonly npages: number;
}

interface GenVm {
  readonly type: VmType;
  readonly asid: number;
  readonly regions: Region[];
  /** A vCPU has run (guest access succeeded): launch ops are refused from then on. */
  ran: boolean;
}

interface Tag {
  readonly cpu: number;
  readonly page: number;
  readonly line: number;
  readonly key: number;
}

const MAX_VM_ID = 4;
const MAX_TOUCHED = 24;

/** Turns intents into ops, tracking a rough picture of the state. */
export function resolve(c: Config, intents: readonly Intent[]): SevOp[] {
  const vms = new Map<number, GenVm>();
  const owner = new Int32Array(c.pages);
  const pins = new Int32Array(c.pages);
  const asidUsed = new Uint8Array(c.asids + 1); // 0 free, 1 active, 2 reclaim
  const touched: Tag[] = [];
  const released: number[] = [];
  const out: SevOp[] = [];

  const pick = <T>(xs: readonly T[], n: number): T => xs[n % xs.length]!;
  const liveIds = (): number[] => [...vms.keys()];
  const withRegions = (f: (g: GenVm) => boolean = () => true): number[] =>
    liveIds().filter((id) => vms.get(id)!.regions.length > 0 && f(vms.get(id)!));
  const pagesOf = (vm: number): number[] => {
    const ps: number[] = [];
    for (let p = 0; p < c.pages; p++) if (owner[p] === vm) ps.push(p);
    return ps;
  };
  const freePages = (): number[] => {
    const f: number[] = [];
    for (let p = 0; p < c.pages; p++) if (owner[p] === 0) f.push(p);
    return f;
  };
  const touch = (t: Tag): void => {
    touched.push(t);
    if (touched.length > MAX_TOUCHED) touched.shift();
  };
  const addRegion = (vm: number, g: GenVm, page: number, npages: number): void => {
    for (let p = page; p < page + npages; p++) {
      owner[p] = vm;
      pins[p]!++;
    }
    g.regions.push({ page, npages });
  };
  /** Drop a region as the kernel does; pages no region pins any more go back to the host. */
  const dropRegion = (g: GenVm, r: Region): void => {
    g.regions.splice(g.regions.indexOf(r), 1);
    for (let p = r.page; p < r.page + r.npages; p++) {
      if (--pins[p]! > 0) continue;
      owner[p] = 0;
      released.push(p);
      if (released.length > 8) released.shift();
    }
  };
  /** A region the VMSA path accepts: one page, pinned once. */
  const vmsaRegions = (g: GenVm): Region[] => g.regions.filter((r) => r.npages === 1 && pins[r.page] === 1);
  /** Can a VM of this type get an ASID now (free, or reclaimable in its range)? */
  const asidFor = (type: VmType, commit: boolean): number => {
    const { lo, hi } = asidRange(c, type);
    const find = (st: number): number => {
      for (let a = lo; a <= hi; a++) if (asidUsed[a] === st) return a;
      return -1;
    };
    let asid = find(0);
    if (asid < 0 && find(2) >= 0) {
      if (!commit) return find(2);
      for (let a = 1; a <= c.asids; a++) if (asidUsed[a] === 2) asidUsed[a] = 0;
      asid = find(0);
    }
    if (asid > 0 && commit) asidUsed[asid] = 1;
    return asid;
  };
  const typesFor = (): VmType[] => (c.smeCoherent ? ['sev', 'sev-es', 'snp'] : ['sev', 'sev-es']);

  const createVm = (i: Intent): SevOp => {
    let vm = 0;
    for (let id = 1; id <= MAX_VM_ID; id++) if (!vms.has(id)) { vm = id; break; }
    const types = typesFor();
    // Prefer a type whose range can still give an ASID.
    let type = pick(types, i.b);
    for (let k = 0; k < types.length && asidFor(type, false) < 0; k++) type = pick(types, i.b + k + 1);
    if (i.bad) {
      // A type whose ASID range is used up with nothing to reclaim (EBUSY) or empty (ENOTTY).
      const full = types.filter((t) => asidFor(t, false) < 0);
      if (full.length > 0 && i.c % 3 === 1) type = pick(full, i.d);
      else if (!c.smeCoherent && i.c % 2 === 0) type = 'snp';
      else if (vms.size > 0) vm = pick(liveIds(), i.d);
    }
    if (vm === 0) vm = 1 + (i.a % MAX_VM_ID);
    if (!vms.has(vm) && !(type === 'snp' && !c.smeCoherent)) {
      const asid = asidFor(type, true);
      if (asid > 0) vms.set(vm, { type, asid, regions: [], ran: false });
    }
    return { op: 'createVm', args: { vm, type } };
  };
  const canCreate = (): boolean => vms.size < MAX_VM_ID && typesFor().some((t) => asidFor(t, false) > 0);

  /** The guest on `vm` accessed memory: it has run. */
  const ran = (vm: number): void => {
    const g = vms.get(vm);
    if (g) g.ran = true;
  };

  for (const i of intents) {
    const ids = liveIds();
    let kind = i.kind;
    if (kind === 'storyRelease' || kind === 'storyRegister' || kind === 'storyLaunch') {
      if (i.bad || ids.length === 0 || (kind !== 'storyRelease' && freePages().length === 0)) kind = ids.length === 0 ? 'create' : 'guestWrite';
      else if (kind === 'storyRelease' && withRegions().length === 0) kind = 'register';
      else if (kind === 'storyLaunch' && !ids.some((id) => !vms.get(id)!.ran && vms.get(id)!.type !== 'snp')) kind = canCreate() ? 'create' : 'destroy';
    }
    if (!i.bad) {
      // Valid intents whose prerequisites are missing become the prerequisite.
      const needsPages = kind === 'guestWrite' || kind === 'guestRead' || kind === 'unregister' || kind === 'gmem';
      if (kind === 'gmem' && withRegions((g) => g.type === 'snp').length === 0) kind = c.smeCoherent ? 'register' : 'unregister';
      if (kind === 'flushPage' && withRegions((g) => g.type !== 'sev' && vmsaRegions(g).length > 0).length === 0) kind = 'register';
      if ((kind === 'launchWrite' || kind === 'launchUpdate') && withRegions((g) => !g.ran && g.type !== 'snp').length === 0) kind = 'register';
      if (needsPages && withRegions().length === 0) kind = 'register';
      if (kind === 'register' && freePages().length === 0) kind = 'unregister';
      if ((kind === 'register' || kind === 'reclaim' || kind === 'destroy' || kind === 'unregister') && ids.length === 0) kind = 'create';
      if (kind === 'unregister' && withRegions().length === 0) kind = 'hostWrite';
      // No ASID to be had: destroy one so that the next create recycles.
      if (kind === 'create' && !canCreate()) kind = ids.length > 0 ? 'destroy' : 'hostWrite';
    }
    switch (kind) {
      case 'create':
        out.push(createVm(i));
        break;
      case 'register': {
        // Prefer VMs that can take a VMSA page or a launch image, so that those paths get pages.
        const vm = ids.length > 0 ? pick(ids, i.a) : 1 + (i.a % MAX_VM_ID);
        const g = vms.get(vm);
        const free = freePages();
        if (i.bad || !g) {
          // a page in use by another VM, an empty range or a range past the pool
          const page = i.c % 3 === 0 ? c.pages : i.b % c.pages;
          out.push({ op: 'registerRegion', args: { vm, page, npages: i.c % 3 === 1 ? 0 : 1 + (i.d % 2) } });
          if (g && i.c % 3 === 2) {
            // It may have been valid after all (free or own pages): track it.
            let ok = i.b % c.pages + 1 + (i.d % 2) <= c.pages;
            for (let p = i.b % c.pages; ok && p < i.b % c.pages + 1 + (i.d % 2); p++) if (owner[p] !== 0 && owner[p] !== vm) ok = false;
            if (ok) addRegion(vm, g, i.b % c.pages, 1 + (i.d % 2));
          }
          break;
        }
        if (free.length === 0 || (g.regions.length > 0 && i.c % 5 === 4)) {
          // Register again over pages the VM already holds: upstream pins them once more.
          const own = pagesOf(vm);
          if (own.length === 0) {
            out.push({ op: 'registerRegion', args: { vm, page: i.b % c.pages, npages: 1 } });
            break;
          }
          const page = pick(own, i.b);
          out.push({ op: 'registerRegion', args: { vm, page, npages: 1 } });
          addRegion(vm, g, page, 1);
          break;
        }
        // Prefer pages the host just wrote: its C=0 lines may still be cached (dirty) when the guest takes them.
        const hostPages = touched.filter((t) => t.key === 0 && owner[t.page] === 0).map((t) => t.page);
        const page = hostPages.length > 0 && i.d % 2 === 0 ? pick(hostPages, i.b) : pick(free, i.b);
        const npages = page + 1 < c.pages && owner[page + 1] === 0 && i.c % 3 === 0 ? 2 : 1;
        out.push({ op: 'registerRegion', args: { vm, page, npages } });
        addRegion(vm, g, page, npages);
        break;
      }
      case 'guestWrite':
      case 'guestRead': {
        const cands = withRegions();
        const cpu = i.b % c.cpus;
        const line = i.c % c.linesPerPage;
        let vm: number;
        let page: number;
        if (i.bad || cands.length === 0) {
          vm = i.bad && i.a % 2 === 0 ? 1 + (i.a % (MAX_VM_ID + 1)) : ids.length > 0 ? pick(ids, i.a) : 1;
          page = (i.d + 1) % c.pages;
          if (owner[page] === vm) page = c.pages; // outside every region
        } else {
          vm = pick(cands, i.a);
          const g = vms.get(vm)!;
          page = pick(pagesOf(vm), i.d);
          touch({ cpu, page, line, key: g.asid });
          ran(vm);
        }
        out.push(
          kind === 'guestWrite'
            ? { op: 'guestWrite', args: { vm, cpu, page, line, value: 1 + (i.d % 97) } }
            : { op: 'guestRead', args: { vm, cpu, page, line } },
        );
        break;
      }
      case 'hostWrite':
      case 'hostRead': {
        const cpu = i.b % c.cpus;
        const line = i.c % c.linesPerPage;
        let page: number;
        if (i.bad) {
          const busy: number[] = [];
          for (let p = 0; p < c.pages; p++) if (owner[p] !== 0) busy.push(p);
          page = busy.length > 0 ? pick(busy, i.a) : i.a % c.pages;
        } else {
          const free = freePages();
          // Prefer the pages that just came back from a guest: that is where the hazard is.
          const recent = released.filter((p) => owner[p] === 0);
          page = recent.length > 0 && i.a % 3 !== 0 ? pick(recent, i.d) : free.length > 0 ? pick(free, i.d) : i.a % c.pages;
          touch({ cpu, page, line, key: 0 });
        }
        out.push(
          kind === 'hostWrite'
            ? { op: 'hostWrite', args: { cpu, page, line, value: 100 + (i.d % 97) } }
            : { op: 'hostRead', args: { cpu, page, line } },
        );
        break;
      }
      case 'evict': {
        if (touched.length > 0 && i.a % 4 !== 0) {
          // Mostly one of the last few lines touched: those are the ones whose order of eviction matters.
          const t = i.a % 4 === 1 ? pick(touched, i.b) : touched[touched.length - 1 - (i.b % Math.min(6, touched.length))]!;
          out.push({ op: 'evict', args: t });
        } else {
          out.push({
            op: 'evict',
            args: { cpu: i.b % c.cpus, page: i.c % c.pages, line: i.d % c.linesPerPage, key: i.a % (c.asids + 1) },
          });
        }
        break;
      }
      case 'unregister': {
        const cands = withRegions();
        if (cands.length === 0 || i.bad) {
          // an unknown VM, or a range that is no region of the VM (a sub-range or a union)
          const vm = i.bad && i.a % 2 === 0 ? 1 + (i.a % (MAX_VM_ID + 1)) : ids.length > 0 ? pick(ids, i.a) : 1;
          const g = vms.get(vm);
          const r = g && g.regions.length > 0 ? pick(g.regions, i.b) : undefined;
          if (r && r.npages === 2 && i.c % 2 === 0) out.push({ op: 'unregisterRegion', args: { vm, page: r.page + (i.d % 2), npages: 1 } });
          else if (r) out.push({ op: 'unregisterRegion', args: { vm, page: r.page, npages: r.npages + 1 } });
          else out.push({ op: 'unregisterRegion', args: { vm, page: i.b % c.pages, npages: i.c % 2 } });
          break;
        }
        const vm = pick(cands, i.a);
        const g = vms.get(vm)!;
        const r = pick(g.regions, i.b);
        out.push({ op: 'unregisterRegion', args: { vm, page: r.page, npages: r.npages } });
        dropRegion(g, r);
        break;
      }
      case 'flushPage': {
        const cands = withRegions((g) => g.type !== 'sev' && vmsaRegions(g).length > 0);
        if (cands.length === 0 || i.bad) {
          // a plain SEV VM (no VMSA), a page of a bigger region, or an unknown VM
          const sevVm = withRegions((g) => g.type === 'sev');
          const vm = sevVm.length > 0 && i.c % 2 === 0 ? pick(sevVm, i.a) : i.bad && i.a % 2 === 0 ? 1 + (i.a % (MAX_VM_ID + 1)) : ids.length > 0 ? pick(ids, i.a) : 1;
          const own = pagesOf(vm);
          // Now and then a page the VM does not hold (EFAULT).
          const notOwn = Array.from({ length: c.pages }, (_, p) => p).filter((p) => !own.includes(p));
          const page = own.length > 0 && !(i.bad && i.d % 3 === 0 && notOwn.length > 0) ? pick(own, i.b) : notOwn.length > 0 ? pick(notOwn, i.b) : i.b % c.pages;
          out.push({ op: 'flushEncryptedPage', args: { vm, page } });
          const g = vms.get(vm);
          // Track it if it was valid after all.
          const r = g && g.type !== 'sev' ? vmsaRegions(g).find((x) => x.page === page) : undefined;
          if (g && r) dropRegion(g, r);
          break;
        }
        const vm = pick(cands, i.a);
        const g = vms.get(vm)!;
        const r = pick(vmsaRegions(g), i.b);
        out.push({ op: 'flushEncryptedPage', args: { vm, page: r.page } });
        dropRegion(g, r);
        break;
      }
      case 'gmem': {
        const cands = withRegions((g) => g.type === 'snp');
        if (cands.length === 0 || i.bad) {
          const vm = i.bad && i.a % 2 === 0 ? 1 + (i.a % (MAX_VM_ID + 1)) : ids.length > 0 ? pick(ids, i.a) : 1;
          out.push({ op: 'gmemInvalidate', args: { vm, page: i.b % c.pages, npages: i.c % 2 } });
          break;
        }
        const vm = pick(cands, i.a);
        const g = vms.get(vm)!;
        const r = pick(g.regions, i.b);
        // Only a range no other region of the VM sticks out of is accepted: the region itself, if nothing overlaps it.
        const whole = g.regions.every((x) => x === r || x.page + x.npages <= r.page || x.page >= r.page + r.npages || (x.page >= r.page && x.page + x.npages <= r.page + r.npages));
        out.push({ op: 'gmemInvalidate', args: { vm, page: r.page, npages: r.npages } });
        if (whole) for (const x of g.regions.filter((x) => x.page >= r.page && x.page + x.npages <= r.page + r.npages)) dropRegion(g, x);
        break;
      }
      case 'reclaim': {
        if (i.bad && ids.length > 0 && i.c % 3 === 0) {
          // `page` without `npages`: EINVAL (sev-cache page §3 memoryReclaimed).
          out.push({ op: 'memoryReclaimed', args: { vm: pick(ids, i.a), page: i.d % c.pages } });
          break;
        }
        const vm = i.bad || ids.length === 0 ? 1 + ((i.a % MAX_VM_ID) + MAX_VM_ID) : pick(ids, i.a);
        const g = vms.get(vm);
        if (g && g.regions.length > 0 && i.c % 2 === 0) {
          // The host takes the pages of one region back.
          const r = pick(g.regions, i.b);
          const whole = g.regions.every((x) => x === r || x.page + x.npages <= r.page || x.page >= r.page + r.npages || (x.page >= r.page && x.page + x.npages <= r.page + r.npages));
          out.push({ op: 'memoryReclaimed', args: { vm, page: r.page, npages: r.npages } });
          if (whole && g.type !== 'snp') for (const x of g.regions.filter((x) => x.page >= r.page && x.page + x.npages <= r.page + r.npages)) dropRegion(g, x);
        } else out.push({ op: 'memoryReclaimed', args: { vm } });
        break;
      }
      case 'launchWrite':
      case 'launchUpdate': {
        const cands = withRegions((g) => !g.ran && g.type !== 'snp');
        if (cands.length === 0 || i.bad) {
          // a VM that has run, an SNP VM, a page that is not the VM's, or an unknown VM (ENOENT)
          const vm = ids.length > 0 && i.c % 4 !== 0 ? pick(ids, i.a) : 1 + ((i.a % MAX_VM_ID) + MAX_VM_ID);
          const page = (i.d + 1) % c.pages;
          if (kind === 'launchWrite') out.push({ op: 'launchWrite', args: { vm, cpu: i.b % c.cpus, page, line: i.c % c.linesPerPage, value: 500 + (i.d % 97) } });
          else out.push({ op: 'launchUpdateData', args: { vm, page, npages: 1 } });
          break;
        }
        const vm = pick(cands, i.a);
        const g = vms.get(vm)!;
        const r = pick(g.regions, i.b);
        if (kind === 'launchWrite') {
          const page = r.page + (i.d % r.npages);
          out.push({ op: 'launchWrite', args: { vm, cpu: i.b % c.cpus, page, line: i.c % c.linesPerPage, value: 500 + (i.d % 97) } });
          touch({ cpu: i.b % c.cpus, page, line: i.c % c.linesPerPage, key: 0 });
        } else out.push({ op: 'launchUpdateData', args: { vm, page: r.page, npages: r.npages } });
        break;
      }
      case 'storyLaunch': {
        // A fresh non-SNP VM: take free pages for it, write the image with C=0, encrypt, evict the C=0 line, read.
        const fresh = ids.filter((id) => !vms.get(id)!.ran && vms.get(id)!.type !== 'snp');
        const vm = pick(fresh, i.a);
        const g = vms.get(vm)!;
        const page = pick(freePages(), i.b);
        const line = i.c % c.linesPerPage;
        const cpuA = i.d % c.cpus;
        const cpuB = (cpuA + 1 + (i.b % Math.max(1, c.cpus - 1))) % c.cpus;
        out.push(
          { op: 'registerRegion', args: { vm, page, npages: 1 } },
          { op: 'launchWrite', args: { vm, cpu: cpuA, page, line, value: 500 + (i.d % 97) } },
          { op: 'launchUpdateData', args: { vm, page, npages: 1 } },
          { op: 'evict', args: { cpu: cpuA, page, line, key: 0 } },
          { op: 'guestRead', args: { vm, cpu: cpuB, page, line } },
        );
        addRegion(vm, g, page, 1);
        ran(vm);
        touch({ cpu: cpuB, page, line, key: g.asid });
        break;
      }
      case 'storyRelease': {
        const vm = pick(withRegions(), i.a);
        const g = vms.get(vm)!;
        const r = pick(g.regions, i.b);
        const page = r.page;
        const line = i.c % c.linesPerPage;
        const cpuA = i.d % c.cpus;
        const cpuB = (cpuA + 1 + (i.b % Math.max(1, c.cpus - 1))) % c.cpus;
        out.push({ op: 'guestWrite', args: { vm, cpu: cpuA, page, line, value: 1 + (i.d % 97) } });
        ran(vm);
        const how = i.a % 4;
        const whole = g.regions.every((x) => x === r || x.page + x.npages <= r.page || x.page >= r.page + r.npages);
        if (how === 0 && g.type !== 'sev' && r.npages === 1 && pins[page] === 1) out.push({ op: 'flushEncryptedPage', args: { vm, page } });
        else if (how === 1 && g.type === 'snp' && whole) out.push({ op: 'gmemInvalidate', args: { vm, page, npages: r.npages } });
        else if (how === 1 && g.type !== 'snp' && whole) out.push({ op: 'memoryReclaimed', args: { vm, page, npages: r.npages } });
        else out.push({ op: 'unregisterRegion', args: { vm, page, npages: r.npages } });
        dropRegion(g, r);
        if (owner[page] !== 0) {
          touch({ cpu: cpuA, page, line, key: g.asid });
          break;
        }
        out.push(
          { op: 'hostWrite', args: { cpu: cpuB, page, line, value: 100 + (i.c % 97) } },
          { op: 'evict', args: { cpu: cpuB, page, line, key: 0 } },
          { op: 'evict', args: { cpu: cpuA, page, line, key: g.asid } },
          { op: 'hostRead', args: { cpu: cpuA, page, line } },
        );
        touch({ cpu: cpuA, page, line, key: g.asid });
        break;
      }
      case 'storyRegister': {
        const vm = pick(ids, i.a);
        const g = vms.get(vm)!;
        const page = pick(freePages(), i.b);
        const line = i.c % c.linesPerPage;
        const cpuA = i.d % c.cpus;
        const cpuB = (cpuA + (i.b % c.cpus)) % c.cpus;
        out.push(
          { op: 'hostWrite', args: { cpu: cpuB, page, line, value: 100 + (i.c % 97) } },
          { op: 'registerRegion', args: { vm, page, npages: 1 } },
          { op: 'guestWrite', args: { vm, cpu: cpuA, page, line, value: 1 + (i.d % 97) } },
          { op: 'evict', args: { cpu: cpuA, page, line, key: g.asid } },
          { op: 'evict', args: { cpu: cpuB, page, line, key: 0 } },
          { op: 'guestRead', args: { vm, cpu: cpuB, page, line } },
        );
        addRegion(vm, g, page, 1);
        ran(vm);
        touch({ cpu: cpuA, page, line, key: g.asid });
        break;
      }
      case 'destroy': {
        const vm = i.bad || ids.length === 0 ? 1 + ((i.a % MAX_VM_ID) + MAX_VM_ID) : pick(ids, i.a);
        out.push({ op: 'destroyVm', args: { vm } });
        const g = vms.get(vm);
        if (g) {
          for (const r of [...g.regions]) dropRegion(g, r);
          asidUsed[g.asid] = 2;
          vms.delete(vm);
        }
        break;
      }
    }
  }
  return out;
}

export function ops(c: Config, maxOps: number): fc.Arbitrary<SevOp[]> {
  // Swarm testing (harness/swarm.ts): a share of runs draws a subset of the intent kinds.
  return swarm(KIND_TABLE).chain(({ arbitrary, label }) =>
    fc.array(intent(arbitrary), { maxLength: maxOps, size: 'max' }).map((xs) => tagSwarm(resolve(c, xs), label)),
  );
}

export const arbitraries = { config, ops };
