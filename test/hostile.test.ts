// Hostile input against a real imi-server process. In every case a
// well-behaved user keeps getting round trips through the app during the
// attack, the process's memory stays under a stated bound, and nothing
// crashes. Latencies and memory are printed, never asserted against time.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const TOKEN = 'hostile-test-token';
/** The bound the intermediary's resident memory must stay under during every attack. */
const RSS_BOUND_MB = 200;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const started = Date.now();
  while (!predicate()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) / 1024 : NaN;
}

/** The app: echoes each input as "echo:<line>" with the ack in the same frame. */
class EchoApp {
  readonly socket: net.Socket;
  /** The code of every error the app was told of: one per `error` frame, `suppressed` times for a summary. */
  readonly errors: string[] = [];
  /** `error` frames that told of one error each (not summaries). */
  singleErrorFrames = 0;
  private buffer = '';

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.buffer += text;
      let newline: number;
      while ((newline = this.buffer.indexOf('\n')) !== -1) {
        const line = this.buffer.slice(0, newline);
        this.buffer = this.buffer.slice(newline + 1);
        const frame = JSON.parse(line) as { param: string; data: Record<string, unknown>; seq?: number };
        if (frame.param === 'input') {
          this.send({ param: 'output', data: { id: frame.data['id'], value: `echo:${String(frame.data['value'])}\r\n` }, ack: frame.seq });
        } else if (frame.param === 'ping') {
          this.send({ param: 'pong', data: { ts: frame.data['ts'] } });
        } else if (frame.param === 'error') {
          // Past maxErrorFramesPerSecond the intermediary tells the rest in a summary: {code, message, suppressed}.
          const suppressed = frame.data['suppressed'];
          if (typeof suppressed === 'number') {
            for (let i = 0; i < suppressed; i++) this.errors.push(String(frame.data['code']));
          } else {
            this.singleErrorFrames++;
            this.errors.push(String(frame.data['code']));
          }
        } else if (frame.seq !== undefined) {
          this.send({ param: 'ack', data: { seq: frame.seq } });
        }
      }
    });
  }

  send(message: unknown): void {
    this.socket.write(JSON.stringify(message) + '\n');
  }
}

/** A user who only reads what it is sent. */
class Reader {
  received = '';
  closed = false;
  constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => (this.received += text));
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => {});
  }
}

async function connect(port: number): Promise<net.Socket> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  socket.on('error', () => {});
  await once(socket, 'connect');
  return socket;
}

let server: ChildProcess;
let externalPort = 0;
let clientPort = 0;
let app: EchoApp;
let probe: Reader;
let probeCount = 0;
let peakRssMb = 0;

/** One round trip of the well-behaved user; resolves with its latency in ms. */
async function roundTrip(): Promise<number> {
  const tag = `probe-${probeCount++}`;
  const started = performance.now();
  probe.socket.write(tag + '\n');
  await waitFor(() => probe.received.includes(`echo:${tag}\r\n`), 10_000, `round trip ${tag}`);
  return performance.now() - started;
}

/** Runs `attack` while the probe user keeps doing round trips; checks memory all along. */
async function during(label: string, attack: () => Promise<void>): Promise<void> {
  const latencies: number[] = [];
  let attacking = true;
  const prober = (async () => {
    while (attacking) {
      latencies.push(await roundTrip());
      peakRssMb = Math.max(peakRssMb, rssMb(server.pid!));
      await sleep(20);
    }
  })();
  try {
    await attack();
  } finally {
    attacking = false;
    await prober;
  }
  latencies.push(await roundTrip());
  const rss = rssMb(server.pid!);
  peakRssMb = Math.max(peakRssMb, rss);
  latencies.sort((a, b) => a - b);
  const median = latencies[Math.floor(latencies.length / 2)]!;
  console.log(`[hostile] ${label}: ${latencies.length} round trips during the attack, median ${median.toFixed(2)} ms, max ${latencies.at(-1)!.toFixed(2)} ms; rss ${rss.toFixed(1)} MB`);
  expect(server.exitCode).toBe(null);
  expect(latencies.length).toBeGreaterThanOrEqual(2);
  expect(rss).toBeLessThan(RSS_BOUND_MB);
}

