/**
 * Recorded traces, `hvspec-trace/1`: NDJSON, one JSON object per line.
 *
 *   line 1   { "format": "hvspec-trace/1", "domain": "stage2-dirty", "config": {...} }
 *   then     { "op": "getDirtyLog", "args": { "slot": 0 }, "result": { "ok": true, "dirty": [3] } }
 *
 * `result` is matched like a case file's `expect` (partial); without it the
 * answer was not observed. `"maybe": true` marks an op that may or may not
 * have taken effect (the call timed out). Arguments a domain declares as
 * choices (`Domain.hidden.choiceArgs`) may be left out.
 *
 * This file decodes lines; it never reads a file (the CLI streams them in).
 */
import * as t from 'io-ts';
import type { Domain, InputError, Json, OpShape, Resolved, ResultShape } from './domain';
import { decode, jsonSchemaOf, strict, type JsonSchema } from './codec';

export const TRACE_FORMAT = 'hvspec-trace/1';
/** A line longer than this is refused (a log line, not a memory dump). */
export const MAX_TRACE_LINE_BYTES = 1 << 20;

const JsonObject = new t.Type<{ [k: string]: Json }, unknown, unknown>(
  'object',
  (u): u is { [k: string]: Json } => typeof u === 'object' && u !== null && !Array.isArray(u),
  (u, c) => (typeof u === 'object' && u !== null && !Array.isArray(u) ? t.success(u as { [k: string]: Json }) : t.failure(u, c)),
  (a) => a,
);

const FormatLiteral = new t.Type<typeof TRACE_FORMAT, unknown, unknown>(
  JSON.stringify(TRACE_FORMAT),
  (u): u is typeof TRACE_FORMAT => u === TRACE_FORMAT,
  (u, c) => (u === TRACE_FORMAT ? t.success(TRACE_FORMAT) : t.failure(u, c, `expected "format": "${TRACE_FORMAT}" on the first line`)),
  (a) => a,
);

export const TraceHeader = strict(
  { format: FormatLiteral, domain: t.string },
  { config: JsonObject, name: t.string, source: t.string, $schema: t.string },
  'hvspec trace header',
);
export type TraceHeader = t.TypeOf<typeof TraceHeader>;

const RawLine = strict({ op: t.string }, { args: JsonObject, result: JsonObject, maybe: t.boolean }, 'trace line { op, args?, result?, maybe? }');

/** One observed step, decoded: every way its omitted choices can be filled in. */
export interface TraceStep<O> {
  /** 1-based line number in the file. */
  readonly line: number;
  readonly op: string;
  /** The candidate ops: one when nothing was omitted. */
  readonly completions: readonly O[];
  /** Whether a choice argument was omitted (the witness then shows which value explained it). */
  readonly chosen: boolean;
  readonly result?: { [k: string]: Json };
  readonly maybe: boolean;
}

function hasOwn(o: object, k: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, k);
}

/**
 * Decode one parsed trace line against its domain. Omitted choice arguments
 * are filled in with every value the domain declares for them.
 */
