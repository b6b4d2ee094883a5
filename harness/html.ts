/**
 * The HTML report: one self-contained page (inline CSS and SVG, no scripts,
 * nothing fetched at view time) with, per domain, the invariant table, the
 * invariant x mutant kill matrix, op and error-code frequencies as charts,
 * and each counterexample's trace with what every step changed.
 */
import type { Json } from './domain';

export interface ReportInvariant {
  id: string;
  title: string;
  statement: string;
  source: string;
  checks: number;
  nonTrivial: number;
}

export interface ReportMutant {
  id: string;
  title: string;
  source: string;
  killed: boolean;
  caughtBy: string | null;
  /** Invariants (and mismatch kinds) its counterexample violates anywhere. */
  violates: string[];
  shrunkLength: number | null;
}

export interface ReportStep {
  n: number;
  op: string;
  model: string;
  impl: string;
  changes: string[];
  implChanges: string[] | null;
  violated: string[];
  failing: boolean;
}

export interface ReportTrace {
  title: string;
  origin: string;
  config: Json;
  failure: string;
  steps: ReportStep[];
}

export interface ReportDomain {
  id: string;
  title: string;
  summary: string;
  runs: number;
  steps: number;
  invariants: ReportInvariant[];
  mutants: ReportMutant[];
  ops: { [op: string]: { generated: number; ok: number; errors: { [code: string]: number } } };
  traces: ReportTrace[];
}

