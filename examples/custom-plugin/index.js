// @ts-check
// An intermediary with a plugin of its own, and a tiny app, in one process.
//
// Most deployments run `imi-server` and the app as two processes; this
// example embeds the intermediary (`new Intermediary(...)`) to give it a
// plugin (moderation-plugin.js): a ban list, a profanity filter and an audit
// log. The app is an echo that shows what it received, so you can see that
// the filter runs before the app hears anything.
//
//   node index.js            # users on :6715, app link on 127.0.0.1:9000
//   IMI_BANNED=127.0.0.1 node index.js    # ban yourself, then try to connect
import { Client } from '@imi/client';
import { Intermediary } from '@imi/server';
import { ModerationPlugin } from './moderation-plugin.js';

/**
 * @param {string | undefined} value
 * @param {string[]} fallback
 * @returns {string[]}
 */
const list = (value, fallback) => (value === undefined ? fallback : value.split(',').map((item) => item.trim()).filter(Boolean));

const moderation = new ModerationPlugin({
  banned: list(process.env.IMI_BANNED, ['203.0.113.7']),
  words: list(process.env.IMI_BAD_WORDS, ['darn', 'heck', 'blast']),
});

const imi = new Intermediary({
  externalPort: Number(process.env.IMI_EXTERNAL_PORT ?? 6715),
  clientPort: Number(process.env.IMI_CLIENT_PORT ?? 9000),
  host: process.env.IMI_HOST ?? '::',
  token: process.env.IMI_TOKEN,
  plugins: [moderation],
});
const ports = await imi.listen();
console.log(`custom-plugin listening: users on port ${ports.externalPort} (host ${imi.options.host}), app on port ${ports.clientPort}`);

// The app: it only ever sees lines the plugin let through, already cleaned.
const app = new Client({ port: ports.clientPort, token: process.env.IMI_TOKEN, name: 'custom-plugin-app' });
app.on('connect', (session) => {
  session.send('Welcome! Mind your language: some words are masked before the app sees them.\r\n');
});
app.on('input', (session, line) => {
  session.send(`The app received: ${line}\r\n`);
});
await app.connect();
console.log('app connected');

let stopping = false;
for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM'])) {
  process.on(signal, () => {
    if (stopping) process.exit(1);
    stopping = true;
    // The app first (it finishes what it is handling), then the intermediary
    // (it tells the users and closes their connections).
    void app
      .close()
      .then(() => imi.close(signal))
      .then(() => {
        console.log(`stopped; ${moderation.masked} line(s) masked`);
        process.exit(0);
      });
  });
}
