/**
 * The repository stands alone: every relative link in its Markdown resolves to
 * a file or folder in the repository, and no document points outside it.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const SKIP = new Set(['node_modules', 'dist', '.git', 'coverage', '.hvspec', '.stryker-tmp', 'reports']);

function markdownFiles(dir: string, out: string[] = []): string[] {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (SKIP.has(entry.name)) continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) markdownFiles(full, out);
    else if (entry.name.endsWith('.md')) out.push(full);
  }
  return out;
}

/** Inline links and images `[text](target)`, outside fenced code blocks. */
export function relativeLinks(markdown: string): string[] {
  const links: string[] = [];
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    if (fenced) continue;
    for (const m of line.replace(/`[^`]*`/g, '').matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      const target = m[1]!;
      if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#')) continue;
      links.push(target);
    }
  }
  return links;
}

describe('docs: relative links', () => {
  const files = markdownFiles(ROOT);

  it('finds the repository Markdown (README, docs/, spec pages)', () => {
    const names = files.map((f) => path.relative(ROOT, f));
    for (const must of ['README.md', 'docs/DESIGN.md', 'docs/DOMAIN-GUIDE.md', 'CONTRIBUTING.md']) {
      assert.ok(names.includes(must), `${must} is missing`);
    }
  });

  it('the link extractor sees links and ignores code, URLs and anchors', () => {
    const md = 'a [x](docs/A.md) b `[y](no.md)` [u](https://e.org) [h](#top)\n```\n[z](nope.md)\n```\n![img](p.png "t")';
    assert.deepEqual(relativeLinks(md), ['docs/A.md', 'p.png']);
  });

  for (const file of files) {
    const rel = path.relative(ROOT, file);
    it(`${rel}: every relative link resolves inside the repository`, () => {
      const text = fs.readFileSync(file, 'utf8');
      const broken: string[] = [];
      for (const link of relativeLinks(text)) {
        const target = path.resolve(path.dirname(file), decodeURIComponent(link.split('#')[0]!));
        if (!target.startsWith(ROOT + path.sep) && target !== ROOT) broken.push(`${link} (outside the repository)`);
        else if (!fs.existsSync(target)) broken.push(`${link} (no such file)`);
      }
      assert.deepEqual(broken, [], `${rel} has broken links`);
      assert.ok(!/\.\.\/shared\//.test(text), `${rel} points into ../shared/, which is not part of the repository`);
    });
  }
});
