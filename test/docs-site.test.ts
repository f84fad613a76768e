// The docs site: typedoc builds the API reference and the guides into one
// site with warnings as errors (every exported symbol documented), and every
// local link in it resolves. In headless Chromium, served from a local HTTP
// server with every other request refused (the site must work offline), the
// guides' mermaid blocks are drawn as diagrams and the navigation lists the
// guides in reading order.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHROMIUM, CHROMIUM_FLAGS, commandsAvailable } from '../packages/server/test/process-harness.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const docs = join(root, 'docs');

function htmlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...htmlFiles(path));
    else if (entry.endsWith('.html')) out.push(path);
  }
  return out;
}

function titleOf(guide: string): string | undefined {
  return /^title: (.+)$/m.exec(readFileSync(join(docs, guide), 'utf8'))?.[1];
}

let out = '';
let buildError = '';

beforeAll(() => {
  out = mkdtempSync(join(tmpdir(), 'imi-docs-'));
  try {
    execFileSync(process.execPath, [join(root, 'node_modules', 'typedoc', 'bin', 'typedoc'), '--out', out], { cwd: root, encoding: 'utf8', stdio: 'pipe' });
  } catch (error) {
    buildError = `typedoc failed:\n${(error as { stdout?: string }).stdout ?? ''}${(error as { stderr?: string }).stderr ?? ''}`;
  }
}, 120_000);

afterAll(() => {
  if (out) rmSync(out, { recursive: true, force: true });
});

describe('the documentation site', () => {
  it('builds with typedoc (warnings are errors) and every local link resolves', () => {
    expect(buildError).toBe('');
    const pages = htmlFiles(out);
    expect(pages.length).toBeGreaterThan(50);
    // Every guide became a page.
    const guides = readdirSync(docs).filter((name) => name.endsWith('.md') && name !== 'README.md');
    const allHtml = pages.map((page) => readFileSync(page, 'utf8')).join('\n');
    for (const guide of guides) {
      const title = titleOf(guide);
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
  });

  describe.skipIf(!commandsAvailable(CHROMIUM))('in Chromium', () => {
    let server: Server | undefined;
    let origin = '';
    const served: string[] = [];
    const types: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.json': 'application/json' };

    beforeAll(async () => {
      server = createServer((request, response) => {
        const path = decodeURIComponent(new URL(request.url ?? '/', 'http://x').pathname);
        served.push(path);
        const file = normalize(join(out, path.endsWith('/') ? `${path}index.html` : path));
        if (!file.startsWith(out + sep) || !existsSync(file) || !statSync(file).isFile()) {
          response.writeHead(404).end();
          return;
        }
        response.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
      });
      await new Promise<void>((done) => server!.listen(0, '127.0.0.1', done));
      origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });

    afterAll(async () => {
      await new Promise((done) => server?.close(done));
    });

    async function openPage(path: string) {
      const { chromium } = await import('playwright-core');
      const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
      const page = await browser.newPage();
      const problems: string[] = [];
      const offsite: string[] = [];
      page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
      page.on('console', (message) => {
        if (message.type() === 'error') problems.push(`console: ${message.text()}`);
      });
      // Offline: anything not from the local server is refused (and noted).
      await page.route('**/*', (route) => {
        if (route.request().url().startsWith(`${origin}/`)) return route.continue();
        offsite.push(route.request().url());
        return route.abort();
      });
      await page.goto(`${origin}/${path}`);
      return { browser, page, problems, offsite };
    }

    it('draws the Architecture page\'s mermaid blocks as SVG diagrams with the bundled mermaid', { timeout: 60_000 }, async () => {
      expect(buildError).toBe('');
      const source = readFileSync(join(docs, 'architecture.md'), 'utf8');
      const blocks = source.match(/^```mermaid$/gm)?.length ?? 0;
      expect(blocks).toBeGreaterThan(0);
      const firstLine = /^```mermaid\n(.+)$/m.exec(source)![1]!.trim(); // e.g. "flowchart LR"
      const { browser, page, problems, offsite } = await openPage('documents/Architecture.html');
      try {
        const content = page.locator('.col-content');
        const diagrams = content.locator('div.mermaid > svg');
        await expect.poll(() => diagrams.count(), { timeout: 30_000 }).toBe(blocks);
        // The first diagram is the one the page opens on, drawn by mermaid's flowchart renderer.
        expect(await diagrams.first().getAttribute('aria-roledescription')).toMatch(/^flowchart/);
        expect((await diagrams.first().boundingBox())!.width).toBeGreaterThan(200);
        expect(await diagrams.first().locator('g.node').count()).toBeGreaterThan(3);
        // No mermaid source is left as text.
        expect(await content.locator('code.mermaid').count()).toBe(0);
        expect(await content.innerText()).not.toContain(firstLine);
        expect(served).toContain('/assets/mermaid.min.js');
        expect(offsite).toEqual([]);
        expect(problems).toEqual([]);
      } finally {
        await browser.close();
      }
    });

    it('lists the guides in reading order, Getting started first, and loads mermaid only where there is a diagram', { timeout: 60_000 }, async () => {
      expect(buildError).toBe('');
      // The reading order is the order of docs/README.md's table, then that index itself.
      const index = readFileSync(join(docs, 'README.md'), 'utf8');
      const ordered = [...index.matchAll(/^\| \[[^\]]+\]\(([a-z-]+\.md)\) \|/gm)].map((match) => match[1]!);
      const guides = readdirSync(docs).filter((name) => name.endsWith('.md') && name !== 'README.md');
      expect([...ordered].sort()).toEqual([...guides].sort());
      const expected = [...ordered, 'README.md'].map((guide) => titleOf(guide));
      expect(expected[0]).toBe('Getting started');

      served.length = 0;
      const { browser, page, problems, offsite } = await openPage('documents/Getting_started.html');
      try {
        // typedoc builds the sidebar from assets/navigation.js once the page has loaded.
        const guideLinks = page.locator('.site-menu .tsd-navigation a[href*="documents/"]');
        await expect.poll(() => guideLinks.count(), { timeout: 15_000 }).toBe(expected.length);
        expect((await guideLinks.allInnerTexts()).map((text) => text.trim())).toEqual(expected);
        // This page has no diagram: mermaid's 5 MB bundle is not fetched.
        await page.waitForLoadState('networkidle');
        expect(served).toContain('/assets/mermaid-init.js');
        expect(served).not.toContain('/assets/mermaid.min.js');
        expect(offsite).toEqual([]);
        expect(problems).toEqual([]);
      } finally {
        await browser.close();
      }
    });
  });
});
