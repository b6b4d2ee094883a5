/**
 * The kernel adapters, keyed by domain id: which domains `hvspec conform`
 * can ask the running kernel about. A domain without an adapter is refused
 * with a clear message.
 */
import type { Domain, OpShape, ResultShape, SomeDomain } from '../harness/domain';
import type { KernelAdapter } from '../harness/conform';
import type { LoadedCase, SomeCase } from '../harness/cases';
import { stage2DirtyDomain } from '../domains/stage2-dirty';
import { prefaultDomain } from '../domains/prefault';
import { stage2DirtyAdapter } from './stage2-dirty';
import { prefaultAdapter } from './prefault';

/** A domain with its adapter, types hidden (as SomeDomain hides a domain's). */
export interface SomeConformable {
  readonly id: string;
  use<T>(k: <C, O extends OpShape, R extends ResultShape, V, S>(d: Domain<C, O, R, V, S>, a: KernelAdapter<C, O, R, V>) => T): T;
  /** A loaded case of this domain, with the domain and adapter at the case's types. */
  withCase<T>(
    c: SomeCase,
    k: <C, O extends OpShape, R extends ResultShape, V, S>(d: Domain<C, O, R, V, S>, a: KernelAdapter<C, O, R, V>, lc: LoadedCase<C, O>) => T,
  ): T;
}

function pair<C, O extends OpShape, R extends ResultShape, V, S>(d: Domain<C, O, R, V, S>, a: KernelAdapter<C, O, R, V>): SomeConformable {
  return {
    id: d.id,
    use: (k) => k(d, a),
    withCase: (c, k) =>
      c.use((cd, lc) => {
        // The case was decoded by this very domain object (same id, one registry), so its
        // config and ops have this domain's types; TypeScript cannot see through the two
        // existentials, hence the one cast, guarded by the identity check.
        if ((cd as unknown) !== d) throw new Error(`case ${c.file} is of domain ${c.domainId}, not ${d.id}`);
        return k(d, a, lc as unknown as LoadedCase<C, O>);
      }),
  };
}

export const ADAPTERS: readonly SomeConformable[] = [pair(stage2DirtyDomain, stage2DirtyAdapter), pair(prefaultDomain, prefaultAdapter)];

export function findAdapter(domain: SomeDomain | string): SomeConformable | undefined {
  const id = typeof domain === 'string' ? domain : domain.id;
  return ADAPTERS.find((a) => a.id === id);
}

export { GUEST_GFN, GUEST_SLOT } from './guest';
