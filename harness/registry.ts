/**
 * Worker processes (campaign slices, parallel exploration) need the domain
 * list, and the harness names no domain: the parent passes the path of the
 * module that exports it as `DOMAINS` (`domains/index.ts` exports its own path
 * as REGISTRY_MODULE), and the worker loads it from there.
 */
import type { SomeDomain } from './domain';

export function domainsFrom(registry: string): readonly SomeDomain[] {
  const mod = require(registry) as { DOMAINS?: unknown };
  if (!Array.isArray(mod.DOMAINS)) throw new Error(`${registry} exports no DOMAINS list`);
  return mod.DOMAINS as readonly SomeDomain[];
}
