/**
 * The registry: the one place that lists the domains. Everything else
 * (runner, replay, CLI, audit, explore) reaches a domain through here and
 * never names one.
 */
import type { SomeDomain } from '../harness/domain';
import { prefault } from './prefault';
import { sevCache } from './sev-cache';
import { shadowPt } from './shadow-pt';
import { stage2Dirty } from './stage2-dirty';

export const DOMAINS: readonly SomeDomain[] = [
  // one line per domain, e.g.: shadowPt,
  prefault,
  sevCache,
  shadowPt,
  stage2Dirty,
];

/** This module's path: worker processes load the domain list from it (`harness/worker.ts`). */
export const REGISTRY_MODULE: string = __filename;

export function findDomain(id: string): SomeDomain | undefined {
  return DOMAINS.find((d) => d.id === id);
}

export function domainIds(): string[] {
  return DOMAINS.map((d) => d.id);
}
