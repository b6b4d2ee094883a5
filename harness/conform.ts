/**
 * Conformance: the running kernel as a third system beside model and impl.
 *
 * For each trace (a case file, or a random trace drawn from the domain's
 * generators and restricted to what the host can run):
 *   1. model and impl run in lockstep exactly as `check`/`replay` run them
 *      (`runTrace`): a failure there is reported as a lockstep failure;
 *   2. the trace is replayed against the kernel through the domain's
 *      adapter, step by step beside a fresh model: the kernel's result must
 *      agree with the model's under the domain's `resultsAgree`, a case
 *      step's `expect` must match the kernel's result, and after each step
 *      the adapter compares what the kernel lets us observe without side
 *      effects (dirty bitmaps, memory contents) with the model's View.
 * The first disagreement ends the trace (kernel and model states may differ
 * from there on) and is saved as a case file whose `expect`s are the
 * kernel's answers, so it replays against the kernel, and against the
 * model once the spec is fixed.
 *
 * Steps the host cannot run (an op it cannot observe, a gfn beyond what the
 * guest reaches) are counted as not run, with the reason; a step that
 * cannot be run and would change the model's state ends the trace, the rest
 * counted as not run. Nothing not run is ever counted as passed.
 *
 * This file names no domain and no driver: the adapter and the driver are
 * parameters (the registry of adapters lives in kernel/index.ts).
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as fc from 'fast-check';
import type { Domain, Json, OpShape, ResultShape } from './domain';
import { deepEqual, partialMatch } from './codec';
import { runTrace, type StepFailure } from './lockstep';
import { caseObject } from './cases';
import { runSeed } from './check';
import { traceHeaderLine, traceStepLine } from './trace-format';

/** One answer line of the driver: a JSON object. */
export type DriverAnswer = { [k: string]: Json };

/** What the runner needs of a driver: one command in, one answer out. */
export interface KernelDriver {
  send(command: { [k: string]: Json }): Promise<DriverAnswer>;
}

/** What the host offers, probed once. */
export interface HostInfo {
  /** Kernel release (uname -r). */
  readonly release: string;
  /** KVM_GET_API_VERSION. */
  readonly api: number;
  /** KVM_CHECK_EXTENSION answers, by name. */
  readonly caps: { readonly [name: string]: number };
  /** Whether a guest ran (a store and a load executed by the vCPU came back). */
  readonly guestsRun: boolean;
  /** Why guests do not run, when they do not. */
  readonly guestReason?: string;
}

/** The kernel's answer to one op: a result, or why the host cannot run it. */
export type KernelStep<R> =
  | { readonly run: true; readonly result: R }
  /** `diverges`: the model's state changes under this op, so later steps cannot be compared. */
  | { readonly run: false; readonly reason: string; readonly diverges: boolean };

/** One VM prepared for one trace. */
export interface KernelSession<O, R, V> {
  apply(op: O): Promise<KernelStep<R>>;
  /** Compare what the kernel exposes without side effects with the model's View; null when they agree. */
  observe(modelView: V): Promise<string | null>;
}

/** Maps a domain's ops to driver commands. One per domain, keyed by domain id (kernel/index.ts). */
export interface KernelAdapter<C, O extends OpShape, R, V> {
  readonly domainId: string;
  /** The config as the host must see it (e.g. KVM_USER_MEM_SLOTS from the host); null if unchanged. */
  hostConfig?(config: C, host: HostInfo): C;
  /** Why this host can never run `config` (null: it may). */
  configNotRunnable(config: C, host: HostInfo): string | null;
  /** Why this host can never run `op` (null: it may); random traces leave such ops out. */
  opNotRunnable(op: O, config: C, host: HostInfo): string | null;
  /**
   * A fresh VM set up for `config`, or the reason it cannot be set up. `ops`
   * is the whole trace, so that whatever the adapter needs of its own (the
   * guest program's memslot and page) can be placed where nothing in it reaches.
   */
  open(config: C, driver: KernelDriver, host: HostInfo, ops: readonly O[]): Promise<KernelSession<O, R, V> | { notRun: string }>;
}

