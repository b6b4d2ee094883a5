/**
 * The audit: every invariant of every domain, where it comes from, which
 * known-bug mutants it catches, which case files exercise it non-trivially,
 * and how often the last `check` exercised it.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { Json, SomeDomain } from './domain';
import { loadCaseFile, replayCase } from './cases';
import { emptyTallies } from './lockstep';
import { runMutant } from './mutants';

export interface AuditMutant {
  readonly id: string;
  readonly title: string;
  readonly source: string;
  readonly expected: readonly string[];
  readonly killed: boolean;
  readonly caughtBy: string | null;
}

export interface AuditInvariant {
  readonly id: string;
  readonly domain: string;
  readonly title: string;
  readonly statement: string;
  readonly source: string;
  /** Mutants whose counterexample was caught by this invariant. */
  readonly killedMutants: string[];
  /** Mutants that declare they violate this invariant. */
  readonly expectedMutants: string[];
  /** Case files in which this invariant was checked non-trivially at least once. */
  readonly cases: string[];
  /** From the last recorded `hvspec check`: checks and non-trivial checks. */
  readonly lastCoverage: { checks: number; nonTrivial: number } | null;
}

export interface AuditReport {
  readonly invariants: AuditInvariant[];
  readonly mutants: { [domain: string]: AuditMutant[] };
  readonly mutantSource: 'recorded' | 'run';
}

