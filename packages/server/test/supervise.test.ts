// Crash survival with real processes: `imi-server --supervise`, the
// supervise-app fixture on @imi/client, and users on real sockets — plain
// TCP and telnet (NAWS, echo hidden by the app) — typing steadily while the
// worker (the intermediary itself) is SIGKILLed again and again. Nobody may
// notice more than the guarantee allows: no close, one notice per crash, the
// same session ids with their last stored state in the app, every line typed
// answered once and in order except what the dead worker had read and not
// answered (one run per crash). A telnet user with MCCP2 on is closed at the
// first crash (the compressor's state died with the worker), as documented.
// A worker that dies at start makes the supervisor give up: users get the
// shutdown notice and are closed, the ports are let go, exit 1.
// A user whose socket copy was written to the supervisor in the instant
// the worker died is kept (the supervisor reads it after the death).
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from './harness.js';
import { CRASH_NOTICE, CRASH_WORKER, SUPERVISE_APP, checkAccounted, count, startedWorkers, workerPid } from './supervise-harness.js';
import { App, Server, TcpUser, TelnetUser, cleanUp, tempDir, type User } from './upgrade-harness.js';

const CRASHES = 5;
const TYPE_INTERVAL_MS = 40;
/** Users of the crash test besides the MCCP2 one (issue #16: 50 users type while the intermediary is SIGKILLed 5 times). */
const TCP_USERS = 25;
const TELNET_USERS = 24;

afterEach(() => cleanUp());

/** Waits until every user got `more` replies past what they had. */
async function progress(users: User[], more: number, what: string): Promise<void> {
  const had = users.map((user) => user.replies().length);
  await waitFor(() => users.every((user, i) => user.replies().length >= had[i]! + more), 20_000, () => `${what}: ${users.map((u) => `${u.name} ${u.replies().length}/${u.sent.length}`).join(', ')}`);
}

/** Telnet ports in listening order: the `--listeners` one (MCCP2 on) first, then `--telnet-port` (MCCP2 off). */
function telnetPorts(server: Server): number[] {
  return [...server.out.matchAll(/telnet on port (\d+)/g)].slice(0, 2).map((match) => Number(match[1]));
}

async function telnetUser(name: string, port: number, width: number, mccp2: boolean): Promise<TelnetUser> {
  const user = await TelnetUser.connect(name, port, [width, 30]);
  // The app hides their typing on their first connect: WILL ECHO comes back.
  await waitFor(() => user.commands.includes('WILL 1') && user.mccp2Starts === (mccp2 ? 1 : 0), 10_000, () => `${user.name} to be negotiated (${user.commands.join(', ')})`);
  return user;
}

