// @ts-check
// The crash demo: two scripted players walk and talk in the mini-mud while
// the game process is killed with SIGKILL and started again. Neither player
// is disconnected, and every line they typed gets its answer.
//
//   node examples/mini-mud/crash-demo.mjs     (after `pnpm build`)
//
// What it does:
//  1. starts the intermediary (imi-server) on free ports of 127.0.0.1;
//  2. starts the game (index.js) pointed at it;
//  3. connects Alice and Bob over raw TCP, as telnet would; they name
//     themselves, chat and walk to the market, each waiting for the answer
//     to a line before typing the next;
//  4. kills the game with SIGKILL right after both typed a line, in the
//     middle of the conversation;
//  5. the players keep typing (the intermediary tells them to hold on and
//     keeps their lines);
//  6. starts the game again: it is resynced with both players and the name
//     and room it stored for each, welcomes them back, and answers the lines
//     in flight at the crash and those typed while it was away;
//  7. the players carry on to the tavern; both screens are printed, then a
//     summary. The exit code is 0 when nobody was disconnected, both were
//     welcomed back where they stood, and every line was answered.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileSync, existsSync } from 'node:fs';

/** @typedef {import('node:child_process').ChildProcess} ChildProcess */

const here = dirname(fileURLToPath(import.meta.url));
/** Pause between two lines a player types. */
const TYPING_MS = Number(process.env.DEMO_TYPING_MS ?? 300);
/** How long the game stays dead. */
const OUTAGE_MS = Number(process.env.DEMO_OUTAGE_MS ?? 1500);
/** Give up waiting for the last answers after this long. */
const ANSWER_TIMEOUT_MS = 10_000;

// Each scripted line comes with the answer the game gives to it (and to
// nothing else), so the demo can tell which lines were answered. The script
// is played in three acts: before the crash (each player waits for the
// answer to a line before typing the next, like a person would; the last
// line of the act is still in flight when the game is killed), while the
// game is down (they type blind), and after the restart.
/** @typedef {[line: string, answer: RegExp]} Step */
/** @type {Record<'Alice' | 'Bob', { before: Step[], during: Step[], after: Step[] }>} */
const SCRIPTS = {
  Alice: {
    before: [
      ['name Alice', /^You are now known as Alice\.$/],
      ['say Hello? Is anyone here?', /^You say: Hello\? Is anyone here\?$/],
      ['who', /^Players online \(2\):$/],
      ['say Hi Bob! Where can I buy a lantern?', /^You say: Hi Bob! Where can I buy a lantern\?$/],
      ['east', /^You go east\.$/],
    ],
    during: [
      ['say So this is the market?', /^You say: So this is the market\?$/],
      ['say It smells of fish.', /^You say: It smells of fish\.$/],
      ['who', /^Players online \(2\):$/],
    ],
    after: [
      ['w', /^You go west\.$/],
      ['go west', /^You go west\.$/],
      ['say Two ales, please!', /^You say: Two ales, please!$/],
    ],
  },
  Bob: {
    before: [
      ['name Bob', /^You are now known as Bob\.$/],
      ['who', /^Players online \(2\):$/],
      ['say Hi there, Alice.', /^You say: Hi there, Alice\.$/],
      ['say The market is east. Follow me!', /^You say: The market is east\. Follow me!$/],
      ['e', /^You go east\.$/],
    ],
    during: [
      ['say Lanterns on the left, fish on the right.', /^You say: Lanterns on the left, fish on the right\.$/],
      ['say Fancy a drink? The tavern is two steps west.', /^You say: Fancy a drink\? The tavern is two steps west\.$/],
      ['who', /^Players online \(2\):$/],
    ],
    after: [
      ['west', /^You go west\.$/],
      ['w', /^You go west\.$/],
      ['say Cheers!', /^You say: Cheers!$/],
    ],
  },
};

/** @type {Set<ChildProcess>} */
const children = new Set();
process.on('exit', () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});
for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM'])) {
  process.once(signal, () => process.exit(130));
}

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * @param {() => boolean} predicate
 * @param {number} timeoutMs
 * @param {string} what
 */
