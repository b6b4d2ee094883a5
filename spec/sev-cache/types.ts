/**
 * sev-cache vocabulary: the configuration, the operations, their results and
 * the View, as io-ts codecs with the TypeScript types derived from them.
 *
 * See README.md in this folder for the rules these shapes carry.
 */
import * as t from 'io-ts';
import { Int, Nat, PosInt, decode, intRange, oneOf, strict } from '../../harness/codec';
import type { InputError, Json, Resolved } from '../../harness/domain';

/** Upper bounds of the configuration (bitmaps are sized from them). */
export const MAX_CPUS = 64;
export const MAX_PAGES = 4096;
export const MAX_LINES_PER_PAGE = 64;
export const MAX_ASIDS = 1023;

export const VmType = oneOf(['sev', 'sev-es', 'snp'], 'VM type ("sev" | "sev-es" | "snp")');
export type VmType = t.TypeOf<typeof VmType>;

export const VmPageFlush = oneOf(['works', 'faults'], 'VM_PAGE_FLUSH behaviour ("works" | "faults")');
export type VmPageFlush = t.TypeOf<typeof VmPageFlush>;

/**
 * When the implementation forgets where a VM ran: never ("upstream", commit
 * 6f38f8c57464 "For simplicity, never remove CPUs from the bitmap"), or right
 * after each writeback ("clear-after-writeback", hvspec's own refinement).
 */
export const HaveRunMask = oneOf(['upstream', 'clear-after-writeback'], 'have-run CPU mask policy ("upstream" | "clear-after-writeback")');
export type HaveRunMask = t.TypeOf<typeof HaveRunMask>;

/** The configuration input: every field optional, nothing else allowed. */
export const ConfigInput = strict(
  {},
  {
    cpus: Nat,
    pages: Nat,
    linesPerPage: Nat,
    asids: Nat,
    wbnoinvd: t.boolean,
    smeCoherent: t.boolean,
    vmPageFlush: VmPageFlush,
    minSevAsid: Nat,
    haveRunMask: HaveRunMask,
  },
  'sev-cache config',
);
export type ConfigInput = t.TypeOf<typeof ConfigInput>;

export interface Config {
  /** Physical CPUs, each with its own cache. */
  readonly cpus: number;
  /** Host pages in the pool, numbered 0 .. pages-1. */
  readonly pages: number;
  /** Cache lines modelled per page. */
  readonly linesPerPage: number;
  /** SEV ASIDs 1 .. asids. */
  readonly asids: number;
  /** The CPUs implement WBNOINVD (X86_FEATURE_WBNOINVD); without it the helper falls back to WBINVD. */
  readonly wbnoinvd: boolean;
  /** X86_FEATURE_SME_COHERENT: lines are kept coherent across encryption keys. */
  readonly smeCoherent: boolean;
  /** Whether a write to MSR_AMD64_VM_PAGE_FLUSH succeeds or faults. */
  readonly vmPageFlush: VmPageFlush;
  /**
   * min_sev_asid (CPUID 0x8000001F EDX): SEV-ES and SNP VMs get ASIDs
   * 1 .. minSevAsid-1, plain SEV VMs minSevAsid .. asids. Absent: one range
   * 1 .. asids for every type (hvspec's older, simpler machine).
   */
  readonly minSevAsid?: number;
  /** Have-run mask policy of the implementation (the model writes back every CPU either way). */
  readonly haveRunMask: HaveRunMask;
}

export const DEFAULT_CONFIG: Config = {
  cpus: 4,
  pages: 8,
  linesPerPage: 2,
  asids: 2,
  wbnoinvd: true,
  smeCoherent: false,
  vmPageFlush: 'works',
  haveRunMask: 'upstream',
};

/** The ASIDs a VM of this type may get (sev_asid_new()); empty when lo > hi. */
export function asidRange(c: Config, type: VmType): { readonly lo: number; readonly hi: number } {
  if (c.minSevAsid === undefined) return { lo: 1, hi: c.asids };
  return type === 'sev' ? { lo: c.minSevAsid, hi: c.asids } : { lo: 1, hi: c.minSevAsid - 1 };
}

const RANGES: ReadonlyArray<readonly [keyof Config & ('cpus' | 'pages' | 'linesPerPage' | 'asids'), number, number]> = [
  ['cpus', 1, MAX_CPUS],
  ['pages', 1, MAX_PAGES],
  ['linesPerPage', 1, MAX_LINES_PER_PAGE],
  ['asids', 1, MAX_ASIDS],
];

