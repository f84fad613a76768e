// Peers that do not play along: a kicked user whose client never closes its
// side, a peer whose network vanished (keepalive, telnet NOP probes), and a
// connection reset before it was accepted.
import net from 'node:net';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { sleep, testScope, waitFor, withAppAndUser } from './harness.js';
import { TelnetPeer } from './transport-harness.js';

const scope = testScope();

describe('a user the app kicks', () => {
  it('is gone for the app at once (disconnect, stats, resync) even if their client never closes; the socket lingers at most closeTimeoutMs', async () => {
    const { imi, ports, app } = await withAppAndUser(scope, { appDownNotice: false, closeTimeoutMs: 300 });
    // nc: keeps its side open after the server's FIN.
    const stubborn = net.connect({ port: ports.externalPort, host: '127.0.0.1', allowHalfOpen: true });
    let received = '';
    let ended = false;
    let failed: NodeJS.ErrnoException | undefined;
    stubborn.on('data', (chunk: Buffer) => (received += chunk.toString('utf8')));
    stubborn.on('end', () => (ended = true));
    stubborn.on('error', (error: NodeJS.ErrnoException) => (failed = error));
    try {
      const id = await app.nextUserId(1);
      const kickedAt = Date.now();
      app.send({ param: 'disconnect', data: { id, value: 'Bye.\r\n' } });
      const disconnect = await app.waitForFrame((f) => f.param === 'disconnect' && f.data['id'] === id, 2000, 'the disconnect');
      expect(disconnect.data).toEqual({ id, reason: 'kicked' });
      expect(Date.now() - kickedAt).toBeLessThan(1000);
      expect(imi.session(id)).toBeUndefined();
      expect(imi.stats().sessions).toBe(1); // the first user only
      await waitFor(() => ended);
      expect(received).toBe('Bye.\r\n');
      // Within the linger the socket still exists: what the client sends is read and dropped.
      stubborn.write('still here?\r\n');
      // A new app's resync does not announce the kicked user.
      app.destroy();
      const next = await scope.app(ports.clientPort, { name: 'next' });
      await next.synced();
      expect(next.of('connect').map((f) => f.data['id'])).not.toContain(id);
      expect(next.of('input')).toEqual([]);
      expect(failed).toBeUndefined();
      // Past closeTimeoutMs the socket is destroyed: the client's writes are answered with a reset.
      const probing = setInterval(() => stubborn.write('and now?\r\n'), 50);
      try {
        await waitFor(() => failed !== undefined, 3000, 'a reset from the destroyed socket');
      } finally {
        clearInterval(probing);
      }
      expect(['ECONNRESET', 'EPIPE']).toContain(failed!.code);
      expect(Date.now() - kickedAt).toBeGreaterThanOrEqual(290);
    } finally {
      stubborn.destroy();
    }
  });
});

/** The kernel's view of this host's TCP sockets: local port, remote port, timer kind (2: keepalive), and its expiry in ticks. */
function tcpSockets(): Array<{ local: number; remote: number; timer: number; when: number }> {
  const rows: Array<{ local: number; remote: number; timer: number; when: number }> = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').trim().split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const port = (address: string): number => parseInt(address.split(':')[1]!, 16);
      const [timer, when] = fields[5]!.split(':');
      rows.push({ local: port(fields[1]!), remote: port(fields[2]!), timer: parseInt(timer!, 16), when: parseInt(when!, 16) });
    }
  }
  return rows;
}

/** The intermediary's end of a user's connection, as the kernel sees it. */
function serverSide(serverPort: number, client: net.Socket): { timer: number; when: number } {
  const row = tcpSockets().find((r) => r.local === serverPort && r.remote === client.localPort);
  if (row === undefined) throw new Error(`no socket ${serverPort} <- ${client.localPort} in /proc/net/tcp`);
  return row;
}