async function waitFor(predicate, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** @param {string} text */
const say = (text) => console.log(`[demo] ${text}`);

/** The imi-server command of @imi/server (its `bin`), built by `pnpm build`. */
function serverCli() {
  const pkgPath = fileURLToPath(import.meta.resolve('@imi/server/package.json'));
  /** @type {{ bin: Record<string, string> }} */
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8'));
  const cli = join(dirname(pkgPath), pkg.bin['imi-server'] ?? 'dist/cli.js');
  if (!existsSync(cli)) throw new Error(`${cli} is missing: build first (pnpm build, or npx tsc -b at the repository root)`);
  return cli;
}

/**
 * Starts the intermediary on free ports and reads them from the line it prints:
 * "imi-server listening: users on port N (host H), app on port M (host H)".
 *
 * @returns {Promise<{ child: ChildProcess, userPort: number, userHost: string, appPort: number }>}
 */
async function startIntermediary() {
  const child = spawn(process.execPath, [serverCli(), '--external-port', '0', '--client-port', '0', '--host', '127.0.0.1', '--log-level', 'error'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  child.stdout?.setEncoding('utf8').on('data', (/** @type {string} */ text) => (stdout += text));
  child.stderr?.setEncoding('utf8').on('data', (/** @type {string} */ text) => process.stderr.write(`[imi-server] ${text}`));
  const pattern = /users on port (\d+) \(host ([^)]+)\), app on port (\d+)/;
  await waitFor(() => pattern.test(stdout) || child.exitCode !== null, 10_000, 'imi-server to listen');
  const match = pattern.exec(stdout);
  if (match === null) throw new Error(`imi-server did not start (exit code ${child.exitCode})`);
  return { child, userPort: Number(match[1]), userHost: String(match[2]), appPort: Number(match[3]) };
}

/**
 * Starts the game and waits until it is connected and resynced.
 *
 * @param {number} appPort
 * @returns {Promise<ChildProcess>}
 */
async function startGame(appPort) {
  const child = spawn(process.execPath, [join(here, 'index.js')], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, IMI_CLIENT_PORT: String(appPort) },
  });
  children.add(child);
  let stdout = '';
  child.stdout?.setEncoding('utf8').on('data', (/** @type {string} */ text) => {
    stdout += text;
    for (const line of text.split('\n')) if (line !== '') say(`game (pid ${child.pid}): ${line}`);
  });
  child.stderr?.setEncoding('utf8').on('data', (/** @type {string} */ text) => process.stderr.write(`[game ${child.pid}] ${text}`));
  await waitFor(() => stdout.includes('connected') || child.exitCode !== null, 10_000, 'the game to connect');
  if (child.exitCode !== null) throw new Error(`the game exited with code ${child.exitCode}`);
  return child;
}

/** A scripted player on a raw TCP connection, with everything on their screen. */
class Player {
  /**
   * @param {'Alice' | 'Bob'} name
   * @param {net.Socket} socket
   */
  constructor(name, socket) {
    this.name = name;
    this.socket = socket;
    const { before, during, after } = SCRIPTS[name];
    /** @type {Step[]} */
    this.script = [...before, ...during, ...after];
    /** Lines typed so far. */
    this.typed = 0;
    this.disconnected = false;
    /** @type {string[]} the screen, line by line; typed lines start with "> " */
    this.transcript = [];
    /** @type {string[]} what the game wrote, line by line */
    this.received = [];
    this.partial = '';
    socket.setEncoding('utf8');
    socket.on('data', (/** @type {string} */ text) => this.receive(text));
    socket.on('close', () => (this.disconnected = true));
    socket.on('error', () => {});
  }

  /**
   * @param {string} host
   * @param {number} port
   * @param {'Alice' | 'Bob'} name
   */
  static async connect(host, port, name) {
    const socket = net.connect(port, host);
    await once(socket, 'connect');
    return new Player(name, socket);
  }

  /** @param {string} text */
  receive(text) {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    for (const raw of lines) {
      const line = raw.replace(/\r$/, '');
      this.received.push(line);
      this.transcript.push(`  ${line}`);
    }
  }

  /** Types the next line of the script. */
  typeNext() {
    const step = this.script[this.typed++];
    if (step === undefined) return;
    this.transcript.push(`> ${step[0]}`);
    this.socket.write(`${step[0]}\r\n`);
  }

  /** How many typed lines got their answer (answers come in the order the lines were typed). */
  answered() {
    let next = 0;
    for (const line of this.received) {
      const step = this.script[next];
      if (next < this.typed && step !== undefined && step[1].test(line)) next++;
    }
    return next;
  }

  /**
   * The room the player stood in when the game died: the last room they saw
   * before the intermediary's notice that the app is restarting (written
   * after everything the old game had sent).
   *
   * @returns {string | undefined}
   */
  roomAtCrash() {
    const notice = this.received.findIndex((line) => line.includes('The application is restarting'));
    let room;
    for (const line of notice === -1 ? [] : this.received.slice(0, notice)) {
      const match = /^== (.+) ==$/.exec(line);
      if (match) room = match[1];
    }
    return room;
  }

