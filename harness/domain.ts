/**
 * The domain contract.
 *
 * Every domain (shadow-pt, sev-cache, stage2-dirty, prefault, and whatever a
 * contributor adds) provides the same things, so the harness — lockstep runner,
 * case replay, corpus, CLI, audit, exploration — is written once and never names
 * a domain:
 *
 *   - Config   the machine being modelled; decoded from a partial JSON object
 *              with defaults filled in (`resolveConfig`)
 *   - Op       a tagged union `{ op, args }`, one codec of arguments per op name
 *   - Result   JSON: `{ ok: true, ... }` or `{ ok: false, error, ... }`
 *   - View     the abstract state both sides produce (model: from its state;
 *              impl: through its abstraction function)
 *   - Invariant named predicates over a View
 *
 * plus the two systems (model and impl), the known-bug mutants, and the
 * fast-check arbitraries that generate configurations and traces.
 *
 * Layering: `spec/<d>` defines codecs and invariants, `model/<d>` and `impl/<d>`
 * the systems, `properties/<d>` arbitraries and mutants; `domains/<d>.ts`
 * assembles one `Domain` from those parts and `domains/index.ts` registers it.
 */
import type * as fc from 'fast-check';
import type * as t from 'io-ts';
import type { Hasher } from './fpset';
import type { Scenario } from './reach';

/** A JSON value: what results, views, configs and case files are made of. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Every op is `{ op: name, args: {...} }`. */
export interface OpShape {
  readonly op: string;
  readonly args: { readonly [key: string]: unknown };
}

/**
 * One handler per op name, taking that op's arguments. The mapped type makes
 * the table exhaustive the way `match(...).exhaustive()` is: a missing op, or
 * one that is not in the union, does not compile. For models on a hot path,
 * where ts-pattern's per-call matching showed in profiles.
 */
export type OpHandlers<O extends OpShape, R> = {
  readonly [K in O['op']]: (args: Extract<O, { readonly op: K }>['args']) => R;
};

/** Call the handler for `op`. */
export function dispatch<O extends OpShape, R>(handlers: OpHandlers<O, R>, op: O): R {
  const handler = handlers[op.op as O['op']] as (args: O['args']) => R;
  return handler(op.args);
}

/** Every result is `{ ok: true, ... }` or `{ ok: false, error: "ERRNO", ... }`. */
export type ResultShape = { readonly ok: boolean; readonly error?: string };

/**
 * A running system: the reference model, the optimized implementation, or a
 * mutant of the implementation. Pure state machine: no I/O, no hidden
 * randomness (every nondeterministic choice is an op argument).
 */
export interface System<O extends OpShape, R extends ResultShape, V, S = never> {
  /** Apply one op and answer its result. Bad input is answered, never thrown. */
  apply(op: O): R;
  /** The full abstraction of the current state, computed from scratch. */
  view(): V;
  /**
   * Optional incremental abstraction: the View the system keeps up to date,
   * and the scope of what changed since the previous call (`undefined`: treat
   * everything as changed). The harness checks invariants on the scope only
   * and, every so often and at the end of every trace, checks that the live
   * View equals a fresh `view()` — so a change the system forgot to report is
   * still caught.
   */
  liveView?(): { view: V; scope: S | undefined };
  /**
   * Optional cumulative cost counters (e.g. `cpusFlushed`, `linesInvalidated`,
   * `leavesInstalled`): the harness reports model vs impl side by side.
   */
  counters?(): Readonly<Record<string, number>>;
  /**
   * Optional canonical fingerprint of the abstract state, used by bounded
   * exploration to deduplicate states (two states with the same fingerprint
   * must behave identically for every future op sequence).
   */
  fingerprint?(): string;
  /**
   * Optional fast copy of the state (bounded exploration branches from every
   * state). Without them the harness copies the system generically
   * (`harness/clone.ts`). `restore` must make this system behave exactly as
   * the one `snapshot` was taken from, and must not keep `snap` (it is
   * restored from again).
   */
  /**
   * Optional: `fingerprint()` as a 64-bit hash, mixed into `h` without
   * building the text (two states with equal fingerprints must hash alike).
   */
  fingerprintHash?(h: Hasher): void;
  snapshot?(): object;
  restore?(snap: object): void;
}