/** Decode the input, fill defaults, check ranges (paths rooted at `$.config`). */
export function resolveConfig(input: unknown): Resolved<Config> {
  const d = decode(ConfigInput, input ?? {}, '$.config');
  if (!d.ok) return d;
  const config: Config = { ...DEFAULT_CONFIG, ...stripUndefined(d.value) };
  const errors: InputError[] = [];
  for (const [field, min, max] of RANGES) {
    const v = config[field];
    if (v < min || v > max) errors.push({ path: `$.config.${field}`, message: `${field} must be in [${min}, ${max}], got ${v}` });
  }
  if (config.minSevAsid !== undefined && (config.minSevAsid < 1 || config.minSevAsid > config.asids + 1)) {
    errors.push({ path: '$.config.minSevAsid', message: `minSevAsid must be in [1, asids + 1 = ${config.asids + 1}], got ${config.minSevAsid}` });
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value: config };
}

function stripUndefined(o: ConfigInput): Partial<Config> {
  const out: { [k: string]: unknown } = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as Partial<Config>;
}

export function encodeConfig(c: Config): Json {
  const out: { [k: string]: Json } = {
    cpus: c.cpus,
    pages: c.pages,
    linesPerPage: c.linesPerPage,
    asids: c.asids,
    wbnoinvd: c.wbnoinvd,
    smeCoherent: c.smeCoherent,
    vmPageFlush: c.vmPageFlush,
    haveRunMask: c.haveRunMask,
  };
  if (c.minSevAsid !== undefined) out['minSevAsid'] = c.minSevAsid;
  return out;
}

// ---------------------------------------------------------------------------
// Operations

/*
 * Every number an op accepts is bounded by what the model and the
 * implementation can hold: VM ids live in Int32Array slots (asidOwner,
 * pageOwner, loadedVm), page/CPU/line/key numbers index arrays sized from the
 * config's upper bounds. Out-of-bound input is a decode error at its JSON
 * path (exit 2), never a crash inside a system.
 */
/** A VM id: a positive 31-bit integer. */
const VmId = intRange(1, 0x7fffffff, 'VM id (1 .. 2^31-1)');
const PageNo = intRange(0, MAX_PAGES, `page number (0 .. ${MAX_PAGES})`);
const PageCount = intRange(0, MAX_PAGES, `page count (0 .. ${MAX_PAGES})`);
const CpuNo = intRange(0, MAX_CPUS, `CPU number (0 .. ${MAX_CPUS})`);
const LineNo = intRange(0, MAX_LINES_PER_PAGE, `line number (0 .. ${MAX_LINES_PER_PAGE})`);
const KeyNo = intRange(0, MAX_ASIDS, `key (0 .. ${MAX_ASIDS})`);
/** A value written to memory: a signed 32-bit integer. */
const Value = intRange(-0x80000000, 0x7fffffff, 'value (signed 32-bit integer)');
const Range = strict({ vm: VmId, page: PageNo, npages: PageCount });

export const opArgs = {
  createVm: strict({ vm: VmId, type: VmType }),
  registerRegion: Range,
  unregisterRegion: Range,
  guestWrite: strict({ vm: VmId, cpu: CpuNo, page: PageNo, line: LineNo, value: Value }),
  guestRead: strict({ vm: VmId, cpu: CpuNo, page: PageNo, line: LineNo }),
  hostWrite: strict({ cpu: CpuNo, page: PageNo, line: LineNo, value: Value }),
  hostRead: strict({ cpu: CpuNo, page: PageNo, line: LineNo }),
  evict: strict({ cpu: CpuNo, page: PageNo, line: LineNo, key: KeyNo }),
  flushEncryptedPage: strict({ vm: VmId, page: PageNo }),
  /** The old form `{ vm }` (writeback only) is still accepted; with a range, those pages go back to the host. */
  memoryReclaimed: strict({ vm: VmId }, { page: PageNo, npages: PageCount }),
  gmemInvalidate: Range,
  destroyVm: strict({ vm: VmId }),
  /** User space writes the launch image into a registered page of a VM that has not run, through its own (C=0) mapping. */
  launchWrite: strict({ vm: VmId, cpu: CpuNo, page: PageNo, line: LineNo, value: Value }),
  /** KVM_SEV_LAUNCH_UPDATE_DATA: the firmware encrypts the pages in place with the VM's key. */
  launchUpdateData: Range,
};

type ArgsOf<K extends keyof typeof opArgs> = t.TypeOf<(typeof opArgs)[K]>;
/** Op type written out so that narrowing on `op` works everywhere. */
export type SevOp = {
  [K in keyof typeof opArgs]: { readonly op: K; readonly args: ArgsOf<K> };
}[keyof typeof opArgs];
export type OpName = SevOp['op'];
export const OP_NAMES = Object.keys(opArgs) as OpName[];