describe('imi-server --supervise', () => {
  it(`keeps ${TCP_USERS} TCP and ${TELNET_USERS} telnet users through ${CRASHES} SIGKILLs of the intermediary: no close, same sessions and state, lines answered or lost exactly as documented`, async () => {
    const server = await Server.start(['--supervise', '--telnet-mccp2', 'false', '--listeners', '[{"kind":"telnet","port":0,"mccp2":true}]', '--restart-delay-ms', '50', '--log-level', 'info']);
    const supervisorPid = server.child.pid!;
    // The pid file names the supervisor: signals and service managers reach it, not a worker that may die.
    expect(server.pid()).toBe(supervisorPid);
    const [mccp2Port, telnetPort] = telnetPorts(server);
    const app = await App.start(server.clientPort, SUPERVISE_APP);
    const tcps: TcpUser[] = [];
    for (let i = 0; i < TCP_USERS; i++) tcps.push(await TcpUser.connect(`tcp${i}`, server.externalPort));
    const telnets: TelnetUser[] = [];
    for (let i = 0; i < TELNET_USERS; i++) telnets.push(await telnetUser(`telnet${i}`, telnetPort!, 100 + i, false));
    const compressed = await telnetUser('mccp2', mccp2Port!, 90, true);
    const users: User[] = [...tcps, ...telnets];
    await waitFor(() => app.connects().length === users.length + 1, 10_000, 'the app to know every user');
    const compressedId = app.connects().find((event) => event.telnet?.mccp2 === true)!.id!;
    const ids = new Set(app.connects().filter((event) => event.id !== compressedId).map((event) => event.id));
    const negotiated = telnets.map((user) => [...user.commands]);
    for (const user of users) user.typeSteadily(TYPE_INTERVAL_MS);
    await progress(users, 3, 'replies before the first crash');

    const workers = [await workerPid(server)];
    expect(workers[0]).not.toBe(supervisorPid);
    for (let n = 1; n <= CRASHES; n++) {
      // Stored just before the crash: the journal must have it.
      for (const user of users) user.type(`state-${n}-${user.name}`);
      await waitFor(() => users.every((user) => user.replies().includes(`state-${n}-${user.name}`)), 15_000, `the state-${n} lines to be answered`);
      const resyncsBefore = app.resyncs().length;
      process.kill(workers.at(-1)!, 'SIGKILL');
      // Told once per crash, while the worker is down or coming back.
      await waitFor(() => users.every((user) => count(user, CRASH_NOTICE) === n), 15_000, () => `the crash notice ${n} (${users.map((u) => `${u.name} ${count(u, CRASH_NOTICE)}`).join(', ')})`);
      await waitFor(() => app.resyncs().length > resyncsBefore && app.resyncs().at(-1)!.count === users.length, 20_000, () => `the resync after crash ${n} (app: ${app.events.filter((e) => e.event !== 'input').map((e) => `${e.event} ${e.id?.slice(0, 8) ?? e.count}`).join(', ')}; log ${server.err.slice(-2000)})`);
      const resync = app.resyncs().at(-1)!;
      expect(new Set(resync.sessions!.map((session) => session.id))).toEqual(ids);
      for (const session of resync.sessions!) {
        expect(session.state!['mark'], `state of ${session.id} after crash ${n}`).toMatch(new RegExp(`^state-${n}-`));
      }
      const telnetSessions = resync.sessions!.filter((session) => session.transport === 'telnet');
      expect(telnetSessions).toHaveLength(telnets.length);
      for (const session of telnetSessions) {
        expect(session.telnet).toMatchObject({ echo: false, mccp2: false });
        expect(session.state!['naws']).toEqual(session.telnet!.naws);
      }
      expect(new Set(telnetSessions.map((session) => session.telnet!.naws!.width))).toEqual(new Set(telnets.map((_, i) => 100 + i)));
      const pid = await workerPid(server);
      expect(workers).not.toContain(pid);
      workers.push(pid);
      await progress(users, 3, `replies after crash ${n}`);
    }
    expect(startedWorkers(server)).toEqual(workers);

    for (const user of users) user.stop();
    await waitFor(() => users.every((user) => user.replies().at(-1) === user.sent.at(-1)), 15_000, () => `the last replies: ${users.map((u) => `${u.name} ${u.replies().length}/${u.sent.length}`).join(', ')}`);
    const lost: string[] = [];
    for (const user of users) {
      expect(user.closed, `${user.name} closed`).toBe(false);
      lost.push(`${user.name} ${checkAccounted(user, CRASHES, Array(CRASHES).fill(CRASH_NOTICE))}/${user.sent.length}`);
    }
    console.log(`lines lost in ${CRASHES} crashes (read by the dead worker, not answered): ${lost.join(', ')}`);
    for (const [i, user] of telnets.entries()) expect(user.commands, `${user.name} was asked to negotiate again`).toEqual(negotiated[i]);
    // The compressed user was closed at the first crash, and the app heard they left.
    await waitFor(() => compressed.closed, 10_000, 'the MCCP2 user to be closed');
    expect(app.disconnects().some((event) => event.id === compressedId)).toBe(true);
    const stats = await server.stats();
    expect(stats.process.pid).toBe(workers.at(-1));
    expect(stats.stats.sessions).toBe(users.length);
    expect(stats.stats.errors['IMI_WORKER_CRASHED']).toBe(CRASHES);
    expect(server.alive(supervisorPid)).toBe(true);

    // A user who leaves is closed for good: the supervisor drops its copy, so the FIN reaches them.
    const leaving = tcps[0]!;
    leaving.socket.end();
    await waitFor(() => leaving.closed, 10_000, 'the leaving user to be closed');
    // SIGTERM to the supervisor: the worker stops gracefully (shutdown notice), the supervisor exits 0.
    server.child.kill('SIGTERM');
    const [code] = (await once(server.child, 'exit')) as [number | null];
    expect(code).toBe(0);
    for (const user of users.slice(1)) {
      await waitFor(() => user.closed, 10_000, `${user.name} to be closed at stop`);
      expect(user.text).toContain('shutting down');
    }
  });
});

