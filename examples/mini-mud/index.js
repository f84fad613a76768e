// @ts-check
// The mini-mud: a tiny multi-player game on imi.
//
// Players walk between five rooms, talk to whoever is in the same room and
// see who is online. Each player's name and room are kept with
// session.setState, so the intermediary holds them: kill this process
// (kill -9) and start it again, and every player is welcomed back where they
// stood, without having been disconnected. What they typed meanwhile is
// answered once the game is back.
//
// Run the intermediary first (`npx imi-server`), then `node index.js`, then
// `telnet localhost 6715`. Or run both with `npm start` at the repository root.
import { Client } from '@imi/client';
import { DIRECTIONS, OPPOSITE, ROOMS, START } from './world.js';

/** @typedef {import('@imi/client').Session} Session */
/** @typedef {import('./world.js').Room} Room */

const NAME = /^[A-Za-z][A-Za-z0-9_-]{1,15}$/;
const HELP = [
  'Commands:',
  '  look (l)                  describe the room',
  '  go <direction>            walk: north, south, east, west (or n, s, e, w)',
  '  say <text>  (or \'text)    talk to everyone in the room',
  '  who                       who is playing, and where',
  '  name <name>               choose your name',
  '  quit                      leave the game',
].join('\r\n');

const app = new Client({ port: Number(process.env.IMI_CLIENT_PORT ?? 9000), token: process.env.IMI_TOKEN, name: 'mini-mud' });

/** @param {Session} session */
const nameOf = (session) => String(session.state.name ?? 'someone');
/** @param {Session} session */
const roomKeyOf = (session) => {
  const key = session.state.room;
  return typeof key === 'string' && Object.hasOwn(ROOMS, key) ? key : START;
};
/** @param {string} key @returns {Room} */
const roomAt = (key) => /** @type {Room} */ (ROOMS[key]);

/**
 * The players in a room (worked out from the session states: the game keeps
 * no other record, so a restart loses nothing).
 *
 * @param {string} key
 * @param {Session} [except]
 * @returns {Session[]}
 */
function playersIn(key, except) {
  return [...app.sessions.values()].filter((session) => session !== except && roomKeyOf(session) === key);
}

/**
 * Tells everyone in a room (but `except`) something, in one write.
 *
 * @param {string} key
 * @param {string} text
 * @param {Session} [except]
 */
function tellRoom(key, text, except) {
  const ids = playersIn(key, except).map((session) => session.id);
  if (ids.length > 0) app.multisend(ids, `${text}\r\n`);
}

/**
 * The room as `session` sees it.
 *
 * @param {Session} session
 * @returns {string}
 */
function describe(session) {
  const key = roomKeyOf(session);
  const room = roomAt(key);
  const others = playersIn(key, session).map(nameOf).sort();
  return [
    `== ${room.title} ==`,
    room.description,
    `Exits: ${Object.keys(room.exits).join(', ')}.`,
    others.length === 0 ? 'You are alone here.' : `Here: ${others.join(', ')}.`,
  ].join('\r\n') + '\r\n';
}

/**
 * @param {string} name
 * @param {Session} [self]
 */
function nameTaken(name, self) {
  const wanted = name.toLowerCase();
  return [...app.sessions.values()].some((session) => session !== self && nameOf(session).toLowerCase() === wanted);
}

app.on('connect', (session) => {
  if (session.resumed && typeof session.state.name === 'string') {
    // The game (re)started while this player was connected. Their name and
    // room came back from the intermediary with the session.
    if (session.state.room !== roomKeyOf(session)) session.setState({ room: roomKeyOf(session) });
    session.send(`Welcome back, ${nameOf(session)}. You are in the ${roomAt(roomKeyOf(session)).title}.\r\n${describe(session)}`);
    return;
  }
  // A new player (or one who arrived while the game was down: announced as
  // resumed, but with nothing stored yet).
  let name = `Guest-${session.id.slice(0, 4)}`;
  while (nameTaken(name, session)) name = `Guest-${Math.random().toString(16).slice(2, 6)}`;
  session.setState({ name, room: START });
  session.send(`Welcome to the mini-mud! You are ${name}; type "name <name>" to choose another, "help" for the commands.\r\n${describe(session)}`);
  tellRoom(START, `${name} appears out of thin air.`, session);
});

/**
 * @param {Session} session
 * @param {string} word
 */
function go(session, word) {
  const direction = DIRECTIONS[word.toLowerCase()];
  if (direction === undefined) {
    session.send('Go where? north, south, east or west.\r\n');
    return;
  }
  const from = roomKeyOf(session);
  const to = roomAt(from).exits[direction];
  if (to === undefined) {
    session.send("You can't go that way.\r\n");
    return;
  }
  tellRoom(from, `${nameOf(session)} leaves ${direction}.`, session);
  tellRoom(to, `${nameOf(session)} arrives from the ${OPPOSITE[direction]}.`);
  session.setState({ room: to });
  session.send(`You go ${direction}.\r\n${describe(session)}`);
}

app.on('input', (session, line) => {
  const text = line.trim();
  if (text === '') return;
  if (text.startsWith("'")) {
    say(session, text.slice(1).trim());
    return;
  }
  const [verb = '', ...rest] = text.split(/\s+/);
  const argument = rest.join(' ');
  const command = verb.toLowerCase();
  if (Object.hasOwn(DIRECTIONS, command) && argument === '') {
    go(session, command);
    return;
  }
  switch (command) {
    case 'look':
    case 'l':
      session.send(describe(session));
      break;
    case 'go':
      go(session, argument);
      break;
    case 'say':
      say(session, argument);
      break;
    case 'who': {
      const players = [...app.sessions.values()].map((player) => `  ${nameOf(player)} - ${roomAt(roomKeyOf(player)).title}`).sort();
      session.send(`Players online (${players.length}):\r\n${players.join('\r\n')}\r\n`);
      break;
    }
    case 'name': {
      const old = nameOf(session);
      if (!NAME.test(argument)) session.send('A name is 2 to 16 letters, digits, - or _, starting with a letter.\r\n');
      else if (nameTaken(argument, session)) session.send(`Someone is already called ${argument}.\r\n`);
      else {
        session.setState({ name: argument });
        session.send(`You are now known as ${argument}.\r\n`);
        tellRoom(roomKeyOf(session), `${old} is now known as ${argument}.`, session);
      }
      break;
    }
    case 'help':
    case '?':
      session.send(`${HELP}\r\n`);
      break;
    case 'quit':
      session.disconnect(`Farewell, ${nameOf(session)}.\r\n`);
      break;
    default:
      session.send(`Huh? "${verb}" is not a command here. Type "help".\r\n`);
  }
});

/**
 * @param {Session} session
 * @param {string} text
 */
function say(session, text) {
  if (text === '') {
    session.send('Say what?\r\n');
    return;
  }
  session.send(`You say: ${text}\r\n`);
  tellRoom(roomKeyOf(session), `${nameOf(session)} says: ${text}`, session);
}

app.on('disconnect', (session) => {
  // The player is no longer in app.sessions; the others in their room hear of it.
  tellRoom(roomKeyOf(session), `${nameOf(session)} has left the game.`);
});

app.on('error', (error) => console.error(`[mini-mud] ${error.message}`));

for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM'])) {
  process.once(signal, () => void app.close().then(() => process.exit(0)));
}

await app.connect();
console.log(`mini-mud connected; ${app.sessions.size} player(s) online`);
