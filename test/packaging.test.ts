// Packaging: what users get from `npm install @imi/server @imi/client`.
// Packs the three packages with `pnpm pack` (which rewrites workspace:*),
// installs the tarballs into a fresh project outside the repo with npm, and
// uses them there: the CLI, an app importing @imi/client, a raw user's round
// trip, and the type declarations under tsc.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const packages = ['core', 'server', 'client'] as const;
let work: string;
let project: string;
const children: ChildProcess[] = [];

function run(command: string, args: string[], cwd: string): string {
  return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_fund: 'false', npm_config_audit: 'false', npm_config_update_notifier: 'false' } });
}

function pnpm(args: string[], cwd: string): string {
  // pnpm is a global install on CI (`.ci/run`) and here; fall back to npx.
  try {
    return run('pnpm', args, cwd);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    return run('npx', ['--yes', 'pnpm@10', ...args], cwd);
  }
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'imi-pack-'));
  project = join(work, 'project');
  for (const name of packages) pnpm(['pack', '--pack-destination', work], join(root, 'packages', name));
  const tarballs = readdirSync(work).filter((file) => file.endsWith('.tgz'));
  expect(tarballs).toHaveLength(3);
  run('mkdir', ['-p', project], work);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'imi-user-project', version: '1.0.0', private: true, type: 'module' }));
  run('npm', ['install', '--no-package-lock', ...tarballs.map((file) => join(work, file))], project);
}, 120_000);

afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the packages, installed from tarballs into a clean project', () => {
  it('ship only dist/, README and LICENSE (no tests, no sources, no source maps)', () => {
    for (const name of packages) {
      const listing = run('tar', ['-tzf', join(work, readdirSync(work).find((file) => file.startsWith(`imi-${name}-`))!)], work).trim().split('\n');
      // @imi/server also ships the browser client page (web/), served by --web-port.
      for (const entry of listing) expect(entry, `${name}: ${entry}`).toMatch(/^package\/(dist\/.+\.(js|d\.ts)|README\.md|LICENSE|CHANGELOG\.md|package\.json|web\/(index\.html|client\.js|client\.css))$/);
      if (name === 'server') expect(listing).toEqual(expect.arrayContaining(['package/web/index.html', 'package/web/client.js', 'package/web/client.css']));
      expect(listing).toContain('package/README.md');
      expect(listing).toContain('package/LICENSE');
      expect(listing).toContain('package/dist/index.js');
      expect(listing).toContain('package/dist/index.d.ts');
    }
  });

  it('npx imi-server --help works', () => {
    const help = run('npx', ['imi-server', '--help'], project);
    expect(help).toContain('Usage: imi-server');
  });

  it('runs imi-server and a 10-line app written in the project; a raw user gets a round trip', async () => {
    writeFileSync(
      join(project, 'app.mjs'),
      [
        "import { Client } from '@imi/client';",
        'const app = new Client({ port: Number(process.argv[2]) });',
        "app.on('connect', (session) => session.send('hello from the packaged app\\r\\n'));",
        "app.hooks.buildResponse.tap('Shout', (reply, session, line) => line.toUpperCase() + '\\r\\n');",
        // ioredis is required when a cluster worker is made (lazyConnect: nothing is dialled): it must resolve from the install.
        "new Client({ redis: 'redis://127.0.0.1:9' });",
        'await app.connect();',
        "console.log('app ready');",
      ].join('\n'),
    );
    const server = spawn(join(project, 'node_modules', '.bin', 'imi-server'), ['--external-port', '0', '--client-port', '0', '--admin-port', '0', '--host', '127.0.0.1', '--log-level', 'warn'], { cwd: project });
    children.push(server);
    let stdout = '';
    server.stdout!.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    while (!/users on port (\d+).*app on port (\d+)/.test(stdout) || !/admin: port (\d+)/.test(stdout)) {
      if (server.exitCode !== null) throw new Error('imi-server exited');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const [, externalPort, clientPort] = /users on port (\d+).*app on port (\d+)/.exec(stdout)!;
    const app = spawn(process.execPath, ['app.mjs', clientPort!], { cwd: project });
    children.push(app);
    let appOut = '';
    app.stdout!.setEncoding('utf8').on('data', (text: string) => (appOut += text));
    while (!appOut.includes('app ready')) {
      if (app.exitCode !== null) throw new Error('the app exited');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const user = net.connect({ port: Number(externalPort), host: '127.0.0.1' });
    await once(user, 'connect');
    let received = '';
    user.setEncoding('utf8').on('data', (text: string) => (received += text));
    user.write('packaged\r\n');
    while (!received.includes('PACKAGED\r\n')) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(received).toContain('hello from the packaged app');
    // prom-client is required when the metrics are made (with the admin port): it must resolve from the install.
    const metrics = await fetch(`http://127.0.0.1:${/admin: port (\d+)/.exec(stdout)![1]}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/^imi_sessions\{transport="tcp"\} 1$/m);
    user.destroy();
    server.kill('SIGTERM');
    await once(server, 'exit');
    expect(server.exitCode).toBe(0);
  }, 30_000);

  it('the type declarations resolve: tsc --noEmit on a TypeScript file using the public API', () => {
    writeFileSync(
      join(project, 'check.ts'),
      [
        "import { Intermediary, type IntermediaryOptions, type Session } from '@imi/server';",
        "import { Client, type ClientOptions } from '@imi/client';",
        "import { encodeFrame, type AppMessage, ERROR_TABLE } from '@imi/core';",
        'const options: IntermediaryOptions = { externalPort: 0, clientPort: 0 };',
        'const imi = new Intermediary(options);',
        "imi.hooks.input.tap('T', (line: string | false, session: Session) => (line === false ? false : `${session.id}:${line}`));",
        'const clientOptions: ClientOptions = { port: 9000 };',
        'const app = new Client(clientOptions);',
        "app.on('input', (session, line) => session.send(line));",
        "const message: AppMessage = { param: 'null' };",
        'export const frame: string = encodeFrame(message) + String(ERROR_TABLE.IMI_AUTH.description);',
        'export { imi, app };',
      ].join('\n'),
    );
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: false, typeRoots: [join(root, 'node_modules', '@types')], types: ['node'] },
        files: ['check.ts'],
      }),
    );
    const output = (() => {
      try {
        return run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], project);
      } catch (error) {
        return `FAILED\n${(error as { stdout?: string }).stdout ?? String(error)}`;
      }
    })();
    expect(output).toBe('');
  });
});
