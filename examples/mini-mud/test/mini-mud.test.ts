// The mini-mud example, for real: an intermediary, the game as a child
// process, players on raw TCP sockets; and the crash demo script.
import { afterEach, describe, expect, it } from 'vitest';
import { User, cleanUp, runNode, startExample, startIntermediary } from '../../../test/support/examples.js';

afterEach(cleanUp);

async function enter(userPort: number, name: string): Promise<User> {
  const player = await User.connect(userPort);
  await player.waitForLine(/^Welcome to the mini-mud! You are Guest-/);
  await player.waitForLine('== Town Square ==');
  player.type(`name ${name}`);
  await player.waitForLine(`You are now known as ${name}.`);
  return player;
}

describe('examples/mini-mud', () => {
  it('players walk between rooms, see and hear who is in the same room, and not the others', async () => {
    const { imi, userPort, appPort } = await startIntermediary();
    await startExample('mini-mud', imi, appPort);
    const ann = await enter(userPort, 'Ann');
    const bob = await enter(userPort, 'Bob');

    ann.type('look');
    await ann.waitForLine('Here: Bob.');
    bob.type('say hello Ann');
    await ann.waitForLine('Bob says: hello Ann');
    await bob.waitForLine('You say: hello Ann');

    ann.type('go north');
    await ann.waitForLine('You go north.');
    await ann.waitForLine('== Forest Path ==');
    await bob.waitForLine('Ann leaves north.');
    ann.type('w');
    await ann.waitForLine("You can't go that way.");
    bob.type("'anyone?");
    await bob.waitForLine('You say: anyone?');
    ann.clear();
    ann.type('s');
    await ann.waitForLine('== Town Square ==');
    await ann.waitForLine('Here: Bob.');
    await bob.waitForLine('Ann arrives from the north.');

    bob.type('who');
    await bob.waitForLine('Players online (2):');
    await bob.waitForLine('  Ann - Town Square');
    bob.type('dance');
    await bob.waitForLine('Huh? "dance" is not a command here. Type "help".');
    bob.type('quit');
    await bob.waitForLine('Farewell, Bob.');
    await bob.waitForClose();
    await ann.waitForLine('Bob has left the game.');
    expect(ann.received).not.toContain('Ann says');
    expect(ann.received).not.toContain('anyone?');
  });

  it('after a SIGKILL and a restart, each player is welcomed back by name in the room they stood in', async () => {
    const { imi, userPort, appPort } = await startIntermediary();
    const first = await startExample('mini-mud', imi, appPort);
    const ann = await enter(userPort, 'Ann');
    const bob = await enter(userPort, 'Bob');
    ann.type('east');
    await ann.waitForLine('== Market ==');
    bob.type('s');
    await bob.waitForLine('== Harbour ==');

    await first.kill('SIGKILL');
    await ann.waitForLine(/The application is restarting/);
    await bob.waitForLine(/The application is restarting/);
    ann.clear();
    bob.clear();
    bob.type('say is the game back?');
    await startExample('mini-mud', imi, appPort);

    await ann.waitForLine('Welcome back, Ann. You are in the Market.');
    await bob.waitForLine('Welcome back, Bob. You are in the Harbour.');
    expect(ann.lines.indexOf('== Market ==')).toBeGreaterThan(ann.lines.indexOf('Welcome back, Ann. You are in the Market.'));
    await bob.waitForLine('You say: is the game back?');
    ann.type('w');
    await ann.waitForLine('== Town Square ==');
    ann.type('who');
    await ann.waitForLine('  Bob - Harbour');
    await ann.waitForLine('  Ann - Town Square');
    expect(ann.received).not.toContain('Welcome to the mini-mud');
    expect(ann.closed || bob.closed).toBe(false);
  });

  it('a player who arrives while the game is down is welcomed as a newcomer when it is back, with what they typed answered', async () => {
    const { imi, userPort, appPort } = await startIntermediary();
    const first = await startExample('mini-mud', imi, appPort);
    const ann = await enter(userPort, 'Ann');
    await first.kill('SIGKILL');
    await ann.waitForLine(/The application is restarting/);

    // Announced to the next game with resumed: true but nothing stored: not a returning player.
    const bob = await User.connect(userPort);
    bob.type('name Bob');
    await startExample('mini-mud', imi, appPort);
    await ann.waitForLine('Welcome back, Ann. You are in the Town Square.');
    await bob.waitForLine(/^Welcome to the mini-mud! You are Guest-/);
    await bob.waitForLine('You are now known as Bob.');
    expect(bob.received).not.toContain('Welcome back');
    await ann.waitForLine(/^Guest-\w+ is now known as Bob\.$/);
  });

  it('crash-demo.mjs: nobody is disconnected and every line typed is answered', async () => {
    const demo = runNode('examples/mini-mud/crash-demo.mjs');
    const code = await demo.exited;
    expect(demo.stdout).toContain('players disconnected: 0');
    expect(demo.stdout).toContain('players welcomed back by name, where they stood: 2 of 2');
    const match = /lines typed: (\d+), answered: (\d+)/.exec(demo.stdout);
    expect(match, demo.stdout + demo.stderr).not.toBeNull();
    expect(Number(match![1])).toBeGreaterThan(10);
    expect(Number(match![2])).toBe(Number(match![1]));
    expect(demo.stdout).toContain("===== Alice's screen");
    expect(demo.stdout).toContain("===== Bob's screen");
    expect(code, demo.stderr).toBe(0);
  }, 30_000);
});