export type DisagreementKind = 'result' | 'expect' | 'state';

export interface Disagreement {
  readonly kind: DisagreementKind;
  readonly step: number;
  readonly op: OpShape;
  readonly kernel: Json;
  readonly model: Json;
  readonly message: string;
  /** The saved case file (kernel answers as `expect`s). */
  file?: string;
}

/** Per-op counts: run against the kernel, and not run by reason. */
export interface OpCount {
  run: number;
  notRun: { [reason: string]: number };
}

export interface ConformTally {
  traces: number;
  run: number;
  notRun: number;
  disagreements: number;
  lockstepFailures: number;
  ops: { [op: string]: OpCount };
  /** Whole traces (configs) not run, by reason. */
  tracesNotRun: { [reason: string]: number };
}

export function emptyConformTally(): ConformTally {
  return { traces: 0, run: 0, notRun: 0, disagreements: 0, lockstepFailures: 0, ops: {}, tracesNotRun: {} };
}

export interface TraceReport {
  readonly name: string;
  readonly repro?: string;
  readonly run: number;
  readonly notRun: number;
  /** The steps not run, counted by reason. */
  readonly notRunReasons: { readonly [reason: string]: number };
  /** Why the whole trace was not run. */
  readonly notRunReason?: string;
  /** In step order; the trace stops at one that leaves the two states different. */
  readonly disagreements?: readonly Disagreement[];
  readonly lockstep?: StepFailure;
  /**
   * With `record`: what the kernel did, as an `hvspec-trace/1` trace (header and
   * lines): every step it ran with its answer, up to the first step that could
   * not be run or left the two sides different. Steps the host cannot observe
   * and that change nothing (queries, TLB evictions) are left out, as a log would.
   */
  readonly recorded?: readonly string[];
}

function bump(t: ConformTally, op: string, reason: string | null): void {
  const c = (t.ops[op] ??= { run: 0, notRun: {} });
  if (reason === null) {
    c.run++;
    t.run++;
  } else {
    c.notRun[reason] = (c.notRun[reason] ?? 0) + 1;
    t.notRun++;
  }
}

/** Probe the host: API version, capabilities, and whether a guest store and load run. */
export async function probeHost(driver: KernelDriver, release: string, guest: { slot: number; gfn: number }): Promise<HostInfo> {
  const caps = await driver.send({ cmd: 'caps' });
  if (caps['ok'] !== true) throw new Error(`the driver could not probe capabilities: ${JSON.stringify(caps)}`);
  const capObj = (caps['caps'] ?? {}) as { [k: string]: Json };
  const numbers: { [k: string]: number } = {};
  for (const [k, v] of Object.entries(capObj)) if (typeof v === 'number') numbers[k] = v;
  const api = typeof caps['api'] === 'number' ? caps['api'] : -1;
  let guestsRun = false;
  let guestReason: string | undefined;
  const vm = await driver.send({ cmd: 'create_vm', guest_slot: guest.slot, guest_gfn: guest.gfn });
  if (vm['ok'] !== true) guestReason = `creating a VM failed: ${String(vm['error'])}`;
  else {
    await driver.send({ cmd: 'set_region', slot: 0, gfn: 0, npages: 1, flags: 0 });
    const w = await driver.send({ cmd: 'access', gfn: 0, write: true, value: 0x42 });
    const r = await driver.send({ cmd: 'access', gfn: 0, write: false, value: 0 });
    guestsRun = w['exit'] === 'hlt' && r['exit'] === 'hlt' && r['value'] === 0x42;
    if (!guestsRun) guestReason = `a guest store and load did not come back as expected (${JSON.stringify(w)}, ${JSON.stringify(r)})`;
  }
  return { release, api, caps: numbers, guestsRun, ...(guestReason !== undefined ? { guestReason } : {}) };
}

