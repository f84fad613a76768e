// The client and telnet users: session.telnet, the `telnet` and `gmcp`
// events, setEcho and sendGmcp, against a real intermediary with a telnet
// listener and a telnet client written by hand on a raw socket.
import net from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import type { ImiError, JsonValue, TelnetInfo } from '@imi/core';
import type { ListeningPorts } from '@imi/server';
import { Client, type Session } from '../src/index.js';
import { User, onCleanup, runCleanups, startImi, waitFor } from './helpers.js';

afterEach(runCleanups);

const IAC = 255;
const [WILL, WONT, DO, DONT, SB, SE] = [251, 252, 253, 254, 250, 240];
const [ECHO, TTYPE, EOR, NAWS, GMCP] = [1, 24, 25, 31, 201];
/** The telnet commands that end a prompt: end of record (RFC 885) and go ahead. */
const [IAC_EOR, IAC_GA] = [239, 249];

/** A telnet client: agrees to NAWS (80x24) and GMCP, refuses TTYPE, agrees to EOR when asked to (else refuses it), records what it gets. */
async function telnetClient(port: number, { eor = false } = {}): Promise<{ socket: net.Socket; bytes: () => Buffer; text: () => string }> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  onCleanup(() => {
    socket.destroy();
  });
  const chunks: Buffer[] = [];
  socket.on('error', () => {});
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    for (let i = 0; i + 2 < chunk.length; i++) {
      if (chunk[i] !== IAC) continue;
      const [verb, option] = [chunk[i + 1], chunk[i + 2]];
      if (verb === DO && option === NAWS) socket.write(Buffer.from([IAC, WILL, NAWS, IAC, SB, NAWS, 0, 80, 0, 24, IAC, SE]));
      else if (verb === DO && option === TTYPE) socket.write(Buffer.from([IAC, WONT, TTYPE]));
      else if (verb === WILL && option === GMCP) socket.write(Buffer.from([IAC, DO, GMCP]));
      else if (verb === WILL && option === ECHO) socket.write(Buffer.from([IAC, DO, ECHO]));
      else if (verb === WILL && option === EOR) socket.write(Buffer.from([IAC, eor ? DO : DONT, EOR]));
    }
  });
  const bytes = (): Buffer => Buffer.concat(chunks);
  return { socket, bytes, text: () => bytes().toString('latin1') };
}

function gmcpBytes(text: string): Buffer {
  return Buffer.concat([Buffer.from([IAC, SB, GMCP]), Buffer.from(text), Buffer.from([IAC, SE])]);
}

function makeClient(port: number): { app: Client; errors: ImiError[] } {
  const app = new Client({ port, tickIntervalMs: 0, reconnect: { initialDelayMs: 10, maxDelayMs: 100 } });
  const errors: ImiError[] = [];
  app.on('error', (error) => errors.push(error));
  onCleanup(() => app.close());
  return { app, errors };
}

