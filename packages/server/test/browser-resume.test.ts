// The browser client page resumes its session by itself, in headless
// Chromium against an intermediary with the web listener and an app on a
// raw socket: the test destroys the server side of the page's WebSocket
// (through the session's channel, a test-only reach into internals), the
// app writes while the page is away, the user types while it is away, and
// the page comes back in the same session: the app sees no disconnect and
// gets the line typed meanwhile once, the page shows what it missed once.
import { afterAll, describe, expect, it } from 'vitest';
import { testScope, waitFor } from './harness.js';
import { CHROMIUM, commandsAvailable, launchBrowser, stopAll } from './process-harness.js';

afterAll(stopAll);
const scope = testScope();

describe.skipIf(!commandsAvailable(CHROMIUM))('the browser client page after a dropped connection', () => {
  it('resumes the same session: nothing typed lost, missed output shown once, no disconnect at the app', { timeout: 60_000 }, async () => {
    const { imi, ports } = await scope.start({ listeners: [{ kind: 'ws', port: 0, web: true }] });
    const app = await scope.app(ports.clientPort, { name: 'test' });
    await app.synced();
    const browser = await launchBrowser();
    try {
      const page = await browser.newPage();
      const output = page.locator('#output');
      const input = page.locator('#input');
      await page.goto(`http://127.0.0.1:${ports.listeners[1]!.port}/`);
      const id = await app.nextUserId(0, 10_000);
      const inputs = (): string[] => app.of('input').filter((frame) => frame.data['id'] === id).map((frame) => frame.data['value'] as string);
      app.output(id, 'Welcome!\r\n');
      await expect.poll(() => output.textContent(), { timeout: 10_000 }).toContain('Welcome!');
      await input.fill('before');
      await input.press('Enter');
      await waitFor(() => inputs().length === 1, 5000, 'the first line');

      // Drop the page's connection from the server side, without a close frame.
      const channel = (imi.session(id) as unknown as { userChannel: { socket: { destroy(): void } } }).userChannel;
      channel.socket.destroy();
      await expect.poll(() => page.locator('#status').getAttribute('data-state'), { timeout: 5000 }).toBe('reconnecting');
      app.output(id, 'said while you were away\r\n');
      await input.fill('typed while away');
      await input.press('Enter');
      await expect.poll(() => output.textContent(), { timeout: 15_000 }).toContain('(reconnected: same session)');
      await waitFor(() => inputs().length === 2, 10_000, () => `the line typed while away (${JSON.stringify(inputs())})`);
      app.output(id, 'after\r\n');
      await expect.poll(() => output.textContent(), { timeout: 5000 }).toContain('after');
      await app.barrier();

      expect(inputs()).toEqual(['before', 'typed while away']);
      const text = (await output.textContent())!;
      expect(text.split('said while you were away').length - 1).toBe(1);
      expect(text.split('Welcome!').length - 1).toBe(1);
      expect(app.of('disconnect')).toEqual([]);
      expect(app.of('connect')).toHaveLength(1);
      expect(await page.locator('#status').textContent()).toBe('connected');
      const errors = imi.stats().errors;
      expect(errors['IMI_WS_RESUME_REFUSED'] ?? 0).toBe(0);
      expect(errors['IMI_WS_BAD_CONTROL'] ?? 0).toBe(0);

      // Leaving the page ends the session at once (a normal close), not after the window.
      await page.close();
      await app.waitForFrame((frame) => frame.param === 'disconnect', 5000, 'the disconnect');
      expect(app.of('disconnect').map((frame) => frame.data)).toEqual([{ id, reason: 'closed' }]);
    } finally {
      await browser.close();
    }
  });
});