describe('imi-server --supervise, a crash loop and broken messages', () => {
  it('counts broken worker messages as IMI_BAD_JOURNAL and serves on; gives up after --max-restarts crashes in the window: users told and closed, ports let go, exit 1', async () => {
    const modeFile = join(tempDir(), 'mode');
    writeFileSync(modeFile, 'garbage');
    const server = await Server.start(['--supervise', '--telnet-mccp2', 'false', '--max-restarts', '2', '--restart-window-ms', '60000', '--restart-delay-ms', '20'], { IMI_SUPERVISE_EXEC: CRASH_WORKER, IMI_TEST_WORKER_MODE: modeFile });
    const app = await App.start(server.clientPort, SUPERVISE_APP);
    const tcp = await TcpUser.connect('tcp', server.externalPort);
    const telnet = await telnetUser('telnet', server.telnetPort, 80, false);
    const users: User[] = [tcp, telnet];
    await waitFor(() => app.connects().length === 2, 10_000, 'the app to know both users');
    for (const user of users) user.typeSteadily(TYPE_INTERVAL_MS);
    await progress(users, 3, 'replies before the crash');
    // The three broken messages were counted (by the supervisor, shown in the worker's /stats), and nothing else changed.
    await waitFor(() => server.err.includes('IMI_BAD_JOURNAL'), 10_000, 'the IMI_BAD_JOURNAL log line');
    const stats = await server.stats();
    expect(stats.stats.errors['IMI_BAD_JOURNAL']).toBe(3);
    expect(stats.stats.sessions).toBe(2);

    // One crash is survived; from then on every worker dies at start.
    writeFileSync(modeFile, 'crash');
    process.kill(await workerPid(server), 'SIGKILL');
    const [code] = (await once(server.child, 'exit')) as [number | null];
    expect(code).toBe(1);
    for (const user of users) {
      await waitFor(() => user.closed, 10_000, `${user.name} to be closed`);
      user.stop();
      // Told to hold on once (one outage, however many restarts), then that the server shuts down.
      expect(count(user, CRASH_NOTICE), user.name).toBe(1);
      expect(user.text.indexOf('shutting down'), user.name).toBeGreaterThan(user.text.indexOf(CRASH_NOTICE));
    }
    expect(server.err).toMatch(/IMI_SUPERVISOR_GAVE_UP.*crashed more than 2 times in 60000 ms/);
    // 1 + 2 restarts were tried: the first worker, then the two that died at start.
    expect(startedWorkers(server)).toHaveLength(3);
    expect(server.err.match(/"code":"IMI_WORKER_CRASHED"/g)).toHaveLength(3);
    // The listeners are gone with the supervisor.
    const refused = net.connect({ port: server.externalPort, host: '127.0.0.1' });
    const [error] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
    expect(error.code).toBe('ECONNREFUSED');
  });
});

