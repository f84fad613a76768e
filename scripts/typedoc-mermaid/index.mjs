// A typedoc plugin (typedoc.json "plugin") that renders the guides' ```mermaid
// blocks as diagrams in the docs site, offline: it ships mermaid's own
// browser bundle (the `mermaid` devDependency's dist/mermaid.min.js) with the
// site, and a small script that turns typedoc's <pre><code class="mermaid">
// blocks into diagrams. The bundle (5 MB) is only fetched by pages that have
// a diagram.
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { JSX, RendererEvent } from 'typedoc';

const require = createRequire(import.meta.url);

/** Files copied into the site's assets/ directory. */
const ASSETS = {
  'mermaid.min.js': require.resolve('mermaid/dist/mermaid.min.js'),
  'mermaid-init.js': fileURLToPath(new URL('mermaid-init.js', import.meta.url)),
};

/** @param {import('typedoc').Application} app */
export function load(app) {
  app.renderer.hooks.on('head.end', (context) =>
    JSX.createElement('script', { defer: true, src: context.relativeURL('assets/mermaid-init.js', true) }),
  );
  app.renderer.on(RendererEvent.END, (event) => {
    const assets = join(event.outputDirectory, 'assets');
    mkdirSync(assets, { recursive: true });
    for (const [name, source] of Object.entries(ASSETS)) copyFileSync(source, join(assets, name));
  });
}