export interface ReportData {
  generatedAt: string;
  seed: number;
  domains: ReportDomain[];
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const PALETTE = ['#c0392b', '#d35400', '#8e44ad', '#2c3e50', '#16a085', '#7f8c8d', '#b7950b', '#1f618d'];

/** Horizontal stacked bars: ok in green, each error code in its own colour. */
function opChart(ops: ReportDomain['ops']): string {
  const rows = Object.entries(ops).sort((a, b) => b[1].generated - a[1].generated);
  if (rows.length === 0) return '<p>No ops were run.</p>';
  const codes = [...new Set(rows.flatMap(([, v]) => Object.keys(v.errors)))].sort();
  const colour = (c: string) => PALETTE[codes.indexOf(c) % PALETTE.length]!;
  const max = Math.max(...rows.map(([, v]) => v.generated), 1);
  const label = 150;
  const width = 520;
  const h = 20;
  const parts: string[] = [];
  rows.forEach(([op, v], i) => {
    const y = i * (h + 4);
    parts.push(`<text x="${label - 6}" y="${y + 14}" text-anchor="end" class="lbl">${esc(op)}</text>`);
    let x = label;
    const seg = (n: number, fill: string, title: string) => {
      const w = (n / max) * width;
      if (w > 0) parts.push(`<rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${h}" fill="${fill}"><title>${esc(title)}</title></rect>`);
      x += w;
    };
    seg(v.ok, '#27ae60', `${op}: ${v.ok} succeeded`);
    for (const c of codes) if (v.errors[c]) seg(v.errors[c]!, colour(c), `${op}: ${v.errors[c]} ${c}`);
    parts.push(`<text x="${(x + 4).toFixed(1)}" y="${y + 14}" class="num">${v.generated}</text>`);
  });
  const legend = [`<span class="key" style="background:#27ae60"></span>ok`, ...codes.map((c) => `<span class="key" style="background:${colour(c)}"></span>${esc(c)}`)].join(' &nbsp; ');
  const height = rows.length * (h + 4);
  return `<svg class="chart" role="img" aria-label="op frequencies" width="${label + width + 60}" height="${height}" viewBox="0 0 ${label + width + 60} ${height}">${parts.join('')}</svg><p class="legend">${legend}</p>`;
}

function errorChart(ops: ReportDomain['ops']): string {
  const totals: { [c: string]: number } = {};
  for (const v of Object.values(ops)) for (const [c, n] of Object.entries(v.errors)) totals[c] = (totals[c] ?? 0) + n;
  const rows = Object.entries(totals).sort((a, b) => b[1] - a[1]);
  if (rows.length === 0) return '<p>No op failed.</p>';
  const max = Math.max(...rows.map(([, n]) => n));
  const parts = rows.map(([c, n], i) => {
    const w = (n / max) * 400;
    return `<text x="114" y="${i * 24 + 14}" text-anchor="end" class="lbl">${esc(c)}</text><rect x="120" y="${i * 24}" width="${w.toFixed(1)}" height="20" fill="${PALETTE[i % PALETTE.length]}"><title>${esc(c)}: ${n}</title></rect><text x="${(124 + w).toFixed(1)}" y="${i * 24 + 14}" class="num">${n}</text>`;
  });
  return `<svg class="chart" role="img" aria-label="error codes" width="600" height="${rows.length * 24}" viewBox="0 0 600 ${rows.length * 24}">${parts.join('')}</svg>`;
}

function invariantTable(d: ReportDomain): string {
  const rows = d.invariants.map((inv) => {
    const frac = inv.checks === 0 ? 0 : inv.nonTrivial / inv.checks;
    const weak = frac < 0.01 ? ' <span class="weak">weakly exercised</span>' : '';
    const killers = d.mutants.filter((m) => m.caughtBy === inv.id).map((m) => `<code>${esc(m.id)}</code>`).join(', ') || '—';
    return `<tr><td><code>${esc(inv.id)}</code><br><small>${esc(inv.title)}</small></td><td>${esc(inv.statement)}</td><td><small>${esc(inv.source)}</small></td><td class="n">${inv.checks}</td><td class="n">${inv.nonTrivial} (${(frac * 100).toFixed(1)}%)${weak}</td><td>${killers}</td></tr>`;
  });
  return `<table class="inv"><thead><tr><th>invariant</th><th>statement</th><th>source</th><th>checks</th><th>non-trivial</th><th>first to catch</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function killMatrix(d: ReportDomain): string {
  if (d.mutants.length === 0) return '<p>No mutants.</p>';
  const rowsIds = [...d.invariants.map((i) => i.id), 'result-mismatch', 'view-mismatch'];
  const head = d.mutants.map((m) => `<th class="mut" title="${esc(m.title)}"><div>${esc(m.id)}</div></th>`).join('');
  const body = rowsIds.map((id) => {
    const cells = d.mutants
      .map((m) => {
        const first = m.caughtBy === id;
        const any = m.violates.includes(id);
        const cls = first ? 'first' : any ? 'hit' : '';
        const mark = first ? '●' : any ? '○' : '';
        const title = first ? `${m.id}: caught first by ${id}` : any ? `${m.id}: also violates ${id}` : `${m.id}: does not violate ${id}`;
        return `<td class="cell ${cls}" title="${esc(title)}">${mark}</td>`;
      })
      .join('');
    const label = id === 'result-mismatch' ? '<em>results differ</em>' : id === 'view-mismatch' ? '<em>states differ</em>' : `<code>${esc(id)}</code>`;
    return `<tr><th class="rowh">${label}</th>${cells}</tr>`;
  });
  const verdict = d.mutants.map((m) => `<td class="cell ${m.killed ? 'killed' : 'survived'}">${m.killed ? 'killed' : 'SURVIVED'}</td>`).join('');
  return `<table class="matrix" data-domain="${esc(d.id)}"><thead><tr><th></th>${head}</tr></thead><tbody>${body.join('')}<tr><th class="rowh">verdict</th>${verdict}</tr></tbody></table>
<p class="legend">● caught first (the shrunk counterexample stops there) &nbsp; ○ also violated along the same trace</p>
<ul class="mutants">${d.mutants.map((m) => `<li><code>${esc(m.id)}</code> — ${esc(m.title)} <small>(${esc(m.source)}; shrunk trace ${m.shrunkLength ?? '—'} ops)</small></li>`).join('')}</ul>`;
}

function traceBlock(t: ReportTrace): string {
  const rows = t.steps.map((s) => {
    const res = s.model === s.impl ? `<code>${esc(s.model)}</code>` : `model <code>${esc(s.model)}</code><br>impl <code class="bad">${esc(s.impl)}</code>`;
    const ch = s.changes.length ? `<ul class="changes">${s.changes.map((c) => `<li class="${c[0] === '+' ? 'add' : c[0] === '-' ? 'del' : 'mod'}">${esc(c)}</li>`).join('')}</ul>` : '<small>no change</small>';
    const ich = s.implChanges ? `<div class="implch"><b>impl changed instead:</b><ul class="changes">${s.implChanges.map((c) => `<li>${esc(c)}</li>`).join('')}</ul></div>` : '';
    const viol = s.violated.length ? `<div class="viol">violates ${s.violated.map((v) => `<code>${esc(v)}</code>`).join(', ')}</div>` : '';
    return `<tr class="${s.failing ? 'failing' : ''}"><td class="n">${s.n}</td><td><code>${esc(s.op)}</code></td><td>${res}</td><td>${ch}${ich}${viol}</td></tr>`;
  });
  return `<section class="trace"><h4>${esc(t.title)}</h4><p><small>${esc(t.origin)} — config <code>${esc(JSON.stringify(t.config))}</code></small></p>
<table class="steps"><thead><tr><th>#</th><th>op</th><th>result</th><th>what the step changed (model state)</th></tr></thead><tbody>${rows.join('')}</tbody></table>
<p class="failure">${esc(t.failure)}</p></section>`;
}

export function renderHtml(r: ReportData): string {
  const css = `body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#222;max-width:1400px}h1{margin-bottom:0}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top}th{background:#f4f4f4;text-align:left}
.n{text-align:right}.weak{color:#b9770e;font-weight:bold}.matrix .cell{text-align:center;width:2.2em}.matrix .first{background:#e74c3c;color:#fff}.matrix .hit{background:#f5b7b1}
.matrix .killed{background:#d5f5e3;font-size:11px}.matrix .survived{background:#c0392b;color:#fff;font-size:11px}.mut{height:170px;white-space:nowrap;vertical-align:bottom}
.mut div{transform:rotate(-60deg);transform-origin:left bottom;width:1.4em;position:relative;left:0.9em}.lbl,.num{font:12px system-ui,sans-serif}
.key{display:inline-block;width:10px;height:10px;margin-right:3px}.legend{color:#555;font-size:12px}.changes{margin:0;padding-left:1.2em;font:12px ui-monospace,monospace}
.changes .add{color:#1e8449}.changes .del{color:#b03a2e}.changes .mod{color:#1f618d}tr.failing{background:#fdedec}.bad{color:#b03a2e}.viol{color:#b03a2e;font-size:12px}
.failure{font-weight:bold;color:#922b21}.implch{font-size:12px;color:#7d3c98}section.domain{border-top:3px solid #2c3e50;margin-top:2em}`;
  const domains = r.domains.map(
    (d) => `<section class="domain" id="${esc(d.id)}"><h2>${esc(d.id)} — ${esc(d.title)}</h2><p>${esc(d.summary)}</p>
<p><small>${d.runs} runs, ${d.steps} ops in this report's campaign (seed ${r.seed})</small></p>
<h3>Invariants</h3>${invariantTable(d)}
<h3>Invariant × mutant kill matrix</h3>${killMatrix(d)}
<h3>Op frequencies</h3>${opChart(d.ops)}
<h3>Error codes</h3>${errorChart(d.ops)}
<h3>Counterexamples</h3>${d.traces.length ? d.traces.map(traceBlock).join('') : '<p>None saved.</p>'}</section>`,
  );
  const toc = r.domains.map((d) => `<a href="#${esc(d.id)}">${esc(d.id)}</a>`).join(' · ');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>hvspec report</title><style>${css}</style></head>
<body><h1>hvspec report</h1><p>generated ${esc(r.generatedAt)} · ${toc}</p>${domains.join('\n')}</body></html>\n`;
}
