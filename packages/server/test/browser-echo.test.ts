// The browser client page hides a password, in headless Chromium against the
// imi-server CLI (--web-port) and the chat app fixture, both real child
// processes: the app turns echo off ("/hide" asks for a password), the page
// masks its input and keeps the typed line out of the scrollback and the
// history, the app gets the line, and echo comes back on after.
import { afterAll, describe, expect, it } from 'vitest';
import { AppProcess, CHROMIUM, commandsAvailable, launchBrowser, startServer, stopAll } from './process-harness.js';

afterAll(stopAll);

const PASSWORD = 'hunter2-S3cret!';

describe.skipIf(!commandsAvailable(CHROMIUM))('the browser client page with echo off', () => {
  it('masks the input while the app hides typing, never shows the password, and shows typing again after', { timeout: 60_000 }, async () => {
    const server = await startServer(['--web-port', '0']);
    const web = server.listeners.find((listener) => listener.details.includes('web page'))!;
    const app = await AppProcess.start(server.clientPort);
    const browser = await launchBrowser();
    const page = await browser.newPage();
    const output = page.locator('#output');
    const input = page.locator('#input');
    await page.goto(`http://127.0.0.1:${web.port}/`);
    await expect.poll(() => output.textContent(), { timeout: 10_000 }).toContain('Welcome, ws1! You are on ws.');
    expect(await input.getAttribute('type')).not.toBe('password');

    await input.fill('/hide');
    await input.press('Enter');
    await expect.poll(() => output.textContent()).toContain('Password: ');
    await expect.poll(() => input.getAttribute('type')).toBe('password');
    expect(await page.locator('#line').getAttribute('data-echo')).toBe('off');

    await input.fill(PASSWORD);
    await input.press('Enter');
    const received = await app.waitForEvent((event) => event.event === 'input' && event.line === PASSWORD, 10_000, 'the password at the app');
    expect(received.transport).toBe('ws');
    await expect.poll(() => output.textContent()).toContain(`password accepted (${PASSWORD.length} characters)`);
    await expect.poll(() => input.getAttribute('type')).toBe('text');
    expect(await page.locator('#line').getAttribute('data-echo')).toBe('on');
    expect(await input.inputValue()).toBe('');
    // Nowhere on the page: not in the scrollback, not left in the field.
    expect(await output.textContent()).not.toContain(PASSWORD);
    expect(await page.content()).not.toContain(PASSWORD);
    // Not in the history either: the up arrow skips from the empty draft to "/hide".
    await input.press('ArrowUp');
    expect(await input.inputValue()).toBe('/hide');
    await input.press('ArrowDown');

    // Echo is on again: a line typed now is shown as the user's echo, and said to everyone.
    await input.fill('visible again');
    await input.press('Enter');
    await expect.poll(() => output.textContent()).toContain('[ws1@ws] visible again');
    expect(await page.locator('#output .echo').allTextContents()).toEqual(['/hide', 'visible again']);
    await browser.close();
  });
});
