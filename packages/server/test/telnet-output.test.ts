// What telnet users get from the app, against a real intermediary on real
// sockets: the app's text as NVT output (RFC 854: bare LF → CR LF, bare CR
// → CR NUL, also across outputs), and prompts (`output` with `prompt: true`)
// ended by IAC EOR (RFC 885) or IAC GA (unless SGA, RFC 858).
import { afterEach, describe, expect, it } from 'vitest';
import { TELNET, TELNET_OPTION, type IntermediaryOptions, type ListenerOptions } from '@imi/server';
import { RawApp, sleep, testScope, waitFor } from './harness.js';
import { TelnetPeer, WsUser } from './transport-harness.js';

const scope = testScope();
const { IAC, DO, GA, EOR: EOR_COMMAND } = TELNET;
const { BINARY, EOR, SGA } = TELNET_OPTION;

const peers: Array<TelnetPeer | WsUser> = [];
afterEach(() => {
  for (const peer of peers.splice(0)) {
    if (peer instanceof TelnetPeer) peer.socket.destroy();
    else peer.ws.terminate();
  }
});

async function telnetUser(port: number, options?: Parameters<typeof TelnetPeer.connect>[1]): Promise<TelnetPeer> {
  const peer = await TelnetPeer.connect(port, options);
  peers.push(peer);
  return peer;
}

/** An intermediary with a telnet listener (and the given others), a synced app. */
async function start(telnet: Partial<Extract<ListenerOptions, { kind: 'telnet' }>> = {}, others: ListenerOptions[] = [], options: IntermediaryOptions = {}) {
  const { imi, ports } = await scope.start({ listeners: [{ kind: 'telnet', port: 0, ...telnet }, ...others], ...options });
  const app = await scope.app(ports.clientPort, { name: 'test' });
  await app.synced();
  return { imi, ports, app, telnetPort: ports.listeners[1]!.port, port: (index: number) => ports.listeners[index + 2]!.port };
}

/** Sends `output` with `data.prompt` (the harness's `output` puts extra fields in the envelope). */
function sendOutput(app: RawApp, id: string, value: string, prompt: boolean): void {
  app.send({ param: 'output', data: { id, value, prompt } });
}

/** Connects a telnet user and returns it with its session id, once announced. */
async function connectTelnet(app: RawApp, port: number, options?: Parameters<typeof TelnetPeer.connect>[1], known = 0): Promise<{ peer: TelnetPeer; id: string }> {
  const peer = await telnetUser(port, options);
  const id = await app.nextUserId(known);
  return { peer, id };
}

