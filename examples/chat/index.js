// @ts-check
// A chat server on imi: nicknames and rooms.
//
//   /nick <name>   change your nickname        /join <room>   go to a room
//   /who           who is in your room          /rooms         rooms in use
//   /help          this list                    /quit          leave
//   anything else  says it to your room
//
// Each user's nickname and room live in their session state
// (session.setState), which the intermediary keeps: kill this process and
// start it again, and every user is still in their room under their name.
// The app keeps nothing else: who is in a room is worked out from
// app.sessions, which the client keeps equal to the intermediary's list of
// users, after a restart too.
//
// Room messages go out with multisend (one write for every member);
// server-wide announcements with broadcast (`except` leaves someone out).
//
// Run the intermediary first (`npx imi-server`), then `node index.js`.
import { Client } from '@imi/client';

/** @typedef {import('@imi/client').Session} Session */

const LOBBY = 'lobby';
const NICK = /^[A-Za-z][A-Za-z0-9_-]{1,15}$/;
const ROOM = /^[a-z0-9][a-z0-9_-]{0,23}$/;
const HELP = [
  'Commands:',
  '  /nick <name>   change your nickname',
  '  /join <room>   go to another room (it exists as soon as someone is in it)',
  '  /who           who is in your room',
  '  /rooms         rooms in use',
  '  /quit          leave',
  '  anything else  is said to your room',
].join('\r\n');

const app = new Client({ port: Number(process.env.IMI_CLIENT_PORT ?? 9000), token: process.env.IMI_TOKEN, name: 'chat' });

/** @param {Session} session */
const nickOf = (session) => String(session.state.nick ?? 'someone');
/** @param {Session} session */
const roomOf = (session) => String(session.state.room ?? LOBBY);

/**
 * The users in a room, from the session states.
 *
 * @param {string} room
 * @returns {Session[]}
 */
function members(room) {
  return [...app.sessions.values()].filter((session) => roomOf(session) === room);
}

/**
 * Says `text` to everyone in `room` (but `except`), in one write.
 *
 * @param {string} room
 * @param {string} text
 * @param {Session} [except]
 */
function toRoom(room, text, except) {
  const ids = members(room)
    .filter((session) => session !== except)
    .map((session) => session.id);
  if (ids.length > 0) app.multisend(ids, `${text}\r\n`);
}

/**
 * @param {string} nick
 * @param {Session} [self]
 */
function nickTaken(nick, self) {
  const wanted = nick.toLowerCase();
  return [...app.sessions.values()].some((session) => session !== self && nickOf(session).toLowerCase() === wanted);
}

/** @param {string} room */
function whoIsIn(room) {
  return members(room).map(nickOf).sort().join(', ');
}

app.on('connect', (session) => {
  if (session.resumed && typeof session.state.nick === 'string') {
    // The app (re)started while this user was connected: their nickname and
    // room came back with the session.
    session.send(`*** Welcome back, ${nickOf(session)}. You are still in #${roomOf(session)} (here: ${whoIsIn(roomOf(session))}).\r\n`);
    return;
  }
  let nick = `guest-${session.id.slice(0, 4)}`;
  while (nickTaken(nick, session)) nick = `guest-${Math.random().toString(16).slice(2, 6)}`;
  session.setState({ nick, room: LOBBY });
  session.send(`*** Welcome to the chat, ${nick}! You are in #${LOBBY} (here: ${whoIsIn(LOBBY)}). /help lists the commands.\r\n`);
  app.broadcast(`*** ${nick} joined the chat.\r\n`, { except: session.id });
});

app.on('input', (session, line) => {
  const text = line.trim();
  if (text === '') return;
  if (!text.startsWith('/')) {
    toRoom(roomOf(session), `<${nickOf(session)}> ${text}`);
    return;
  }
  const [command = '', ...rest] = text.slice(1).split(/\s+/);
  const argument = rest.join(' ');
  switch (command.toLowerCase()) {
    case 'nick': {
      const old = nickOf(session);
      if (!NICK.test(argument)) session.send('*** A nickname is 2 to 16 letters, digits, - or _, starting with a letter.\r\n');
      else if (nickTaken(argument, session)) session.send(`*** ${argument} is taken.\r\n`);
      else {
        session.setState({ nick: argument });
        session.send(`*** You are now known as ${argument}.\r\n`);
        app.broadcast(`*** ${old} is now known as ${argument}.\r\n`, { except: session.id });
      }
      break;
    }
    case 'join': {
      const room = argument.replace(/^#/, '').toLowerCase();
      const old = roomOf(session);
      if (!ROOM.test(room)) session.send('*** A room name is 1 to 24 lower-case letters, digits, - or _.\r\n');
      else if (room === old) session.send(`*** You are already in #${room}.\r\n`);
      else {
        toRoom(old, `*** ${nickOf(session)} left for #${room}.`, session);
        toRoom(room, `*** ${nickOf(session)} joined #${room}.`);
        session.setState({ room });
        session.send(`*** You are in #${room} (here: ${whoIsIn(room)}).\r\n`);
      }
      break;
    }
    case 'who':
      session.send(`*** In #${roomOf(session)}: ${whoIsIn(roomOf(session))}.\r\n`);
      break;
    case 'rooms': {
      /** @type {Map<string, number>} */
      const counts = new Map();
      for (const user of app.sessions.values()) counts.set(roomOf(user), (counts.get(roomOf(user)) ?? 0) + 1);
      const rooms = [...counts].sort(([a], [b]) => a.localeCompare(b)).map(([room, count]) => `#${room} (${count})`);
      session.send(`*** Rooms: ${rooms.join(', ')}.\r\n`);
      break;
    }
    case 'help':
      session.send(`${HELP}\r\n`);
      break;
    case 'quit':
      session.disconnect(`*** Bye, ${nickOf(session)}.\r\n`);
      break;
    default:
      session.send(`*** Unknown command /${command}. /help lists the commands.\r\n`);
  }
});

app.on('disconnect', (session) => {
  // The session is no longer in app.sessions: everyone left hears of it.
  app.broadcast(`*** ${nickOf(session)} left the chat.\r\n`);
});

app.on('error', (error) => console.error(`[chat] ${error.message}`));

for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM'])) {
  process.once(signal, () => void app.close().then(() => process.exit(0)));
}

await app.connect();
console.log(`chat connected; ${app.sessions.size} user(s) online`);
