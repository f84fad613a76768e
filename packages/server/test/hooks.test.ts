// Hooks (tapable) and plugins: the order hooks run in, what a tap's return
// value means for each kind (bail, waterfall, notification, async series),
// what happens when a tap throws, and the built-in plugins.
import { describe, expect, it } from 'vitest';
import type { ImiError } from '@imi/core';
import type { AppInfo, Intermediary, IntermediaryOptions, IntermediaryPlugin, Session } from '@imi/server';
import { IdleTimeoutPlugin, WelcomeBannerPlugin } from '@imi/server';
import { sleep, testScope, waitFor, withAppAndUser } from './harness.js';

const scope = testScope();

/** A plugin from a function, for brevity. */
function plugin(apply: (imi: Intermediary) => void): IntermediaryPlugin {
  return { apply };
}

const HOOK_NAMES = ['connect', 'input', 'noClient', 'output', 'disconnect', 'clientConnect', 'clientInput', 'clientDisconnect', 'shutdown'] as const;
type HookName = (typeof HOOK_NAMES)[number];

/**
 * Runs every hook once, in the order of a session's life: an app connects,
 * a user connects and types, the app answers, the app goes away, the user
 * types while it is away and leaves, the intermediary stops.
 */
async function lifecycle(plugins: IntermediaryPlugin[], options: IntermediaryOptions = {}) {
  const { imi, ports } = await scope.start({ appDownNotice: false, plugins, ...options });
  const errors: ImiError[] = [];
  imi.on('error', (error) => errors.push(error));
  const app = await scope.app(ports.clientPort, { name: 'the-app' });
  await app.synced();
  const user = await scope.user(ports.externalPort);
  const id = await app.nextUserId();
  user.send('hello');
  const [input] = await app.waitForParam('input');
  app.output(id, 'reply\r\n');
  await user.waitFor('reply\r\n');
  app.destroy();
  await waitFor(() => !imi.appConnected);
  user.send('while down');
  await waitFor(() => imi.stats().inputLines === 2);
  user.close();
  await waitFor(() => imi.stats().sessions === 0);
  await imi.close('the-end');
  return { imi, errors, app, user, id, input: input! };
}

describe('hook order and arguments', () => {
  it('runs the hooks in the documented order, with their arguments', async () => {
    const log: string[] = [];
    const recorder = plugin((imi) => {
      const h = imi.hooks;
      h.clientConnect.tap('Recorder', (app) => void log.push(`clientConnect ${app.name}`));
      h.connect.tap('Recorder', (session) => void log.push(`connect ${session.transport}`));
      h.input.tap('Recorder', (line) => (log.push(`input ${String(line)}`), line));
      h.clientInput.tap('Recorder', (message, app) => (log.push(`clientInput ${message ? message.param : 'false'} ${app.name}`), message));
      h.output.tap('Recorder', (text) => (log.push(`output ${JSON.stringify(text)}`), text));
      h.clientDisconnect.tap('Recorder', (app, reason) => void log.push(`clientDisconnect ${app.name} ${reason}`));
      h.noClient.tap('Recorder', (_session, line) => void log.push(`noClient ${line}`));
      h.disconnect.tap('Recorder', (_session, reason) => void log.push(`disconnect ${reason}`));
      h.shutdown.tapPromise('Recorder', async (reason) => void log.push(`shutdown ${reason}`));
    });
    const { errors } = await lifecycle([recorder]);
    expect(log).toEqual([
      'clientConnect the-app',
      'connect tcp',
      'input hello',
      'clientInput output the-app',
      'output "reply\\r\\n"',
      'clientDisconnect the-app closed',
      'input while down', // every line goes through input, then noClient when no app is there
      'noClient while down',
      'disconnect closed',
      'shutdown the-end',
    ]);
    expect(errors).toEqual([]);
  });

  it('hands every hook the same session object the intermediary lists', async () => {
    const seen = new Map<string, Session>();
    const { imi, ports } = await scope.start({
      plugins: [
        plugin((imi) => {
          imi.hooks.connect.tap('Same', (session) => void seen.set('connect', session));
          imi.hooks.input.tap('Same', (line, session) => (seen.set('input', session), line));
        }),
      ],
    });
    const app = await scope.app(ports.clientPort, { name: 'x' });
    await app.synced();
    const user = await scope.user(ports.externalPort);
    const id = await app.nextUserId();
    user.send('x');
    await app.waitForParam('input');
    expect(seen.get('connect')).toBe(imi.session(id));
    expect(seen.get('input')).toBe(imi.session(id));
    expect(seen.get('connect')!.id).toBe(id);
  });

  it('runs taps in registration order, and by stage when one is given', async () => {
    const { app, user } = await withAppAndUser(scope, {
      plugins: [
        plugin((imi) => {
          imi.hooks.input.tap('Upper', (line) => (line === false ? line : line.toUpperCase()));
          imi.hooks.input.tap('Bang', (line) => (line === false ? line : line + '!'));
          imi.hooks.input.tap({ name: 'Brackets', stage: -10 }, (line) => (line === false ? line : `[${line}]`));
        }),
      ],
    });
    user.send('hello');
    const [input] = await app.waitForParam('input');
    expect(input!.data['value']).toBe('[HELLO]!');
  });
});

