/**
 * The `prefault` domain assembled: pre-populating guest mappings
 * (KVM_PRE_FAULT_MEMORY, populate/finalize of SNP/TDX), level choice by
 * alignment, exact-range mapping for confidential VMs.
 */
import { someDomain, type Domain, type Json } from '../harness/domain';
import { prefaultHidden } from '../spec/prefault/hidden';
import { encodeConfig, resolveConfig } from '../spec/prefault/config';
import { INVARIANTS } from '../spec/prefault/invariants';
import {
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
    case 'zap':
    case 'mappings':
      return `${op.op} gfn=${hex(op.args.gfn)} npages=${op.args.npages}`;
    default:
      return op.op;
  }
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
  ];
}

export const prefaultDomain: Domain<PrefaultConfig, PrefaultOp, PrefaultResult, View, Scope> = {
  id: 'prefault',
  title: 'Pre-populating guest mappings, exact ranges for SNP/TDX',
  summary:
    'KVM_PRE_FAULT_MEMORY and the initial population of confidential VMs: a pre-fault maps as a read fault would, chunk by chunk, choosing the largest leaf allowed by alignment, memslot bounds, host backing, private/shared attributes and the VM type, and reports exactly the range it processed; SEV-SNP and TDX add their initial image page by page (4 KiB, measured once) and may only be pre-faulted after finalize, so nothing outside the requested pages is mapped or measured.',
  source:
    'seed 003_af5d94ca23cb5f06.txt (KVM_MAP_MEMORY RFC thread); Documentation/virt/kvm/api.rst 4.143 KVM_PRE_FAULT_MEMORY; virt/kvm/kvm_main.c kvm_vcpu_pre_fault_memory; tools/testing/selftests/kvm/pre_fault_memory_test.c',
  configCodec: ConfigInput,
  resolveConfig,
  encodeConfig,
  opArgs,
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