export interface ConformTraceInput<C, O> {
  readonly name: string;
  readonly config: C;
  readonly ops: readonly O[];
  /** Case files: each step's partial expected result. */
  readonly expects?: readonly ({ [k: string]: Json } | undefined)[];
  /** Where this trace came from (saved into the disagreement's case file). */
  readonly source: string;
  /** A command that runs this trace alone (random traces). */
  readonly repro?: string;
  readonly found?: { [k: string]: Json };
  /** Keep the kernel's run as a trace (`TraceReport.recorded`). */
  readonly record?: boolean;
}

/** Run one trace against model, impl and kernel; tallies go into `tally`. */
export async function conformTrace<C, O extends OpShape, R extends ResultShape, V, S>(
  domain: Domain<C, O, R, V, S>,
  adapter: KernelAdapter<C, O, R, V>,
  driver: KernelDriver,
  host: HostInfo,
  input: ConformTraceInput<C, O>,
  tally: ConformTally,
  saveDir: string | null,
): Promise<TraceReport> {
  tally.traces++;
  const { config, ops } = input;
  const skipAll = (reason: string): TraceReport => {
    for (const op of ops) bump(tally, op.op, reason);
    tally.tracesNotRun[reason] = (tally.tracesNotRun[reason] ?? 0) + 1;
    return { name: input.name, run: 0, notRun: ops.length, notRunReasons: ops.length > 0 ? { [reason]: ops.length } : {}, notRunReason: reason };
  };
  const whyNot = adapter.configNotRunnable(config, host);
  if (whyNot !== null) return skipAll(whyNot);

  // 1. Model and impl in lockstep, as replay runs a case.
  const lock = runTrace(domain, config, ops, { ...(input.expects ? { expects: input.expects } : {}), fullCheckEvery: 1 });
  let lockstep: StepFailure | undefined;
  if (lock.failure !== null) {
    lockstep = lock.failure;
    tally.lockstepFailures++;
  }

  // 2. The kernel beside a fresh model.
  const session = await adapter.open(config, driver, host, ops);
  if ('notRun' in session) return { ...skipAll(session.notRun), ...(lockstep ? { lockstep } : {}) };
  const model = domain.createModel(config);
  const agree = domain.resultsAgree ?? ((a: R, b: R) => deepEqual(a, b));
  const kernelResults: (Json | undefined)[] = [];
  let run = 0;
  let notRun = 0;
  const reasons: { [reason: string]: number } = {};
  const skip = (op: O, reason: string): void => {
    bump(tally, op.op, reason);
    reasons[reason] = (reasons[reason] ?? 0) + 1;
    notRun++;
  };
  const disagreements: Disagreement[] = [];
  const recorded: string[] | undefined = input.record
    ? [traceHeaderLine(domain.id, domain.encodeConfig(adapter.hostConfig ? adapter.hostConfig(config, host) : config), { name: input.name, source: `recorded by hvspec conform on ${formatHost(host).replace(/^host: /, '')}` })]
    : undefined;
  let recording = recorded !== undefined;
  let last = -1;
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    const rm = model.apply(op);
    const k = await session.apply(op);
    last = i;
    if (!k.run) {
      skip(op, k.reason);
      kernelResults.push(undefined);
      if (k.diverges) {
        recording = false;
        for (const rest of ops.slice(i + 1)) skip(rest, 'an earlier state-changing step of the trace could not be run');
        break;
      }
      continue;
    }
    bump(tally, op.op, null);
    run++;
    const kr = k.result;
    kernelResults.push(kr as unknown as Json);
    if (recording) recorded!.push(traceStepLine(op, kr as unknown as Json));
    const found = (kind: DisagreementKind, message: string): Disagreement => ({
      kind,
      step: i,
      op,
      kernel: kr as unknown as Json,
      model: rm as unknown as Json,
      message,
    });
    let d: Disagreement | null = null;
    // Both sides refusing (different errnos) changes no state on either: the trace goes on.
    let stop = false;
    if (!agree(rm, kr)) {
      d = found('result', `the kernel answered ${JSON.stringify(kr)}, the model ${JSON.stringify(rm)}`);
      stop = rm.ok || kr.ok;
    } else {
      const ex = input.expects?.[i];
      const miss = ex ? partialMatch(ex, kr) : null;
      if (miss !== null) d = found('expect', `the kernel's answer does not meet the case's expect: ${miss}`);
      const s = await session.observe(model.view());
      if (s !== null) {
        d ??= found('state', s);
        stop = true;
      }
    }
    if (d) {
      disagreements.push(d);
      tally.disagreements++;
    }
    if (stop) {
      recording = false;
      for (const rest of ops.slice(i + 1)) skip(rest, 'the trace stopped at a disagreement (kernel and model states may differ)');
      break;
    }
  }
  if (disagreements.length > 0 && saveDir !== null) {
    const file = saveDisagreement(domain, input, last, kernelResults, disagreements, saveDir);
    for (const d of disagreements) d.file = file;
  }
  return {
    name: input.name,
    ...(input.repro !== undefined ? { repro: input.repro } : {}),
    run,
    notRun,
    notRunReasons: reasons,
    disagreements,
    ...(lockstep ? { lockstep } : {}),
    ...(recorded ? { recorded } : {}),
  };
}

