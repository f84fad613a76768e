// The imi-server command's listener flags (--telnet-port, --ws-port,
// --web-port, --tls-port, --telnet-tls-port, --tls-cert/--tls-key,
// --listeners, and "listeners" in a config file), run as a child process.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawApp, waitFor } from './harness.js';
import { CLI, commandsAvailable, startServer, stopAll } from './process-harness.js';
import { TelnetPeer, WsUser, makeCertificate } from './transport-harness.js';

afterAll(stopAll);

/** Runs the CLI to its end, for flags it must refuse. */
function runToExit(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, '--external-port', '0', '--client-port', '0', '--host', '127.0.0.1', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe.skipIf(!commandsAvailable('openssl'))('imi-server listener flags', () => {
  let certificate: ReturnType<typeof makeCertificate>;
  const closers: Array<() => void> = [];
  beforeAll(() => {
    certificate = makeCertificate();
  });
  afterAll(() => {
    for (const close of closers) close();
    certificate.remove();
  });

  it('adds every listener the flags ask for, names them after the unchanged listening prefix, and users of each reach the app', async () => {
    const server = await startServer([
      '--telnet-port', '0',
      '--telnet-tls-port', '0',
      '--tls-port', '0',
      '--ws-port', '0',
      '--web-port', '0',
      '--tls-cert', certificate.certFile,
      '--tls-key', certificate.keyFile,
    ]);
    expect(server.stdout()).toMatch(/^imi-server listening: users on port \d+ \(host 127\.0\.0\.1\), app on port \d+ \(host 127\.0\.0\.1\), telnet on port \d+/m);
    expect(server.listeners.map((listener) => [listener.transport, listener.details])).toEqual([
      ['telnet', 'host 127.0.0.1'],
      ['telnet+tls', 'host 127.0.0.1'],
      ['tls', 'host 127.0.0.1'],
      ['ws', 'host 127.0.0.1'],
      ['ws', 'host 127.0.0.1, path /ws, web page /'],
    ]);
    const app = await RawApp.connect(server.clientPort, { hello: { name: 'cli' } });
    closers.push(() => app.destroy());
    await app.synced();
    const [telnet, telnetTls, tlsLines, ws, web] = server.listeners.map((listener) => listener.port) as [number, number, number, number, number];

    const peer = await TelnetPeer.connect(telnet);
    closers.push(() => peer.socket.destroy());
    const securePeer = await TelnetPeer.connect(telnetTls, { ca: certificate.cert });
    closers.push(() => securePeer.socket.destroy());
    const socket = tls.connect({ port: tlsLines, host: '127.0.0.1', ca: certificate.cert, servername: 'localhost' });
    socket.on('error', () => {});
    closers.push(() => socket.destroy());
    const wsUser = await WsUser.connect(`ws://127.0.0.1:${ws}/anything`);
    closers.push(() => wsUser.ws.terminate());
    const webUser = await WsUser.connect(`ws://127.0.0.1:${web}/ws`);
    closers.push(() => webUser.ws.terminate());
    await waitFor(() => app.of('connect').length === 5, 10_000, 'five users');
    expect(app.of('connect').map((frame) => frame.data['transport']).sort()).toEqual(['telnet', 'telnet+tls', 'tls', 'ws', 'ws']);
  });

  it('takes listeners as JSON, from --listeners and from the config file (flags add to the file)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'imi-cli-'));
    closers.push(() => rmSync(dir, { recursive: true, force: true }));
    const config = join(dir, 'config.json');
    writeFileSync(config, JSON.stringify({ listeners: [{ kind: 'telnet', port: 0, mccp2: true }] }));
    const fromFile = await startServer(['--config', config, '--ws-port', '0']);
    expect(fromFile.listeners.map((listener) => listener.transport)).toEqual(['telnet', 'ws']);
    const fromFlag = await startServer(['--listeners', JSON.stringify([{ kind: 'ws', port: 0, path: '/game' }])]);
    expect(fromFlag.listeners.map((listener) => listener.details)).toEqual(['host 127.0.0.1, path /game']);
  });

  it('--mssp-name names the server to MSSP crawlers; --telnet-msdp false stops offering MSDP', async () => {
    const server = await startServer(['--telnet-port', '0', '--mssp-name', 'CLI MUD', '--telnet-msdp', 'false']);
    const peer = await TelnetPeer.connect(server.listeners[0]!.port, { agree: [70] });
    closers.push(() => peer.socket.destroy());
    await waitFor(() => peer.subs.some((sub) => sub.option === 70), 5000, 'the MSSP variables');
    expect(peer.subs.find((sub) => sub.option === 70)!.data.toString('latin1')).toMatch(/^\x01NAME\x02CLI MUD\x01PLAYERS\x02\d+\x01UPTIME\x02\d+$/);
    expect(peer.commands).toContain('WILL 70');
    expect(peer.commands).not.toContain('WILL 69');
  });

  it('refuses impossible listener flags with a clear message and exit code 2', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--tls-port', '0'], /--tls-port and --telnet-tls-port need --tls-cert <file> and --tls-key <file>/],
      [['--tls-cert', 'c.pem', '--tls-key', 'k.pem'], /--tls-cert and --tls-key are for --tls-port or --telnet-tls-port/],
      [['--telnet-port', 'abc'], /--telnet-port must be a port number/],
      [['--telnet-mccp2', 'yes', '--telnet-port', '0'], /--telnet-mccp2 must be true or false/],
      [['--telnet-mssp', 'on', '--telnet-port', '0'], /--telnet-mssp must be true or false/],
      [['--telnet-msdp', '1', '--telnet-port', '0'], /--telnet-msdp must be true or false/],
      [['--ssh-host-key', 'k'], /--ssh-host-key and --ssh-authorized-keys are for --ssh-port/],
      [['--listeners', '[{"kind":"ssh","port":0,"tls":{"cert":"c","key":"k"}}]'], /listeners\[0\]\.tls is not an option of "ssh" listeners/],
      [['--mssp-name', '', '--telnet-port', '0'], /msspName must be 1-64 characters/],
      [['--listeners', '[{"kind":"gopher","port":70}]'], /listeners\[0\]\.kind must be "tcp", "telnet", "ws" or "ssh"/],
      [['--listeners', 'not json'], /--listeners must be JSON/],
    ];
    for (const [args, message] of cases) {
      const result = await runToExit(args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(message);
    }
  });

  it('exits 1 when a TLS listener cannot read its certificate', async () => {
    const result = await runToExit(['--tls-port', '0', '--tls-cert', '/nonexistent.pem', '--tls-key', certificate.keyFile]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('cannot read the TLS certificate file /nonexistent.pem');
  });
});
