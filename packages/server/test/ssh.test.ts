// The SSH listener against the real OpenSSH client (`ssh`, in a tmux pane so
// it has a terminal) and ssh2's own client for the details: login, lines,
// echo and hidden input, window size and resize, the host key file, keys.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import ssh2 from 'ssh2';
import { ImiError } from '@imi/core';
import { Intermediary, type IntermediaryOptions } from '@imi/server';
import { sleep, testScope, waitFor, type RawApp } from './harness.js';
import { commandsAvailable } from './process-harness.js';

const scope = testScope();
const dir = mkdtempSync(join(tmpdir(), 'imi-ssh-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const file = (name: string): string => join(dir, `${++files}-${name}`);

/** An Ed25519 key pair that ssh2 can read back (it writes about 3 in 1,000 of its own keys in a form its parser rejects). */
function keyPair(): { private: string; public: string } {
  for (;;) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519');
    if (!(ssh2.utils.parseKey(pair.private) instanceof Error) && !(ssh2.utils.parseKey(pair.public) instanceof Error)) return pair;
  }
}

async function start(extra: Record<string, unknown> = {}, options: IntermediaryOptions = {}) {
  const hostKeyFile = file('host-key');
  const { imi, ports } = await scope.start({ listeners: [{ kind: 'ssh', port: 0, hostKeyFile, ...extra }], ...options });
  const app = await scope.app(ports.clientPort, { name: 'test', acks: true });
  await app.synced();
  return { imi, ports, app, port: ports.listeners[1]!.port, hostKeyFile };
}

function connects(app: RawApp) {
  return app.of('connect').filter((frame) => frame.data['resumed'] === false);
}

/** A real `ssh` in a detached tmux session on a server of our own (`-L`). */
class Terminal {
  private static count = 0;
  readonly socket = `imi-ssh-test-${process.pid}-${++Terminal.count}`;
  constructor(port: number, user: string, size: [number, number] = [100, 30]) {
    const ssh = `ssh -p ${port} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR ${user}@127.0.0.1`;
    this.tmux('new-session', '-d', '-s', 'play', '-x', String(size[0]), '-y', String(size[1]), ssh);
  }
  tmux(...args: string[]): string {
    return execFileSync('tmux', ['-L', this.socket, ...args], { encoding: 'utf8' });
  }
  screen(): string {
    return this.tmux('capture-pane', '-p', '-t', 'play');
  }
  type(text: string): void {
    this.tmux('send-keys', '-t', 'play', '-l', text);
  }
  enter(): void {
    this.tmux('send-keys', '-t', 'play', 'Enter');
  }
  async waitScreen(text: string): Promise<void> {
    await waitFor(() => this.screen().includes(text), 5000, () => `the screen to show ${JSON.stringify(text)}: ${JSON.stringify(this.screen())}`);
  }
  kill(): void {
    try {
      this.tmux('kill-server');
    } catch {
      // already gone
    }
  }
}

const terminals: Terminal[] = [];
afterEach(() => {
  for (const terminal of terminals.splice(0)) terminal.kill();
});

describe.skipIf(!commandsAvailable('ssh') || !commandsAvailable('tmux'))('SSH with the OpenSSH client', () => {
  it('logs in with any name and no password, with the window size and terminal type; lines, echo, hidden input, resize', async () => {
    const { app, port, hostKeyFile } = await start();
    const terminal = new Terminal(port, 'play');
    terminals.push(terminal);
    const id = await app.nextUserId();
    const connect = connects(app)[0]!;
    expect(connect.data['transport']).toBe('ssh');
    expect(connect.data['telnet']).toMatchObject({ naws: { width: 100, height: 30 }, echo: true, ssh: { user: 'play' } });
    expect((connect.data['telnet'] as { ttype: string[] }).ttype[0]).toMatch(/screen|tmux/);
    expect(statSync(hostKeyFile).mode & 0o777).toBe(0o600);
    app.output(id, 'Welcome!\nName: ');
    await terminal.waitScreen('Name:');
    expect(terminal.screen()).toContain('Welcome!\nName:');
    terminal.type('looq');
    terminal.tmux('send-keys', '-t', 'play', 'BSpace');
    terminal.type('k');
    terminal.enter();
    await app.waitForParam('input');
    expect(app.of('input')[0]!.data['value']).toBe('look');
    await terminal.waitScreen('Name: look');
    // Hidden input: not echoed, still delivered.
    app.output(id, 'Password: ');
    app.send({ param: 'telnet', data: { id, echo: false } });
    await app.waitForFrame((frame) => frame.param === 'telnet' && (frame.data['telnet'] as { echo: boolean }).echo === false);
    await terminal.waitScreen('Password:');
    terminal.type('hunter2');
    terminal.enter();
    await app.waitForParam('input', 2);
    expect(app.of('input')[1]!.data['value']).toBe('hunter2');
    expect(terminal.screen()).not.toContain('hunter2');
    app.send({ param: 'telnet', data: { id, echo: true } });
    // A resize reaches the app as a telnet message, as NAWS does.
    terminal.tmux('resize-window', '-t', 'play', '-x', '120', '-y', '40');
    await app.waitForFrame((frame) => frame.param === 'telnet' && (frame.data['telnet'] as { naws?: { width: number } }).naws?.width === 120);
    expect(app.of('telnet').at(-1)!.data['telnet']).toMatchObject({ naws: { width: 120, height: 40 } });
  });

  it('the user stays connected while the app is killed and comes back; the new app resumes them', async () => {
    const { ports, app, port } = await start();
    const terminal = new Terminal(port, 'stay');
    terminals.push(terminal);
    const id = await app.nextUserId();
    app.destroy(); // what kill -9 looks like from here: the socket just goes
    await sleep(100);
    terminal.type('typed while away');
    terminal.enter();
    await terminal.waitScreen('typed while away');
    const next = await scope.app(ports.clientPort, { name: 'test', acks: true });
    await next.synced();
    const resumed = next.of('connect').find((frame) => frame.data['id'] === id)!;
    expect(resumed.data['resumed']).toBe(true);
    expect(resumed.data['telnet']).toMatchObject({ ssh: { user: 'stay' }, naws: { width: 100, height: 30 } });
    await next.waitForParam('input');
    expect(next.of('input')[0]!.data['value']).toBe('typed while away');
    next.output(id, 'still here\n');
    await terminal.waitScreen('still here');
  });
});

/** Logs in with ssh2's client; resolves with the connection, or rejects with the login error. */
function login(port: number, options: Partial<ssh2.ConnectConfig> = {}): Promise<{ client: ssh2.Client; hostKey: Buffer }> {
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    let hostKey: Buffer = Buffer.alloc(0);
    client.on('ready', () => resolve({ client, hostKey }));
    client.on('error', reject);
    client.connect({
      host: '127.0.0.1',
      port,
      username: 'guest',
      hostVerifier: (key: Buffer) => {
        hostKey = key;
        return true;
      },
      ...options,
    });
    clients.push(client);
  });
}
const clients: ssh2.Client[] = [];
afterEach(() => {
  for (const client of clients.splice(0)) client.end();
});