describe('connect (async series bail)', () => {
  it('a refusal: the user gets the message and is closed, later taps do not run, the app never hears', async () => {
    const laterTapSaw: string[] = [];
    let first = true;
    const { imi, ports } = await scope.start({
      plugins: [
        plugin((imi) => {
          imi.hooks.connect.tap('BanFirst', () => {
            if (!first) return undefined;
            first = false;
            return { message: 'You are banned.\r\n' };
          });
          imi.hooks.connect.tap('Later', (session) => void laterTapSaw.push(session.id));
        }),
      ],
    });
    const disconnects: string[] = [];
    imi.hooks.disconnect.tap('Spy', (_s, reason) => void disconnects.push(reason));
    const app = await scope.app(ports.clientPort, { name: 'x' });
    await app.synced();
    const banned = await scope.user(ports.externalPort);
    banned.send('let me in');
    await banned.waitClosed();
    expect(banned.received).toBe('You are banned.\r\n');
    expect(laterTapSaw).toEqual([]);
    const welcome = await scope.user(ports.externalPort);
    const id = await app.nextUserId();
    await app.barrier();
    expect(app.of('connect').map((c) => c.data['id'])).toEqual([id]);
    expect(app.of('input')).toEqual([]);
    expect(app.of('disconnect')).toEqual([]);
    expect(laterTapSaw).toEqual([id]);
    expect(disconnects).toEqual([]);
    expect(imi.stats().sessions).toBe(1);
    expect(welcome.closed).toBe(false);
  });

  it('a user refused while no app is connected is not first told to stay connected', async () => {
    const { ports } = await scope.start({
      plugins: [plugin((imi) => imi.hooks.connect.tap('BanAll', () => ({ message: 'Go away.\r\n' })))],
    });
    const user = await scope.user(ports.externalPort);
    await user.waitClosed();
    expect(user.received).toBe('Go away.\r\n');
  });

  it('an async tap delays the user: their input waits, and the app hears connect first', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { ports } = await scope.start({
      plugins: [plugin((imi) => imi.hooks.connect.tapPromise('Slow', async () => void (await gate)))],
    });
    const app = await scope.app(ports.clientPort, { name: 'x' });
    await app.synced();
    const user = await scope.user(ports.externalPort);
    user.send('typed early');
    await sleep(50);
    await app.barrier();
    expect(app.of('connect')).toEqual([]);
    release();
    const [input] = await app.waitForParam('input');
    expect(app.traffic.map((f) => f.param)).toEqual(['synced', 'connect', 'input']);
    expect(input!.data['value']).toBe('typed early');
  });

  it('a tap that throws or rejects is reported and the user is let in', async () => {
    for (const kind of ['throws', 'rejects'] as const) {
      const { imi, ports } = await scope.start({
        plugins: [
          plugin((imi) => {
            if (kind === 'throws') imi.hooks.connect.tap('Broken', () => { throw new Error('ban list unreachable'); });
            else imi.hooks.connect.tapPromise('Broken', () => Promise.reject(new Error('ban list unreachable')));
          }),
        ],
      });
      const errors: ImiError[] = [];
      imi.on('error', (error) => errors.push(error));
      const app = await scope.app(ports.clientPort, { name: 'x' });
      await app.synced();
      const user = await scope.user(ports.externalPort);
      const id = await app.nextUserId();
      user.send('in');
      await app.waitForParam('input');
      expect(errors.map((e) => e.code)).toEqual(['IMI_PLUGIN']);
      expect(errors[0]!.message).toMatch(/"connect"/);
      expect(errors[0]!.message).toMatch(/ban list unreachable/);
      expect(errors[0]!.sessionId).toBe(id);
      expect(imi.stats().errors.IMI_PLUGIN).toBe(1);
    }
  });
});

