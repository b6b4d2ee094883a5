import * as os from 'os';
import * as path from 'path';
import type { Json } from '../harness/domain';
import { loadCaseFile, type SomeCase } from '../harness/cases';
import { formatFailure } from '../harness/format';
import * as C from '../harness/conform';
import { DriverClient, DriverUnavailable } from '../kernel/client';
import { ADAPTERS, findAdapter, GUEST_GFN, GUEST_SLOT, type SomeConformable } from '../kernel';
import { domainsOption, intOption, parse, Progress, seedOption, UsageError } from './args';
import { io } from './io';
import { DOMAINS } from '../domains';

export const CONFORM_HELP = `usage: hvspec conform [--domain D] [--runs N] [--seed S] [--max-ops K] [--record FILE] [--json] [FILE...]

Asks the running kernel (/dev/kvm) the same questions as the model: with
FILEs, every step of those case files; without, N random traces per domain
(the domain's generators, restricted to what this host can run). Each
kernel answer must agree with the model's, each case "expect" must match the
kernel's answer, and the dirty bitmaps and memory the kernel exposes must
agree with the model's View. A disagreement is printed and saved under
.hvspec/conform/ as a case file whose expects are the kernel's answers.
Ops this host cannot observe are counted as not run, never as passed.

  --domain D   only this domain (repeatable or a comma list); default: ${ADAPTERS.map((a) => a.id).join(', ')}
  --runs N     random traces per domain (default 100)
  --seed S     campaign seed (default: random, printed); run k uses seed S + k*0x9e3779b9
  --max-ops K  longest random trace (default: the domain's budget)
  --record F   write what the kernel did as hvspec-trace/1 traces (F, or F-1.ndjson,
               F-2.ndjson, ... for several), for hvspec validate on another host
  --json       one JSON object on stdout

The C driver (kernel/driver/hvspec-kvm.c) is built with the system compiler ($CC,
cc, gcc or clang) on first use and cached under .hvspec/kvm/. HVSPEC_KVM_DEVICE
names another device path to check instead of /dev/kvm.
exit: 0 agreement, 1 a disagreement (or a model/impl lockstep failure), 2 bad usage, no usable /dev/kvm
or compiler, or a driver failure`;