/**
 * A named invariant. `check` answers `null` when it holds, else one sentence
 * that names the pages/entries involved. With a `scope` (from `liveView`) it
 * may check only what the scope says changed; without one it checks all.
 */
export interface Invariant<C, V, S = never> {
  /** Says what holds: `refcount-balance`, not `check3`. */
  readonly id: string;
  readonly title: string;
  /** The rule in one or two sentences. */
  readonly statement: string;
  /** Where the rule comes from: seed file and function/paragraph, or upstream doc. */
  readonly source: string;
  check(view: V, config: C, scope?: S): string | null;
  /**
   * Whether a check on this View is non-trivial: the invariant's premise holds
   * (e.g. at least one present entry for `refcount-balance`). Used to flag
   * invariants that a run never really tested (vacuity).
   */
  exercised(view: V, config: C, scope?: S): boolean;
}

/** A known-bug mutant: the implementation with one real defect put back. */
export interface Mutant<C, O extends OpShape, R extends ResultShape, V, S = never> {
  /** Short kebab-case id, e.g. `release-keeps-ref`. */
  readonly id: string;
  /** What the bug is, in one sentence. */
  readonly title: string;
  /** Where the bug comes from: seed, review thread, upstream fix. */
  readonly source: string;
  /** The invariants (ids) expected to catch it; the harness reports what did. */
  readonly expectedToViolate: readonly string[];
  create(config: C): System<O, R, V, S>;
}

/** One error found while decoding input (a case file, a config, CLI args). */
export interface InputError {
  /** JSON path, e.g. `$.steps[3].args.vaddr`. */
  readonly path: string;
  readonly message: string;
}

export type Resolved<T> = { ok: true; value: T } | { ok: false; errors: InputError[] };

/**
 * The nondeterminism a recorded log leaves out, for trace validation
 * (`hvspec validate`): arguments that stand for a choice the kernel or the
 * hardware makes, which a trace may omit, and environment steps a log never
 * shows, which may happen between any two observed ones.
 */
export interface HiddenChoices<C, O extends OpShape, V> {
  /**
   * Per op, per omissible argument: every value the choice can take given the
   * config and the arguments the trace did give (`undefined`: the argument
   * absent, for optional ones).
   */
  readonly choiceArgs?: {
    readonly [op: string]: { readonly [arg: string]: (config: C, args: { readonly [k: string]: unknown }) => readonly (Json | undefined)[] };
  };
  /** Environment steps possible in the state `view` (the model's View); each is tried between observed steps. */
  hiddenOps?(config: C, view: V): readonly O[];
}

/** Small configuration and finite op alphabet for bounded exploration. */
export interface Exploration<C, O> {
  /** A small configuration input (decoded and resolved like any other). */
  readonly config: Json;
  /** Every op considered at every state (a finite alphabet). */
  alphabet(config: C): readonly O[];
  /**
   * Per mutant, a small configuration and alphabet for the breadth-first
   * search of `hvspec mutants`, for a bug the default ones cannot show: one
   * that lives only in another configuration (PAE, a mask policy, an ASID
   * range) or needs addresses the default alphabet does not name. The search
   * still tries every op of the alphabet at every state, so the trace it
   * reports is a shortest one over that alphabet.
   */
  readonly forMutant?: { readonly [mutantId: string]: { readonly config: Json; alphabet(config: C): readonly O[] } };
}

export interface Domain<C, O extends OpShape, R extends ResultShape, V, S = never> {
  readonly id: string;
  readonly title: string;
  /** One paragraph: what this domain specifies. */
  readonly summary: string;
  /** Primary source(s). */
  readonly source: string;

