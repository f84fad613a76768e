// The chat example, for real: an intermediary, the example as a child
// process, users on raw TCP sockets.
import { afterEach, describe, expect, it } from 'vitest';
import { User, cleanUp, startExample, startIntermediary } from '../../../test/support/examples.js';

afterEach(cleanUp);

async function join(userPort: number, nick: string): Promise<User> {
  const user = await User.connect(userPort);
  await user.waitForLine(/^\*\*\* Welcome to the chat, guest-/);
  user.type(`/nick ${nick}`);
  await user.waitForLine(`*** You are now known as ${nick}.`);
  return user;
}

describe('examples/chat', () => {
  it('two users in a room see each other; others hear of arrivals and nick changes', async () => {
    const { imi, userPort, appPort } = await startIntermediary();
    await startExample('chat', imi, appPort);
    const ann = await join(userPort, 'ann');
    const bob = await User.connect(userPort);
    const guest = (await ann.waitForLine(/^\*\*\* guest-\w+ joined the chat\.$/)).split(' ')[1]!;
    bob.type('/nick bob');
    await ann.waitForLine(`*** ${guest} is now known as bob.`);

    ann.type('hello bob');
    await bob.waitForLine('<ann> hello bob');
    await ann.waitForLine('<ann> hello bob');
    bob.type('hi ann');
    await ann.waitForLine('<bob> hi ann');

    bob.type('/who');
    await bob.waitForLine('*** In #lobby: ann, bob.');
    ann.type('/nick bob');
    await ann.waitForLine('*** bob is taken.');
  });

  it('rooms: what is said in a room stays there; /join, /who and /rooms', async () => {
    const { imi, userPort, appPort } = await startIntermediary();
    await startExample('chat', imi, appPort);
    const ann = await join(userPort, 'ann');
    const bob = await join(userPort, 'bob');
    const cat = await join(userPort, 'cat');

    bob.type('/join #games');
    await bob.waitForLine('*** You are in #games (here: bob).');
    await ann.waitForLine('*** bob left for #games.');
    cat.type('/join games');
    await bob.waitForLine('*** cat joined #games.');
    await cat.waitForLine('*** You are in #games (here: bob, cat).');

    cat.type('anyone for chess?');
    await bob.waitForLine('<cat> anyone for chess?');
    ann.type('lonely in the lobby');
    await ann.waitForLine('<ann> lonely in the lobby');
    ann.type('/rooms');
    await ann.waitForLine('*** Rooms: #games (2), #lobby (1).');
    bob.type('/who');
    await bob.waitForLine('*** In #games: bob, cat.');
    expect(ann.received).not.toContain('anyone for chess');
    expect(bob.received).not.toContain('lonely in the lobby');
    expect(cat.received).not.toContain('lonely in the lobby');
  });

  it('after the app is killed and restarted, everyone keeps their nickname and room', async () => {
    const { imi, userPort, appPort } = await startIntermediary();
    const first = await startExample('chat', imi, appPort);
    const ann = await join(userPort, 'ann');
    const bob = await join(userPort, 'bob');
    bob.type('/join games');
    await bob.waitForLine(/^\*\*\* You are in #games/);

    await first.kill('SIGKILL');
    await ann.waitForLine(/The application is restarting/);
    ann.type('is anybody there?');
    await startExample('chat', imi, appPort);

    await ann.waitForLine('*** Welcome back, ann. You are still in #lobby (here: ann).');
    await bob.waitForLine('*** Welcome back, bob. You are still in #games (here: bob).');
    await ann.waitForLine('<ann> is anybody there?');
    bob.type('still here');
    await bob.waitForLine('<bob> still here');
    ann.type('/rooms');
    await ann.waitForLine('*** Rooms: #games (1), #lobby (1).');
    expect(ann.received).not.toContain('<bob> still here');
    expect(ann.closed || bob.closed).toBe(false);
  });

  it('announces departures to everyone left', async () => {
    const { imi, userPort, appPort } = await startIntermediary();
    await startExample('chat', imi, appPort);
    const ann = await join(userPort, 'ann');
    const bob = await join(userPort, 'bob');
    bob.type('/quit');
    await bob.waitForLine('*** Bye, bob.');
    await bob.waitForClose();
    await ann.waitForLine('*** bob left the chat.');
  });
});
