/**
 * `hvspec validate` on one file: stream the trace, feed the validator, and on
 * a valid trace write the witness (a case file `hvspec replay` passes) by a
 * second pass over the trace. Streaming keeps memory proportional to the
 * candidate set: neither the trace nor the witness is held whole.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { Domain, Json, OpShape, ResultShape, SomeDomain } from './domain';
import { decode } from './codec';
import { CASE_FORMAT } from './cases';
import { MAX_TRACE_LINE_BYTES, TraceHeader, decodeTraceStep, type TraceStep } from './trace-format';
import { NdjsonError, ndjsonLines } from './ndjson';
import { TraceValidator, type StepRejection, type ValidateOptions, type ValidateSummary, type Verdict, type WitnessFill } from './validate';

export interface ValidateReport {
  readonly file: string;
  readonly domain: string;
  readonly verdict: Verdict | 'interrupted';
  /** `lazy`: the fewest hidden ops per step; `exhaustive`: every sequence up to --max-hidden (run to confirm a lazy "invalid"). */
  readonly search: 'lazy' | 'exhaustive';
  readonly summary: ValidateSummary;
  readonly elapsedMs: number;
  readonly rejection?: StepRejection;
  readonly incomplete?: { step: number; line: number; candidates: number };
  /** The case file written for a valid trace. */
  readonly witness?: string;
}

/** A trace that does not decode: where (line, JSON path) and why. Exit 2. */
export class TraceInputError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly at: string,
    readonly why: string,
  ) {
    super(`${file}${line > 0 ? `:${line}` : ''}: ${at !== '$' && at !== '' ? `${at}: ` : ''}${why}`);
  }
}

export interface ValidateFileOptions extends ValidateOptions {
  /** Folder for the witness; none written when undefined. */
  readonly witnessDir?: string;
  /** Polled every few thousand lines: true stops the run (Ctrl-C). */
  readonly shouldStop?: () => boolean;
  readonly onProgress?: (lines: number, candidates: number) => void;
}

const YIELD_EVERY = 4096;

function cut(s: string): string {
  return s.length > 100 ? `${s.slice(0, 100)}…` : s;
}

function parseLine(file: string, line: number, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TraceInputError(file, line, '$', `not valid JSON (${cut((e as Error).message)})`);
  }
}

function* traceLines(file: string): Generator<{ line: number; text: string }> {
  try {
    yield* ndjsonLines(file, MAX_TRACE_LINE_BYTES);
  } catch (e) {
    if (e instanceof NdjsonError) throw new TraceInputError(file, e.line, '$', e.message);
    throw e;
  }
}

/** Validate one trace file. Throws TraceInputError for input that does not decode. */
export async function validateTraceFile(domains: readonly SomeDomain[], file: string, options: ValidateFileOptions): Promise<ValidateReport> {
  const lines = traceLines(file);
  const first = lines.next();
  if (first.done) throw new TraceInputError(file, 0, '$', 'empty trace: the first line must be the header');
  const h = decode(TraceHeader, parseLine(file, first.value.line, first.value.text));
  if (!h.ok) throw new TraceInputError(file, first.value.line, h.errors[0]!.path, h.errors[0]!.message);
  const some = domains.find((d) => d.id === h.value.domain);
  if (!some) {
    throw new TraceInputError(file, first.value.line, '$.domain', `unknown domain ${JSON.stringify(cut(h.value.domain))} (expected one of: ${domains.map((d) => d.id).join(', ')})`);
  }
  const report = await some.use((d) => run(d, file, h.value, lines, options));
  if (report.verdict !== 'invalid' || options.mode === 'exhaustive' || options.maxHidden === 0 || !some.use((d) => d.hidden?.hiddenOps !== undefined)) return report;
  // The lazy search prefers the fewest hidden ops at each step; before calling a trace
  // invalid, search every sequence of up to maxHidden hidden ops per gap.
  const again = traceLines(file);
  again.next();
  const full = await some.use((d) => run(d, file, h.value, again, { ...options, mode: 'exhaustive' }));
  return full;
}