describe('NVT output (RFC 854): what telnet users get for the app\'s line ends', () => {
  it('bare LF becomes CR LF, a bare CR becomes CR NUL, CR LF stays; a plain tcp user gets the same outputs verbatim', async () => {
    const { ports, app, telnetPort } = await start();
    const { peer, id } = await connectTelnet(app, telnetPort);
    const tcp = await scope.user(ports.externalPort);
    const tcpId = await app.nextUserId(1);
    const outputs = ['line1\nline2\n', '50%\r', '60%\r', 'done\r\n', 'crlf\r\nand cr nul\r\0kept\r\r\n'];
    for (const value of outputs) {
      app.output(id, value);
      app.output(tcpId, value);
    }
    const expected = 'line1\r\nline2\r\n50%\r\u000060%\r\u0000done\r\ncrlf\r\nand cr nul\r\u0000kept\r\u0000\r\n';
    await peer.waitFor('kept');
    await waitFor(() => peer.text === expected, 5000, () => `telnet text ${JSON.stringify(peer.text)}`);
    await tcp.waitFor('kept\r\r\n');
    expect(tcp.received).toBe(outputs.join(''));
  });

  it('a CR ending one output and an LF starting the next, in separate turns, are CR LF; the CR is written at once, not held', async () => {
    const { app, telnetPort } = await start();
    const { peer, id } = await connectTelnet(app, telnetPort);
    app.output(id, 'Loading 50%\r');
    // The CR reaches the user at once: nothing waits for the next output.
    await waitFor(() => peer.text === 'Loading 50%\r', 5000, () => `the CR (got ${JSON.stringify(peer.text)})`);
    await sleep(50);
    expect(peer.text).toBe('Loading 50%\r');
    app.output(id, '\nnext line\r\n');
    await peer.waitFor('next line\r\n');
    expect(peer.text).toBe('Loading 50%\r\nnext line\r\n');
    // A CR followed later by other text gets its NUL then.
    app.output(id, '60%\r');
    await waitFor(() => peer.text.endsWith('60%\r'), 5000, 'the second CR');
    await sleep(20);
    app.output(id, '70%\r\n');
    await peer.waitFor('70%');
    expect(peer.text).toBe('Loading 50%\r\nnext line\r\n60%\r\u000070%\r\n');
  });

  it('a CR left open gets its NUL before a telnet command (GMCP, echo) and before the connection ends', async () => {
    const { app, telnetPort } = await start();
    const { peer, id } = await connectTelnet(app, telnetPort);
    app.output(id, 'Password:\r');
    app.send({ param: 'telnet', data: { id, echo: false } });
    await peer.waitForCommand(`WILL ${TELNET_OPTION.ECHO}`);
    const stream = Buffer.from(peer.stream);
    const at = stream.lastIndexOf(Buffer.from('Password:\r'));
    expect(at).toBeGreaterThanOrEqual(0);
    expect([...stream.subarray(at + 'Password:'.length)]).toEqual([0x0d, 0x00, IAC, TELNET.WILL, TELNET_OPTION.ECHO]);
    app.output(id, 'Bye\r');
    app.send({ param: 'disconnect', data: { id } });
    await peer.waitClosed();
    expect(peer.text.endsWith('Bye\r\u0000')).toBe(true);
  });

  it('imi refuses BINARY (RFC 856): a client asking DO BINARY gets WONT BINARY, and the output stays NVT', async () => {
    const { app, telnetPort } = await start();
    const { peer, id } = await connectTelnet(app, telnetPort);
    peer.write([IAC, DO, BINARY]);
    await peer.waitForCommand(`WONT ${BINARY}`);
    app.output(id, 'a\nb\n');
    await peer.waitFor('b');
    await waitFor(() => peer.text === 'a\r\nb\r\n', 5000, () => `NVT text (got ${JSON.stringify(peer.text)})`);
  });

  it('nvtOutput: false writes the text as it is (bare LF stays)', async () => {
    const { app, telnetPort } = await start({ nvtOutput: false });
    const { peer, id } = await connectTelnet(app, telnetPort);
    app.output(id, 'a\nb\r');
    await peer.waitFor('b\r');
    await sleep(20);
    expect(peer.text).toBe('a\nb\r');
  });

  it('MCCP2 compresses the translated bytes: the inflated stream is NVT, with UTF-8 text untouched', async () => {
    const { app, telnetPort } = await start({ mccp2: true });
    const { peer, id } = await connectTelnet(app, telnetPort, { mccp2: true });
    await waitFor(() => peer.compressed, 5000, 'compression to start');
    const room = 'A twisty passage, ÿ é 😀.\n'.repeat(30);
    app.output(id, room);
    app.output(id, 'HP 10\r');
    app.output(id, '\n> ');
    await peer.waitFor('> ');
    expect(peer.text).toBe(room.replaceAll('\n', '\r\n') + 'HP 10\r\n> ');
    expect(peer.wireBytes).toBeLessThan(room.length / 4);
  });
});

