/**
 * The `prefault` domain assembled: pre-populating guest mappings
 * (KVM_PRE_FAULT_MEMORY, populate/finalize of SNP/TDX), level choice by
 * alignment, exact-range mapping for confidential VMs.
 */
import { someDomain, type Domain, type InputError, type Json } from '../harness/domain';
import { prefaultHidden } from '../spec/prefault/hidden';
import { encodeConfig, resolveConfig } from '../spec/prefault/config';
import { INVARIANTS } from '../spec/prefault/invariants';
import {
  KVM_USER_MEM_SLOTS,
  MAX_SLOT_ID,
  PAGE_SIZE,
  ResultC,
  ViewC,
  ConfigInput,
  hex,
  opArgs,
  type PrefaultConfig,
  type PrefaultOp,
  mergeScopes,
  type PrefaultResult,
  type Scope,
  type View,
} from '../spec/prefault/types';
import { viewsAgree } from '../spec/prefault/agree';
import { createModel } from '../model/prefault/model';
import { createImpl } from '../impl/prefault/mmu';
import { MUTANTS } from '../properties/prefault/mutants';
import * as arb from '../properties/prefault/arbitraries';

function describeOp(op: PrefaultOp): string {
  switch (op.op) {
    case 'preFault': {
      const a = op.args;
      const extra = (a.flags !== 0 ? ` flags=${a.flags}` : '') + (a.signalAfter !== undefined ? ` signalAfter=${a.signalAfter}` : '');
      return `preFault gpa=${hex(a.gpa)} size=${hex(a.size)}${extra}`;
    }
    case 'populate':
      return `populate gpa=${hex(op.args.gpa)} npages=${op.args.npages}`;
    case 'guestAccess':
      return `guestAccess gfn=${hex(op.args.gfn)}${op.args.write ? ' write' : ''}`;
    case 'setAttributes':
      return `setAttributes gfn=${hex(op.args.gfn)} npages=${op.args.npages} ${op.args.private ? 'private' : 'shared'}`;
    case 'setUserMemoryRegion': {
      const a = op.args;
      const extra = (a.backing !== undefined ? ` backing=${a.backing}` : '') + (a.guestMemfd ? ' guest_memfd' : '');
      return a.npages === 0 ? `setUserMemoryRegion slot=${a.slot} delete` : `setUserMemoryRegion slot=${a.slot} gfn=${hex(a.baseGfn)} npages=${a.npages}${extra}`;
    }
    case 'zap':
    case 'mappings':
      return `${op.op} gfn=${hex(op.args.gfn)} npages=${op.args.npages}`;
    default:
      return op.op;
  }
}

/**
 * Input bounds of the ops: slot ids above hvspec's bound (31) but below
 * KVM_USER_MEM_SLOTS would be accepted by the kernel; hvspec refuses them as
 * input (exit 2) to keep at most 32 live memslots. Ids from
 * KVM_USER_MEM_SLOTS up are answered EINVAL, as upstream does.
 */
function validateOp(op: PrefaultOp): InputError[] {
  if (op.op === 'setUserMemoryRegion' && op.args.slot > MAX_SLOT_ID && op.args.slot < KVM_USER_MEM_SLOTS) {
    return [{ path: '$.args.slot', message: `slot ${op.args.slot} is above hvspec's bound of ${MAX_SLOT_ID} (ids from ${KVM_USER_MEM_SLOTS} up are answered EINVAL)` }];
  }
  return [];
}

/** Exploration: one SNP slot of 4 MiB (two 2 MiB blocks), 2 MiB-backed. */
const EXPLORE_CONFIG: Json = { vmType: 'snp', memslots: [{ id: 0, baseGfn: 0, npages: 1024, backing: '2m' }] };

