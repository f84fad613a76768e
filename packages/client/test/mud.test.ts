// The client and MUD protocols: setServerStatus (MSSP, answered to listing
// crawlers by the intermediary), MSDP variables as `gmcp` events with their
// protocol, and sendGmcp's `protocol`, against a real intermediary with a
// telnet listener and hand-written telnet peers on raw sockets.
import net from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import type { ImiError, JsonValue } from '@imi/core';
import type { Intermediary, ListeningPorts } from '@imi/server';
import { Client, type Session } from '../src/index.js';
import { onCleanup, runCleanups, startImi, waitFor } from './helpers.js';

afterEach(runCleanups);

const IAC = 255;
const [WILL, WONT, DO, DONT, SB, SE] = [251, 252, 253, 254, 250, 240];
const [MSDP, MSSP] = [69, 70];

/** A telnet peer that refuses everything but `agree`, and records what it gets. */
async function peer(port: number, agree: number[]): Promise<{ socket: net.Socket; bytes: () => Buffer }> {
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
      const [verb, option] = [chunk[i + 1]!, chunk[i + 2]!];
      if (verb === WILL) socket.write(Buffer.from([IAC, agree.includes(option) ? DO : DONT, option]));
      else if (verb === DO) socket.write(Buffer.from([IAC, WONT, option]));
    }
  });
  return { socket, bytes: () => Buffer.concat(chunks) };
}

function makeClient(port: number): { app: Client; errors: ImiError[] } {
  const app = new Client({ port, tickIntervalMs: 0, reconnect: { initialDelayMs: 10, maxDelayMs: 100 } });
  const errors: ImiError[] = [];
  app.on('error', (error) => errors.push(error));
  onCleanup(() => app.close());
  return { app, errors };
}

async function mssp(port: number): Promise<string> {
  const crawler = await peer(port, [MSSP]);
  const start = Buffer.from([IAC, SB, MSSP]);
  await waitFor(() => crawler.bytes().includes(start) && crawler.bytes().indexOf(Buffer.from([IAC, SE]), crawler.bytes().indexOf(start)) !== -1, 'MSSP');
  const bytes = crawler.bytes();
  const at = bytes.indexOf(start);
  crawler.socket.destroy();
  return bytes.subarray(at + 3, bytes.indexOf(Buffer.from([IAC, SE]), at)).toString('latin1');
}

describe('MUD protocols from the client', () => {
  it('setServerStatus: crawlers get the variables, also from an intermediary that restarted under the app', async () => {
    const running = (await startImi({ listeners: [{ kind: 'telnet', port: 0 }], msspName: 'Test MUD' })) as Awaited<ReturnType<typeof startImi>> & ListeningPorts;
    const { app, errors } = makeClient(running.clientPort);
    expect(() => app.setServerStatus({ GENRE: 'bad\u0001' })).toThrow(/IMI_BAD_MESSAGE|variables/);
    app.setServerStatus({ GENRE: 'Fantasy', PORT: [4000, 4001] });
    await app.connect();
    await waitFor(() => running.imi.appConnected, 'the app');
    const text = await mssp(running.listeners[1]!.port);
    expect(text).toMatch(/^\x01NAME\x02Test MUD\x01PLAYERS\x020\x01UPTIME\x02\d+\x01GENRE\x02Fantasy\x01PORT\x024000\x024001$/);
    // A new intermediary on the same app port: the client sends the set again after it reconnects.
    const clientPort = running.clientPort;
    await (running.imi as Intermediary).close();
    const second = (await startImi({ clientPort, listeners: [{ kind: 'telnet', port: 0 }] })) as Awaited<ReturnType<typeof startImi>> & ListeningPorts;
    await waitFor(() => second.imi.appConnected, 'the app back');
    // The client sends the set right after its resync; a crawler may come just before it lands.
    let again = '';
    for (let i = 0; i < 50 && !again.includes('GENRE'); i++) again = await mssp(second.listeners[1]!.port);
    expect(again).toMatch(/\x01GENRE\x02Fantasy\x01PORT\x024000\x024001$/);
    expect(errors).toEqual([]);
  });

  it('MSDP variables arrive as gmcp events with protocol "msdp"; sendGmcp picks the protocol', async () => {
    const { clientPort, listeners } = (await startImi({ listeners: [{ kind: 'telnet', port: 0 }] })) as Awaited<ReturnType<typeof startImi>> & ListeningPorts;
    const { app, errors } = makeClient(clientPort);
    let session: Session | undefined;
    const got: Array<[string, JsonValue | undefined, string]> = [];
    app.on('connect', (s) => {
      session = s;
    });
    app.on('gmcp', (_s, packageName, value, protocol) => got.push([packageName, value, protocol]));
    await app.connect();
    const user = await peer(listeners[1]!.port, [MSDP]);
    await waitFor(() => session !== undefined, 'connect');
    expect(session!.telnet).toMatchObject({ msdp: true, gmcp: false });
    user.socket.write(Buffer.from([IAC, SB, MSDP, 1, ...Buffer.from('HEALTH'), 2, ...Buffer.from('10'), IAC, SE]));
    await waitFor(() => got.length === 1, 'the MSDP variable');
    expect(got).toEqual([['HEALTH', '10', 'msdp']]);
    session!.sendGmcp('MANA', 5);
    session!.sendGmcp('Char.Vitals', { hp: 1 }, 'gmcp');
    session!.send('end\r\n');
    await waitFor(() => user.bytes().includes(Buffer.from('end')), 'the text');
    const bytes = user.bytes();
    expect(bytes.includes(Buffer.from([IAC, SB, MSDP, 1, ...Buffer.from('MANA'), 2, ...Buffer.from('5'), IAC, SE]))).toBe(true);
    expect(bytes.includes(Buffer.from('Char.Vitals'))).toBe(false);
    expect(() => app.sendGmcp(session!.id, 'X', 1, { protocol: 'telnet' as 'gmcp' })).toThrow(/protocol/);
    expect(errors).toEqual([]);
  });
});
