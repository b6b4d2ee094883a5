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
 * one go, since their six ops rarely line up by chance. About one intent in ten is
 * turned into bad input on purpose (unknown or duplicate VM ids, pages the VM
 * does not own, busy pages, SNP without SME_COHERENT, empty ranges).
 */
import * as fc from 'fast-check';
import type { Config, SevOp, VmType } from '../../spec/sev-cache/types';

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
  | 'storyRegister';

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
];

export function intent(): fc.Arbitrary<Intent> {
  return fc.record({
    kind: fc.oneof(...WEIGHTS.map(([k, weight]) => ({ arbitrary: fc.constant(k), weight }))),
    a: fc.nat(1023),
    b: fc.nat(1023),
    c: fc.nat(1023),
    d: fc.nat(1023),
    bad: fc.nat(9).map((x) => x === 0),
  });
}

/** Small machines: few CPUs, pages and ASIDs (so ASIDs get recycled), every feature combination. */
export function config(): fc.Arbitrary<Config> {
  return fc.record({
    cpus: fc.integer({ min: 1, max: 4 }),
    pages: fc.integer({ min: 2, max: 6 }),
    linesPerPage: fc.integer({ min: 1, max: 2 }),
    asids: fc.integer({ min: 1, max: 3 }),
    wbnoinvd: fc.boolean(),
    smeCoherent: fc.boolean(),
    vmPageFlush: fc.constantFrom('works' as const, 'faults' as const),
  });
}

interface GenVm {
  readonly type: VmType;
  readonly asid: number;
  readonly pages: number[];
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
  const asidUsed = new Uint8Array(c.asids + 1); // 0 free, 1 active, 2 reclaim
  const touched: Tag[] = [];
  const released: number[] = [];
  const out: SevOp[] = [];

  const pick = <T>(xs: readonly T[], n: number): T => xs[n % xs.length]!;
  const liveIds = (): number[] => [...vms.keys()];
  const withPages = (): number[] => liveIds().filter((id) => vms.get(id)!.pages.length > 0);
  const freePages = (): number[] => {
    const f: number[] = [];
    for (let p = 0; p < c.pages; p++) if (owner[p] === 0) f.push(p);
    return f;
  };
  const touch = (t: Tag): void => {
    touched.push(t);
    if (touched.length > MAX_TOUCHED) touched.shift();
  };
  const freePage = (p: number, vm: GenVm): void => {
    owner[p] = 0;
    vm.pages.splice(vm.pages.indexOf(p), 1);
    released.push(p);
    if (released.length > 8) released.shift();
  };

  const createVm = (i: Intent): SevOp => {
    let vm = 0;
    for (let id = 1; id <= MAX_VM_ID; id++) if (!vms.has(id)) { vm = id; break; }
    const types: VmType[] = c.smeCoherent ? ['sev', 'sev-es', 'snp'] : ['sev', 'sev-es'];
    let type = pick(types, i.b);
    if (i.bad) {
      if (!c.smeCoherent && i.c % 2 === 0) type = 'snp';
      else if (vms.size > 0) vm = pick(liveIds(), i.d);
    }
    if (vm === 0) vm = 1 + (i.a % MAX_VM_ID);
    if (!vms.has(vm) && !(type === 'snp' && !c.smeCoherent)) {
      let asid = asidUsed.indexOf(0, 1);
      if (asid < 0 && asidUsed.includes(2)) {
        for (let a = 1; a <= c.asids; a++) if (asidUsed[a] === 2) asidUsed[a] = 0;
        asid = asidUsed.indexOf(0, 1);
      }
      if (asid > 0) {
        asidUsed[asid] = 1;
        vms.set(vm, { type, asid, pages: [] });
      }
    }
    return { op: 'createVm', args: { vm, type } };
  };