describe('input (sync waterfall)', () => {
  it('a tap returning false swallows the line; later taps get false; the next line goes through', async () => {
    const laterGot: Array<string | false> = [];
    const { imi, app, user } = await withAppAndUser(scope, {
      plugins: [
        plugin((imi) => {
          imi.hooks.input.tap('Mute', (line) => (line === '/secret' ? false : line));
          imi.hooks.input.tap('Later', (line) => (laterGot.push(line), line));
        }),
      ],
    });
    user.send('/secret');
    user.send('public');
    const [input] = await app.waitForParam('input');
    await app.barrier();
    expect(app.of('input').length).toBe(1);
    expect(input!.data['value']).toBe('public');
    expect(laterGot).toEqual([false, 'public']);
    expect(imi.stats().inputLines).toBe(2);
  });

  it('a swallowed line is not queued while the app is down either', async () => {
    const { imi, ports, app, user } = await withAppAndUser(scope, {
      plugins: [plugin((imi) => imi.hooks.input.tap('Mute', (line) => (line === 'drop me' ? false : line)))],
    });
    app.destroy();
    await waitFor(() => !imi.appConnected);
    user.send('drop me');
    user.send('keep me');
    await waitFor(() => imi.stats().inputLines === 2);
    expect(imi.stats().queuedLines).toBe(1);
    const next = await scope.app(ports.clientPort, { name: 'next' });
    const [input] = await next.waitForParam('input');
    expect(input!.data['value']).toBe('keep me');
  });
});

describe('output (sync waterfall)', () => {
  it('transforms every text written to users: app output, broadcasts, plugin writes; "" writes nothing', async () => {
    const { imi, app, user, id } = await withAppAndUser(scope, {
      appDownNotice: false,
      plugins: [
        plugin((imi) => {
          imi.hooks.output.tap('Censor', (text) => (text.includes('secret') ? '' : text));
          // A later tap passes '' on (like false for input), or it would write something again.
          imi.hooks.output.tap('Angle', (text, session) => (text === '' ? '' : `<${session.id === id ? 'me' : '?'}:${text}>`));
        }),
      ],
    });
    app.output(id, 'one');
    app.output(id, 'top secret');
    app.send({ param: 'broadcast', data: { value: 'two' } });
    await user.waitFor('<me:two>');
    imi.broadcast('three');
    imi.session(id)!.write('four');
    await user.waitFor('<me:four>');
    expect(user.received).toBe('<me:one><me:two><me:three><me:four>');
  });
});

describe('noClient, disconnect, clientConnect, clientDisconnect (notifications)', () => {
  it('noClient runs only while no app is connected, with the session and the line, whatever whileAppDown says', async () => {
    for (const whileAppDown of ['queue', 'drop'] as const) {
      const calls: string[] = [];
      const { imi, app, user, id } = await withAppAndUser(scope, {
        whileAppDown,
        plugins: [plugin((imi) => imi.hooks.noClient.tap('Spy', (session, line) => void calls.push(`${session.id}:${line}`)))],
      });
      user.send('with app');
      await app.waitForParam('input');
      app.destroy();
      await waitFor(() => !imi.appConnected);
      user.send('without app');
      await waitFor(() => imi.stats().inputLines === 2);
      expect(calls).toEqual([`${id}:without app`]);
    }
  });

  it('disconnect gets the reason the app is told', async () => {
    const reasons: string[] = [];
    const { ports, app, user, id } = await withAppAndUser(scope, {
      plugins: [plugin((imi) => imi.hooks.disconnect.tap('Spy', (session, reason) => void reasons.push(`${session.id === undefined ? '?' : 'ok'} ${reason}`)))],
    });
    app.send({ param: 'disconnect', data: { id } });
    await user.waitClosed();
    const other = await scope.user(ports.externalPort);
    await app.nextUserId(1);
    other.close();
    await app.waitForParam('disconnect', 2);
    expect(reasons).toEqual(['ok kicked', 'ok closed']);
    expect(app.of('disconnect').map((f) => f.data['reason'])).toEqual(['kicked', 'closed']);
  });

  it('clientConnect runs before the resync with the app\'s hello; clientDisconnect gets the reason', async () => {
    const events: string[] = [];
    const { imi, ports } = await scope.start({
      plugins: [
        plugin((imi) => {
          imi.hooks.clientConnect.tap('Spy', (app) => void events.push(`clientConnect ${app.name} acks=${app.acks} #${app.connectionId}`));
          imi.hooks.clientDisconnect.tap('Spy', (app, reason) => void events.push(`clientDisconnect ${app.name} ${reason}`));
        }),
      ],
    });
    imi.on('synced', (app: AppInfo, count: number) => void events.push(`synced ${app.name} ${count}`));
    const app = await scope.app(ports.clientPort, { name: 'svc', acks: true });
    await app.synced();
    app.close();
    await waitFor(() => events.length === 3);
    expect(events).toEqual(['clientConnect svc acks=true #1', 'synced svc 0', 'clientDisconnect svc closed']);
  });
});