describe('imi-server --supervise, a planned restart', () => {
  it('SIGUSR2 to the supervisor and imi-server upgrade restart the worker with nothing lost: every line answered once in order, MCCP2 kept', async () => {
    const server = await Server.start(['--supervise']);
    const app = await App.start(server.clientPort, SUPERVISE_APP);
    // --telnet-mccp2 true (the harness's default): a planned restart ends and restarts the compressed stream.
    const telnet = await telnetUser('telnet', server.telnetPort, 70, true);
    const tcp = await TcpUser.connect('tcp', server.externalPort);
    const users: User[] = [tcp, telnet];
    await waitFor(() => app.connects().length === 2, 10_000, 'the app to know both users');
    for (const user of users) user.typeSteadily(TYPE_INTERVAL_MS);
    await progress(users, 3, 'replies before the restart');
    const workers = [await workerPid(server)];
    for (let n = 1; n <= 2; n++) {
      const resyncsBefore = app.resyncs().length;
      const reconnectsBefore = app.reconnects().length;
      if (n === 1) process.kill(server.child.pid!, 'SIGUSR2');
      else {
        const result = await server.upgradeCommand();
        expect(result.code, result.stderr).toBe(0);
      }
      await waitFor(() => startedWorkers(server).length === n + 1, 15_000, `worker ${n + 1} to start`);
      await waitFor(() => app.resyncs().length > resyncsBefore && app.resyncs().at(-1)!.count === 2, 15_000, () => `the resync after restart ${n} (app: ${app.events.filter((e) => e.event !== 'input').map((e) => `${e.event} ${e.id?.slice(0, 8) ?? e.count}`).join(', ')}; log ${server.err.slice(-2000)})`);
      // Told it is a restart, not an upgrade's handover: the supervisor turns apps away until the next worker listens, so the app keeps its delay.
      const reconnect = app.reconnects()[reconnectsBefore]!;
      expect(reconnect).toMatchObject({ attempt: 1, cause: expect.stringContaining('shut down (restart)') });
      expect(reconnect.delay).toBeGreaterThan(0);
      const pid = await workerPid(server);
      expect(workers).not.toContain(pid);
      workers.push(pid);
      await waitFor(() => !server.alive(workers.at(-2)!), 10_000, 'the old worker to exit');
      await progress(users, 3, `replies after restart ${n}`);
    }
    for (const user of users) user.stop();
    await waitFor(() => users.every((user) => user.replies().length >= user.sent.length), 15_000, 'the last replies');
    for (const user of users) {
      expect(user.closed).toBe(false);
      expect(user.replies(), user.name).toEqual(user.sent);
      expect(user.lines().filter((line) => !line.endsWith('!')), user.name).toEqual([]);
    }
    expect(telnet.mccp2Starts).toBe(3);
    expect(telnet.inflateErrors).toBe(0);
    expect((await server.stats()).stats.errors['IMI_WORKER_CRASHED']).toBe(0);
  });
});

describe('imi-server --supervise, a user journaled in the instant of the crash', () => {
  it("keeps a user whose socket copy was still in flight when the worker died: the supervisor reads the worker's last messages before it restarts", async () => {
    const modeFile = join(tempDir(), 'mode');
    writeFileSync(modeFile, 'kill-after-open');
    const server = await Server.start(['--supervise', '--restart-delay-ms', '20', '--log-level', 'info'], { IMI_SUPERVISE_EXEC: CRASH_WORKER, IMI_TEST_WORKER_MODE: modeFile });
    // The next workers are the real imi-server.
    writeFileSync(modeFile, 'ok');
    const app = await App.start(server.clientPort, SUPERVISE_APP);
    // The first worker SIGKILLs itself once this user's descriptor is written to the supervisor.
    const user = await TcpUser.connect('tcp', server.externalPort);
    await waitFor(() => startedWorkers(server).length === 2, 10_000, 'the worker to die and a new one to start');
    await waitFor(() => server.err.includes('IMI_WORKER_CRASHED'), 10_000, 'the crash to be logged');
    expect(server.err).toMatch(/died \(SIGKILL\); 1 users are held by the supervisor/);
    user.typeSteadily(TYPE_INTERVAL_MS);
    await progress([user], 3, 'replies from the restarted worker');
    expect(user.closed).toBe(false);
    expect(count(user, CRASH_NOTICE)).toBe(1);
    user.stop();
    void app;
  });
});