describe('prompts: output with prompt: true', () => {
  it('a client that agreed to EOR (DO EOR) gets the text then IAC EOR, and the app is told eor: true', async () => {
    const { app, telnetPort } = await start();
    const { peer, id } = await connectTelnet(app, telnetPort, { eor: true });
    expect(peer.commands).toContain(`WILL ${EOR}`);
    expect(app.of('connect')[0]!.data['telnet']).toMatchObject({ eor: true, sga: false });
    sendOutput(app, id, 'HP 10/20> ', true);
    await waitFor(() => peer.marks.length === 1, 5000, 'the prompt mark');
    expect(peer.marks).toEqual([{ mark: 'EOR', textBefore: 'HP 10/20> ' }]);
    const stream = Buffer.from(peer.stream);
    expect([...stream.subarray(stream.length - 2)]).toEqual([IAC, EOR_COMMAND]);
  });

  it('a client that refused EOR and did not ask for SGA gets IAC GA after the prompt', async () => {
    const { app, telnetPort } = await start();
    const { peer, id } = await connectTelnet(app, telnetPort);
    expect(peer.commands).toContain(`WILL ${EOR}`);
    expect(app.of('connect')[0]!.data['telnet']).toMatchObject({ eor: false, sga: false });
    sendOutput(app, id, 'Name: ', true);
    await waitFor(() => peer.marks.length === 1, 5000, 'the prompt mark');
    expect(peer.marks).toEqual([{ mark: 'GA', textBefore: 'Name: ' }]);
    const stream = Buffer.from(peer.stream);
    expect([...stream.subarray(stream.length - 2)]).toEqual([IAC, GA]);
  });

  it('a client that agreed to SGA (and not EOR) gets the prompt text and neither GA nor EOR', async () => {
    const { app, telnetPort } = await start();
    const { peer, id } = await connectTelnet(app, telnetPort, { sga: true });
    await peer.waitForCommand(`WILL ${SGA}`);
    await app.waitForFrame((frame) => (frame.param === 'connect' || frame.param === 'telnet') && (frame.data['telnet'] as { sga?: boolean }).sga === true);
    sendOutput(app, id, 'Name: ', true);
    app.output(id, 'after\r\n');
    await peer.waitFor('after\r\n');
    expect(peer.text).toBe('Name: after\r\n');
    expect(peer.marks).toEqual([]);
    // EOR wins over SGA: a client with both gets IAC EOR.
    const both = await connectTelnet(app, telnetPort, { sga: true, eor: true }, 1);
    await both.peer.waitForCommand(`WILL ${SGA}`);
    sendOutput(app, both.id, '> ', true);
    await waitFor(() => both.peer.marks.length === 1, 5000, 'the prompt mark');
    expect(both.peer.marks).toEqual([{ mark: 'EOR', textBefore: '> ' }]);
  });

  it('a legacy app (output without prompt, or prompt: false) never causes GA or EOR', async () => {
    const { app, telnetPort } = await start();
    const eorUser = await connectTelnet(app, telnetPort, { eor: true });
    const gaUser = await connectTelnet(app, telnetPort, {}, 1);
    for (const { id } of [eorUser, gaUser]) {
      app.output(id, 'HP> ');
      sendOutput(app, id, 'again> ', false);
      app.output(id, 'end\r\n');
    }
    for (const { peer } of [eorUser, gaUser]) {
      await peer.waitFor('end\r\n');
      expect(peer.text).toBe('HP> again> end\r\n');
      expect(peer.marks).toEqual([]);
    }
    // The same users do get a mark for a prompt: the check above could fail.
    sendOutput(app, eorUser.id, '> ', true);
    sendOutput(app, gaUser.id, '> ', true);
    await waitFor(() => eorUser.peer.marks.length === 1 && gaUser.peer.marks.length === 1, 5000, 'both marks');
    expect([eorUser.peer.marks[0]!.mark, gaUser.peer.marks[0]!.mark]).toEqual(['EOR', 'GA']);
  });

  it('a prompt ending in a CR gets CR NUL before the mark; an empty prompt marks what was written before', async () => {
    const { app, telnetPort } = await start();
    const { peer, id } = await connectTelnet(app, telnetPort);
    sendOutput(app, id, 'odd\r', true);
    await waitFor(() => peer.marks.length === 1, 5000, 'the first mark');
    const stream = Buffer.from(peer.stream);
    expect([...stream.subarray(stream.length - 4)]).toEqual([0x0d, 0x00, IAC, GA]);
    app.output(id, 'Continue? ');
    sendOutput(app, id, '', true);
    await waitFor(() => peer.marks.length === 2, 5000, 'the second mark');
    expect(peer.marks[1]).toEqual({ mark: 'GA', textBefore: 'odd\r\u0000Continue? ' });
  });

  it('an output hook that drops a prompt\'s text drops its mark too; what it returns is what is marked', async () => {
    const { imi, app, telnetPort } = await start();
    imi.hooks.output.tap('Filter', (text) => (text.startsWith('secret') ? '' : text.replace('HP', 'Hit points')));
    const { peer, id } = await connectTelnet(app, telnetPort);
    sendOutput(app, id, 'secret> ', true);
    sendOutput(app, id, 'HP> ', true);
    await waitFor(() => peer.marks.length >= 1, 5000, 'the mark');
    await sleep(20);
    expect(peer.marks).toEqual([{ mark: 'GA', textBefore: 'Hit points> ' }]);
  });

  it('plain tcp and WebSocket users just get the prompt text', async () => {
    const { ports, app, port } = await start({}, [{ kind: 'ws', port: 0 }]);
    const tcp = await scope.user(ports.externalPort);
    const tcpId = await app.nextUserId();
    const ws = await WsUser.connect(`ws://127.0.0.1:${port(0)}/`);
    peers.push(ws);
    const wsId = await app.nextUserId(1);
    sendOutput(app, tcpId, 'HP> ', true);
    sendOutput(app, wsId, 'HP> ', true);
    app.output(tcpId, 'x\n');
    app.output(wsId, 'x\n');
    await tcp.waitFor('x\n');
    await ws.waitFor('x\n');
    expect(tcp.received).toBe('HP> x\n');
    expect(ws.messages).toEqual(['HP> ', 'x\n']);
    await app.barrier();
    expect(app.errors()).toEqual([]);
  });
});
