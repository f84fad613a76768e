// The rot13 example, for real: an intermediary, the example as a child
// process, a user on a raw TCP socket.
import { afterEach, describe, expect, it } from 'vitest';
import { User, cleanUp, startExample, startIntermediary } from '../../../test/support/examples.js';

afterEach(cleanUp);

describe('examples/rot13', () => {
  it('answers every line in rot13, and rot13 twice gives the line back', async () => {
    const { imi, userPort, appPort } = await startIntermediary();
    await startExample('rot13', imi, appPort);
    const user = await User.connect(userPort);
    await user.waitForLine(/comes back in rot13/);

    user.type('Hello, World! 123 xyz');
    await user.waitForLine('Uryyb, Jbeyq! 123 klm');
    user.type('Uryyb, Jbeyq! 123 klm');
    await user.waitForLine('Hello, World! 123 xyz');
    user.type('The Quick Brown Fox Jumps Over The Lazy Dog');
    await user.waitForLine('Gur Dhvpx Oebja Sbk Whzcf Bire Gur Ynml Qbt');
    expect(user.closed).toBe(false);
  });
});
