/**
 * The layers import one way (docs/DESIGN.md): the harness is a library that
 * takes the list of domains as a parameter and names no domain, and nothing
 * below the harness does I/O.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { DOMAINS } from '../../domains';

const ROOT = path.resolve(__dirname, '..', '..', '..');

function sources(dir: string): string[] {
  return fs
    .readdirSync(path.join(ROOT, dir), { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

/** Module specifiers a file imports or requires. */
export function importsOf(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)['"]([^'"]+)['"]/gm)) out.push(m[1]!);
  return out;
}

describe('layers', () => {
  it('the import scanner sees from-imports, side-effect imports and requires', () => {
    assert.deepEqual(importsOf("import { a } from '../domains';\nimport './x';\nconst f = require('fs');\nimport * as t from 'io-ts';"), ['../domains', './x', 'fs', 'io-ts']);
  });

  it('harness/ imports nothing from domains/, kernel/, spec/, model/, impl/ or properties/', () => {
    const bad: string[] = [];
    for (const f of sources('harness')) {
      for (const spec of importsOf(fs.readFileSync(path.join(ROOT, f), 'utf8'))) {
        if (/^\.\.\/(domains|kernel|spec|model|impl|properties)(\/|$)/.test(spec)) bad.push(`${f} imports ${spec}`);
      }
    }
    assert.deepEqual(bad, []);
  });

  it('spec/, model/, impl/ do no I/O (no fs, child_process, net, process, console, clocks or Math.random)', () => {
    const bad: string[] = [];
    for (const dir of ['spec', 'model', 'impl']) {
      for (const f of sources(dir)) {
        const text = fs.readFileSync(path.join(ROOT, f), 'utf8');
        for (const spec of importsOf(text)) if (/^(node:)?(fs|child_process|net|http|https|os|worker_threads)$/.test(spec)) bad.push(`${f} imports ${spec}`);
        const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
        for (const pat of [/\bconsole\./, /\bprocess\./, /\bDate\.now\b|\bnew Date\b/, /\bMath\.random\b/, /\bperformance\.now\b/]) {
          if (pat.test(code)) bad.push(`${f} uses ${pat.source}`);
        }
      }
    }
    assert.deepEqual(bad, []);
  });

  it('stryker.config.json runs the tests of every registered domain (domains/index.ts is the list)', () => {
    const cfg = JSON.parse(fs.readFileSync(path.join(ROOT, 'stryker.config.json'), 'utf8')) as { mochaOptions: { spec: string[] } };
    for (const d of DOMAINS) assert.ok(cfg.mochaOptions.spec.includes(`dist/test/${d.id}/**/*.test.js`), `stryker.config.json does not run test/${d.id}/`);
  });
});