  for (const i of intents) {
    const ids = liveIds();
    let kind = i.kind;
    if (kind === 'storyRelease' || kind === 'storyRegister') {
      if (i.bad || ids.length === 0 || (kind === 'storyRegister' && freePages().length === 0)) kind = ids.length === 0 ? 'create' : 'guestWrite';
      else if (kind === 'storyRelease' && withPages().length === 0) kind = 'register';
    }
    if (!i.bad) {
      // Valid intents whose prerequisites are missing become the prerequisite.
      const needsPages = kind === 'guestWrite' || kind === 'guestRead' || kind === 'unregister' || kind === 'flushPage' || kind === 'gmem';
      if (kind === 'gmem' && !withPages().some((id) => vms.get(id)!.type === 'snp')) kind = c.smeCoherent ? 'register' : 'unregister';
      if (needsPages && withPages().length === 0) kind = 'register';
      if (kind === 'register' && freePages().length === 0) kind = 'unregister';
      if ((kind === 'register' || kind === 'reclaim' || kind === 'destroy' || kind === 'unregister') && ids.length === 0) kind = 'create';
      if (kind === 'unregister' && withPages().length === 0) kind = 'hostWrite';
      // All ASIDs taken: destroy one so that the next create recycles.
      if (kind === 'create' && vms.size >= Math.min(c.asids, MAX_VM_ID)) kind = ids.length > 0 ? 'destroy' : 'hostWrite';
    }
    switch (kind) {
      case 'create':
        out.push(createVm(i));
        break;
      case 'register': {
        const vm = ids.length > 0 ? pick(ids, i.a) : 1 + (i.a % MAX_VM_ID);
        const free = freePages();
        if (i.bad || free.length === 0) {
          // a page in use, an empty range or a range past the pool
          const page = i.c % 3 === 0 ? c.pages : i.b % c.pages;
          out.push({ op: 'registerRegion', args: { vm, page, npages: i.c % 3 === 1 ? 0 : 1 + (i.d % 2) } });
          break;
        }
        // Prefer pages the host just wrote: its C=0 lines may still be cached (dirty) when the guest takes them.
        const hostPages = touched.filter((t) => t.key === 0 && owner[t.page] === 0).map((t) => t.page);
        const page = hostPages.length > 0 && i.d % 2 === 0 ? pick(hostPages, i.b) : pick(free, i.b);
        const npages = page + 1 < c.pages && owner[page + 1] === 0 && i.c % 2 === 0 ? 2 : 1;
        out.push({ op: 'registerRegion', args: { vm, page, npages } });
        const g = vms.get(vm);
        if (g) for (let p = page; p < page + npages; p++) { owner[p] = vm; g.pages.push(p); }
        break;
      }
      case 'guestWrite':
      case 'guestRead': {
        const cands = withPages();
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
          page = pick(g.pages, i.d);
          touch({ cpu, page, line, key: g.asid });
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
      case 'unregister':
      case 'flushPage':
      case 'gmem': {
        const snpOnly = kind === 'gmem';
        let cands = withPages();
        if (snpOnly && !i.bad) cands = cands.filter((id) => vms.get(id)!.type === 'snp');
        if (cands.length === 0 || i.bad) {
          const vm = i.bad && i.a % 2 === 0 ? 1 + (i.a % (MAX_VM_ID + 1)) : ids.length > 0 ? pick(ids, i.a) : 1;
          const page = i.b % c.pages;
          if (kind === 'flushPage') out.push({ op: 'flushEncryptedPage', args: { vm, page } });
          else out.push({ op: kind === 'gmem' ? 'gmemInvalidate' : 'unregisterRegion', args: { vm, page, npages: i.c % 2 } });
          break;
        }
        const vm = pick(cands, i.a);
        const g = vms.get(vm)!;
        const page = pick(g.pages, i.b);
        const npages = kind !== 'flushPage' && owner[page + 1] === vm && i.c % 2 === 0 ? 2 : 1;
        if (kind === 'flushPage') out.push({ op: 'flushEncryptedPage', args: { vm, page } });
        else out.push({ op: kind === 'gmem' ? 'gmemInvalidate' : 'unregisterRegion', args: { vm, page, npages } });
        for (let p = page; p < page + npages; p++) freePage(p, g);
        break;
      }
      case 'reclaim': {
        const vm = i.bad || ids.length === 0 ? 1 + ((i.a % MAX_VM_ID) + MAX_VM_ID) : pick(ids, i.a);
        out.push({ op: 'memoryReclaimed', args: { vm } });
        break;
      }
      case 'storyRelease': {
        const vm = pick(withPages(), i.a);
        const g = vms.get(vm)!;
        const page = pick(g.pages, i.b);
        const line = i.c % c.linesPerPage;
        const cpuA = i.d % c.cpus;
        const cpuB = (cpuA + 1 + (i.b % Math.max(1, c.cpus - 1))) % c.cpus;
        out.push({ op: 'guestWrite', args: { vm, cpu: cpuA, page, line, value: 1 + (i.d % 97) } });
        const how = i.a % 4;
        if (how === 0) out.push({ op: 'flushEncryptedPage', args: { vm, page } });
        else if (how === 1 && g.type === 'snp') out.push({ op: 'gmemInvalidate', args: { vm, page, npages: 1 } });
        else if (how === 1) out.push({ op: 'memoryReclaimed', args: { vm } }, { op: 'unregisterRegion', args: { vm, page, npages: 1 } });
        else out.push({ op: 'unregisterRegion', args: { vm, page, npages: 1 } });
        freePage(page, g);
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
        owner[page] = vm;
        g.pages.push(page);
        touch({ cpu: cpuA, page, line, key: g.asid });
        break;
      }
      case 'destroy': {
        const vm = i.bad || ids.length === 0 ? 1 + ((i.a % MAX_VM_ID) + MAX_VM_ID) : pick(ids, i.a);
        out.push({ op: 'destroyVm', args: { vm } });
        const g = vms.get(vm);
        if (g) {
          for (const p of [...g.pages]) freePage(p, g);
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
  return fc.array(intent(), { maxLength: maxOps, size: 'max' }).map((xs) => resolve(c, xs));
}

export const arbitraries = { config, ops };