describe('clientInput (sync waterfall over app messages)', () => {
  it('can change a message or drop it with false', async () => {
    const { app, user, id } = await withAppAndUser(scope, {
      appDownNotice: false,
      plugins: [
        plugin((imi) => {
          imi.hooks.clientInput.tap('Filter', (message) => {
            if (message === false || message.param !== 'output') return message;
            if (message.data.value.startsWith('DROP')) return false;
            return { ...message, data: { ...message.data, value: message.data.value.replace('cat', 'dog') } };
          });
        }),
      ],
    });
    app.output(id, 'a cat ');
    app.output(id, 'DROP this ');
    app.output(id, 'end');
    await user.waitFor('end');
    expect(user.received).toBe('a dog end');
  });

  it('sees only valid messages: rejected frames never reach it', async () => {
    const seen: string[] = [];
    const { app, id } = await withAppAndUser(scope, {
      plugins: [plugin((imi) => imi.hooks.clientInput.tap('Spy', (message) => (message !== false && seen.push(message.param), message)))],
    });
    app.sendRaw('not json\n');
    app.send({ param: 'output', data: { id, value: 7 } });
    app.send({ param: 'null' });
    await app.barrier();
    expect(seen).toEqual(['null']);
  });
});

describe('shutdown (async series)', () => {
  it('awaits an async tap during close(), while users and the app are still connected', async () => {
    const during: string[] = [];
    const { imi, app, user } = await withAppAndUser(scope, {
      plugins: [
        plugin((imi) =>
          imi.hooks.shutdown.tapPromise('Farewell', async (reason) => {
            await sleep(100);
            during.push(`${reason} sessions=${imi.stats().sessions} app=${imi.appConnected}`);
            for (const session of imi.sessions()) session.write('Saving your game...\r\n');
          }),
        ),
      ],
    });
    await imi.close('deploy');
    expect(during).toEqual(['deploy sessions=1 app=true']);
    await user.waitClosed();
    const farewell = user.received.indexOf('Saving your game...');
    const notice = user.received.indexOf('shutting down');
    expect(farewell).toBeGreaterThanOrEqual(0);
    expect(notice).toBeGreaterThan(farewell);
    const [shutdown] = await app.waitForParam('shutdown');
    expect(shutdown!.data['reason']).toBe('deploy');
  });
});

describe('a throwing tap', () => {
  it.each(HOOK_NAMES)('in %s is reported (IMI_PLUGIN, with the hook name) and nothing breaks', async (hook: HookName) => {
    const thrower = plugin((imi) => {
      const fail = (): never => {
        throw new Error(`boom in ${hook}`);
      };
      (imi.hooks[hook] as { tap(name: string, fn: () => never): void }).tap('Thrower', fail);
    });
    const { imi, errors, input, user } = await lifecycle([thrower]);
    // The flow went on as if the tap were not there.
    expect(input.data['value']).toBe('hello');
    expect(user.received).toBe('reply\r\n');
    const plugins = errors.filter((e) => e.code === 'IMI_PLUGIN');
    expect(plugins.length).toBeGreaterThanOrEqual(1);
    for (const error of plugins) {
      expect(error.message).toContain(`"${hook}"`);
      expect(error.message).toContain(`boom in ${hook}`);
    }
    expect(imi.stats().errors.IMI_PLUGIN).toBe(plugins.length);
  });

  it('an error listener that throws does not break the intermediary', async () => {
    const { imi, app, user, id } = await withAppAndUser(scope, {
      plugins: [plugin((imi) => imi.hooks.input.tap('Thrower', () => { throw new Error('tap'); }))],
    });
    imi.on('error', () => {
      throw new Error('listener');
    });
    user.send('x');
    await app.waitForParam('input');
    app.output(id, 'ok');
    await user.waitFor('ok');
    expect(imi.stats().errors.IMI_PLUGIN).toBe(1);
  });
});

