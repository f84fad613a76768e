// `pnpm release`: builds, tests and publishes the packages with Changesets.
// Publishing is a deliberate human act: it refuses to run under CI.
import { join } from 'node:path';
import { build, ensureInstalled, root, run } from './ensure-setup.mjs';

if (process.env.CI) {
  console.error('pnpm release does not publish from CI: run it by hand from a clean checkout of main.');
  process.exit(1);
}
ensureInstalled();
build();
run(process.execPath, [join(root, 'scripts', 'test.mjs')]);
run(process.execPath, [join(root, 'node_modules', '@changesets', 'cli', 'bin.js'), 'publish']);
