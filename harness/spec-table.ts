/**
 * Each rule stated once: an invariant's statement lives in code
 * (`spec/<d>/invariants.ts`), and the spec page's invariant table is generated
 * from it between two markers. `tools/spec-tables.ts` rewrites the tables;
 * `test/docs/spec-tables.test.ts` fails when a page's table is stale.
 */
import type { Domain, OpShape, ResultShape } from './domain';

export const TABLE_BEGIN = '<!-- invariants: generated from invariants.ts by `npm run spec-tables`; do not edit -->';
export const TABLE_END = '<!-- invariants: end -->';

function cell(text: string): string {
  return text.replace(/\s+/g, ' ').replace(/\|/g, '\\|').trim();
}

/** The Markdown table of a domain's invariants: id, title, statement, source. */
export function invariantTable<C, O extends OpShape, R extends ResultShape, V, S>(d: Domain<C, O, R, V, S>): string {
  const rows = d.invariants.map((inv) => `| \`${inv.id}\` | ${cell(inv.title)} | ${cell(inv.statement)} | ${cell(inv.source)} |`);
  return [TABLE_BEGIN, '', '| invariant | title | statement | source |', '|---|---|---|---|', ...rows, '', TABLE_END].join('\n');
}

/** The page with its generated block replaced; null when the page has no markers. */
export function withTable(page: string, table: string): string | null {
  const a = page.indexOf(TABLE_BEGIN);
  const b = page.indexOf(TABLE_END);
  if (a < 0 || b < a) return null;
  return page.slice(0, a) + table + page.slice(b + TABLE_END.length);
}
