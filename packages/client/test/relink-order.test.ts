/**
 * Per-user order of replies across a link outage of the same process: the
 * replies the intermediary did not take from the broken link (written into
 * the void, finished only after the break, or held behind a slower event)
 * all leave at their input's place in the redelivery, in the order typed,
 * once each.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Client } from '../src/index.js';
import { LinkProxy, User, onCleanup, runCleanups, startImi, waitFor } from './helpers.js';

afterEach(runCleanups);

interface Gate {
  promise: Promise<void>;
  open(): void;
}

function gate(): Gate {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

async function setup(): Promise<{ externalPort: number; proxy: LinkProxy; app: Client; runs: string[]; errors: Error[]; slow: Gate; linkEvents: string[] }> {
  const { externalPort, clientPort } = await startImi({ appDownNotice: false });
  const proxy = await LinkProxy.start(clientPort);
  // Held replies wait for as long as it takes: a release by the timer is not what is tested.
  const app = new Client({ port: proxy.port, tickIntervalMs: 0, maxReplyHoldMs: Number.POSITIVE_INFINITY, reconnect: { initialDelayMs: 10, maxDelayMs: 50 } });
  onCleanup(() => app.close());
  const errors: Error[] = [];
  app.on('error', (error) => errors.push(error));
  const linkEvents: string[] = [];
  app.on('linkDown', () => linkEvents.push('down'));
  app.on('linkUp', () => linkEvents.push('up'));
  const runs: string[] = [];
  const slow = gate();
  app.on('input', async (session, line) => {
    runs.push(line);
    if (line.startsWith('slow')) await slow.promise;
    session.send(`reply to ${line}\r\n`);
  });
  await app.connect();
  return { externalPort, proxy, app, runs, errors, slow, linkEvents };
}

describe('replies across a link outage of the same process', () => {
  it('a reply written into the void leaves before that of a later line whose handler finished after the break', async () => {
    const { externalPort, proxy, app, runs, errors, slow, linkEvents } = await setup();
    const user = await User.connect(externalPort);
    await waitFor(() => app.sessions.size === 1, 'session');

    proxy.blackhole = true;
    user.line('first');
    await waitFor(() => proxy.swallowed.of('output').length === 1, 'the first reply to be written into the void');
    user.line('slow second');
    await waitFor(() => runs.includes('slow second'), 'the second line to be handled');
    await proxy.refuse();
    proxy.cut();
    await waitFor(() => linkEvents.includes('down'), 'linkDown');
    // The second handler finishes while no link is up.
    slow.open();
    await new Promise((resolve) => setImmediate(resolve));
    proxy.blackhole = false;
    await proxy.resume();

    await user.waitFor('reply to slow second\r\n');
    await user.waitFor('reply to first\r\n');
    user.line('third');
    await user.waitFor('reply to third\r\n');
    expect(user.received).toBe('reply to first\r\nreply to slow second\r\nreply to third\r\n');
    expect(runs).toEqual(['first', 'slow second', 'third']);
    expect(errors).toEqual([]);
  });

  it('a reply held behind another user\'s slower event at the break is neither lost nor sent out of order', async () => {
    const { externalPort, proxy, app, runs, errors, slow, linkEvents } = await setup();
    const slowUser = await User.connect(externalPort);
    await waitFor(() => app.sessions.size === 1, 'first session');
    const user = await User.connect(externalPort);
    await waitFor(() => app.sessions.size === 2, 'second session');

    slowUser.line('slow one');
    await waitFor(() => runs.includes('slow one'), 'the slow line to be handled');
    user.line('a');
    user.line('b');
    // Their replies are ready, held until the slow event before them is done.
    await waitFor(() => runs.includes('b'), 'the other lines to be handled');
    await new Promise((resolve) => setImmediate(resolve));
    expect(proxy.appFrames.of('output')).toEqual([]);
    proxy.cut();
    await waitFor(() => linkEvents.join(' ') === 'up down up', 'the link to be up again');
    user.line('c');
    slow.open();

    await user.waitFor('reply to c\r\n');
    await slowUser.waitFor('reply to slow one\r\n');
    expect(user.received).toBe('reply to a\r\nreply to b\r\nreply to c\r\n');
    expect(slowUser.received).toBe('reply to slow one\r\n');
    expect(runs).toEqual(['slow one', 'a', 'b', 'c']);
    expect(errors).toEqual([]);
  });
});