beforeAll(async () => {
  server = spawn(
    process.execPath,
    [`${root}packages/server/dist/cli.js`, '--external-port', '0', '--client-port', '0', '--host', '127.0.0.1', '--token', TOKEN, '--log-level', 'error'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let stdout = '';
  server.stdout!.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  await waitFor(() => /users on port (\d+).*app on port (\d+)/.test(stdout), 10_000, 'imi-server to listen');
  const match = /users on port (\d+).*app on port (\d+)/.exec(stdout)!;
  externalPort = Number(match[1]);
  clientPort = Number(match[2]);
  app = new EchoApp(await connect(clientPort));
  app.send({ param: 'hello', data: { protocol: 1, token: TOKEN, acks: true, name: 'echo' } });
  probe = new Reader(await connect(externalPort));
  await roundTrip();
}, 20_000);

afterAll(async () => {
  console.log(`[hostile] peak rss of imi-server across all attacks: ${peakRssMb.toFixed(1)} MB (bound ${RSS_BOUND_MB} MB)`);
  server.kill('SIGTERM');
  await once(server, 'exit');
  expect(server.exitCode).toBe(0);
});

describe('hostile users', () => {
  it('a 10 MB line with no newline is cut, never held whole; its sender stays connected', async () => {
    const attacker = new Reader(await connect(externalPort));
    await during('10 MB line', async () => {
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      for (let sent = 0; sent < 10 * 1024 * 1024; sent += chunk.length) {
        if (!attacker.socket.write(chunk)) await once(attacker.socket, 'drain');
      }
      attacker.socket.write('\n');
      await waitFor(() => attacker.received.includes('was too long'), 10_000, 'the too-long notice');
    });
    expect(attacker.closed).toBe(false);
    // The app got the line cut to the limit (8 KiB) and echoed it.
    await waitFor(() => attacker.received.includes('echo:' + 'a'.repeat(8192) + '\r\n'), 5000, 'the cut line echoed');
    attacker.socket.destroy();
  });

  it('NUL bytes, invalid UTF-8, lone CR and telnet IAC sequences reach the app as text, nothing crashes', async () => {
    const attacker = new Reader(await connect(externalPort));
    await during('binary garbage', async () => {
      attacker.socket.write(Buffer.from([0x61, 0x00, 0x62, 0x0a])); // a NUL b
      attacker.socket.write(Buffer.from([0xc3, 0x28, 0xff, 0xfe, 0x0a])); // invalid UTF-8
      attacker.socket.write(Buffer.from('x\ry\n'));
      attacker.socket.write(Buffer.from([0xff, 0xfb, 0x01, 0xff, 0xfd, 0x03, 0xff, 0xfa, 0x18, 0x01, 0xff, 0xf0, 0x7a, 0x0a])); // IAC WILL ECHO, IAC DO SGA, IAC SB TTYPE SEND IAC SE, z
      await waitFor(() => (attacker.received.match(/echo:/g) ?? []).length >= 4, 5000, 'four echoes');
    });
    expect(attacker.received).toContain('echo:a\u0000b\r\n');
    expect(attacker.received).toContain('echo:\ufffd(\ufffd\ufffd\r\n');
    expect(attacker.closed).toBe(false);
    attacker.socket.destroy();
  });

  it('2,000 connections opened at once are all served', async () => {
    const crowd: net.Socket[] = [];
    await during('2,000 connections at once', async () => {
      const sockets = await Promise.all(Array.from({ length: 2000 }, () => connect(externalPort)));
      crowd.push(...sockets);
      await sleep(300);
    });
    for (const socket of crowd) expect(socket.destroyed).toBe(false);
    for (const socket of crowd) socket.destroy();
  }, 60_000);

  it('a slowloris user trickling one byte at a time costs nothing to others', async () => {
    const attacker = new Reader(await connect(externalPort));
    await during('slowloris', async () => {
      for (const byte of Buffer.from('slow line')) {
        attacker.socket.write(Buffer.from([byte]));
        await sleep(150);
      }
      attacker.socket.write('\n');
      await waitFor(() => attacker.received.includes('echo:slow line'), 5000, 'the slow line echoed');
    });
    attacker.socket.destroy();
  });

  it('a user who never reads while the app floods them is disconnected as slow, alone', async () => {
    const attacker = new Reader(await connect(externalPort));
    attacker.socket.pause();
    attacker.socket.write('who-am-i\n');
    // The app learns the attacker's id from its input and floods them.
    let attackerId: string | undefined;
    const listener = (text: string): void => {
      const match = /"id":"([^"]+)","value":"who-am-i"/.exec(text);
      if (match) attackerId = match[1];
    };
    app.socket.on('data', listener);
    await waitFor(() => attackerId !== undefined, 5000, 'the attacker id');
    app.socket.off('data', listener);
    const flood = 'x'.repeat(64 * 1024);
    await during('user who never reads', async () => {
      // ~20 MB: more than the kernel's socket buffers plus maxOutputBufferBytes (1 MiB).
      for (let i = 0; i < 320; i++) {
        app.send({ param: 'output', data: { id: attackerId, value: flood } });
        await sleep(2);
      }
      // Read again: a paused socket cannot see that the intermediary closed it.
      attacker.socket.resume();
      await waitFor(() => attacker.closed, 10_000, 'the slow user to be disconnected');
      // It was cut off, not served: far less than the flood reached it.
      expect(attacker.received.length).toBeLessThan(320 * flood.length);
    });
    expect(attacker.closed).toBe(true);
  });
});

