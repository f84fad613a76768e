/**
 * `@imi/client` against the original Perl IO::Multiplex::Intermediary
 * (0.05), played by a tiny fake on a real socket: it writes frames back to
 * back with nothing between them (`push_write(json => ...)`), announces the
 * users already there in one JSON array when the app connects, sends
 * `connect` and `disconnect` with only `data.id`, never sends `synced`,
 * `ping` or `seq`, and reads the app's JSON texts like AnyEvent's
 * incremental reader (whitespace between them is fine). Like the original,
 * it refuses a message for a user without a `txn_id`.
 */
import { randomUUID } from 'node:crypto';
import net, { type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Client, type Session } from '../src/index.js';
import { onCleanup, runCleanups, waitFor } from './helpers.js';

type Json = Record<string, unknown> & { param?: unknown; data?: Record<string, unknown>; txn_id?: unknown };

/** Splits JSON texts written one after the other (with or without whitespace between them). */
function splitJsonTexts(buffer: string): { texts: string[]; rest: string } {
  const texts: string[] = [];
  let depth = 0;
  let inString = false;
  let escaped = false;
  let start = -1;
  for (let i = 0; i < buffer.length; i++) {
    const c = buffer[i]!;
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{' || c === '[') {
      if (depth === 0) start = i;
      depth++;
    } else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) texts.push(buffer.slice(start, i + 1));
    }
  }
  return { texts, rest: depth === 0 ? '' : buffer.slice(start) };
}

class LegacyIntermediary {
  readonly server = net.createServer((socket) => this.onApp(socket));
  readonly users = new Set<string>();
  /** What the app asked for, in order: `output id value` and `disconnect id`. */
  readonly done: string[] = [];
  /** Every JSON text the app wrote, parsed. */
  readonly received: Json[] = [];
  /** Messages the original would have died on (`txn ID is required`). */
  readonly violations: Json[] = [];
  /** Bytes written to the app, to check what went on the wire. */
  written = '';
  app: Socket | undefined;
  port = 0;

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    onCleanup(() => this.close());
  }

  close(): Promise<void> {
    this.app?.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** Writes messages with a fresh `txn_id` each, back to back, in one write (as `send_to_client` does). */
  send(...messages: Json[]): void {
    const bytes = messages.map((message) => JSON.stringify({ ...message, txn_id: randomUUID() })).join('');
    this.written += bytes;
    this.app!.write(bytes);
  }

  private onApp(socket: Socket): void {
    if (this.app !== undefined) {
      socket.destroy();
      return;
    }
    this.app = socket;
    socket.setEncoding('utf8');
    // client_connect: every user already there, as one JSON array (multisend), even an empty one.
    const batch = JSON.stringify([...this.users].map((id) => ({ param: 'connect', data: { id }, txn_id: randomUUID() })));
    this.written += batch;
    socket.write(batch);
    let buffer = '';
    socket.on('data', (chunk: string) => {
      const { texts, rest } = splitJsonTexts(buffer + chunk);
      buffer = rest;
      for (const text of texts) {
        const parsed = JSON.parse(text) as Json | Json[];
        for (const message of Array.isArray(parsed) ? parsed : [parsed]) this.process(message);
      }
    });
  }

  /** `_process_structure` of the original. */
  private process(message: Json): void {
    this.received.push(message);
    if (message.param === undefined || message.param === 'null') return;
    const id = message.data?.['id'];
    if (typeof id !== 'string' || !this.users.has(id)) return;
    if (typeof message.txn_id !== 'string' || message.txn_id === '') {
      this.violations.push(message);
      return;
    }
    if (message.param === 'output') this.done.push(`output ${id} ${String(message.data!['value'])}`);
    else if (message.param === 'disconnect') {
      this.done.push(`disconnect ${id}`);
      this.users.delete(id);
      this.send({ param: 'disconnect', data: { id } });
    }
  }
}

afterEach(runCleanups);

