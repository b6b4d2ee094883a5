/**
 * Case files (`hvspec-case/1`): scenarios as JSON, decoded with io-ts before
 * anything runs. Every error names its JSON path and what was expected.
 *
 *   { "format": "hvspec-case/1", "name": ..., "domain": ..., "source": ...,
 *     "config": { partial config }, "steps": [ { "op", "args", "expect"? } ] }
 *
 * Optional fields: `$schema` (editor support), `description`, and `found`
 * (written by the harness on saved counterexamples: seed, path, failure).
 */
import * as t from 'io-ts';
import type { Domain, InputError, Json, OpShape, Resolved, ResultShape, SomeDomain } from './domain';
import { decode, opCodec, strict } from './codec';
import { checkExpect } from './expect';
import { clip, loadJsonFile } from './input';
import { runTrace, type StepFailure, type StepRecord, type Tallies } from './lockstep';
import { implFactory } from './check';

export const CASE_FORMAT = 'hvspec-case/1';
/** Most steps a case file may hold (a 100,000-step trace is the longest the tree uses; the file size limit is 32 MiB). */
export const MAX_CASE_STEPS = 1_000_000;

const JsonObject = new t.Type<{ [k: string]: Json }, unknown, unknown>(
  'object',
  (u): u is { [k: string]: Json } => typeof u === 'object' && u !== null && !Array.isArray(u),
  (u, c) => (typeof u === 'object' && u !== null && !Array.isArray(u) ? t.success(u as { [k: string]: Json }) : t.failure(u, c)),
  (a) => a,
);

const FormatLiteral = new t.Type<typeof CASE_FORMAT, unknown, unknown>(
  JSON.stringify(CASE_FORMAT),
  (u): u is typeof CASE_FORMAT => u === CASE_FORMAT,
  (u, c) => (u === CASE_FORMAT ? t.success(CASE_FORMAT) : t.failure(u, c, `expected "format": "${CASE_FORMAT}", got ${JSON.stringify(u)}`)),
  (a) => a,
);

const Found = strict(
  { seed: t.number, failure: JsonObject },
  { path: t.string, run: t.number, mutant: t.string, foundAt: t.string, originalLength: t.number },
  'found',
);

/** The envelope: everything but the domain-specific parts. */
export const CaseEnvelope = strict(
  {
    format: FormatLiteral,
    name: t.string,
    domain: t.string,
    steps: t.array(JsonObject, 'array of steps'),
  },
  { $schema: t.string, source: t.string, description: t.string, config: JsonObject, found: Found },
  'hvspec case file',
);
export type CaseEnvelope = t.TypeOf<typeof CaseEnvelope>;

export interface LoadedCase<C, O> {
  readonly file: string;
  readonly name: string;
  readonly domainId: string;
  readonly source?: string;
  readonly config: C;
  readonly ops: O[];
  readonly expects: ({ [k: string]: Json } | undefined)[];
  readonly envelope: CaseEnvelope;
}

/** A loaded case with its domain, types hidden. */
export interface SomeCase {
  readonly file: string;
  readonly name: string;
  readonly domainId: string;
  use<T>(k: <C, O extends OpShape, R extends ResultShape, V, S>(d: Domain<C, O, R, V, S>, c: LoadedCase<C, O>) => T): T;
}

export class CaseError extends Error {
  constructor(
    readonly file: string,
    readonly errors: InputError[],
  ) {
    super(`${file}: invalid case file\n${errors.map((e) => `  ${e.path}: ${e.message}`).join('\n')}`);
  }
}

