// The docs site: typedoc builds the API reference and the guides into one
// site with warnings as errors (every exported symbol documented), and every
// local link in it resolves.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function htmlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...htmlFiles(path));
    else if (entry.endsWith('.html')) out.push(path);
  }
  return out;
}

describe('the documentation site', () => {
  it('builds with typedoc (warnings are errors) and every local link resolves', () => {
    const out = mkdtempSync(join(tmpdir(), 'imi-docs-'));
    try {
      try {
        execFileSync(process.execPath, [join(root, 'node_modules', 'typedoc', 'bin', 'typedoc'), '--out', out], { cwd: root, encoding: 'utf8', stdio: 'pipe' });
      } catch (error) {
        expect.fail(`typedoc failed:\n${(error as { stdout?: string }).stdout ?? ''}${(error as { stderr?: string }).stderr ?? ''}`);
      }
      const pages = htmlFiles(out);
      expect(pages.length).toBeGreaterThan(50);
      // Every guide became a page.
      const guides = readdirSync(join(root, 'docs')).filter((name) => name.endsWith('.md') && name !== 'README.md');
      const allHtml = pages.map((page) => readFileSync(page, 'utf8')).join('\n');
      for (const guide of guides) {
        const title = /^title: (.+)$/m.exec(readFileSync(join(root, 'docs', guide), 'utf8'))?.[1];
        expect(title, `${guide} has a title`).toBeDefined();
        expect(allHtml, `a page for ${guide}`).toContain(title!);
      }
      const broken: string[] = [];
      for (const page of pages) {
        const html = readFileSync(page, 'utf8');
        for (const match of html.matchAll(/(?:href|src)="([^"#?]+)(?:[#?][^"]*)?"/g)) {
          const target = match[1]!;
          if (/^(https?:|mailto:|data:|javascript:)/.test(target)) continue;
          if (!existsSync(resolve(dirname(page), decodeURI(target)))) broken.push(`${page.slice(out.length)} -> ${target}`);
        }
      }
      expect(broken).toEqual([]);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 120_000);
});