  /** Codec of the configuration *input*: every field optional, no extra fields. */
  readonly configCodec: t.Mixed;
  /** Decode and fill defaults; semantic errors (overlaps, bad ranges) name their path. */
  resolveConfig(input: unknown): Resolved<C>;
  /** The input that reproduces `config` (for case files). */
  encodeConfig(config: C): Json;

  /** Codec of each op's `args`, by op name (exact: no extra fields). */
  readonly opArgs: { readonly [name: string]: t.Mixed };
  /** Checks beyond types that need the config (an address out of range ...). Optional. */
  validateOp?(op: O, config: C): InputError[];
  /** Codec of results (all ops). */
  readonly resultCodec: t.Mixed;
  /** Codec of the View. */
  readonly viewCodec: t.Mixed;

  readonly invariants: readonly Invariant<C, V, S>[];
  createModel(config: C): System<O, R, V, S>;
  createImpl(config: C): System<O, R, V, S>;
  readonly mutants: readonly Mutant<C, O, R, V, S>[];

  /**
   * Whether model and impl results agree. Default: deep equality. A domain
   * overrides it where the spec leaves a value unspecified (sev-cache reads).
   */
  resultsAgree?(model: R, impl: R): boolean;
  /**
   * Compare the observable parts of the two Views; `null` when they agree,
   * else a sentence naming the first difference. Default: deep equality of
   * the whole View.
   */
  viewsAgree?(model: V, impl: V, scope?: S): string | null;
  /** Union of the two sides' scopes (incremental domains); without it a scoped comparison compares everything. */
  mergeScopes?(a: S, b: S): S;

  /** Generators (properties/<domain>). */
  readonly arbitraries: {
    /** Small configurations for random search. */
    config(): fc.Arbitrary<C>;
    /** A trace of at most `maxOps` ops for `config` (valid most of the time, ~1 in 10 bad input). */
    ops(config: C, maxOps: number): fc.Arbitrary<O[]>;
  };
  /** Defaults for `check`. */
  readonly budget: { readonly runs: number; readonly maxOps: number };
  /** Budget under which `hvspec mutants` must kill every mutant. */
  readonly mutantBudget: { readonly runs: number; readonly maxOps: number };
  /** Bounded exploration (optional until a domain declares it). */
  readonly exploration?: Exploration<C, O>;
  /**
   * Optional lines explaining the cost counters of a campaign (e.g. CPUs
   * written back per release, impl vs model vs the minimum); printed by
   * `check` under the raw counters.
   */
  costReport?(model: Readonly<Record<string, number>>, impl: Readonly<Record<string, number>>): string[];
  /** What a recorded log may leave out (trace validation). Optional: without it a trace must spell out every op and argument. */
  readonly hidden?: HiddenChoices<C, O, V>;
  /** Short text describing an op for traces (default: JSON of args). */
  describeOp?(op: O): string;
  /**
   * Named scenarios (harness/reach.ts): the hazards the spec page tells, as
   * predicates over (View before, op, result, View after). `check` reports
   * how many runs reached each. Optional: a domain without them reports none.
   */
  readonly scenarios?: readonly Scenario<C, O, R, V>[];
  /**
   * Per op, the errors its spec page documents; `check` lists those no run
   * answered. Optional.
   */
  readonly errors?: { readonly [op: string]: readonly string[] };
}

/**
 * A domain with its type parameters hidden (an existential), so the registry
 * can hold domains of different types without `any`:
 * `some.use(d => runCheck(d, options))`.
 */
export interface SomeDomain {
  readonly id: string;
  use<T>(k: <C, O extends OpShape, R extends ResultShape, V, S>(d: Domain<C, O, R, V, S>) => T): T;
}

export function someDomain<C, O extends OpShape, R extends ResultShape, V, S>(
  d: Domain<C, O, R, V, S>,
): SomeDomain {
  return { id: d.id, use: (k) => k(d) };
}