function alphabet(_c: PrefaultConfig): readonly PrefaultOp[] {
  const P = PAGE_SIZE;
  return [
    { op: 'populate', args: { gpa: 0, npages: 1 } },
    { op: 'populate', args: { gpa: 5 * P, npages: 1 } },
    { op: 'populate', args: { gpa: 510 * P, npages: 3 } },
    { op: 'finalize', args: {} },
    { op: 'preFault', args: { gpa: 0, size: P, flags: 0 } },
    { op: 'preFault', args: { gpa: 0, size: 512 * P, flags: 0 } },
    { op: 'preFault', args: { gpa: 511 * P, size: 2 * P, flags: 0 } },
    { op: 'preFault', args: { gpa: 0, size: 2048 * P, flags: 0, signalAfter: 1 } },
    { op: 'preFault', args: { gpa: 0, size: P, flags: 0, signalAfter: 0 } },
    { op: 'preFault', args: { gpa: 1024 * P, size: P, flags: 0 } },
    { op: 'preFault', args: { gpa: 1, size: P, flags: 0 } },
    { op: 'preFault', args: { gpa: 0, size: P, flags: 1 } },
    { op: 'guestAccess', args: { gfn: 0, write: false } },
    { op: 'guestAccess', args: { gfn: 600, write: true } },
    { op: 'setAttributes', args: { gfn: 5, npages: 1, private: false } },
    { op: 'setAttributes', args: { gfn: 5, npages: 1, private: true } },
    { op: 'zap', args: { gfn: 0, npages: 1 } },
    { op: 'zap', args: { gfn: 0, npages: 1024 } },
    { op: 'mappings', args: { gfn: 0, npages: 1024 } },
    { op: 'measurement', args: {} },
    { op: 'setUserMemoryRegion', args: { slot: 0, baseGfn: 0, npages: 0 } },
    { op: 'setUserMemoryRegion', args: { slot: 0, baseGfn: 0, npages: 1024, backing: '2m', guestMemfd: true } },
  ];
}

export const prefaultDomain: Domain<PrefaultConfig, PrefaultOp, PrefaultResult, View, Scope> = {
  id: 'prefault',
  title: 'Pre-populating guest mappings, exact ranges for SNP/TDX',
  summary:
    'KVM_PRE_FAULT_MEMORY and the initial population of confidential VMs: a pre-fault maps as a read fault would, chunk by chunk, choosing the largest leaf allowed by alignment, memslot bounds, host backing and private/shared attributes (private guest_memfd memory at 4 KiB), and reports exactly the range it processed (ENOENT at shared gpas outside memslots, EFAULT at private ones); memslots change at run time (KVM_SET_USER_MEMORY_REGION2); SEV-SNP adds its initial image without mapping it, TDX adds and maps it at 4 KiB, each page once, and both may only be pre-faulted after finalize.',
  source:
    'seed 003_af5d94ca23cb5f06.txt (KVM_MAP_MEMORY RFC thread); Documentation/virt/kvm/api.rst 4.143 KVM_PRE_FAULT_MEMORY; virt/kvm/kvm_main.c kvm_vcpu_pre_fault_memory, kvm_set_memory_region; virt/kvm/guest_memfd.c; arch/x86/kvm/svm/sev.c snp_launch_update; arch/x86/kvm/vmx/tdx.c tdx_vcpu_init_mem_region; tools/testing/selftests/kvm/pre_fault_memory_test.c',
  configCodec: ConfigInput,
  resolveConfig,
  encodeConfig,
  opArgs,
  validateOp,
  resultCodec: ResultC,
  viewCodec: ViewC,
  invariants: INVARIANTS,
  createModel,
  createImpl,
  mutants: MUTANTS,
  viewsAgree,
  mergeScopes,
  arbitraries: { config: arb.config, ops: arb.ops },
  budget: { runs: 300, maxOps: 40 },
  mutantBudget: { runs: 300, maxOps: 40 },
  exploration: { config: EXPLORE_CONFIG, alphabet },
  costReport(model, impl) {
    const leaves = impl['leavesInstalled'] ?? 0;
    const pages = impl['pagesCovered'] ?? 0;
    const steps = model['pageSteps'] ?? 0;
    const chunks = impl['chunks'] ?? 0;
    return [
      `impl: ${leaves} leaf installs covering ${pages} pages (${leaves > 0 ? (pages / leaves).toFixed(1) : '0'} pages per leaf), ${chunks} pre-fault chunks`,
      `model: ${steps} page steps for the same leaves (${leaves > 0 ? (steps / leaves).toFixed(1) : '0'} per leaf)`,
    ];
  },
  describeOp,
  hidden: prefaultHidden,
};

export const prefault = someDomain(prefaultDomain);
