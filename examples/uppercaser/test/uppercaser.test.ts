// The uppercaser example, for real: an intermediary, the example as a child
// process, users on raw TCP sockets.
import { afterEach, describe, expect, it } from 'vitest';
import { User, cleanUp, startExample, startIntermediary } from '../../../test/support/examples.js';

afterEach(cleanUp);

describe('examples/uppercaser', () => {
  it('answers every line with the line upper-cased, to the user who typed it', async () => {
    const { imi, userPort, appPort } = await startIntermediary();
    await startExample('uppercaser', imi, appPort);
    const ann = await User.connect(userPort);
    const bob = await User.connect(userPort);
    await ann.waitForLine('Type something: it comes back upper-cased.');

    ann.type('hai');
    bob.type('Hello, wörld 42!');
    ann.type('second line');
    await ann.waitForLine('SECOND LINE');
    await bob.waitForLine('HELLO, WÖRLD 42!');
    expect(ann.lines.filter((line) => /^[A-Z ]+$/.test(line))).toEqual(['HAI', 'SECOND LINE']);
    expect(bob.received).not.toContain('HAI');
  });

  it('answers what was typed while it was down once it is back, without disconnecting anyone', async () => {
    const { imi, userPort, appPort } = await startIntermediary();
    const first = await startExample('uppercaser', imi, appPort);
    const user = await User.connect(userPort);
    await user.waitForLine(/upper-cased/);

    await first.kill('SIGKILL');
    await user.waitForLine(/The application is restarting/);
    user.type('typed while the app was away');
    await startExample('uppercaser', imi, appPort);
    await user.waitForLine('TYPED WHILE THE APP WAS AWAY');
    expect(user.closed).toBe(false);
    // A user who was already there is not greeted as a newcomer.
    expect(user.lines.filter((line) => line.includes('Type something'))).toHaveLength(1);
  });
});