async function startApp(port: number, legacySyncWaitMs: number): Promise<{ app: Client; log: string[]; errors: Error[] }> {
  const app = new Client({ port, legacySyncWaitMs, tickIntervalMs: 0, reconnect: false });
  onCleanup(() => app.close());
  const log: string[] = [];
  const errors: Error[] = [];
  app.on('error', (error) => errors.push(error));
  app.on('connect', (session) => void log.push(`connect ${session.id} resumed=${session.resumed}`));
  app.on('disconnect', (session, reason) => void log.push(`disconnect ${session.id} ${reason}`));
  app.on('synced', (count) => void log.push(`synced ${count}`));
  app.hooks.buildResponse.tap('Echo', (_reply, _session, line) => `you said ${line}\r\n`);
  return { app, log, errors };
}

describe('against the original Perl intermediary', () => {
  it('resyncs without `synced`, takes connects with only an id, and answers input in the original format', async () => {
    const legacy = new LegacyIntermediary();
    await legacy.listen();
    const u1 = randomUUID();
    legacy.users.add(u1);

    const { app, log, errors } = await startApp(legacy.port, 100);
    await app.connect();
    expect(app.status).toBe('up');
    expect(log).toEqual([`connect ${u1} resumed=true`, 'synced 1']);
    const session: Session = app.sessions.get(u1)!;
    expect(session.transport).toBe('tcp');
    expect(session.remote).toEqual({ address: '', port: 0 });
    expect(typeof session.connectedAt).toBe('number');
    expect(session.state).toEqual({});

    // A new user and two lines, back to back in one write.
    const u2 = randomUUID();
    legacy.users.add(u2);
    legacy.send({ param: 'connect', data: { id: u2 } }, { param: 'input', data: { id: u2, value: 'hello' } }, { param: 'input', data: { id: u1, value: 'look €' } });
    await waitFor(() => legacy.done.length === 2, 'two replies');
    expect(legacy.done.sort()).toEqual([`output ${u1} you said look €\r\n`, `output ${u2} you said hello\r\n`].sort());
    expect(log).toContain(`connect ${u2} resumed=false`);
    expect(legacy.written).not.toContain('\n');

    // The original tells a departure with the id alone.
    legacy.users.delete(u2);
    legacy.send({ param: 'disconnect', data: { id: u2 } });
    await waitFor(() => log.includes(`disconnect ${u2} closed`), 'the departure');
    expect(app.sessions.has(u2)).toBe(false);

    // The app closes a user: the original gets a disconnect with a txn_id, and answers with its own.
    app.disconnect(u1, 'bye\r\n');
    await waitFor(() => log.includes(`disconnect ${u1} closed`), 'the kicked user gone');
    expect(legacy.done).toContain(`disconnect ${u1}`);

    expect(legacy.violations).toEqual([]);
    const outputs = legacy.received.filter((message) => message.param === 'output');
    expect(outputs).toHaveLength(2);
    for (const output of outputs) expect(output).toMatchObject({ param: 'output', data: { id: expect.any(String), value: expect.any(String) }, txn_id: expect.any(String) });
    expect(errors).toEqual([]);
  });

  it('with no user there (the original sends an empty batch), connect() resolves once legacySyncWaitMs passed', async () => {
    const legacy = new LegacyIntermediary();
    await legacy.listen();
    const { app, log, errors } = await startApp(legacy.port, 150);
    const started = Date.now();
    await app.connect();
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(log).toEqual(['synced 0']);
    expect(app.sessions.size).toBe(0);

    const u1 = randomUUID();
    legacy.users.add(u1);
    legacy.send({ param: 'connect', data: { id: u1 } }, { param: 'input', data: { id: u1, value: 'hi' } });
    await waitFor(() => legacy.done.length === 1, 'the reply');
    expect(legacy.done).toEqual([`output ${u1} you said hi\r\n`]);
    expect(log).toEqual(['synced 0', `connect ${u1} resumed=false`]);
    expect(errors).toEqual([]);
  });

  it('with legacySyncWaitMs 0 it waits for `synced`, which the original never sends', async () => {
    const legacy = new LegacyIntermediary();
    await legacy.listen();
    const { app } = await startApp(legacy.port, 0);
    let resolved = false;
    void app.connect().then(
      () => (resolved = true),
      () => undefined,
    );
    await waitFor(() => legacy.app !== undefined && app.status === 'resyncing', 'the link');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(resolved).toBe(false);
    expect(app.status).toBe('resyncing');
  });
});