export async function conformCommand(argv: string[]): Promise<number> {
  const opts = { domain: { type: 'string', multiple: true }, runs: { type: 'string' }, seed: { type: 'string' }, 'max-ops': { type: 'string' }, record: { type: 'string' }, json: { type: 'boolean' } } as const;
  const { values, positionals } = parse(argv, opts, true);
  if (values.help) {
    io.out(CONFORM_HELP + '\n');
    return 0;
  }
  const json = values.json === true;
  const runs = intOption('runs', values.runs, 0) ?? 100;
  const seed = seedOption(values.seed) ?? (Math.random() * 0x100000000) | 0;
  const maxOpsOpt = intOption('max-ops', values['max-ops'], 1);
  const record = values.record !== undefined;
  const targets: SomeConformable[] = [];
  for (const d of values.domain === undefined ? ADAPTERS : domainsOption(values.domain)) {
    const a = findAdapter(d.id);
    if (!a) throw new UsageError(`domain ${d.id} has no kernel adapter (conform knows: ${ADAPTERS.map((x) => x.id).join(', ')})`);
    targets.push(a);
  }
  const cases: SomeCase[] = [];
  for (const file of positionals) {
    const r = loadCaseFile(file, DOMAINS);
    if (!r.ok) {
      io.err(`${file}: invalid case file\n${r.errors.map((e) => `  ${e.path}: ${e.message}\n`).join('')}`);
      return 2;
    }
    if (!findAdapter(r.value.domainId)) throw new UsageError(`${file}: domain ${r.value.domainId} has no kernel adapter`);
    cases.push(r.value);
  }

  let driver: DriverClient;
  try {
    driver = await DriverClient.start();
  } catch (e) {
    if (e instanceof DriverUnavailable) {
      io.err(`hvspec conform: cannot ask the kernel: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  const out = (s: string) => {
    if (!json) io.out(s + '\n');
  };
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
  };
  process.on('SIGINT', onSigint);
  const tally = C.emptyConformTally();
  const reports: C.TraceReport[] = [];
  const saveDir = path.join(process.cwd(), '.hvspec', 'conform');
  const progress = new Progress(!json && process.stderr.isTTY === true);
  let hostInfo: C.HostInfo | undefined;
  // Progress: a live line on a terminal, else a line on stderr every 10 s of a long run.
  let lastTick = Date.now();
  const tick = (text: string) => {
    progress.update(text);
    if (json || process.stderr.isTTY === true || Date.now() - lastTick < 10000) return;
    lastTick = Date.now();
    io.err(`${text}\n`);
  };
  try {
    const host = await C.probeHost(driver, os.release(), { slot: GUEST_SLOT, gfn: GUEST_GFN });
    hostInfo = host;
    out(C.formatHost(host));
    for (const c of cases) {
      if (interrupted) break;
      const r = await findAdapter(c.domainId)!.withCase(c, (d, a, lc) =>
        C.conformTrace(d, a, driver, host, { name: c.file, config: lc.config, ops: lc.ops, expects: lc.expects, source: `case file ${c.file}`, record }, tally, saveDir),
      );
      reports.push(r);
      // A case with steps the host could not run is "partial", never "agree".
      const verdict = r.disagreements?.length ? 'DISAGREE' : r.lockstep ? 'FAIL' : r.run === 0 ? 'not run' : r.notRun > 0 ? 'partial' : 'agree';
      const why = Object.entries(r.notRunReasons).map(([reason, n]) => `${n} not run on this host: ${reason}`);
      out(`${verdict.padEnd(8)} ${c.file}  (${[`${r.run} steps run`, ...why].join('; ')})`);
    }
    if (cases.length === 0) {
      for (const t of targets) {
        if (interrupted) break;
        const maxOps = t.use((d) => maxOpsOpt ?? d.budget.maxOps);
        out(`${t.id}: ${runs} random traces, seed ${seed}, max ops ${maxOps} (repro: hvspec conform --domain ${t.id} --runs ${runs} --seed ${seed} --max-ops ${maxOps})`);
        const r = await t.use((d, a) =>
          C.conformRandom(d, a, driver, host, { runs, seed, maxOps, saveDir, record, stop: () => interrupted, onRun: (k, tl) => tick(`${t.id}: run ${k + 1}/${runs}, ${tl.run} steps run, ${tl.disagreements} disagreements`) }, tally),
        );
        progress.done();
        reports.push(...r.reports);
        if (interrupted) out(`interrupted after ${r.runsDone} of ${runs} runs of ${t.id} (seed ${seed})`);
      }
    }
  } catch (e) {
    // The driver died or answered nonsense: a broken host or driver, not a disagreement.
    io.err(`hvspec conform: the KVM driver failed: ${(e as Error).message} (seed ${seed})\n`);
    return 2;
  } finally {
    process.off('SIGINT', onSigint);
    await driver.close();
  }
  for (const r of reports) {
    if (r.lockstep) out(`model/impl lockstep failure in ${r.name}: ${formatFailure(r.lockstep)}`);
    for (const d of r.disagreements ?? []) {
      out(`disagreement in ${r.name}, step ${d.step + 1}: ${d.op.op} ${JSON.stringify(d.op.args)}`);
      out(`  kernel: ${JSON.stringify(d.kernel)}\n  model:  ${JSON.stringify(d.model)}\n  ${d.message}`);
      if (r.repro) out(`  repro: ${r.repro}`);
      if (d.file) out(`  saved: ${d.file}  (replay against the kernel: hvspec conform ${d.file})`);
    }
  }
  if (values.record !== undefined) for (const f of C.writeRecordedTraces(reports, values.record)) out(`recorded: ${f}  (hvspec validate ${f})`);
  out('per op:');
  for (const l of C.formatOpCounts(tally)) out(l);
  if (interrupted) out(`interrupted: seed ${seed}`);
  out(C.conformSummary(tally));
  if (json) {
    const traces: Json[] = reports.map((r) => ({ name: r.name, run: r.run, notRun: r.notRun, notRunReasons: { ...r.notRunReasons }, disagreements: (r.disagreements ?? []) as unknown as Json, lockstep: (r.lockstep ?? null) as unknown as Json }));
    io.out(JSON.stringify({ host: (hostInfo ?? null) as unknown as Json, hostLine: hostInfo ? C.formatHost(hostInfo) : null, seed, interrupted, ...(C.conformJson(tally) as { [k: string]: Json }), traces, summary: C.conformSummary(tally) }, null, 2) + '\n');
  }
  return tally.disagreements > 0 || tally.lockstepFailures > 0 ? 1 : 0;
}
