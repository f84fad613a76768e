// The successor starts (Node, module loading, its sockets) before the old
// process freezes, with every user socket open at that moment. Users who
// leave or arrive while it boots must be neither lost nor leaked: the old
// process serves them meanwhile, the successor closes its copy of a user who
// left, and one who arrived is passed on (or let in by the old process if
// the upgrade fails). A successor fixture that waits for a file before it
// loads imi-server holds the boot open as long as the test needs.
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from './harness.js';
import { App, FAULTY_SUCCESSOR, Server, TcpUser, cleanUp, tempDir } from './upgrade-harness.js';

afterEach(() => cleanUp());

/** The kernel's inode of the established TCP connection from `remotePort` to `localPort` on 127.0.0.1 (from /proc/net/tcp). */
function tcpInode(localPort: number, remotePort: number): string {
  const hex = (port: number): string => port.toString(16).toUpperCase().padStart(4, '0');
  for (const row of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const fields = row.trim().split(/\s+/);
    if (fields[1]?.endsWith(`:${hex(localPort)}`) && fields[2]?.endsWith(`:${hex(remotePort)}`) && fields[3] === '01') return fields[9]!;
  }
  throw new Error(`no established connection ${remotePort} → ${localPort}`);
}

/** Whether process `pid` holds a descriptor of the socket with this inode. */
function holdsSocket(pid: number, inode: string): boolean {
  return readdirSync(`/proc/${pid}/fd`).some((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`;
    } catch {
      return false; // closed meanwhile
    }
  });
}

async function sessions(server: Server, count: number, what: string): Promise<void> {
  let seen = -1;
  for (let i = 0; i < 300 && seen !== count; i++) {
    seen = (await server.stats()).stats.sessions;
    if (seen !== count) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  expect(seen, what).toBe(count);
}

/** A server whose successors wait for `<mode>.go`, an app, a user who stays and one who will leave; the upgrade started and its successor booting. */
async function upgradeUnderWay(): Promise<{ server: Server; app: App; staying: TcpUser; leaving: TcpUser; modeFile: string; successor: number; upgrade: ReturnType<Server['upgradeCommand']> }> {
  const modeFile = join(tempDir(), 'mode');
  writeFileSync(modeFile, 'gate');
  const server = await Server.start(['--upgrade-timeout-ms', '60000'], { IMI_UPGRADE_EXEC: FAULTY_SUCCESSOR, IMI_TEST_SUCCESSOR_MODE: modeFile });
  const app = await App.start(server.clientPort);
  const staying = await TcpUser.connect('staying', server.externalPort);
  const leaving = await TcpUser.connect('leaving', server.externalPort);
  await waitFor(() => app.connects().length === 2, 10_000, 'the app to know both users');
  const upgrade = server.upgradeCommand();
  await waitFor(() => existsSync(`${modeFile}.started`), 15_000, 'the successor to start');
  const successor = Number(readFileSync(`${modeFile}.started`, 'utf8'));
  server.pids.add(successor);
  return { server, app, staying, leaving, modeFile, successor, upgrade };
}

describe('imi-server upgrade: users who come and go while the successor boots', () => {
  it('the old process serves them; the successor closes its copy of a user who left and takes the one who arrived', async () => {
    const { server, app, staying, leaving, modeFile, successor, upgrade } = await upgradeUnderWay();
    const old = server.pid();
    const leavingInode = tcpInode(server.externalPort, leaving.socket.localPort!);
    // The successor was started with both users' sockets (the check below can fail).
    expect(holdsSocket(successor, leavingInode)).toBe(true);

    // Nobody is frozen yet: the old process answers.
    staying.type('while-booting');
    await waitFor(() => staying.replies().length === 1, 10_000, 'an answer from the old process while the successor boots');
    leaving.socket.end();
    await waitFor(() => app.events.some((event) => event.event === 'disconnect'), 10_000, 'the app to hear the leaving user left');
    await sessions(server, 1, 'the old process forgot the leaving user');
    const arriving = await TcpUser.connect('arriving', server.externalPort);
    arriving.type('arrived-while-booting');

    writeFileSync(`${modeFile}.go`, '');
    const result = await upgrade;
    expect(result.code, result.stderr).toBe(0);
    // The staying user was idle from the pre-copy (after the boot) to the freeze: only its id crossed in the freeze.
    expect(JSON.parse(result.stdout)).toMatchObject({ sessions: 1, precopied: 1, unchanged: 1 });
    await waitFor(() => server.pid() === successor && !server.alive(old), 15_000, 'the successor to serve and the old process to exit');

    // The user who left is held by nobody; the other two are served by the successor.
    expect(holdsSocket(successor, leavingInode)).toBe(false);
    await waitFor(() => arriving.replies().length === 1, 15_000, 'the arriving user to be answered by the successor');
    staying.type('after');
    await waitFor(() => staying.replies().length === 2, 15_000, 'the staying user to be answered by the successor');
    expect(staying.replies()).toEqual(staying.sent);
    expect(arriving.replies()).toEqual(arriving.sent);
    expect(staying.closed || arriving.closed).toBe(false);
    await sessions(server, 2, 'the successor serves the staying and the arriving user');
    expect((await server.stats()).process.pid).toBe(successor);
    // Exactly the users now served hold a descriptor there: neither fewer (lost) nor more (leaked).
    const userSockets = [staying, arriving].map((user) => tcpInode(server.externalPort, user.socket.localPort!));
    for (const inode of userSockets) expect(holdsSocket(successor, inode)).toBe(true);
  });

  it('a successor that dies while booting leaves the old process serving everyone, the one who arrived meanwhile too', async () => {
    const { server, app, staying, leaving, successor, upgrade } = await upgradeUnderWay();
    const old = server.pid();
    const arriving = await TcpUser.connect('arriving', server.externalPort);
    arriving.type('arrived-while-booting');
    leaving.socket.end();
    process.kill(successor, 'SIGKILL');
    const result = await upgrade;
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/the successor exited \(SIGKILL\) before it was ready/);
    expect(server.pid()).toBe(old);
    await waitFor(() => arriving.replies().length === 1, 15_000, 'the arriving user to be let in by the old process');
    staying.type('after');
    await waitFor(() => staying.replies().length === 1, 15_000, 'the staying user to be answered');
    expect(arriving.replies()).toEqual(arriving.sent);
    expect(staying.replies()).toEqual(staying.sent);
    await sessions(server, 2, 'the old process serves the staying and the arriving user');
    expect(app.events.filter((event) => event.event === 'disconnect')).toHaveLength(1);
    expect((await server.stats()).stats.errors['IMI_UPGRADE_FAILED']).toBe(1);
  });
});