describe('telnet users', () => {
  it('session.telnet, the telnet and gmcp events, setEcho and sendGmcp', async () => {
    // startImi returns every port listen() reported, the listeners among them.
    const { clientPort, listeners } = (await startImi({ listeners: [{ kind: 'telnet', port: 0 }] })) as Awaited<ReturnType<typeof startImi>> & ListeningPorts;
    const { app, errors } = makeClient(clientPort);
    const events: string[] = [];
    const gmcp: Array<[string, JsonValue | undefined]> = [];
    let session: Session | undefined;
    app.on('connect', (s) => {
      session = s;
      events.push('connect');
    });
    app.on('telnet', (s, info: Readonly<TelnetInfo>) => {
      expect(s).toBe(session);
      expect(s.telnet).toEqual(info);
      events.push(`telnet ${info.naws?.width}x${info.naws?.height}`);
    });
    app.on('gmcp', (s, packageName, value) => {
      expect(s).toBe(session);
      gmcp.push([packageName, value]);
    });
    await app.connect();
    const client = await telnetClient(listeners[1]!.port);
    await waitFor(() => session !== undefined, 'connect');
    expect(session!.transport).toBe('telnet');
    expect(session!.telnet).toEqual({ echo: true, sga: false, gmcp: true, mccp2: false, eor: false, msdp: false, naws: { width: 80, height: 24 } });
    expect(Object.isFrozen(session!.telnet)).toBe(true);
    expect(session!.toJSON().telnet).toEqual(session!.telnet);

    client.socket.write(Buffer.from([IAC, SB, NAWS, 0, 100, 0, 30, IAC, SE]));
    client.socket.write(gmcpBytes('Core.Hello {"client":"test","version":"1"}'));
    client.socket.write(gmcpBytes('Core.Ping'));
    await waitFor(() => gmcp.length === 2 && events.length === 2, 'telnet and gmcp events');
    expect(events).toEqual(['connect', 'telnet 100x30']);
    expect(gmcp).toEqual([
      ['Core.Hello', { client: 'test', version: '1' }],
      ['Core.Ping', undefined],
    ]);

    session!.send('Password: ');
    session!.setEcho(false);
    session!.sendGmcp('Char.Vitals', { hp: 7 });
    app.sendGmcp(session!.id, 'Core.Goodbye');
    await waitFor(() => client.text().includes('Core.Goodbye'), 'GMCP to reach the client');
    const text = client.text();
    expect(text.indexOf('Password: ')).toBeLessThan(text.indexOf(String.fromCharCode(IAC, WILL, ECHO)));
    expect(text).toContain(String.fromCharCode(IAC, SB, GMCP) + 'Char.Vitals {"hp":7}' + String.fromCharCode(IAC, SE));
    await waitFor(() => session!.telnet?.echo === false, 'the echo off to be told back');
    app.setEcho(session!.id, true);
    await waitFor(() => client.text().includes(String.fromCharCode(IAC, WONT, ECHO)), 'WONT ECHO');
    await waitFor(() => session!.telnet?.echo === true, 'the echo on to be told back');
    expect(errors).toEqual([]);
  });

  it('session.prompt() and the prompt send option: IAC EOR for a client that agreed to EOR, IAC GA for one that did not; tcp users get the text', async () => {
    const { clientPort, externalPort, listeners } = (await startImi({ listeners: [{ kind: 'telnet', port: 0 }] })) as Awaited<ReturnType<typeof startImi>> & ListeningPorts;
    const { app, errors } = makeClient(clientPort);
    const sessions: Session[] = [];
    app.on('connect', (s) => {
      sessions.push(s);
    });
    await app.connect();
    const mudlet = await telnetClient(listeners[1]!.port, { eor: true });
    await waitFor(() => sessions.length === 1, 'the EOR client');
    const plain = await telnetClient(listeners[1]!.port);
    await waitFor(() => sessions.length === 2, 'the GA client');
    const user = await User.connect(externalPort);
    await waitFor(() => sessions.length === 3, 'the tcp user');
    const [eorSession, gaSession, tcpSession] = sessions as [Session, Session, Session];
    expect(eorSession.telnet).toMatchObject({ eor: true, sga: false });
    expect(gaSession.telnet).toMatchObject({ eor: false, sga: false });
    expect(tcpSession.telnet).toBeUndefined();

    for (const session of sessions) {
      session.send('Welcome\n');
      session.prompt('HP 10> ');
    }
    app.multisend([eorSession.id, gaSession.id], 'Name? ', { prompt: true });
    app.send(gaSession.id, 'not a prompt> ', { prompt: false });
    tcpSession.send('end\r\n');
    const tail = (text: string, end: number[]): string => text + String.fromCharCode(IAC, ...end);
    await waitFor(() => plain.text().includes('not a prompt> ') && mudlet.text().includes(tail('Name? ', [IAC_EOR])), 'the prompts');
    await user.waitFor('end\r\n');
    // Telnet users get NVT line ends (CR LF) and the prompt marks; tcp users the text as it is.
    expect(mudlet.text()).toContain(tail('Welcome\r\nHP 10> ', [IAC_EOR]) + tail('Name? ', [IAC_EOR]));
    expect(plain.text()).toContain(tail('Welcome\r\nHP 10> ', [IAC_GA]) + tail('Name? ', [IAC_GA]) + 'not a prompt> ');
    expect(plain.text()).not.toContain(String.fromCharCode(IAC, IAC_EOR));
    expect(mudlet.text()).not.toContain(String.fromCharCode(IAC, IAC_GA));
    expect(user.received).toBe('Welcome\nHP 10> end\r\n');
    expect(() => app.send(gaSession.id, 'x', { prompt: 'yes' as unknown as boolean })).toThrow(expect.objectContaining({ code: 'IMI_BAD_MESSAGE' }));
    expect(errors).toEqual([]);
  });

  it('tcp users have no telnet info, and setEcho/sendGmcp to them are harmless', async () => {
    const { externalPort, clientPort } = await startImi();
    const { app, errors } = makeClient(clientPort);
    let session: Session | undefined;
    app.on('connect', (s) => (session = s));
    await app.connect();
    const user = await User.connect(externalPort);
    await waitFor(() => session !== undefined, 'connect');
    expect(session!.telnet).toBeUndefined();
    expect('telnet' in session!.toJSON()).toBe(false);
    session!.setEcho(false);
    session!.sendGmcp('Char.Vitals', 1);
    session!.send('still fine\r\n');
    await user.waitFor('still fine');
    expect(user.received).toBe('still fine\r\n');
    expect(errors).toEqual([]);
  });

  it('rejects a bad GMCP package name or a non-boolean echo before sending', async () => {
    const { clientPort } = await startImi();
    const { app } = makeClient(clientPort);
    await app.connect();
    expect(() => app.sendGmcp('u1', 'Char Vitals')).toThrow(expect.objectContaining({ code: 'IMI_BAD_MESSAGE' }));
    expect(() => app.sendGmcp('u1', '')).toThrow(expect.objectContaining({ code: 'IMI_BAD_MESSAGE' }));
    expect(() => app.setEcho('u1', 'no' as unknown as boolean)).toThrow(expect.objectContaining({ code: 'IMI_BAD_MESSAGE' }));
  });
});