  /** @param {string} note */
  mark(note) {
    this.transcript.push(`-- ${note} --`);
  }
}

/**
 * Plays one act: each player types a line, and (when `waitForAnswers`)
 * waits for its answer before the next one.
 *
 * @param {Player[]} players
 * @param {'before' | 'during' | 'after'} act
 * @param {boolean} waitForAnswers
 */
async function play(players, act, waitForAnswers) {
  const rounds = Math.max(...players.map((player) => SCRIPTS[player.name][act].length));
  for (let round = 0; round < rounds; round++) {
    for (const player of players) if (round < SCRIPTS[player.name][act].length) player.typeNext();
    if (round === rounds - 1 && act === 'before') return; // the last lines are in flight: time to crash
    if (waitForAnswers) await waitFor(() => players.every((player) => player.answered() === player.typed), ANSWER_TIMEOUT_MS, 'the answers');
    await sleep(TYPING_MS);
  }
}

async function main() {
  const imi = await startIntermediary();
  say(`intermediary up: users on ${imi.userHost}:${imi.userPort}, app on 127.0.0.1:${imi.appPort}`);
  let game = await startGame(imi.appPort);

  const alice = await Player.connect(imi.userHost, imi.userPort, 'Alice');
  const bob = await Player.connect(imi.userHost, imi.userPort, 'Bob');
  const players = [alice, bob];
  for (const player of players) await waitFor(() => player.received.some((line) => line.startsWith('Welcome to the mini-mud')), 10_000, `${player.name}'s welcome`);
  say('Alice and Bob are connected; they start talking');
  await play(players, 'before', true);

  // Mid-conversation: both players' last lines are on their way.
  const inFlight = players.reduce((sum, player) => sum + player.typed - player.answered(), 0);
  say(`killing the game with SIGKILL (pid ${game.pid}); ${inFlight} line(s) not answered yet`);
  game.kill('SIGKILL');
  await once(game, 'exit');
  for (const player of players) player.mark('the game was killed (SIGKILL)');
  const killedAt = Date.now();

  say('the game is down; the players keep typing');
  const typedBefore = players.reduce((sum, player) => sum + player.typed, 0);
  await play(players, 'during', false);
  const typedWhileDown = players.reduce((sum, player) => sum + player.typed, 0) - typedBefore;
  await sleep(Math.max(0, OUTAGE_MS - (Date.now() - killedAt)));

  say('starting the game again');
  for (const player of players) player.mark('the game starts again');
  game = await startGame(imi.appPort);
  for (const player of players) await waitFor(() => player.received.some((line) => line.startsWith('Welcome back')), 10_000, `${player.name}'s welcome back`);
  await waitFor(() => players.every((player) => player.answered() === player.typed || player.disconnected), ANSWER_TIMEOUT_MS, 'the answers to what was typed while the game was down').catch(
    (error) => say(String(error.message)),
  );
  say('the players carry on');
  await play(players, 'after', true).catch((error) => say(String(error.message)));
  await sleep(200); // let what the others said arrive too, for the transcripts

  for (const player of players) {
    console.log(`\n===== ${player.name}'s screen ("> " is what they typed) =====`);
    console.log(player.transcript.join('\n'));
  }

  const typed = players.reduce((sum, player) => sum + player.typed, 0);
  const answered = players.reduce((sum, player) => sum + player.answered(), 0);
  const disconnected = players.filter((player) => player.disconnected).length;
  const welcomedBack = players.filter((player) => {
    const room = player.roomAtCrash();
    return room !== undefined && player.received.includes(`Welcome back, ${player.name}. You are in the ${room}.`);
  }).length;
  console.log('\n===== summary =====');
  console.log('game killed with SIGKILL and restarted: 1 time');
  console.log(`players disconnected: ${disconnected}`);
  console.log(`players welcomed back by name, where they stood: ${welcomedBack} of ${players.length}`);
  console.log(`lines in flight at the crash: ${inFlight}, typed while the game was down: ${typedWhileDown}`);
  console.log(`lines typed: ${typed}, answered: ${answered}`);

  for (const player of players) player.socket.end();
  for (const child of [game, imi.child]) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  }
  const ok = disconnected === 0 && answered === typed && welcomedBack === players.length;
  console.log(ok ? 'OK: the game crashed and nobody noticed more than a pause.' : 'FAILED: see above.');
  process.exitCode = ok ? 0 : 1;
}

main().catch((error) => {
  console.error(`[demo] ${error instanceof Error ? error.stack : String(error)}`);
  process.exit(1);
});
