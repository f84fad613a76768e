// docs/getting-started.md, played for real: its app (the ```js block) is run
// as a child process against a real intermediary, a user connects over raw
// TCP, the app is killed with SIGKILL and started again, and the user sees
// what the guide says they will see.
import { afterEach, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { User, cleanUp, root, runNode, startIntermediary, waitFor, type Child } from './support/examples.js';
import type { Intermediary } from '@imi/server';

afterEach(cleanUp);

const guide = readFileSync(`${root}docs/getting-started.md`, 'utf8');

async function startApp(imi: Intermediary, appPort: number): Promise<Child> {
  const app = runNode('test/.getting-started/app.js', { IMI_CLIENT_PORT: String(appPort) });
  await waitFor(
    () => /^ready: /m.test(app.stdout) || app.process.exitCode !== null,
    () => `the guide's app to be ready (stderr: ${app.stderr})`,
  );
  expect(imi.appConnected).toBe(true);
  return app;
}

describe('docs/getting-started.md', () => {
  it('the dozen-line app does what the guide says, through a SIGKILL and a restart', async () => {
    const blocks = [...guide.matchAll(/```js\n([\s\S]*?)```/g)].map((match) => match[1]!);
    expect(blocks).toHaveLength(1);
    expect(blocks[0]!.split('\n').filter((line) => line.trim() !== '').length).toBeLessThanOrEqual(12);
    // Inside the repository, so that '@imi/client' resolves to the built package.
    mkdirSync(`${root}test/.getting-started`, { recursive: true });
    writeFileSync(`${root}test/.getting-started/app.js`, blocks[0]!);

    const { imi, userPort, appPort } = await startIntermediary();
    const first = await startApp(imi, appPort);
    const user = await User.connect(userPort);
    await user.waitForLine('Hello! Type something.');
    user.type('hi there');
    await user.waitForLine('#1: you said "hi there"');

    await first.kill('SIGKILL');
    await user.waitForLine('*** The application is restarting. Stay connected: nothing you type is lost. ***');
    user.type('are you still there?');

    const second = await startApp(imi, appPort);
    expect(second.stdout).toContain('ready: 1 user(s) online');
    await user.waitForLine('Welcome back! You had typed 1 line(s).');
    await user.waitForLine('#2: you said "are you still there?"');
    expect(user.closed).toBe(false);
    // Every line the guide shows the user seeing, they saw.
    for (const line of ['Hello! Type something.', '#1: you said "hi there"', 'Welcome back! You had typed 1 line(s).', '#2: you said "are you still there?"']) {
      expect(guide).toContain(line);
    }
  });
});
