/**
 * `hvspec validate` throughput: a 1,000,000-line trace with nothing hidden,
 * and traces whose choices and hidden steps must be searched (lines/s and
 * peak candidates). Traces are written to a temporary folder by the model
 * itself, so every line is valid.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Json, OpShape, ResultShape, Domain } from '../harness/domain';
import { DOMAINS } from '../domains';
import { traceHeaderLine, traceStepLine } from '../harness/trace-format';
import { validateTraceFile } from '../harness/validate-file';
import { fmt } from './harness';

/** Write the model's answers to `ops(i)` for i < n as a trace; `omit` drops arguments a log would not show. */
function writeTrace<C, O extends OpShape, R extends ResultShape, V, S>(
  d: Domain<C, O, R, V, S>,
  configInput: Json,
  n: number,
  op: (i: number) => O,
  omit: (o: O) => OpShape = (o) => o,
): string {
  const r = d.resolveConfig(configInput);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  const model = d.createModel(r.value);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'hvspec-bench-validate-')), `${d.id}.ndjson`);
  const fd = fs.openSync(file, 'w');
  const chunk: string[] = [traceHeaderLine(d.id, configInput)];
  for (let i = 0; i < n; i++) {
    const o = op(i);
    chunk.push(traceStepLine(omit(o), model.apply(o) as unknown as Json));
    if (chunk.length >= 10_000) fs.writeSync(fd, chunk.splice(0).join('\n') + '\n');
  }
  fs.writeSync(fd, chunk.join('\n') + '\n');
  fs.closeSync(fd);
  return file;
}

async function timed(file: string, maxHidden: number): Promise<{ linesPerSecond: number; lines: number; peakCandidates: number; verdict: string; ms: number }> {
  const t0 = process.hrtime.bigint();
  const r = await validateTraceFile(DOMAINS, file, { maxHidden, maxStates: 100_000 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
  return { linesPerSecond: Math.round((r.summary.steps * 1000) / ms), lines: r.summary.steps, peakCandidates: r.summary.peakCandidates, verdict: r.verdict, ms: Math.round(ms) };
}

const SEV_CONFIG: Json = { cpus: 2, pages: 4, linesPerPage: 2, asids: 2 };

/** Step i of a SEV guest writing and reading the lines of its two registered pages from two CPUs. */
function sevGuestStep(i: number): OpShape {
  if (i === 0) return { op: 'createVm', args: { vm: 1, type: 'sev' } };
  if (i === 1) return { op: 'registerRegion', args: { vm: 1, page: 0, npages: 2 } };
  return i % 2 === 0
    ? { op: 'guestWrite', args: { vm: 1, cpu: i % 2, page: (i >> 1) % 2, line: (i >> 2) % 2, value: i } }
    : { op: 'guestRead', args: { vm: 1, cpu: (i >> 1) % 2, page: (i >> 2) % 2, line: i % 2 } };
}

export default async function bench(log: (line: string) => void): Promise<Json> {
  const stage2 = DOMAINS.find((d) => d.id === 'stage2-dirty')!;
  const shadow = DOMAINS.find((d) => d.id === 'shadow-pt')!;
  const sev = DOMAINS.find((d) => d.id === 'sev-cache')!;
  const out: { [k: string]: Json } = {};

  // 1. Nothing hidden: a SEV guest writing and reading its lines, every answer observed (--max-hidden 0).
  const plain = sev.use((d) => writeTrace(d, SEV_CONFIG, 1_000_000, sevGuestStep as never));
  const a = await timed(plain, 0);
  log(`validate: 1,000,000-line sev-cache trace, nothing hidden: ${fmt(a.linesPerSecond)} lines/s (${(a.ms / 1000).toFixed(1)} s, ${a.verdict})`);
  out['plain'] = a;

  // The same on stage2-dirty, whose model has no live View: every line pays a full view() for the invariants.
  const plainS2 = stage2.use((d) =>
    writeTrace(d, { memslots: [{ id: 0, baseGfn: 0, npages: 64 }], blockPages: 8 }, 200_000, (i) => {
      const gfn = (i * 7) % 64;
      const o = i === 0 ? { op: 'enableDirtyLog', args: { slot: 0 } } : i % 16 === 0 ? { op: 'getDirtyLog', args: { slot: 0 } } : i % 3 === 0 ? { op: 'guestRead', args: { gfn } } : { op: 'guestWrite', args: { gfn, value: i } };
      return o as never;
    }),
  );
  const a2 = await timed(plainS2, 0);
  log(`validate: 200,000-line stage2-dirty trace, nothing hidden: ${fmt(a2.linesPerSecond)} lines/s (full View and every invariant per line)`);
  out['plainStage2'] = a2;

  // 2. Choices: shadow-pt with every newPagetable's victim left out. Each omitted victim
  // multiplies the candidates (which slot holds which top level) until the states repeat.
  const choices = shadow.use((d) =>
    writeTrace(
      d,
      { pgdirSlots: 4, guestPages: 256 },
      2_000,
      (i) => (i === 0 ? { op: 'lguestInit', args: { kernelAddress: 0xc0000000 } } : { op: 'newPagetable', args: { pgtable: 4096 * (1 + (i % 3)), victim: (i * 5) % 4 } }) as never,
      (o) => (o.op === 'newPagetable' ? { op: o.op, args: { pgtable: (o.args as { pgtable: number }).pgtable } } : o),
    ),
  );
  const b = await timed(choices, 2);
  log(`validate: 2,000-line shadow-pt trace, every victim omitted: ${fmt(b.linesPerSecond)} lines/s, peak ${b.peakCandidates} candidates (${b.verdict})`);
  out['choices'] = b;

  // 3. Hidden ops: sev-cache, cache-line evictions between every two steps (--max-hidden 2).
  const hidden = sev.use((d) => writeTrace(d, SEV_CONFIG, 2_000, sevGuestStep as never));
  const c = await timed(hidden, 2);
  log(`validate: 2,000-line sev-cache trace, evictions searched (--max-hidden 2): ${fmt(c.linesPerSecond)} lines/s, peak ${c.peakCandidates} candidates (${c.verdict})`);
  out['hidden'] = c;
  return out;
}