/** Decode a parsed case against its domain. */
export function decodeCase(input: unknown, file: string, domains: readonly SomeDomain[]): Resolved<SomeCase> {
  const env = decode(CaseEnvelope, input);
  if (!env.ok) {
    // Still report an unknown domain or bad steps if the envelope is otherwise readable.
    return env;
  }
  const e = env.value;
  if (e.steps.length > MAX_CASE_STEPS) {
    return { ok: false, errors: [{ path: '$.steps', message: `${e.steps.length} steps: at most ${MAX_CASE_STEPS} are accepted` }] };
  }
  const some = domains.find((d) => d.id === e.domain);
  if (!some) {
    return {
      ok: false,
      errors: [{ path: '$.domain', message: `unknown domain ${clip(e.domain)} (expected one of: ${domains.map((d) => d.id).join(', ')})` }],
    };
  }
  return some.use(<C, O extends OpShape, R extends ResultShape, V, S>(d: Domain<C, O, R, V, S>): Resolved<SomeCase> => {
    const errors: InputError[] = [];
    const cfg = decode(d.configCodec, e.config ?? {}, '$.config');
    let config: C | undefined;
    if (!cfg.ok) errors.push(...cfg.errors);
    else {
      const r = d.resolveConfig(cfg.value);
      if (!r.ok) errors.push(...r.errors);
      else config = r.value;
    }
    const stepCodec = opCodec(d.opArgs, ['expect']);
    const ops: O[] = [];
    const expects: ({ [k: string]: Json } | undefined)[] = [];
    e.steps.forEach((raw, i) => {
      const at = `$.steps[${i}]`;
      const s = decode(stepCodec, raw, at);
      if (!s.ok) {
        errors.push(...s.errors);
        return;
      }
      const op = s.value as unknown as O;
      const ex = Object.prototype.hasOwnProperty.call(raw, 'expect') ? raw['expect'] : undefined;
      if (ex !== undefined && (typeof ex !== 'object' || ex === null || Array.isArray(ex))) {
        errors.push({ path: `${at}.expect`, message: `expected a partial result object, got ${clip(ex)}` });
      } else if (ex !== undefined) {
        errors.push(...checkExpect(d.resultCodec, ex as { [k: string]: Json }, `${at}.expect`));
      }
      if (config !== undefined && d.validateOp) {
        for (const err of d.validateOp(op, config)) errors.push({ path: err.path.replace(/^\$/, at), message: err.message });
      }
      ops.push(op);
      expects.push(ex as { [k: string]: Json } | undefined);
    });
    if (errors.length > 0 || config === undefined) return { ok: false, errors };
    const loaded: LoadedCase<C, O> = {
      file,
      name: e.name,
      domainId: d.id,
      ...(e.source !== undefined ? { source: e.source } : {}),
      config,
      ops,
      expects,
      envelope: e,
    };
    const sc: SomeCase = {
      file,
      name: e.name,
      domainId: d.id,
      use: (k) => k(d, loaded),
    };
    return { ok: true, value: sc };
  });
}

/** Read, parse and decode one case file. Never throws: every problem is an InputError. */
export function loadCaseFile(file: string, domains: readonly SomeDomain[]): Resolved<SomeCase> {
  // Only regular files of bounded size; strict JSON (no duplicate keys, valid UTF-8).
  const parsed = loadJsonFile(file);
  if (!parsed.ok) return parsed;
  return decodeCase(parsed.value, file, domains);
}

export interface CaseOutcome<R> {
  readonly file: string;
  readonly name: string;
  readonly domainId: string;
  readonly failure: StepFailure | null;
  readonly results: StepRecord<R>[];
  readonly steps: number;
}

/** Cases up to this many steps are fully checked after every step when replayed. */
export const REPLAY_FULL_CHECK_STEPS = 2000;

/** Replay a loaded case in lockstep (against a mutant when `mutant` is given). */
export function replayCase(c: SomeCase, options: { mutant?: string; tallies?: Tallies } = {}): CaseOutcome<unknown> {
  return c.use((d, loaded) => {
    const out = runTrace(
      d,
      loaded.config,
      loaded.ops,
      // A full check (fresh Views, every invariant on them) after every step of a short case; a long
      // one gets runTrace's adaptive period, whose cost per step does not grow with the View: with a
      // full check per step a 100,000-step case costs steps x View size. Results and expects are
      // still checked at every step, and the last step always gets a full check.
      { expects: loaded.expects, fullCheckEvery: loaded.ops.length <= REPLAY_FULL_CHECK_STEPS ? 1 : undefined, ...(options.tallies ? { tallies: options.tallies } : {}) },
      implFactory(d, options.mutant),
    );
    return { file: c.file, name: c.name, domainId: c.domainId, failure: out.failure, results: out.results, steps: loaded.ops.length };
  });
}

/** A case file object for a trace (used when saving counterexamples and promoting them). */
export function caseObject(args: {
  name: string;
  domain: string;
  source: string;
  config: Json;
  ops: readonly OpShape[];
  expects?: readonly (Json | undefined)[];
  found?: { [k: string]: Json };
}): { [k: string]: Json } {
  const steps = args.ops.map((op, i) => {
    const s: { [k: string]: Json } = { op: op.op, args: op.args as { [k: string]: Json } };
    const ex = args.expects?.[i];
    if (ex !== undefined) s['expect'] = ex;
    return s;
  });
  const o: { [k: string]: Json } = {
    format: CASE_FORMAT,
    name: args.name,
    domain: args.domain,
    source: args.source,
    config: args.config,
    steps,
  };
  if (args.found) o['found'] = args.found;
  return o;
}