export function decodeTraceStep<C, O extends OpShape, R extends ResultShape, V, S>(
  d: Domain<C, O, R, V, S>,
  config: C,
  parsed: unknown,
  line: number,
): Resolved<TraceStep<O>> {
  // Fast path: a well-formed line is checked with `is` (no allocation); only a bad one
  // pays for `decode`, which builds the error with its JSON path.
  let line0: t.TypeOf<typeof RawLine>;
  if (RawLine.is(parsed)) line0 = parsed;
  else {
    const raw = decode(RawLine, parsed);
    if (!raw.ok) return raw;
    line0 = raw.value;
  }
  const { op, args = {}, result, maybe = false } = line0;
  if (!hasOwn(d.opArgs, op)) {
    return { ok: false, errors: [{ path: '$.op', message: `unknown op ${JSON.stringify(op.slice(0, 100))} (expected one of: ${Object.keys(d.opArgs).join(', ')})` }] };
  }
  const codec = d.opArgs[op]!;
  const choices = d.hidden?.choiceArgs && hasOwn(d.hidden.choiceArgs, op) ? d.hidden.choiceArgs[op]! : undefined;
  const missing = choices ? Object.keys(choices).filter((a) => !hasOwn(args, a)) : [];
  let variants: { [k: string]: unknown }[] = [args];
  for (const name of missing) {
    const next: { [k: string]: unknown }[] = [];
    for (const v of variants) {
      for (const value of choices![name]!(config, v)) next.push(value === undefined ? v : { ...v, [name]: value });
    }
    variants = next;
  }
  const completions: O[] = [];
  let firstErrors: InputError[] | null = null;
  for (const v of variants) {
    const r: Resolved<unknown> = codec.is(v) ? { ok: true, value: v } : decode(codec, v, '$.args');
    if (r.ok) {
      const o = { op, args: r.value } as unknown as O;
      const bad = d.validateOp?.(o, config) ?? [];
      if (bad.length === 0) completions.push(o);
      else firstErrors ??= bad;
    } else firstErrors ??= r.errors;
  }
  if (completions.length === 0) {
    return { ok: false, errors: firstErrors ?? [{ path: '$.args', message: 'no value of the omitted choice arguments is valid here' }] };
  }
  return {
    ok: true,
    value: { line, op, completions, chosen: missing.length > 0, ...(result !== undefined ? { result } : {}), maybe },
  };
}

/** JSON Schema of one trace line (header or step) for a domain, from its codecs. */
export function traceSchema<C, O extends OpShape, R extends ResultShape, V, S>(d: Domain<C, O, R, V, S>): JsonSchema {
  const steps: Json[] = Object.keys(d.opArgs).map((name) => {
    const args = jsonSchemaOf(d.opArgs[name]!) as { [k: string]: Json };
    const omissible = d.hidden?.choiceArgs?.[name] ? Object.keys(d.hidden.choiceArgs[name]!) : [];
    if (omissible.length > 0 && Array.isArray(args['required'])) {
      args['required'] = (args['required'] as Json[]).filter((r) => !omissible.includes(r as string));
    }
    return {
      type: 'object',
      title: name,
      properties: {
        op: { const: name },
        args: omissible.length > 0 ? { ...args, description: `may omit the choice arguments ${omissible.join(', ')}` } : args,
        result: { type: 'object', description: 'the observed answer, matched partially; absent: not observed' },
        maybe: { type: 'boolean', description: 'the op may or may not have taken effect (it timed out)' },
      },
      required: ['op'],
      additionalProperties: false,
    };
  });
  const header: Json = {
    type: 'object',
    title: 'header (first line)',
    properties: {
      $schema: { type: 'string' },
      format: { const: TRACE_FORMAT },
      domain: { const: d.id },
      name: { type: 'string' },
      source: { type: 'string' },
      config: jsonSchemaOf(d.configCodec),
    },
    required: ['format', 'domain'],
    additionalProperties: false,
  };
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: `https://hvspec.invalid/schema/${d.id}.trace.schema.json`,
    title: `hvspec trace line (NDJSON): ${d.id}`,
    description: `Each line of an ${TRACE_FORMAT} file: the header first, then one observed op per line.`,
    oneOf: [header, ...steps],
  };
}

/** The header line of a trace. */
export function traceHeaderLine(domain: string, config: Json, extra: { name?: string; source?: string } = {}): string {
  return JSON.stringify({ format: TRACE_FORMAT, domain, ...extra, config });
}

/** One observed step as a trace line; `result` undefined when not observed. */
export function traceStepLine(op: OpShape, result?: Json, maybe = false): string {
  const o: { [k: string]: Json } = { op: op.op, args: op.args as { [k: string]: Json } };
  if (result !== undefined) o['result'] = result;
  if (maybe) o['maybe'] = true;
  return JSON.stringify(o);
}
