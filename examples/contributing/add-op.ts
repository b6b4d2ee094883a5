/**
 * CONTRIBUTING.md, example 3: adding an operation, on the toy fixture domain
 * (test/fixtures/toy.ts, which stays untouched). The new op is
 * `takeMany { page, n }`: take `n` references on `page` at once. It touches
 * four places: the args codec table (and with it the Op type), the model's
 * `match`, the impl's `switch`, and the arbitrary that generates traces.
 */
import * as fc from 'fast-check';
import { match, P } from 'ts-pattern';
import { someDomain, type Domain, type System } from '../../harness/domain';
import { intRange, strict, type OpOf } from '../../harness/codec';
import { toyDomain, toyOpArgs, ToyImpl, type ToyConfig, type ToyOp, type ToyResult, type ToyView } from '../../test/fixtures/toy';

// #region codec
// 1. The args codec table. `strict` rejects unknown fields, `intRange` bounds
//    the numbers; the Op union follows from the table through OpOf.
export const opArgs = {
  ...toyOpArgs,
  takeMany: strict({ page: intRange(0, 63), n: intRange(1, 16, 'count 1..16') }),
};
export type Op = OpOf<typeof opArgs>;
// #endregion

// #region model
// 2. The model: one more `match` arm. Obviously right: n takes in a row.
class TakeManyModel implements System<Op, ToyResult, ToyView> {
  private readonly base: System<ToyOp, ToyResult, ToyView>;
  constructor(readonly config: ToyConfig) {
    this.base = toyDomain.createModel(config);
  }
  apply(op: Op): ToyResult {
    return match(op)
      .with({ op: 'takeMany' }, ({ args }) => {
        if (args.page >= this.config.pages) return { ok: false, error: 'EINVAL' } as const;
        for (let i = 0; i < args.n; i++) this.base.apply({ op: 'take', args: { page: args.page } });
        return { ok: true } as const;
      })
      .with({ op: P.union('take', 'release', 'count', 'reset') }, (o) => this.base.apply(o))
      .exhaustive();
  }
  view(): ToyView {
    return this.base.view();
  }
}
// #endregion

// #region impl
// 3. The implementation: one more `case`, at the cost of one add.
export class TakeManyImpl extends ToyImpl {
  override apply(op: Op): ToyResult {
    if (op.op !== 'takeMany') return super.apply(op);
    if (op.args.page >= this.config.pages) return { ok: false, error: 'EINVAL' };
    this.refs[op.args.page]! += op.args.n;
    return { ok: true };
  }
}
// #endregion

// #region arbitrary
// 4. The arbitrary: the new op joins the mix, with in-range arguments.
function opArb(config: ToyConfig): fc.Arbitrary<Op> {
  const page = fc.integer({ min: 0, max: config.pages - 1 });
  return fc.oneof(
    page.map((p) => ({ op: 'take' as const, args: { page: p } })),
    page.map((p) => ({ op: 'release' as const, args: { page: p } })),
    page.map((p) => ({ op: 'count' as const, args: { page: p } })),
    fc.constant({ op: 'reset' as const, args: {} }),
    fc.record({ page, n: fc.integer({ min: 1, max: 16 }) }).map((args) => ({ op: 'takeMany' as const, args })),
  );
}
// #endregion

/** The bug a reviewer would worry about: takeMany takes only one reference. */
class TakeManyTakesOne extends TakeManyImpl {
  override apply(op: Op): ToyResult {
    return op.op === 'takeMany' ? super.apply({ op: 'take', args: { page: op.args.page } }) : super.apply(op);
  }
}

// #region domain
// The domain, assembled: everything else is the toy's.
export const toyTakeManyDomain: Domain<ToyConfig, Op, ToyResult, ToyView> = {
  ...toyDomain,
  id: 'toy-take-many',
  title: 'toy refcounts with takeMany',
  opArgs,
  validateOp(op, config) {
    return 'page' in op.args && op.args.page >= config.pages
      ? [{ path: '$.args.page', message: `page ${op.args.page} is beyond the configured ${config.pages} pages` }]
      : [];
  },
  createModel: (c) => new TakeManyModel(c),
  createImpl: (c) => new TakeManyImpl(c),
  mutants: [
    {
      id: 'take-many-takes-one',
      title: 'takeMany takes one reference whatever n says',
      source: 'examples/contributing/add-op.ts',
      expectedToViolate: [],
      create: (c) => new TakeManyTakesOne(c),
    },
  ],
  arbitraries: {
    config: toyDomain.arbitraries.config,
    ops: (config, maxOps) => fc.array(opArb(config), { maxLength: maxOps }),
  },
  exploration: {
    config: { pages: 2 },
    alphabet: (c) => {
      const ops: Op[] = [{ op: 'reset', args: {} }];
      for (let p = 0; p < c.pages; p++) ops.push({ op: 'release', args: { page: p } }, { op: 'takeMany', args: { page: p, n: 2 } });
      return ops;
    },
  },
};
export const toyTakeMany = someDomain(toyTakeManyDomain);
// #endregion