describe('hostile apps', () => {
  // Errors past the rate of the test before are told in a summary up to
  // errorSummaryIntervalMs (1 s) later: let it land before counting anew.
  beforeEach(() => sleep(1100));

  it('invalid JSON in a loop gets error frames up to the rate, a summary of the rest; the app keeps working', async () => {
    const before = app.errors.length;
    const framesBefore = app.singleErrorFrames;
    const started = performance.now();
    await during('invalid JSON in a loop', async () => {
      for (let i = 0; i < 2000; i++) app.socket.write('{"param": nope}\n');
      await waitFor(() => app.errors.length - before >= 2000, 10_000, '2000 IMI_BAD_FRAME errors');
    });
    const seconds = (performance.now() - started) / 1000;
    expect(app.errors.slice(before)).toEqual(Array.from({ length: 2000 }, () => 'IMI_BAD_FRAME'));
    // The default errorFrameBurst (20) and maxErrorFramesPerSecond (5): not a frame per error.
    expect(app.singleErrorFrames - framesBefore).toBeLessThanOrEqual(20 + Math.ceil(5 * seconds));
  });

  it('10 MB frames are dropped as they arrive, never held', async () => {
    const before = app.errors.length;
    await during('10 MB frames', async () => {
      for (let n = 0; n < 3; n++) {
        const big = JSON.stringify({ param: 'broadcast', data: { value: 'y'.repeat(10 * 1024 * 1024) } }) + '\n';
        if (!app.socket.write(big)) await once(app.socket, 'drain');
      }
      await waitFor(() => app.errors.length - before >= 3, 20_000, 'three oversize errors');
    });
    expect(app.errors.slice(before)).toEqual(['IMI_BAD_FRAME', 'IMI_BAD_FRAME', 'IMI_BAD_FRAME']);
    expect(probe.received).not.toContain('yyyyyyyyyy');
  }, 60_000);

  it('JSON nested 100,000 levels deep does not blow the stack', async () => {
    const before = app.errors.length;
    await during('100k nested levels', async () => {
      app.socket.write('{"param":"output","data":' + '['.repeat(100_000) + ']'.repeat(100_000) + '}\n');
      app.socket.write('[' + '{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000) + ']\n');
      await waitFor(() => app.errors.length - before >= 2, 10_000, 'two errors');
    });
    expect(app.errors.slice(before)).toEqual(['IMI_BAD_FRAME', 'IMI_BAD_FRAME']);
  });

  it('unknown ids and huge dep_txns lists are rejected one by one', async () => {
    const before = app.errors.length;
    await during('unknown ids and huge dep_txns', async () => {
      for (let i = 0; i < 500; i++) app.send({ param: 'output', data: { id: `nobody-${i}`, value: 'x' } });
      const deps = Array.from({ length: 100_000 }, (_, i) => `t${i}`);
      app.send({ param: 'null', dep_txns: deps });
      await waitFor(() => app.errors.length - before >= 501, 10_000, '501 errors');
    });
    const codes = app.errors.slice(before);
    expect(codes.filter((code) => code === 'IMI_UNKNOWN_ID')).toHaveLength(500);
    expect(codes).toContain('IMI_LIMIT');
  });

  it('wrong tokens 1,000 times in a row: each refused with IMI_AUTH; the real app is untouched', async () => {
    let refused = 0;
    await during('1,000 wrong tokens', async () => {
      for (let batch = 0; batch < 10; batch++) {
        await Promise.all(
          Array.from({ length: 100 }, async () => {
            const socket = await connect(clientPort);
            let text = '';
            socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
            socket.write(JSON.stringify({ param: 'hello', data: { protocol: 1, token: 'wrong' } }) + '\n');
            await once(socket, 'close');
            if (text.includes('IMI_AUTH')) refused++;
          }),
        );
      }
    });
    expect(refused).toBe(1000);
  }, 60_000);

  it('a second app hammering the port is refused with IMI_APP_BUSY each time', async () => {
    let busy = 0;
    await during('second app hammering', async () => {
      for (let i = 0; i < 200; i++) {
        const socket = await connect(clientPort);
        let text = '';
        socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        socket.write(JSON.stringify({ param: 'hello', data: { protocol: 1, token: TOKEN, acks: true } }) + '\n');
        await once(socket, 'close');
        if (text.includes('IMI_APP_BUSY')) busy++;
      }
    });
    expect(busy).toBe(200);
  }, 60_000);
});
