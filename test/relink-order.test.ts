// Per-user order across re-links of the SAME app process. A real imi-server
// with short heartbeat settings, a real @imi/client app process, users on
// raw sockets typing numbered lines, and the app frozen with SIGSTOP past the
// heartbeat timeout, then resumed with SIGCONT: the intermediary drops the
// live process, which reconnects with the same instance and gets its unacked
// input redelivered, mixed with input typed meanwhile. Every user must get
// one reply per line, in the order typed.
import { afterEach, describe, expect, it } from 'vitest';
import net from 'node:net';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { count } from '../packages/server/test/harness.js';
import { readLines, sleep, startNode, startServer, stopAll, waitFor } from '../packages/server/test/process-harness.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const USERS = 12;
const SEND_INTERVAL_MS = 40;
const FREEZES = 5;

// SIGKILL ends a stopped (SIGSTOP) process too.
afterEach(() => stopAll());

class User {
  sent = 0;
  readonly order: number[] = [];

  constructor(
    readonly name: string,
    readonly socket: net.Socket,
  ) {
    readLines(socket, (line) => {
      const match = /^u\d+-(\d+)#\d+$/.exec(line);
      if (match !== null) this.order.push(Number(match[1]));
    });
    socket.on('error', () => {});
  }

  send(): void {
    this.socket.write(`${this.name}-${this.sent++}\r\n`);
  }
}

/** Where a user's replies depart from "each line once, in the order typed", or undefined. */
function orderProblem(user: User): string | undefined {
  for (let i = 0; i < user.order.length; i++) {
    if (user.order[i] !== i) return `${user.name} got ${user.order.join(',')} for ${user.sent} lines`;
  }
  return user.order.length === user.sent ? undefined : `${user.name} got ${user.order.length} replies for ${user.sent} lines`;
}

async function freezeAndResume(variant: { delayMs: number; burst: boolean }): Promise<void> {
  const server = await startServer(['--heartbeat-interval-ms', '100', '--heartbeat-timeout-ms', '600']);
  const app = startNode(`${root}test/fixtures/relink-app.mjs`, [String(server.clientPort), String(variant.delayMs)], { label: 'relink-app' });
  await waitFor(() => app.stdout().includes('ready\n'), 20_000, 'the app to sync');
  const users: User[] = [];
  for (let k = 0; k < USERS; k++) {
    const socket = net.connect({ port: server.externalPort, host: '127.0.0.1' });
    await once(socket, 'connect');
    users.push(new User(`u${k}`, socket));
  }
  let sending = true;
  const senders = users.map(async (user, index) => {
    await sleep((index * SEND_INTERVAL_MS) / USERS);
    while (sending) {
      user.send();
      await sleep(SEND_INTERVAL_MS);
    }
  });

  for (let freeze = 1; freeze <= FREEZES; freeze++) {
    await sleep(300 + Math.random() * 500);
    // A burst right before the freeze leaves input unread, handlers
    // running and replies unwritten when the process stops.
    if (variant.burst) for (const user of users) for (let i = 0; i < 4; i++) user.send();
    app.child.kill('SIGSTOP');
    await waitFor(() => count(server.stderr(), 'app missed its heartbeat') === freeze, 20_000, `the intermediary to drop the frozen app (${freeze})`);
    // Let input queue up at the intermediary while the app is away.
    await sleep(Math.random() * 300);
    app.child.kill('SIGCONT');
    // The same process (same instance) links again and is resynced.
    await waitFor(() => count(app.stdout(), 'up ') === freeze + 1, 20_000, `the same app process to link again (${freeze})`);
  }
  sending = false;
  await Promise.all(senders);
  await waitFor(() => users.every((user) => user.order.length >= user.sent), 30_000, 'every line to be answered').catch(() => {});
  // A late duplicate shows up as an order problem.
  await sleep(300);
  expect(app.child.exitCode).toBe(null);
  expect(users.map(orderProblem).filter((problem) => problem !== undefined)).toEqual([]);
  expect(users.every((user) => user.sent > 20)).toBe(true);
}

describe('the same app process re-linked after missed heartbeats: per-user order', () => {
  it('a synchronous handler, steady typing', async () => {
    await freezeAndResume({ delayMs: 0, burst: false });
  }, 120_000);

  it('a synchronous handler, frozen right after a burst', async () => {
    await freezeAndResume({ delayMs: 0, burst: true });
  }, 120_000);

  it('a slow handler (replies after up to 30 ms): replies held or in flight at the drop', async () => {
    await freezeAndResume({ delayMs: 30, burst: true });
  }, 120_000);
});
