// The bundled browser client page through crashes of the intermediary under
// `imi-server --supervise`, in headless Chromium: the worker is SIGKILLed
// twice; the page's connection dies with it, the page resumes its session
// on the restarted worker with its token, and the line typed while the
// worker was down is sent once. The app (the supervise-app fixture on
// @imi/client) sees one session throughout — named in each resync, never a
// disconnect — and answers every line once.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { waitFor } from './harness.js';
import { CHROMIUM, commandsAvailable, launchBrowser, stopAll } from './process-harness.js';
import { SUPERVISE_APP, startedWorkers, workerPid } from './supervise-harness.js';
import { App, Server, cleanUp } from './upgrade-harness.js';

afterAll(stopAll);
afterEach(() => cleanUp());

describe.skipIf(!commandsAvailable(CHROMIUM))('the browser client page under --supervise', () => {
  it('resumes the same session after each SIGKILL of the intermediary: lines typed while it was down answered once, no disconnect at the app', { timeout: 90_000 }, async () => {
    const server = await Server.start(['--supervise', '--web-port', '0', '--restart-delay-ms', '50']);
    const port = Number(/ws on port (\d+)/.exec(server.out)![1]);
    const app = await App.start(server.clientPort, SUPERVISE_APP);
    const browser = await launchBrowser();
    try {
      const page = await browser.newPage();
      const output = page.locator('#output');
      const input = page.locator('#input');
      const status = page.locator('#status');
      const typeLine = async (line: string): Promise<void> => {
        await input.fill(line);
        await input.press('Enter');
      };
      await page.goto(`http://127.0.0.1:${port}/`);
      await waitFor(() => app.connects().length === 1, 10_000, 'the page to connect');
      const id = app.connects()[0]!.id!;
      await expect.poll(() => status.textContent(), { timeout: 10_000 }).toBe('connected');
      await typeLine('first');
      await expect.poll(() => output.textContent(), { timeout: 10_000 }).toContain('first!');

      for (let n = 1; n <= 2; n++) {
        process.kill(await workerPid(server), 'SIGKILL');
        // The socket dies with the worker: the page notices at once and types into its queue.
        await expect.poll(() => status.getAttribute('data-state'), { timeout: 10_000 }).toBe('reconnecting');
        await typeLine(`while-down-${n}`);
        await expect.poll(() => output.textContent(), { timeout: 20_000 }).toContain(`while-down-${n}!`);
        const notes = ((await output.textContent()) ?? '').split('(reconnected: same session)').length - 1;
        expect(notes).toBe(n);
        await typeLine(`after-${n}`);
        await expect.poll(() => output.textContent(), { timeout: 10_000 }).toContain(`after-${n}!`);
      }
      const text = (await output.textContent())!;
      for (const line of ['first', 'while-down-1', 'after-1', 'while-down-2', 'after-2']) expect(text.split(`${line}!`).length - 1, line).toBe(1);
      expect(text).not.toContain('could not be resumed');
      const inputs = app.events.filter((event) => event.event === 'input').map((event) => event.line);
      expect(inputs).toEqual(['first', 'while-down-1', 'after-1', 'while-down-2', 'after-2']);
      expect(app.disconnects()).toEqual([]);
      // One session throughout: @imi/client keeps it through each resync (which names it), so one connect event.
      expect(app.connects().map((event) => event.id)).toEqual([id]);
      expect(app.resyncs().filter((event) => event.sessions!.some((session) => session.id === id))).toHaveLength(2);
      expect(startedWorkers(server)).toHaveLength(3);
      expect(await status.textContent()).toBe('connected');
    } finally {
      await browser.close();
    }
  });
});
