// An upgrade carries over what the app was told of each telnet user, so the
// app that comes back at once (it read the `handover` shutdown, so it got
// everything written before it) is not told again. One that comes back late
// may have been on a half-open link that lost the last writes: the
// successor then sends every named telnet user's info again.
import { afterEach, describe, expect, it } from 'vitest';
import { RawApp, waitFor } from './harness.js';
import { Server, TelnetUser, cleanUp } from './upgrade-harness.js';

afterEach(() => cleanUp());

async function upgraded(server: Server): Promise<void> {
  const old = server.pid();
  const result = await server.upgradeCommand();
  expect(result.code, result.stderr).toBe(0);
  await waitFor(() => server.pid() !== old && !server.alive(old), 15_000, 'the successor to serve and the old process to exit');
}

describe('imi-server upgrade: the app that comes back', () => {
  it.each([
    ['at once: no telnet info again', 0, 0],
    ['after the successor stopped waiting for it (1 s): every named telnet user\'s info again', 1_500, 1],
  ])('%s', async (_what, returnAfterMs, telnetFrames) => {
    const server = await Server.start([]);
    const first = await RawApp.connect(server.clientPort, { name: 'late', instance: 'i1' });
    await first.synced();
    await TelnetUser.connect('t1', server.telnetPort, [100, 30]);
    const [connect] = await first.waitForParam('connect');
    const id = connect!.data['id'] as string;
    // What the client negotiated reaches the app before the upgrade (the window size at least).
    await waitFor(() => JSON.stringify(first.frames.filter((f) => f.param !== 'ping')).includes('"width":100'), 10_000, 'the window size to reach the app');

    // The old process ends the app link at the commit; the app returns from there, at once or late.
    const upgrade = upgraded(server);
    await first.waitClosed(30_000);
    if (returnAfterMs > 0) {
      await upgrade;
      await new Promise((resolve) => setTimeout(resolve, returnAfterMs));
    }
    const again = await RawApp.connect(server.clientPort, { name: 'late', instance: 'i1', known: [id] });
    const synced = await again.synced(10_000);
    expect(synced.data['known']).toBe(true);
    const beforeSynced = again.frames.slice(0, again.frames.indexOf(synced));
    expect(beforeSynced.filter((frame) => frame.param === 'connect')).toEqual([]);
    const telnet = beforeSynced.filter((frame) => frame.param === 'telnet');
    expect(telnet).toHaveLength(telnetFrames);
    if (telnetFrames > 0) expect((telnet[0]!.data['telnet'] as { naws: { width: number } }).naws.width).toBe(100);
    await upgrade;
    expect((await server.stats()).stats.lastResyncAnnounced).toBe(0);
  }, 60_000);
});