describe('a peer whose network vanished', () => {
  it.runIf(existsSync('/proc/net/tcp'))('TCP and telnet users get TCP keepalive after keepAliveMs of silence; 0 turns it off', async () => {
    const { ports, app } = await withAppAndUser(scope, { keepAliveMs: 30_000, listeners: [{ kind: 'telnet', port: 0, negotiationMs: 0 }] });
    const telnetPort = ports.listeners[1]!.port;
    const telnet = await TelnetPeer.connect(telnetPort);
    const tcp = await scope.user(ports.externalPort);
    try {
      await app.nextUserId(2);
      for (const [port, client] of [[ports.externalPort, tcp.socket], [telnetPort, telnet.socket]] as const) {
        // Timer 1 is the retransmit timer: data just written (a welcome, a
        // negotiation) and not acked yet. Once the connection is idle, the
        // keepalive timer (2) must run.
        await waitFor(() => serverSide(port, client).timer !== 1, 5000, 'the connection to be idle');
        const side = serverSide(port, client);
        expect(side.timer).toBe(2); // the keepalive timer runs
        // Its expiry, in clock ticks (100 a second): the first probe is due about 30 s out.
        expect(side.when).toBeGreaterThan(2500);
        expect(side.when).toBeLessThanOrEqual(3000);
      }
    } finally {
      telnet.socket.destroy();
    }
    const off = await scope.start({ keepAliveMs: 0 });
    const quiet = await scope.user(off.ports.externalPort);
    await waitFor(() => off.imi.stats().sessions === 1);
    expect(serverSide(off.ports.externalPort, quiet.socket).timer).toBe(0);
  });

  it('telnetProbeMs: telnet users get IAC NOP that often, their input unharmed; off by default', async () => {
    const { ports } = await scope.start({ telnetProbeMs: 50, listeners: [{ kind: 'telnet', port: 0, negotiationMs: 0 }] });
    const app = await scope.app(ports.clientPort, { name: 'test' });
    await app.synced();
    const user = await TelnetPeer.connect(ports.listeners[1]!.port);
    const nops = countNops(user.socket);
    try {
      await app.nextUserId();
      await waitFor(() => nops.count >= 3, 2000, 'three NOPs');
      user.send('still typing');
      const input = await app.waitForFrame((f) => f.param === 'input', 2000, 'the line');
      expect(input.data['value']).toBe('still typing');
    } finally {
      user.socket.destroy();
    }
    const quiet = await scope.start({ listeners: [{ kind: 'telnet', port: 0, negotiationMs: 0 }] });
    const other = await TelnetPeer.connect(quiet.ports.listeners[1]!.port);
    const none = countNops(other.socket);
    try {
      await waitFor(() => quiet.imi.stats().sessions === 1);
      await sleep(300);
      expect(none.count).toBe(0);
    } finally {
      other.socket.destroy();
    }
  });

  it('a peer that resets is disconnected with reason "error" (a dead peer found by keepalive is "timeout")', async () => {
    const { ports, app } = await withAppAndUser(scope, { telnetProbeMs: 50, listeners: [{ kind: 'telnet', port: 0, negotiationMs: 0 }] });
    const user = await TelnetPeer.connect(ports.listeners[1]!.port);
    const id = await app.nextUserId(1);
    user.socket.resetAndDestroy();
    const disconnect = await app.waitForFrame((f) => f.param === 'disconnect' && f.data['id'] === id, 2000, 'the disconnect');
    expect(disconnect.data['reason']).toBe('error');
  });
});

/** Counts `IAC NOP` on a raw socket (no MCCP2 in these tests). */
function countNops(socket: net.Socket): { count: number } {
  const seen = { count: 0 };
  let last = -1;
  socket.on('data', (chunk: Buffer) => {
    for (const byte of chunk) {
      if (last === 255 && byte === 241) seen.count++;
      last = last === 255 && byte === 255 ? -1 : byte;
    }
  });
  return seen;
}

describe('a connection reset before it is accepted', () => {
  it('is dropped quietly: never refused, never announced with an empty address; users after it are let in', async () => {
    const { imi, ports } = await scope.start({ appDownNotice: false });
    const app = await scope.app(ports.clientPort, { name: 'test' });
    await app.synced();
    // Health checks, a reconnect storm: connect, then RST at once.
    await Promise.all(
      Array.from({ length: 60 }, async () => {
        const socket = net.connect({ port: ports.externalPort, host: '127.0.0.1' });
        socket.on('error', () => {});
        await once(socket, 'connect');
        socket.resetAndDestroy();
        await once(socket, 'close');
      }),
    );
    await sleep(100);
    await app.barrier();
    const user = await scope.user(ports.externalPort);
    await waitFor(() => app.of('connect').some((f) => (f.data['remote'] as { port: number }).port === user.socket.localPort), 2000, "the normal user's connect");
    user.send('hello');
    await app.waitForFrame((f) => f.param === 'input' && f.data['value'] === 'hello', 2000, 'their line');
    expect(imi.stats().refused).toEqual({ maxConnections: 0, maxConnectionsPerIp: 0, connectRatePerIp: 0 });
    for (const connect of app.of('connect')) {
      const remote = connect.data['remote'] as { address: string; port: number };
      expect(remote.address).toBe('127.0.0.1');
      expect(remote.port).toBeGreaterThan(0);
    }
  });
});

describe('reports only counted past the log budget', () => {
  it('are summed up at the level of the reports they stand for (debug for IMI_UNKNOWN_ID)', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'trace' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const { ports } = await scope.start({ logger });
    const app = await scope.app(ports.clientPort, { name: 'test' });
    await app.synced();
    // Past the log burst (errorLogBurst, 20): the rest are only counted, and
    // summed up errorSummaryIntervalMs (1 s) after the first of them.
    // (No barrier: its error frame would be one of the suppressed.)
    for (let i = 0; i < 30; i++) app.output(`nobody-${i}`, 'x');
    const findSummary = (): Record<string, unknown> | undefined => lines.find((line) => line['code'] === 'IMI_UNKNOWN_ID' && typeof line['suppressed'] === 'number');
    const deadline = Date.now() + 10_000;
    while (findSummary() === undefined && Date.now() < deadline) await sleep(20);
    const summary = findSummary();
    expect(summary).toBeDefined();
    expect(summary!['suppressed']).toBeGreaterThan(0);
    expect(summary!['level']).toBe(20); // debug, like the reports
  });
});