/** Checks that need the config: CPU, line, key and (host/evict) page numbers out of range. */
export function validateOp(op: SevOp, c: Config): InputError[] {
  const errors: InputError[] = [];
  const a = op.args as { [k: string]: unknown };
  const check = (field: string, bound: number, what: string): void => {
    const v = a[field];
    if (typeof v === 'number' && v >= bound) errors.push({ path: `$.args.${field}`, message: `${field} ${v} is out of range: the config has ${bound} ${what}` });
  };
  if ('cpu' in a) check('cpu', c.cpus, 'CPUs');
  if ('line' in a) check('line', c.linesPerPage, 'lines per page');
  if (op.op === 'hostRead' || op.op === 'hostWrite' || op.op === 'evict') check('page', c.pages, 'pages');
  if (op.op === 'evict') check('key', c.asids + 1, 'keys (0 for the host, then ASIDs 1..asids)');
  return errors;
}

// ---------------------------------------------------------------------------
// Results

export const Errno = oneOf(['EINVAL', 'ENOENT', 'EEXIST', 'EBUSY', 'EFAULT', 'ENOTTY'], 'errno');
export type Errno = t.TypeOf<typeof Errno>;

export const ReadValue = t.union([Int, t.literal('unspecified')]);
export type ReadValue = t.TypeOf<typeof ReadValue>;

export const OkResult = strict({ ok: t.literal(true) }, { asid: PosInt, value: ReadValue }, 'sev-cache ok result');
export const ErrResult = strict({ ok: t.literal(false), error: Errno }, {}, 'sev-cache error result');
export const SevResultCodec = t.union([OkResult, ErrResult]);

export type SevResult =
  | { readonly ok: true; readonly asid?: number; readonly value?: ReadValue; readonly error?: undefined }
  | { readonly ok: false; readonly error: Errno };

export const OK: SevResult = { ok: true };
export function err(error: Errno): SevResult {
  return { ok: false, error };
}

// ---------------------------------------------------------------------------
// The View

const VmView = strict({
  vm: PosInt,
  type: VmType,
  asid: PosInt,
  /** No vCPU has run since the ASID was given to the VM. */
  fresh: t.boolean,
  /** The CPUs a cache writeback for this VM would cover right now. */
  writebackCpus: t.union([t.literal('all'), t.array(Nat)]),
});
const AsidView = strict({ asid: PosInt, state: oneOf(['active', 'reclaim']), snp: t.boolean });
const PageView = strict({ page: Nat, vm: PosInt });
const GuestLineView = strict({ cpu: Nat, page: Nat, line: Nat, key: PosInt, dirty: t.boolean });
const WrittenView = strict({
  page: Nat,
  line: Nat,
  /** The current owner's key: 0 for a free page (the host), the VM's ASID for a registered page. */
  key: Nat,
  /** What the owner last wrote to this line since it acquired the page. */
  value: Int,
  /** What a read by the owner would return now (ciphertext if memory holds another key's data). */
  reads: Int,
});
const FirmwareView = strict({
  dfFlushes: Nat,
  /** CPUs that had not run WBINVD since the last DEACTIVATE when the last DF_FLUSH ran. */
  lastDfFlushMissingWbinvd: t.array(Nat),
});

export const SevViewCodec = strict({
  vms: t.array(VmView),
  asids: t.array(AsidView),
  pages: t.array(PageView),
  guestLines: t.array(GuestLineView),
  written: t.array(WrittenView),
  firmware: FirmwareView,
});
export type SevView = t.TypeOf<typeof SevViewCodec>;
export type VmViewT = t.TypeOf<typeof VmView>;
export type GuestLineViewT = t.TypeOf<typeof GuestLineView>;
export type WrittenViewT = t.TypeOf<typeof WrittenView>;

/**
 * The bytes a read returns when memory holds data encrypted under `memKey`
 * and the reader decrypts with `readKey` (different keys): garbage, but
 * deterministic so that runs replay. Always negative and below -2^31 for
 * small values, so it never passes for data a test wrote.
 */
export function ciphertext(value: number, memKey: number, readKey: number): number {
  const x = Math.imul((value | 0) ^ Math.imul(memKey + 1, 0x9e3779b1), 0x85ebca6b) ^ Math.imul(readKey + 7, 0xc2b2ae35);
  return -((x >>> 0) + 0x80000001);
}
