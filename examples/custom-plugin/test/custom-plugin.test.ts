// The custom-plugin example, for real: the example (an intermediary with
// ModerationPlugin, and its app) as a child process, users on raw TCP
// sockets; and the plugin alone in an intermediary of the test's own.
import { afterEach, describe, expect, it } from 'vitest';
import { Client } from '@imi/client';
import { ModerationPlugin } from '../moderation-plugin.js';
import { User, cleanUp, runNode, startIntermediary, waitFor, type Child } from '../../../test/support/examples.js';

afterEach(cleanUp);

/** Runs examples/custom-plugin/index.js on free ports of 127.0.0.1; resolves with its user port. */
async function startExample(env: Record<string, string>): Promise<{ child: Child; userPort: number }> {
  const child = runNode('examples/custom-plugin/index.js', { IMI_EXTERNAL_PORT: '0', IMI_CLIENT_PORT: '0', IMI_HOST: '127.0.0.1', ...env });
  await waitFor(
    () => child.stdout.includes('app connected') || child.process.exitCode !== null,
    () => `the example to start (stdout: ${child.stdout}, stderr: ${child.stderr})`,
  );
  const match = /users on port (\d+) \(host 127\.0\.0\.1\)/.exec(child.stdout);
  if (match === null) throw new Error(`the example did not start: ${child.stderr}`);
  return { child, userPort: Number(match[1]) };
}

describe('examples/custom-plugin', () => {
  it('refuses a banned address: the user gets the message and is disconnected, the app never hears of them', async () => {
    const { child, userPort } = await startExample({ IMI_BANNED: '127.0.0.1' });
    const user = await User.connect(userPort);
    await user.waitForLine('You are banned from this server.');
    await user.waitForClose();
    expect(user.received).not.toContain('Welcome');
    await waitFor(
      () => child.stdout.includes('[moderation] refused 127.0.0.1'),
      () => `the refusal in the log: ${child.stdout}`,
    );
  });

  it('masks bad words before the app sees them, lets other users in, and logs departures', async () => {
    const { child, userPort } = await startExample({ IMI_BANNED: '203.0.113.7', IMI_BAD_WORDS: 'darn,heck' });
    const user = await User.connect(userPort);
    await user.waitForLine(/^Welcome! Mind your language/);

    user.type('Well DARN it, what the heck');
    await user.waitForLine(/^The app received: /);
    user.type('darned darnation, no harm in those');
    await user.waitForLine('The app received: darned darnation, no harm in those');
    expect(user.lines).toContain('The app received: Well **** it, what the ****');

    user.socket.end();
    await waitFor(
      () => /\[moderation\] 127\.0\.0\.1 left after [\d.]+ s \(closed\)/.test(child.stdout),
      () => `the departure in the log: ${child.stdout}`,
    );
  });

  it('stops cleanly on SIGTERM, telling the user', async () => {
    const { child, userPort } = await startExample({});
    const user = await User.connect(userPort);
    await user.waitForLine(/^Welcome!/);
    user.type('heck');
    await user.waitForLine('The app received: ****');
    child.process.kill('SIGTERM');
    expect(await child.exited).toBe(0);
    await user.waitForClose();
    expect(user.received).toContain('The server is shutting down.');
    expect(child.stdout).toContain('stopped; 1 line(s) masked');
  });

  it('the plugin works in any intermediary: bound to 127.0.0.1 with 127.0.0.1 banned, nobody gets in', async () => {
    const log: string[] = [];
    const plugin = new ModerationPlugin({ banned: ['127.0.0.1'], words: ['darn'], log: (line) => log.push(line) });
    const { imi, userPort } = await startIntermediary({ plugins: [plugin] });
    const user = await User.connect(userPort);
    await user.waitForLine('You are banned from this server.');
    await user.waitForClose();
    expect(imi.stats().sessions).toBe(0);
    expect(log).toEqual(['[moderation] refused 127.0.0.1']);
  });

  it('the plugin masks words in the lines an app receives', async () => {
    const plugin = new ModerationPlugin({ words: ['darn'], log: () => {} });
    const { userPort, appPort } = await startIntermediary({ plugins: [plugin] });
    const app = new Client({ port: appPort, tickIntervalMs: 0 });
    const seen: string[] = [];
    app.on('input', (session, line) => {
      seen.push(line);
      session.send(`ok\r\n`);
    });
    await app.connect();
    try {
      const user = await User.connect(userPort);
      user.type('darn darn Darn');
      await user.waitForLine('ok');
      expect(seen).toEqual(['**** **** ****']);
      expect(plugin.masked).toBe(1);
    } finally {
      await app.close();
    }
  });
});