/**
 * Write the recorded traces of `reports`: to `file` when there is one, else to
 * `<file without .ndjson>-<k>.ndjson` for k = 1, 2, ... Returns the paths written.
 */
export function writeRecordedTraces(reports: readonly TraceReport[], file: string): string[] {
  const traces = reports.filter((r) => r.recorded !== undefined && r.recorded.length > 1);
  const base = file.replace(/\.ndjson$/i, '');
  const written: string[] = [];
  traces.forEach((r, k) => {
    const target = traces.length === 1 ? file : `${base}-${k + 1}.ndjson`;
    fs.mkdirSync(path.dirname(path.resolve(target)), { recursive: true });
    fs.writeFileSync(`${target}.tmp`, r.recorded!.join('\n') + '\n');
    fs.renameSync(`${target}.tmp`, target);
    written.push(target);
  });
  return written;
}

/** Save the trace up to its last step run with the kernel's answers as `expect`s. */
function saveDisagreement<C, O extends OpShape, R extends ResultShape, V, S>(
  domain: Domain<C, O, R, V, S>,
  input: ConformTraceInput<C, O>,
  step: number,
  kernel: readonly (Json | undefined)[],
  ds: readonly Disagreement[],
  dir: string,
): string {
  const ops = input.ops.slice(0, step + 1);
  const d = ds[0]!;
  const where = ds.map((x) => `step ${x.step + 1} (${x.op.op}: kernel ${JSON.stringify(x.kernel)}, model ${JSON.stringify(x.model)})`).join('; ');
  const body = caseObject({
    name: `conform: the kernel and the model disagree at step ${d.step + 1} (${d.op.op}, ${d.kind}) of ${input.name}`,
    domain: domain.id,
    source: `hvspec conform: ${input.source}; the expects are the kernel's answers; disagreements at ${where}`,
    config: domain.encodeConfig(input.config),
    ops,
    expects: kernel.slice(0, step + 1),
    ...(input.found ? { found: { ...input.found, failure: { kind: `kernel-${d.kind}`, step: d.step, message: d.message } } } : {}),
  });
  const hash = crypto.createHash('sha256').update(JSON.stringify([body['config'], ops])).digest('hex').slice(0, 12);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${domain.id}-${hash}.json`);
  fs.writeFileSync(file, JSON.stringify(body, null, 2) + '\n');
  return path.relative(process.cwd(), file) || file;
}

export interface RandomOptions {
  readonly runs: number;
  readonly seed: number;
  readonly maxOps: number;
  /** Called after each run (progress). */
  readonly onRun?: (k: number, tally: ConformTally) => void;
  /** Checked before each run: stop early (Ctrl-C). */
  readonly stop?: () => boolean;
  readonly saveDir: string | null;
  /** Keep each run's kernel trace (`TraceReport.recorded`). */
  readonly record?: boolean;
}

/**
 * Random traces: the domain's generators, restricted to the host. Configs
 * the host can never run are filtered out of the config arbitrary (after
 * `hostConfig` adapted them), and ops it can never run are left out of each
 * generated trace. Run k uses seed runSeed(seed, k), so `--seed <that>
 * --runs 1` repeats run k alone.
 */
export async function conformRandom<C, O extends OpShape, R extends ResultShape, V, S>(
  domain: Domain<C, O, R, V, S>,
  adapter: KernelAdapter<C, O, R, V>,
  driver: KernelDriver,
  host: HostInfo,
  options: RandomOptions,
  tally: ConformTally,
): Promise<{ reports: TraceReport[]; runsDone: number }> {
  const configArb = domain.arbitraries
    .config()
    .map((c) => (adapter.hostConfig ? adapter.hostConfig(c, host) : c))
    .filter((c) => adapter.configNotRunnable(c, host) === null);
  const arb = configArb.chain((config) => domain.arbitraries.ops(config, options.maxOps).map((ops) => ({ config, ops })));
  const reports: TraceReport[] = [];
  let k = 0;
  for (; k < options.runs; k++) {
    if (options.stop?.()) break;
    const seed = runSeed(options.seed, k);
    const [sample] = fc.sample(arb, { seed, numRuns: 1 });
    const config = sample!.config;
    // Ops the host can never run are left out of the trace, and counted as not run.
    const ops: O[] = [];
    for (const op of sample!.ops) {
      const why = adapter.opNotRunnable(op, config, host);
      if (why === null) ops.push(op);
      else bump(tally, op.op, `left out of random traces: ${why}`);
    }
    const repro = `hvspec conform --domain ${domain.id} --runs 1 --seed ${seed} --max-ops ${options.maxOps}`;
    const r = await conformTrace(
      domain,
      adapter,
      driver,
      host,
      { name: `run ${k} (seed ${seed})`, config, ops, source: repro, repro, found: { seed, run: k }, ...(options.record ? { record: true } : {}) },
      tally,
      options.saveDir,
    );
    reports.push(r);
    options.onRun?.(k, tally);
  }
  return { reports, runsDone: k };
}

/** The last line of every conform run. */
export function conformSummary(t: ConformTally): string {
  return `conform: ${t.run} steps run against the kernel, ${t.notRun} not run on this host, ${t.disagreements} disagreements`;
}

/** One line about the host. */
export function formatHost(h: HostInfo): string {
  const caps = Object.entries(h.caps)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  const guests = h.guestsRun ? 'guests run (32-bit flat protected mode)' : `guests do not run (${h.guestReason ?? 'unknown'})`;
  return `host: Linux ${h.release}, KVM API ${h.api}, ${caps}; ${guests}`;
}

/** Per-op counts, run and not run (with reasons), one op per line. */
export function formatOpCounts(t: ConformTally): string[] {
  const lines: string[] = [];
  for (const op of Object.keys(t.ops).sort()) {
    const c = t.ops[op]!;
    const nr = Object.entries(c.notRun);
    const total = nr.reduce((n, [, k]) => n + k, 0);
    lines.push(`  ${op.padEnd(20)} ${String(c.run).padStart(6)} run  ${String(total).padStart(6)} not run`);
    for (const [reason, n] of nr.sort((a, b) => b[1] - a[1])) lines.push(`  ${''.padEnd(20)} ${''.padStart(6)}      ${String(n).padStart(6)}  ${reason}`);
  }
  for (const [reason, n] of Object.entries(t.tracesNotRun)) lines.push(`  (${n} trace${n === 1 ? '' : 's'} not run: ${reason})`);
  return lines;
}

/** The tally as JSON (for --json). */
export function conformJson(t: ConformTally): Json {
  const ops: { [k: string]: Json } = {};
  for (const [op, c] of Object.entries(t.ops)) ops[op] = { run: c.run, notRun: { ...c.notRun } };
  return {
    steps: t.run,
    notRun: t.notRun,
    disagreements: t.disagreements,
    lockstepFailures: t.lockstepFailures,
    traces: t.traces,
    tracesNotRun: { ...t.tracesNotRun },
    ops,
  };
}