async function run<C, O extends OpShape, R extends ResultShape, V, S>(
  d: Domain<C, O, R, V, S>,
  file: string,
  header: TraceHeader,
  lines: Generator<{ line: number; text: string }>,
  options: ValidateFileOptions,
): Promise<ValidateReport> {
  const started = Date.now();
  const cfg = decode(d.configCodec, header.config ?? {}, '$.config');
  if (!cfg.ok) throw new TraceInputError(file, 1, cfg.errors[0]!.path, cfg.errors[0]!.message);
  const resolved = d.resolveConfig(cfg.value);
  if (!resolved.ok) throw new TraceInputError(file, 1, resolved.errors[0]!.path, resolved.errors[0]!.message);
  const config = resolved.value;
  const validator = new TraceValidator(d, config, options);
  let count = 0;
  let interrupted = false;
  for (const { line, text } of lines) {
    const step = decodeTraceStep(d, config, parseLine(file, line, text), line);
    if (!step.ok) throw new TraceInputError(file, line, step.errors[0]!.path, step.errors[0]!.message);
    count++;
    if (validator.step(step.value)) break;
    if (count % YIELD_EVERY === 0) {
      await new Promise((r) => setImmediate(r));
      options.onProgress?.(count, 0);
      if (options.shouldStop?.()) {
        interrupted = true;
        break;
      }
    }
  }
  const out = validator.finish();
  const base = { file, domain: d.id, search: options.mode ?? 'lazy', summary: out.summary, elapsedMs: Date.now() - started };
  if (interrupted) return { ...base, verdict: 'interrupted' };
  if (out.verdict === 'invalid') return { ...base, verdict: 'invalid', rejection: out.rejection! };
  if (out.verdict === 'incomplete') return { ...base, verdict: 'incomplete', incomplete: out.incomplete! };
  const witness = options.witnessDir !== undefined && out.witness ? writeWitness(d, file, header, config, out.witness, options.witnessDir) : undefined;
  return { ...base, verdict: 'valid', ...(witness !== undefined ? { witness } : {}) };
}

/**
 * Second pass: the trace with its choices and hidden ops filled in, written
 * step by step as a case file (observed results become `expect`s).
 */
function writeWitness<C, O extends OpShape, R extends ResultShape, V, S>(
  d: Domain<C, O, R, V, S>,
  file: string,
  header: TraceHeader,
  config: C,
  fills: Map<number, WitnessFill<O>>,
  dir: string,
): string {
  fs.mkdirSync(dir, { recursive: true });
  const name = path.basename(file).replace(/\.(nd)?jsonl?$/i, '').replace(/[^A-Za-z0-9._-]/g, '_') || 'trace';
  const target = path.join(dir, `${name}.witness.json`);
  const tmp = `${target}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  try {
    const head: { [k: string]: Json } = {
      format: CASE_FORMAT,
      name: header.name ?? `witness of ${path.basename(file)}`,
      domain: d.id,
      source: `hvspec validate ${path.basename(file)}: the trace with every omitted choice and hidden step filled in${header.source ? `; trace source: ${header.source}` : ''}`,
      config: d.encodeConfig(config),
    };
    const headText = JSON.stringify(head, null, 2);
    fs.writeSync(fd, `${headText.slice(0, -2)},\n  "steps": [`);
    let first = true;
    const emit = (op: OpShape, expect?: Json) => {
      const s: { [k: string]: Json } = { op: op.op, args: op.args as { [k: string]: Json } };
      if (expect !== undefined) s['expect'] = expect;
      fs.writeSync(fd, `${first ? '\n' : ',\n'}    ${JSON.stringify(s)}`);
      first = false;
    };
    let index = 0;
    const lines = traceLines(file);
    lines.next(); // header
    for (const { line, text } of lines) {
      const step = decodeTraceStep(d, config, JSON.parse(text), line);
      if (!step.ok) break; // decoded once already; cannot happen
      const s: TraceStep<O> = step.value;
      const fill = fills.get(index++);
      if (fill) {
        for (const h of fill.hidden) emit(h);
        if (fill.op !== null) emit(fill.op, s.result);
      } else emit(s.completions[0]!, s.result);
    }
    fs.writeSync(fd, '\n  ]\n}\n');
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, target);
  return target;
}