describe('built-in plugins', () => {
  it('banner: written to each user on connect, before the app hears of them, through the output hook', async () => {
    const { ports } = await scope.start({
      banner: 'Welcome to the MUD!\r\n',
      plugins: [plugin((imi) => imi.hooks.output.tap('Frame', (text) => `[${text}]`))],
    });
    const app = await scope.app(ports.clientPort, { name: 'x' });
    await app.synced();
    const user = await scope.user(ports.externalPort);
    const id = await app.nextUserId();
    app.output(id, 'hi');
    await user.waitFor('[hi]');
    expect(user.received).toBe('[Welcome to the MUD!\r\n][hi]');
  });

  it('user plugins run after the built-in ones', async () => {
    const { ports } = await scope.start({
      banner: 'banner ',
      plugins: [plugin((imi) => imi.hooks.connect.tap('Mine', (session) => void session.write('mine ')))],
    });
    const app = await scope.app(ports.clientPort, { name: 'x' });
    await app.synced();
    const user = await scope.user(ports.externalPort);
    await app.nextUserId();
    await user.waitFor('mine ');
    expect(user.received).toBe('banner mine ');
  });

  it('idleTimeoutMs: an idle user is closed with a notice and reason "timeout"; a user who types stays', async () => {
    const { imi, ports } = await scope.start({ idleTimeoutMs: 300 });
    const app = await scope.app(ports.clientPort, { name: 'x' });
    await app.synced();
    const idle = await scope.user(ports.externalPort);
    const idleId = await app.nextUserId();
    const busy = await scope.user(ports.externalPort);
    await app.nextUserId(1);
    const started = Date.now();
    while (!idle.closed && Date.now() - started < 5000) {
      busy.send('still here');
      await sleep(20);
    }
    await idle.waitClosed();
    expect(idle.received).toContain('inactivity');
    const [disconnect] = await app.waitForParam('disconnect');
    expect(disconnect!.data).toEqual({ id: idleId, reason: 'timeout' });
    expect(busy.closed).toBe(false);
    expect(imi.stats().sessions).toBe(1);
  });

  it('the plugin classes are exported and usable directly', async () => {
    const { ports } = await scope.start({
      appDownNotice: false,
      plugins: [new WelcomeBannerPlugin('hello from a plugin\r\n'), new IdleTimeoutPlugin(200, 'bye idle\r\n')],
    });
    const user = await scope.user(ports.externalPort);
    await user.waitFor('hello from a plugin\r\n');
    await user.waitClosed();
    expect(user.received).toBe('hello from a plugin\r\nbye idle\r\n');
    expect(WelcomeBannerPlugin.PLUGIN_NAME).toBe('WelcomeBannerPlugin');
  });
});

describe('events (for observers)', () => {
  it('emits appConnect, synced, sessionOpen, input, appDisconnect, sessionClose and close, in order', async () => {
    const events: string[] = [];
    const { imi, ports } = await scope.start({ appDownNotice: false, plugins: [plugin((imi) => imi.hooks.input.tap('Upper', (line) => (line === false ? line : line.toUpperCase())))] });
    imi.on('appConnect', (app) => void events.push(`appConnect ${app.name}`));
    imi.on('synced', (app, count) => void events.push(`synced ${app.name} ${count}`));
    imi.on('sessionOpen', (session) => void events.push(`sessionOpen ${session.transport}`));
    imi.on('input', (_session, line) => void events.push(`input ${line}`));
    imi.on('appDisconnect', (app, reason) => void events.push(`appDisconnect ${app.name} ${reason}`));
    imi.on('sessionClose', (_session, reason) => void events.push(`sessionClose ${reason}`));
    imi.on('close', () => void events.push('close'));
    const app = await scope.app(ports.clientPort, { name: 'obs' });
    await app.synced();
    const user = await scope.user(ports.externalPort);
    await app.nextUserId();
    user.send('hi');
    await app.waitForParam('input');
    app.close();
    await waitFor(() => !imi.appConnected);
    user.send('bye');
    await waitFor(() => imi.stats().inputLines === 2);
    user.close();
    await waitFor(() => imi.stats().sessions === 0);
    await imi.close();
    expect(events).toEqual([
      'appConnect obs',
      'synced obs 0',
      'sessionOpen tcp',
      'input HI', // after the input hook
      'appDisconnect obs closed',
      'input BYE',
      'sessionClose closed',
      'close',
    ]);
  });
});
