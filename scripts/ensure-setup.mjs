// Makes a fresh clone runnable with nothing but Node 20 and npm: installs the
// workspace with pnpm (a global one if present, else `npx pnpm@10`) when
// node_modules is missing or older than the lockfile, then builds.
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function has(command) {
  try {
    execFileSync(command, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function run(command, args, options = {}) {
  console.error(`> ${command} ${args.join(' ')}`);
  execFileSync(command, args, { cwd: root, stdio: 'inherit', ...options });
}

export function ensureInstalled() {
  const marker = join(root, 'node_modules', '.modules.yaml');
  const lock = join(root, 'pnpm-lock.yaml');
  if (existsSync(marker) && statSync(marker).mtimeMs >= statSync(lock).mtimeMs) return;
  const frozen = process.env.CI ? ['--frozen-lockfile'] : [];
  if (has('pnpm')) run('pnpm', ['install', ...frozen]);
  else run('npx', ['--yes', 'pnpm@10', 'install', ...frozen]);
}

export function build() {
  run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-b']);
  // pnpm links the workspace's `imi-server` bin only if dist/cli.js exists at
  // install time, which it does not in a fresh clone: link it once built, so
  // `npx imi-server` works in the repository and its examples.
  if (!existsSync(join(root, 'node_modules', '.bin', 'imi-server'))) {
    const args = ['install', '--offline', ...(process.env.CI ? ['--frozen-lockfile'] : [])];
    if (has('pnpm')) run('pnpm', args);
    else run('npx', ['--yes', 'pnpm@10', ...args]);
  }
}
