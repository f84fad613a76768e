// The browser client page end to end, in headless Chromium (Debian's, driven
// by playwright-core) against the imi-server CLI (--web-port) and the chat
// app fixture, both real child processes. Screenshots go to test-artifacts/.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from './harness.js';
import { AppProcess, ARTIFACTS, CHROMIUM, commandsAvailable, launchBrowser, startServer, stopAll } from './process-harness.js';

afterAll(stopAll);

describe.skipIf(!commandsAvailable(CHROMIUM))('the browser client page', () => {
  it('talks to the app, shows the hold-on notice while the app restarts, and reconnects after the intermediary restarts', { timeout: 90_000 }, async () => {
    let server = await startServer(['--web-port', '0']);
    const web = server.listeners.find((listener) => listener.details.includes('web page'))!;
    expect(web).toMatchObject({ transport: 'ws', details: 'host 127.0.0.1, path /ws, web page /' });
    await waitFor(() => server.stdout().includes(`imi-server web client: http://127.0.0.1:${web.port}/`), 10_000, 'the web client line');
    let app = await AppProcess.start(server.clientPort);
    const browser = await launchBrowser();
    const page = await browser.newPage({ viewport: { width: 900, height: 560 } });
    const output = page.locator('#output');
    const status = page.locator('#status');
    await page.goto(`http://127.0.0.1:${web.port}/`);

    await expect.poll(() => status.textContent(), { timeout: 10_000 }).toBe('connected');
    await expect.poll(() => output.textContent(), { timeout: 10_000 }).toContain('Welcome, ws1! You are on ws.');
    // ANSI colours: "Welcome" is bold green.
    expect(await page.locator('#output span.b.fg2').first().textContent()).toBe('Welcome');

    await page.locator('#input').fill('hello from the browser');
    await page.locator('#input').press('Enter');
    await expect.poll(() => output.textContent()).toContain('[ws1@ws] hello from the browser');
    expect(await page.locator('#input').inputValue()).toBe('');
    await page.locator('#input').fill('/colors');
    await page.locator('#input').press('Enter');
    await expect.poll(() => output.textContent()).toContain('red orange underlined truecolor plain');
    expect(await page.locator('#output span.fg1').last().textContent()).toBe('red');
    expect(await page.locator('#output span', { hasText: 'orange' }).last().evaluate((e) => (e as unknown as { style: { color: string } }).style.color)).toBe('rgb(255, 95, 0)');
    expect(await page.locator('#output span.u').last().textContent()).toBe('underlined');
    // History: the up arrow brings back earlier lines.
    await page.locator('#input').press('ArrowUp');
    expect(await page.locator('#input').inputValue()).toBe('/colors');
    await page.locator('#input').press('ArrowUp');
    expect(await page.locator('#input').inputValue()).toBe('hello from the browser');
    await page.locator('#input').press('ArrowDown');
    await page.locator('#input').press('ArrowDown');
    expect(await page.locator('#input').inputValue()).toBe('');

    // The app crashes: the user is told to hold on, stays connected, and is welcomed back.
    await app.kill();
    await expect.poll(() => output.textContent(), { timeout: 10_000 }).toContain('The application is restarting');
    expect(await status.textContent()).toBe('connected');
    await page.locator('#input').fill('typed while the app was away');
    await page.locator('#input').press('Enter');
    app = await AppProcess.start(server.clientPort);
    await expect.poll(() => output.textContent(), { timeout: 10_000 }).toContain('Welcome back, ws1!');
    await expect.poll(() => output.textContent(), { timeout: 10_000 }).toContain('[ws1@ws] typed while the app was away');
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'browser-client.png') });

    // The intermediary itself goes away: the page says so and reconnects with backoff when it is back.
    server.child.kill('SIGTERM');
    await server.exited;
    await expect.poll(() => output.textContent(), { timeout: 10_000 }).toContain('The server is shutting down');
    await expect.poll(() => status.textContent(), { timeout: 10_000 }).toMatch(/^connection lost — reconnecting/);
    expect(await status.getAttribute('data-state')).toBe('reconnecting');
    await page.screenshot({ path: join(ARTIFACTS, 'browser-client-reconnecting.png') });
    server = await startServer(['--web-port', String(web.port)]);
    app = await AppProcess.start(server.clientPort);
    await expect.poll(() => status.textContent(), { timeout: 20_000 }).toBe('connected');
    await expect.poll(() => output.textContent(), { timeout: 10_000 }).toContain('(reconnected)');
    await expect.poll(() => output.textContent(), { timeout: 10_000 }).toMatch(/\(reconnected\)[\s\S]*Welcome, ws1! You are on ws\./);
    await browser.close();
  });
});
