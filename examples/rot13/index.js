// @ts-check
// rot13: every line comes back with its letters rotated by 13 places
// (apply it twice and you get your text back). Like the uppercaser, the
// reply is built by a buildResponse tap.
//
// Run the intermediary first (`npx imi-server`), then `node index.js`.
import { Client } from '@imi/client';

/**
 * Rotates the ASCII letters of `text` by 13 places; everything else is kept.
 *
 * @param {string} text
 * @returns {string}
 */
function rot13(text) {
  return text.replace(/[a-z]/gi, (letter) => {
    const base = letter <= 'Z' ? 65 : 97;
    return String.fromCharCode(((letter.charCodeAt(0) - base + 13) % 26) + base);
  });
}

const app = new Client({ port: Number(process.env.IMI_CLIENT_PORT ?? 9000), token: process.env.IMI_TOKEN, name: 'rot13' });

app.on('connect', (session) => {
  if (!session.resumed) session.send('Type something: it comes back in rot13. Type that again to read it.\r\n');
});

app.hooks.buildResponse.tap('Rot13', (_reply, _session, line) => `${rot13(line)}\r\n`);

for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM'])) {
  process.once(signal, () => void app.close().then(() => process.exit(0)));
}

await app.connect();
console.log(`rot13 connected; ${app.sessions.size} user(s) online`);
