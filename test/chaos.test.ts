// The chaos tests: the promise imi exists for. A real imi-server process, a
// real app process on @imi/client, 50 users on raw sockets typing numbered
// lines at a steady rate, and the app killed with SIGKILL at random instants
// (or frozen with SIGSTOP past the heartbeat timeout). At the end: nobody
// was disconnected, every line got exactly one reply, in order, and the
// app's view of who is online equals the intermediary's.
import { afterEach, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { readLines, sleep, startNode, startServer, stopAll, waitFor, type ServerProcess } from '../packages/server/test/process-harness.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const USERS = 50;
const SEND_INTERVAL_MS = 100;
const HEARTBEAT_TIMEOUT_MS = 1500;

afterEach(() => stopAll());

async function startChaosServer(): Promise<ServerProcess> {
  // The timeout is the fault the SIGSTOP case injects; it is also what the
  // NEXT app must not miss while the machine is loaded (a second drop is a
  // second outage, told again): 600 ms was missed at load average 20.
  return startServer(['--heartbeat-interval-ms', '100', '--heartbeat-timeout-ms', String(HEARTBEAT_TIMEOUT_MS)], { label: 'imi-server' });
}

interface App {
  child: ChildProcess;
  /** Whether the app printed `ready`: its first `connect()` resolved (it is synced). */
  ready(): boolean;
}

function startApp(clientPort: number): App {
  const app = startNode(`${root}test/fixtures/chaos-app.mjs`, [String(clientPort)], { label: 'app' });
  return { child: app.child, ready: () => app.stdout().includes('ready\n') };
}

class ChaosUser {
  id = '';
  closed = false;
  sent = 0;
  readonly sentAt = new Map<string, number>();
  readonly replies = new Map<string, number>();
  readonly replyOrder: number[] = [];
  maxWaitMs = 0;
  lastSessions: string[] | undefined;
  /** How many times the intermediary told this user the app is away. */
  appDownNotices = 0;

  constructor(
    readonly name: string,
    readonly socket: net.Socket,
  ) {
    readLines(socket, (line) => this.receive(line));
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => {});
  }

  private receive(line: string): void {
    let match: RegExpExecArray | null;
    if (line.includes('The application is restarting')) this.appDownNotices++;
    if ((match = /^id (\S+)$/.exec(line))) this.id = match[1]!;
    else if ((match = /^sessions (.*)$/.exec(line))) this.lastSessions = JSON.parse(match[1]!) as string[];
    else if ((match = /^(u\d+-(\d+))#\d+$/.exec(line))) {
      const key = match[1]!;
      this.replies.set(key, (this.replies.get(key) ?? 0) + 1);
      this.replyOrder.push(Number(match[2]));
      const sentAt = this.sentAt.get(key);
      if (sentAt !== undefined) this.maxWaitMs = Math.max(this.maxWaitMs, Date.now() - sentAt);
    }
  }

  sendNext(): void {
    const key = `${this.name}-${this.sent++}`;
    this.sentAt.set(key, Date.now());
    this.socket.write(key + '\r\n');
  }
}

async function connectUsers(port: number, count: number): Promise<ChaosUser[]> {
  const users: ChaosUser[] = [];
  for (let k = 0; k < count; k++) {
    const socket = net.connect({ port, host: '127.0.0.1' });
    await once(socket, 'connect');
    users.push(new ChaosUser(`u${k}`, socket));
  }
  return users;
}

function report(users: ChaosUser[], label: string): { sent: number; replied: number; duplicates: number; lost: number; maxWaitMs: number } {
  let sent = 0;
  let replied = 0;
  let duplicates = 0;
  let lost = 0;
  let maxWaitMs = 0;
  for (const user of users) {
    sent += user.sent;
    for (let i = 0; i < user.sent; i++) {
      const count = user.replies.get(`${user.name}-${i}`) ?? 0;
      if (count === 0) lost++;
      else replied++;
      if (count > 1) duplicates += count - 1;
    }
    maxWaitMs = Math.max(maxWaitMs, user.maxWaitMs);
  }
  const counts = { sent, replied, duplicates, lost, maxWaitMs };
  console.log(`[chaos ${label}] ${JSON.stringify(counts)}`);
  return counts;
}

async function assertConverged(users: ChaosUser[], control: ChaosUser): Promise<void> {
  control.socket.write('?sessions\r\n');
  await waitFor(() => control.lastSessions !== undefined, 10_000, 'the app to list its sessions');
  const expected = [...users, control].map((user) => user.id).sort();
  expect(expected.every((id) => id.length > 0)).toBe(true);
  expect(control.lastSessions).toEqual(expected);
}

function assertExactlyOnceInOrder(users: ChaosUser[], counts: ReturnType<typeof report>): void {
  expect(users.filter((user) => user.closed).map((user) => user.name)).toEqual([]);
  expect(counts.lost).toBe(0);
  expect(counts.duplicates).toBe(0);
  expect(counts.replied).toBe(counts.sent);
  for (const user of users) {
    const inOrder = user.replyOrder.every((n, index) => index === 0 || n > user.replyOrder[index - 1]!);
    expect(inOrder, `${user.name} got replies out of order: ${user.replyOrder.join(',')}`).toBe(true);
  }
}

/** Every user sends a numbered line every SEND_INTERVAL_MS, staggered; returns a function that stops them all. */
function startSending(users: ChaosUser[]): () => Promise<void> {
  let sending = true;
  const senders = users.map(async (user, index) => {
    await sleep((index * SEND_INTERVAL_MS) / users.length);
    while (sending) {
      user.sendNext();
      await sleep(SEND_INTERVAL_MS);
    }
  });
  return async () => {
    sending = false;
    await Promise.all(senders);
  };
}

async function waitForAllReplies(users: ChaosUser[]): Promise<void> {
  await waitFor(() => users.every((user) => user.replies.size === user.sent), 20_000, 'every line to be answered');
  // Give a late duplicate the chance to show up before counting.
  await sleep(500);
}

/**
 * imi-server, the first app (synced before anyone connects, so no user is
 * told the app is away before a fault is injected), 50 users and a control
 * user, every user welcomed with their id.
 */
async function setup(): Promise<{ server: ServerProcess; users: ChaosUser[]; control: ChaosUser; firstApp: App }> {
  const server = await startChaosServer();
  const firstApp = startApp(server.clientPort);
  await waitFor(firstApp.ready, 20_000, 'the first app to connect and sync');
  const users = await connectUsers(server.externalPort, USERS);
  const [control] = await connectUsers(server.externalPort, 1);
  await waitFor(() => [...users, control!].every((user) => user.id !== ''), 10_000, 'every user to be welcomed');
  expect([...users, control!].map((user) => user.appDownNotices)).toEqual(new Array(USERS + 1).fill(0));
  return { server, users, control: control!, firstApp };
}

describe('chaos: the app dies, users do not notice', () => {
  it('SIGKILL five times at random instants: nobody disconnected, every line answered exactly once, in order', async () => {
    const { server, users, control, firstApp } = await setup();
    let app = firstApp.child;

    const stopSending = startSending(users);
    for (let kill = 0; kill < 5; kill++) {
      await sleep(1000 + Math.random() * 2000);
      app.kill('SIGKILL');
      await once(app, 'exit');
      await sleep(Math.random() * 1000);
      app = startApp(server.clientPort).child;
    }
    await sleep(1500);
    await stopSending();
    await waitForAllReplies(users);
    const counts = report(users, 'SIGKILL');
    assertExactlyOnceInOrder(users, counts);
    expect(counts.sent).toBeGreaterThan(USERS * 50);
    await assertConverged(users, control);
  }, 90_000);

  it('an app frozen with SIGSTOP past the heartbeat timeout is dropped; the next app answers everything once', async () => {
    const { server, users, control, firstApp } = await setup();
    const frozen = firstApp.child;

    const stopSending = startSending(users);
    await sleep(1000 + Math.random() * 1000);
    frozen.kill('SIGSTOP');
    // Past heartbeatTimeoutMs (HEARTBEAT_TIMEOUT_MS) the intermediary drops the app and
    // tells every user once. The next app starts only once both happened:
    // started earlier it would meet the frozen one still connected
    // (IMI_APP_BUSY under the default appPolicy "refuse"), however slow the
    // machine is.
    await waitFor(() => server.stderr().includes('app missed its heartbeat; dropping it'), 20_000, 'the intermediary to drop the frozen app');
    await waitFor(() => users.every((user) => user.appDownNotices === 1), 20_000, 'every user to be told the app is away');
    await sleep(500);
    const next = startApp(server.clientPort);
    await waitFor(next.ready, 20_000, 'the next app to connect and sync');
    await sleep(1000);
    expect(users.map((user) => user.appDownNotices)).toEqual(new Array(USERS).fill(1));
    frozen.kill('SIGKILL');
    await stopSending();
    await waitForAllReplies(users);
    const counts = report(users, 'SIGSTOP');
    assertExactlyOnceInOrder(users, counts);
    expect(counts.maxWaitMs).toBeGreaterThan(HEARTBEAT_TIMEOUT_MS);
    await assertConverged(users, control);
    next.child.kill('SIGKILL');
  }, 90_000);
});