function listCaseFiles(dir: string): string[] {
  try {
    return fs
      .readdirSync(dir)
      .filter((n) => n.endsWith('.json'))
      .sort()
      .map((n) => path.join(dir, n));
  } catch {
    return [];
  }
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

type Recorded = { mutants?: { domain: string; mutant: string; killed: boolean; caughtBy: string | null }[] };
type LastCheck = { domains?: { [d: string]: { invariants?: { [id: string]: { checks: number; nonTrivial: number } } } } };

/** The package root (spec/cases lives there, wherever the command runs from). */
export const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');

export function buildAudit(
  domains: readonly SomeDomain[],
  options: { root?: string; casesRoot?: string; fresh?: boolean; seed?: number } = {},
): AuditReport {
  const root = options.root ?? process.cwd();
  const casesRoot = options.casesRoot ?? PACKAGE_ROOT;
  const recorded = readJson(path.join(root, '.hvspec', 'last-mutants.json')) as Recorded | undefined;
  const lastCheck = readJson(path.join(root, '.hvspec', 'last-check.json')) as LastCheck | undefined;
  const invariants: AuditInvariant[] = [];
  const mutants: { [d: string]: AuditMutant[] } = {};
  let usedRecorded = !options.fresh && recorded?.mutants !== undefined;

  for (const some of domains) {
    some.use((d) => {
      // Mutant kills: recorded by the last `hvspec mutants` if it covered every mutant, else run now.
      const rec = recorded?.mutants?.filter((r) => r.domain === d.id) ?? [];
      const complete = d.mutants.every((m) => rec.some((r) => r.mutant === m.id));
      const ms: AuditMutant[] = d.mutants.map((m) => {
        if (!options.fresh && complete) {
          const r = rec.find((x) => x.mutant === m.id)!;
          return { id: m.id, title: m.title, source: m.source, expected: m.expectedToViolate, killed: r.killed, caughtBy: r.caughtBy };
        }
        usedRecorded = false;
        const r = runMutant(d, m.id, { seed: options.seed ?? 1 });
        return { id: m.id, title: m.title, source: m.source, expected: m.expectedToViolate, killed: r.killed, caughtBy: r.caughtBy };
      });
      mutants[d.id] = ms;

      // Cases: replay each with tallies; an invariant is exercised by a case if some check of it was non-trivial.
      const exercisedBy: { [inv: string]: string[] } = {};
      for (const file of listCaseFiles(path.join(casesRoot, 'spec', 'cases', d.id))) {
        const loaded = loadCaseFile(file, domains);
        if (!loaded.ok) continue;
        const tallies = emptyTallies();
        replayCase(loaded.value, { tallies });
        for (const [inv, t] of Object.entries(tallies.invariants)) {
          if (t.nonTrivial > 0) (exercisedBy[inv] ??= []).push(path.relative(casesRoot, file));
        }
      }

      for (const inv of d.invariants) {
        const cov = lastCheck?.domains?.[d.id]?.invariants?.[inv.id];
        invariants.push({
          id: inv.id,
          domain: d.id,
          title: inv.title,
          statement: inv.statement,
          source: inv.source,
          killedMutants: ms.filter((m) => m.caughtBy === inv.id).map((m) => m.id),
          expectedMutants: ms.filter((m) => m.expected.includes(inv.id)).map((m) => m.id),
          cases: exercisedBy[inv.id] ?? [],
          lastCoverage: cov ? { checks: cov.checks, nonTrivial: cov.nonTrivial } : null,
        });
      }
    });
  }
  return { invariants, mutants, mutantSource: usedRecorded ? 'recorded' : 'run' };
}

function pct(c: { checks: number; nonTrivial: number } | null): string {
  if (!c) return 'not recorded';
  return `${c.nonTrivial}/${c.checks} non-trivial (${c.checks === 0 ? '0.0' : ((c.nonTrivial / c.checks) * 100).toFixed(1)}%)`;
}

export function auditText(a: AuditReport): string {
  const out: string[] = [];
  let domain = '';
  for (const inv of a.invariants) {
    if (inv.domain !== domain) {
      domain = inv.domain;
      out.push(`\n== ${domain} ==`);
    }
    out.push(`${inv.id} — ${inv.title}`);
    out.push(`  ${inv.statement}`);
    out.push(`  source:   ${inv.source}`);
    out.push(`  mutants:  ${inv.killedMutants.length ? inv.killedMutants.join(', ') : '(none caught by this invariant)'}${inv.expectedMutants.length ? `   [declared: ${inv.expectedMutants.join(', ')}]` : ''}`);
    out.push(`  cases:    ${inv.cases.length ? `${inv.cases.length}: ${inv.cases.map((c) => path.basename(c)).join(', ')}` : '(none)'}`);
    out.push(`  coverage: ${pct(inv.lastCoverage)}`);
  }
  out.push('');
  for (const [d, ms] of Object.entries(a.mutants)) {
    const killed = ms.filter((m) => m.killed).length;
    out.push(`${d}: ${killed}/${ms.length} mutants killed (${a.mutantSource === 'recorded' ? 'as recorded by the last hvspec mutants' : 'run now'})`);
  }
  return out.join('\n').replace(/^\n/, '');
}

function mdCell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function auditMarkdown(a: AuditReport): string {
  const out: string[] = [];
  out.push('| domain | invariant | statement | source | killing mutants | cases (non-trivial) | last coverage |');
  out.push('|---|---|---|---|---|---|---|');
  for (const inv of a.invariants) {
    out.push(
      `| ${inv.domain} | \`${inv.id}\` | ${mdCell(inv.statement)} | ${mdCell(inv.source)} | ${inv.killedMutants.map((m) => `\`${m}\``).join(', ') || '—'} | ${inv.cases.length} | ${mdCell(pct(inv.lastCoverage))} |`,
    );
  }
  out.push('');
  out.push('| domain | mutant | bug | source | killed | caught by |');
  out.push('|---|---|---|---|---|---|');
  for (const [d, ms] of Object.entries(a.mutants)) {
    for (const m of ms) {
      out.push(`| ${d} | \`${m.id}\` | ${mdCell(m.title)} | ${mdCell(m.source)} | ${m.killed ? 'yes' : '**no**'} | ${m.caughtBy ? `\`${m.caughtBy}\`` : '—'} |`);
    }
  }
  return out.join('\n');
}

export function auditJson(a: AuditReport): Json {
  return a as unknown as Json;
}
