/**
 * The kernel adapters, keyed by domain id: which domains `hvspec conform`
 * can ask the running kernel about. A domain without an adapter is refused
 * with a clear message.
 */
import type { Domain, OpShape, ResultShape, SomeDomain } from '../harness/domain';
import type { KernelAdapter } from '../harness/conform';
import { stage2DirtyDomain } from '../domains/stage2-dirty';
import { prefaultDomain } from '../domains/prefault';
import { stage2DirtyAdapter } from './stage2-dirty';
import { prefaultAdapter } from './prefault';

/** A domain with its adapter, types hidden (as SomeDomain hides a domain's). */
export interface SomeConformable {
  readonly id: string;
  use<T>(k: <C, O extends OpShape, R extends ResultShape, V, S>(d: Domain<C, O, R, V, S>, a: KernelAdapter<C, O, R, V>) => T): T;
}

function pair<C, O extends OpShape, R extends ResultShape, V, S>(d: Domain<C, O, R, V, S>, a: KernelAdapter<C, O, R, V>): SomeConformable {
  return { id: d.id, use: (k) => k(d, a) };
}

export const ADAPTERS: readonly SomeConformable[] = [pair(stage2DirtyDomain, stage2DirtyAdapter), pair(prefaultDomain, prefaultAdapter)];

export function findAdapter(domain: SomeDomain | string): SomeConformable | undefined {
  const id = typeof domain === 'string' ? domain : domain.id;
  return ADAPTERS.find((a) => a.id === id);
}

export { GUEST_GFN, GUEST_SLOT } from './guest';
