import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { User, onCleanup, runCleanups, startImi, waitFor } from './helpers.js';

afterEach(runCleanups);

const packageDir = fileURLToPath(new URL('..', import.meta.url));

describe('@imi/client from dist in plain Node', () => {
  it('loads as ESM with its named exports, tapable (CommonJS) included', () => {
    // A separate Node process, so vitest's own module handling cannot hide a broken import.
    const script = `
      const client = await import('@imi/client');
      const app = new client.Client({ tickIntervalMs: 0 });
      console.log(JSON.stringify({
        Client: typeof client.Client,
        Session: typeof client.Session,
        HandlerError: typeof client.HandlerError,
        exponentialBackoff: typeof client.exponentialBackoff,
        tap: typeof app.hooks.buildResponse.tapPromise,
        on: typeof app.on,
        internals: ['AckTracker', 'invokeListeners', 'isolateTaps', 'sessionSlots'].filter((name) => name in client),
      }));
    `;
    const output = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: packageDir, encoding: 'utf8' });
    expect(JSON.parse(output)).toEqual({
      Client: 'function',
      Session: 'function',
      HandlerError: 'function',
      exponentialBackoff: 'function',
      tap: 'function',
      on: 'function',
      internals: [],
    });
  });

  it('runs the README example as written (port aside) against a real intermediary', async () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1]!);
    const example = blocks.find((block) => block.includes('new Client('));
    expect(example).toBeDefined();
    expect(example).toContain("app.hooks.buildResponse.tap('Shout'");

    const { externalPort, clientPort } = await startImi({ token: 'readme-secret', appDownNotice: false });
    const file = fileURLToPath(new URL(`./.readme-example-${process.pid}.mjs`, import.meta.url));
    writeFileSync(file, example!.replace('port: 9000', `port: ${clientPort}`) + "\nconsole.log('READY');\n");
    onCleanup(() => rmSync(file, { force: true }));
    const child = spawn(process.execPath, [file], { env: { ...process.env, IMI_TOKEN: 'readme-secret' }, stdio: ['ignore', 'pipe', 'pipe'] });
    onCleanup(() => {
      child.kill('SIGKILL');
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    await waitFor(() => stdout.includes('READY') || child.exitCode !== null, 'the example to connect', 15_000);
    expect(stderr).toBe('');

    const user = await User.connect(externalPort);
    await user.waitFor('Welcome!\r\n');
    user.line('hello');
    await user.waitFor('HELLO\r\n');
    expect(user.received).toBe('Welcome!\r\nHELLO\r\n');
  });
});
