// The Transports issue's "done when": a MUD client over telnet, the telnet
// command, a browser and netcat, all in the same app at once. Everything is
// a real process or a real socket: the imi-server CLI, the chat app fixture,
// Debian's telnet under tmux, netcat, headless Chromium, and a scripted MUD
// client (MTTS and GMCP) on a raw socket.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { waitFor } from './harness.js';
import { AppProcess, ARTIFACTS, CHROMIUM, Netcat, TmuxTelnet, commandsAvailable, launchBrowser, startServer, stopAll } from './process-harness.js';
import { TelnetPeer } from './transport-harness.js';

const peers: TelnetPeer[] = [];
afterEach(() => {
  for (const peer of peers.splice(0)) peer.socket.destroy();
});
afterAll(stopAll);

describe.skipIf(!commandsAvailable('telnet', 'tmux', 'nc', CHROMIUM))('every transport in one app', () => {
  it('a MUD client, the telnet command, a browser and netcat chat together, and all stay through an app restart', { timeout: 90_000 }, async () => {
    const server = await startServer(['--telnet-port', '0', '--web-port', '0']);
    const telnetPort = server.listeners.find((listener) => listener.transport === 'telnet')!.port;
    const webPort = server.listeners.find((listener) => listener.details.includes('web page'))!.port;
    let app = await AppProcess.start(server.clientPort);

    const netcat = Netcat.start(server.externalPort);
    await netcat.waitFor('tcp1! You are on tcp.');
    const term = TmuxTelnet.start(telnetPort, 100, 30);
    await term.waitForScreen('Welcome, telnet2! You are on telnet.');
    const mud = await TelnetPeer.connect(telnetPort, { ttypes: ['MUDLET', 'ANSI-256COLOR', 'MTTS 2829'], size: [160, 50] });
    peers.push(mud);
    await mud.waitFor('telnet3! You are on telnet.');
    mud.gmcp('Core.Hello', '{"client":"Mudlet","version":"4.17.2"}');
    await waitFor(() => mud.gmcpMessages.some(([name]) => name === 'Char.Name'), 10_000, 'the app to answer Core.Hello with GMCP');
    expect(mud.gmcpMessages.find(([name]) => name === 'Char.Name')).toEqual(['Char.Name', '{"name":"telnet3"}']);
    const browser = await launchBrowser();
    const page = await browser.newPage({ viewport: { width: 900, height: 500 } });
    const output = page.locator('#output');
    await page.goto(`http://127.0.0.1:${webPort}/`);
    await expect.poll(() => output.textContent(), { timeout: 10_000 }).toContain('Welcome, ws4! You are on ws.');

    const connects = app.events.filter((event) => event.event === 'connect');
    expect(connects.map((event) => event.transport)).toEqual(['tcp', 'telnet', 'telnet', 'ws']);
    expect(connects[1]!['telnet']).toMatchObject({ ttype: ['XTERM-256COLOR'], naws: { width: 100, height: 30 } });
    expect(connects[2]!['telnet']).toMatchObject({ ttype: ['MUDLET', 'ANSI-256COLOR', 'MTTS 2829'], mtts: 2829, gmcp: true, naws: { width: 160, height: 50 } });
    expect(connects[3]!['telnet']).toBeNull();
    netcat.type('/who');
    await netcat.waitFor('Here: tcp1@tcp, telnet2@telnet, telnet3@telnet, ws4@ws');

    netcat.type('hi from netcat');
    term.type('hi from the telnet command');
    mud.send('hi from the MUD client');
    await page.locator('#input').fill('hi from the browser');
    await page.locator('#input').press('Enter');
    const lines = ['[tcp1@tcp] hi from netcat', '[telnet2@telnet] hi from the telnet command', '[telnet3@telnet] hi from the MUD client', '[ws4@ws] hi from the browser'];
    for (const line of lines) {
      await netcat.waitFor(line);
      await term.waitForScreen(line);
      await mud.waitFor(line);
      await expect.poll(() => output.textContent(), { timeout: 10_000 }).toContain(line);
    }

    // The app crashes and comes back: everyone is told, nobody is dropped, and
    // the new app knows the MUD client's GMCP hello without asking.
    await app.kill();
    await netcat.waitFor('The application is restarting');
    await term.waitForScreen('The application is restarting');
    await mud.waitFor('The application is restarting');
    await expect.poll(() => output.textContent(), { timeout: 10_000 }).toContain('The application is restarting');
    app = await AppProcess.start(server.clientPort);
    await netcat.waitFor('Welcome back, tcp1!');
    await term.waitForScreen('Welcome back, telnet2!');
    await mud.waitFor('Welcome back, telnet3!');
    await expect.poll(() => output.textContent(), { timeout: 10_000 }).toContain('Welcome back, ws4!');
    const resumed = app.events.filter((event) => event.event === 'connect');
    expect(resumed.every((event) => event['resumed'] === true)).toBe(true);
    expect(resumed.find((event) => (event['telnet'] as { gmcpHello?: unknown } | null)?.gmcpHello !== undefined)!['telnet']).toMatchObject({
      gmcpHello: { client: 'Mudlet', version: '4.17.2' },
    });
    netcat.type('still all here?');
    await mud.waitFor('[tcp1@tcp] still all here?');
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'everyone.png') });
    await browser.close();
  });
});
