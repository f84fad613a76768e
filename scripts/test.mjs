// `npm test` / `pnpm test`: set up if needed, build, type-check the tests,
// run the whole suite. Extra arguments go to vitest.
import { join } from 'node:path';
import { build, ensureInstalled, root, run } from './ensure-setup.mjs';

try {
  ensureInstalled();
  build();
  run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.test.json']);
  run(process.execPath, [join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', ...process.argv.slice(2)]);
} catch (error) {
  process.exitCode = typeof error?.status === 'number' ? error.status : 1;
}
