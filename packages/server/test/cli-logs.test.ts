// The log format of the imi-server command (the built dist/cli.js, a child
// process): pino JSON lines by default when stderr is not a terminal,
// pino-pretty's readable lines with --log-format pretty (or "logFormat" in
// the config file), and the last lines written before a graceful exit.
import { describe, expect, it } from 'vitest';
import { waitFor } from './harness.js';
import { LISTENING, app, run, tempFile, type Cli } from './cli-harness.js';

/** Runs the server on free loopback ports, has an app connect and send one bad frame, then stops it with SIGTERM. */
async function serveAndStop(args: string[]): Promise<Cli> {
  const cli = run(['--external-port', '0', '--client-port', '0', '--host', '127.0.0.1', '--log-level', 'info', ...args]);
  await waitFor(() => LISTENING.test(cli.stdout()), 10_000, () => `the listening line (stderr ${JSON.stringify(cli.stderr())})`);
  const clientPort = Number(LISTENING.exec(cli.stdout())![3]);
  const a = await app(clientPort, { name: 'logged-app' });
  await a.synced();
  a.sendRaw('{"param": nope}\n');
  await a.waitForError('IMI_BAD_FRAME');
  cli.child.kill('SIGTERM');
  expect(await cli.exited).toEqual({ code: 0, signal: null });
  return cli;
}

/** pino-pretty's line head: `[HH:MM:ss.l] LEVEL: message`, or `LEVEL (name): ` when the line has a `name` (the app's). */
const PRETTY_LINE = /^\[\d\d:\d\d:\d\d\.\d{3}\] (TRACE|DEBUG|INFO|WARN|ERROR|FATAL)(?: \([^)]*\))?: (.*)$/;

describe('imi-server logs', () => {
  it('--log-format pretty: readable lines with level names and messages, no JSON, and the last line before exit', async () => {
    const cli = await serveAndStop(['--log-format', 'pretty']);
    const lines = cli.stderr().split('\n').filter((line) => line !== '');
    const heads = lines.filter((line) => PRETTY_LINE.test(line)).map((line) => PRETTY_LINE.exec(line)!.slice(1, 3).join(': '));
    expect(heads).toContain('INFO: app connected');
    expect(heads).toContain('WARN: not valid JSON: "{\\"param\\": nope}"');
    // Written synchronously: the line logged while stopping is there when the process has exited.
    expect(heads[heads.length - 1]).toBe('INFO: shutting down');
    // Fields come as indented "key: value" lines under their message, never as raw JSON.
    expect(lines).toContain('    code: "IMI_BAD_FRAME"');
    for (const line of lines) {
      expect(line.startsWith('{'), line).toBe(false);
      expect(PRETTY_LINE.test(line) || line.startsWith('    '), line).toBe(true);
    }
    // Not a terminal: no colour codes.
    expect(cli.stderr()).not.toContain('\u001b[');
  });

  it.each([[['--log-format', 'json']], [[]]])('%j: one pino JSON object per line (JSON is the default when stderr is not a terminal)', async (args) => {
    const cli = await serveAndStop(args);
    const records = cli.stderr().split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as { level: number; msg: string; code?: string });
    expect(records.map((record) => record.msg)).toContain('app connected');
    expect(records.find((record) => record.code === 'IMI_BAD_FRAME')?.level).toBe(40);
    expect(records[records.length - 1]!.msg).toBe('shutting down');
  });

  it('"logFormat" in the config file chooses too, and the flag beats it', async () => {
    const pretty = tempFile('pretty.json', JSON.stringify({ logFormat: 'pretty' }));
    const fromFile = await serveAndStop(['--config', pretty]);
    expect(fromFile.stderr()).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(logged-app\): app connected$/m);
    const overridden = await serveAndStop(['--config', pretty, '--log-format', 'json']);
    expect(() => overridden.stderr().split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as unknown)).not.toThrow();
  });

  it.each([
    ['a flag', ['--log-format', 'loud']],
    ['the config file', ['--config', 'CONFIG']],
  ])('an unknown format in %s: an IMI_CONFIG message, exit 2, nothing listens', async (_where, args) => {
    const config = tempFile('bad.json', JSON.stringify({ logFormat: 'fancy' }));
    const cli = run(['--external-port', '0', '--client-port', '0', ...args.map((arg) => (arg === 'CONFIG' ? config : arg))]);
    expect((await cli.exited).code).toBe(2);
    expect(cli.stderr()).toMatch(/^imi-server: --log-format must be json or pretty; got (loud|fancy)$/m);
    expect(cli.stdout()).not.toMatch(LISTENING);
  });
});
