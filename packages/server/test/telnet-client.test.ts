// The real Debian telnet client (inetutils) in a tmux terminal, against the
// imi-server CLI with a telnet listener and the chat app fixture: what a
// person at a terminal would type and see.
import { afterAll, describe, expect, it } from 'vitest';
import { count, sleep } from './harness.js';
import { AppProcess, TmuxTelnet, commandsAvailable, startServer, stopAll } from './process-harness.js';

afterAll(stopAll);

describe.skipIf(!commandsAvailable('telnet', 'tmux'))('the Debian telnet client under tmux', () => {
  it('negotiates window size and terminal type, hides a password, follows a resize, and keeps it all across an app restart', async () => {
    const server = await startServer(['--telnet-port', '0']);
    expect(server.listeners).toEqual([{ transport: 'telnet', port: expect.any(Number), details: 'host 127.0.0.1' }]);
    let app = await AppProcess.start(server.clientPort);
    const term = TmuxTelnet.start(server.listeners[0]!.port, 100, 30);

    await term.waitForScreen('Welcome, telnet1! You are on telnet.');
    const connect = await app.waitForEvent((event) => event.event === 'connect');
    expect(connect['telnet']).toMatchObject({ naws: { width: 100, height: 30 }, ttype: ['XTERM-256COLOR'], echo: true });

    term.type('hello everyone');
    await term.waitForScreen('[telnet1@telnet] hello everyone');
    expect(await app.waitForEvent((event) => event.event === 'input')).toMatchObject({ line: 'hello everyone', transport: 'telnet' });

    // A password prompt: the app turns the echo off, the client stops echoing.
    term.type('/hide');
    await term.waitForScreen('Password: ');
    await sleep(200); // let the client act on the WILL ECHO that followed the prompt
    term.type('hunter2');
    await term.waitForScreen('password accepted (7 characters)');
    term.type('visible again');
    const afterPassword = await term.waitForScreen('[telnet1@telnet] visible again');
    expect(afterPassword).not.toContain('hunter2');
    expect(count(afterPassword, 'visible again')).toBe(2); // the client's own echo is back, then the app's line

    // A resize reaches the app as a telnet update.
    term.resize(120, 40);
    await app.waitForEvent((event) => event.event === 'telnet' && (event['telnet'] as { naws?: { width: number } }).naws?.width === 120);
    term.type('/size');
    await term.waitForScreen('Your window is 120x40.');

    // The app crashes and comes back: the user is told to hold on, and the
    // new app knows the terminal at once (the client renegotiates nothing).
    await app.kill();
    await term.waitForScreen('The application is restarting');
    app = await AppProcess.start(server.clientPort);
    await term.waitForScreen('Welcome back, telnet1!');
    const resumed = await app.waitForEvent((event) => event.event === 'connect');
    expect(resumed).toMatchObject({ resumed: true, telnet: { naws: { width: 120, height: 40 }, ttype: ['XTERM-256COLOR'], echo: true } });
    term.type('after the restart');
    await term.waitForScreen('[telnet1@telnet] after the restart');

    // Leaving from the telnet prompt closes the connection.
    term.keys('C-]');
    await term.waitForScreen('telnet>');
    term.type('quit');
    expect(await app.waitForEvent((event) => event.event === 'disconnect')).toMatchObject({ reason: 'closed' });
  });
});