function shell(client: ssh2.Client, pty: ssh2.PseudoTtyOptions | false = { term: 'xterm-256color', cols: 80, rows: 24 }): Promise<ssh2.ClientChannel> {
  return new Promise((resolve, reject) => client.shell(pty, (error, stream) => (error ? reject(error) : resolve(stream))));
}

describe('SSH with ssh2 clients', () => {
  it('makes the host key on first start (mode 0600) and uses the same one after a restart', async () => {
    const hostKeyFile = file('host-key');
    const first = await scope.start({ listeners: [{ kind: 'ssh', port: 0, hostKeyFile }] });
    const key = readFileSync(hostKeyFile, 'utf8');
    expect(statSync(hostKeyFile).mode & 0o777).toBe(0o600);
    const before = (await login(first.ports.listeners[1]!.port)).hostKey;
    await first.imi.close();
    const second = await scope.start({ listeners: [{ kind: 'ssh', port: 0, hostKeyFile }] });
    expect(readFileSync(hostKeyFile, 'utf8')).toBe(key);
    expect((await login(second.ports.listeners[1]!.port)).hostKey).toEqual(before);
  });

  it('fails listen() with IMI_CONFIG when the host key cannot be written or read, and nothing stays bound', async () => {
    const imi = new Intermediary({ externalPort: 0, clientPort: 0, host: '127.0.0.1', listeners: [{ kind: 'ssh', port: 0, hostKeyFile: join(dir, 'no-such-dir', 'key') }] });
    const error = await imi.listen().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ImiError);
    expect((error as ImiError).code).toBe('IMI_CONFIG');
    expect((error as ImiError).message).toMatch(/cannot write the SSH host key file/);
    const garbage = file('garbage-key');
    writeFileSync(garbage, 'not a key');
    const other = new Intermediary({ externalPort: 0, clientPort: 0, host: '127.0.0.1', listeners: [{ kind: 'ssh', port: 0, hostKeyFile: garbage }] });
    await expect(other.listen()).rejects.toMatchObject({ code: 'IMI_CONFIG' });
    await imi.close();
    await other.close();
  });

  it('with authorizedKeysFile: a listed key logs in and its fingerprint reaches the app; others are refused', async () => {
    const listed = keyPair();
    const stranger = keyPair();
    const authorizedKeysFile = file('authorized_keys');
    writeFileSync(authorizedKeysFile, `# players\n\n${listed.public} alice@example\n`);
    const { app, port } = await start({ authorizedKeysFile });
    await expect(login(port)).rejects.toThrow(/authentication methods failed/);
    await expect(login(port, { privateKey: stranger.private })).rejects.toThrow(/authentication methods failed/);
    const { client } = await login(port, { username: 'alice', privateKey: listed.private });
    await shell(client);
    await app.nextUserId();
    const expected = execFileSync('ssh-keygen', ['-l', '-f', authorizedKeysFile], { encoding: 'utf8' }).split(' ')[1];
    expect(connects(app)[0]!.data['telnet']).toMatchObject({ ssh: { user: 'alice', keyFingerprint: expected } });
  });

  it('refuses commands and a second shell; a shell without a pty works without size or type; CR LF, LF and CR end lines', async () => {
    const { app, port } = await start();
    const { client } = await login(port);
    await expect(new Promise((resolve, reject) => client.exec('ls', (error, stream) => (error ? reject(error) : resolve(stream))))).rejects.toThrow();
    const stream = await shell(client, false);
    const id = await app.nextUserId();
    const telnet = connects(app)[0]!.data['telnet'] as Record<string, unknown>;
    expect(telnet['naws']).toBeUndefined();
    expect(telnet['ttype']).toBeUndefined();
    let screen = '';
    stream.on('data', (chunk: Buffer) => (screen += chunk.toString('utf8')));
    stream.write('one\r\ntwo\nthree\rfour\r');
    await app.waitForParam('input', 4);
    expect(app.of('input').map((frame) => frame.data['value'])).toEqual(['one', 'two', 'three', 'four']);
    await waitFor(() => screen === 'one\r\ntwo\r\nthree\r\nfour\r\n', 5000, () => `the echo, got ${JSON.stringify(screen)}`);
    await expect(shell(client)).rejects.toThrow();
    app.output(id, 'a\nb\r\n');
    await waitFor(() => screen.endsWith('a\r\nb\r\n'), 5000, () => `the output with CR LF, got ${JSON.stringify(screen)}`);
  });

  it('line editing: Ctrl-C throws the line away (even one past maxLineBytes), escape sequences of arrow, function and Alt keys are dropped, also split across packets', async () => {
    const { app, port } = await start({}, { maxLineBytes: 16 });
    const { client } = await login(port);
    const stream = await shell(client);
    const id = await app.nextUserId();
    let screen = '';
    stream.on('data', (chunk: Buffer) => (screen += chunk.toString('utf8')));
    stream.write('say hi\x03look\r');
    await app.waitForParam('input');
    stream.write('no\x1b[A\x1b[Brth\x1bOD\x1b[1;5C\x1bx\r');
    await app.waitForParam('input', 2);
    for (const part of ['ea\x1b', '[', '1;', '5', 'Cst\r']) {
      stream.write(part);
      await sleep(20);
    }
    await app.waitForParam('input', 3);
    stream.write(`${'x'.repeat(40)}\x03up\r`);
    await app.waitForParam('input', 4);
    // Esc then Enter: the Enter still ends the line.
    stream.write('down\x1b\r');
    await app.waitForParam('input', 5);
    expect(app.of('input').map((frame) => frame.data['value'])).toEqual(['look', 'north', 'east', 'up', 'down']);
    expect(app.errors()).toEqual([]);
    await waitFor(() => screen.endsWith('down\r\n'), 5000, () => `the echo, got ${JSON.stringify(screen)}`);
    expect(screen).toBe(`say hi^C\r\nlook\r\nnorth\r\neast\r\n${'x'.repeat(40)}^C\r\nup\r\ndown\r\n`);
    // Hidden input: Ctrl-C still throws the line away, and shows nothing.
    app.send({ param: 'telnet', data: { id, echo: false } });
    await app.waitForFrame((frame) => frame.param === 'telnet' && (frame.data['telnet'] as { echo: boolean }).echo === false);
    stream.write('wrong\x03hunter2\r');
    await app.waitForParam('input', 6);
    expect(app.of('input')[5]!.data['value']).toBe('hunter2');
    expect(screen).not.toContain('wrong');
  });
});
