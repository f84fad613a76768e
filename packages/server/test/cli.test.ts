// The imi-server command, run as a child process (the built dist/cli.js),
// with real sockets to the ports it prints.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEFAULT_SHUTDOWN_NOTICE } from '@imi/server';
import { waitFor } from './harness.js';
import { LISTENING, app, run, tempFile, user, type Cli } from './cli-harness.js';

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Starts the server on free loopback ports and returns them once it says it listens. */
async function serve(args: string[] = [], env: Record<string, string> = {}): Promise<Cli & { externalPort: number; clientPort: number }> {
  const cli = run(['--external-port', '0', '--client-port', '0', '--host', '127.0.0.1', '--log-level', 'warn', ...args], env);
  let exitedEarly = false;
  void cli.exited.then(() => (exitedEarly = true));
  await waitFor(() => LISTENING.test(cli.stdout()) || exitedEarly, 10_000, () => `the listening line (stdout ${JSON.stringify(cli.stdout())}, stderr ${JSON.stringify(cli.stderr())})`);
  const match = LISTENING.exec(cli.stdout());
  if (!match) throw new Error(`imi-server exited: ${cli.stderr()}`);
  return { ...cli, externalPort: Number(match[1]), clientPort: Number(match[3]) };
}

describe('imi-server', () => {
  it('--help prints the usage with every option and exits 0', async () => {
    const cli = run(['--help']);
    const { code } = await cli.exited;
    expect(code).toBe(0);
    const out = cli.stdout();
    expect(out).toMatch(/^Usage: imi-server \[options\]/);
    for (const flag of ['--config', '--token', '--log-level', '--external-port', '--client-port', '--host', '--client-host', '--app-policy', '--heartbeat-interval-ms', '--max-line-bytes', '--idle-timeout-ms', '--banner']) {
      expect(out).toContain(flag);
    }
    expect(cli.stderr()).toBe('');
  });

  it.each(['--version', '-v'])('%s prints the package version and exits 0', async (flag) => {
    const cli = run([flag]);
    expect((await cli.exited).code).toBe(0);
    expect(cli.stdout()).toBe(`${VERSION}\n`);
  });

  it('prints where it listens, and serves users and an app there', async () => {
    const cli = await serve();
    const line = LISTENING.exec(cli.stdout())!;
    expect(line[2]).toBe('127.0.0.1');
    expect(line[4]).toBe('127.0.0.1'); // the app port stays on loopback by default
    const a = await app(cli.clientPort, { name: 'cli-app' });
    await a.synced();
    const u = await user(cli.externalPort);
    const id = await a.nextUserId();
    u.send('ping €');
    const [input] = await a.waitForParam('input');
    expect(input!.data['value']).toBe('ping €');
    a.output(id, 'pong €\r\n');
    await u.waitFor('pong €\r\n');
  });

  it('reads a --config file, and flags beat it', async () => {
    const config = tempFile('imi.json', JSON.stringify({ banner: 'from the file\r\n', maxLineBytes: 8, appDownNotice: false, logLevel: 'warn' }));
    const cli = await serve(['--config', config, '--banner', 'from the flag\\r\\n']);
    const a = await app(cli.clientPort, { name: 'x' });
    await a.synced();
    const u = await user(cli.externalPort);
    await a.nextUserId();
    u.send('0123456789abc');
    const [input] = await a.waitForParam('input');
    expect(input!.data['value']).toBe('01234567'); // maxLineBytes from the file
    expect(u.received.startsWith('from the flag\r\n')).toBe(true);
    expect(u.received).not.toContain('from the file');
  });

  it('takes the token from IMI_TOKEN', async () => {
    const cli = await serve([], { IMI_TOKEN: 'env-secret' });
    const intruder = await app(cli.clientPort, { name: 'no-token' });
    await intruder.waitForError('IMI_AUTH');
    await intruder.waitClosed();
    const trusted = await app(cli.clientPort, { name: 'ok', token: 'env-secret' });
    await trusted.synced();
  });

  it.each<[string, string[], RegExp]>([
    ['an unknown flag', ['--no-such-flag'], /no-such-flag/],
    ['a number flag given text', ['--max-line-bytes', 'lots'], /--max-line-bytes/],
    ['an impossible value', ['--app-policy', 'bogus'], /appPolicy/],
    ['a heartbeat timeout shorter than the interval', ['--heartbeat-interval-ms', '1000', '--heartbeat-timeout-ms', '10'], /heartbeatTimeoutMs/],
    ['a missing config file', ['--config', '/nonexistent/imi.json'], /--config/],
    ['a bad log level', ['--log-level', 'loud'], /--log-level/],
  ])('exits 2 with a message for %s', async (_what, args, pattern) => {
    const cli = run(['--external-port', '0', '--client-port', '0', '--host', '127.0.0.1', ...args]);
    const { code } = await cli.exited;
    expect(code).toBe(2);
    expect(cli.stderr()).toMatch(/^imi-server: /m);
    expect(cli.stderr()).toMatch(pattern);
    expect(cli.stdout()).not.toMatch(LISTENING);
  });

  it('exits 2 for a config file with an unknown option or that is not JSON', async () => {
    const unknown = tempFile('unknown.json', JSON.stringify({ externalPrt: 1 }));
    const broken = tempFile('broken.json', '{ nope');
    for (const [path, pattern] of [
      [unknown, /externalPrt/],
      [broken, /not valid JSON/],
    ] as const) {
      const cli = run(['--config', path]);
      expect((await cli.exited).code).toBe(2);
      expect(cli.stderr()).toMatch(pattern);
    }
  });

  it.each(['SIGTERM', 'SIGINT'] as const)('on %s: the app gets shutdown, users get the notice, the process exits 0', async (signal) => {
    const cli = await serve();
    const a = await app(cli.clientPort, { name: 'x' });
    await a.synced();
    const u = await user(cli.externalPort);
    await a.nextUserId();
    cli.child.kill(signal);
    const [shutdown] = await a.waitForParam('shutdown');
    expect(shutdown!.data['reason']).toBe(signal);
    await u.waitClosed();
    expect(u.received).toContain(DEFAULT_SHUTDOWN_NOTICE);
    await a.waitClosed();
    expect(await cli.exited).toEqual({ code: 0, signal: null });
  });
});
