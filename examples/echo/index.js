// @ts-check
// The smallest imi app: greets each user and echoes every line back.
// Run the intermediary first (`npx imi-server`), then `node index.js`.
import { Client } from '@imi/client';

const app = new Client({ port: Number(process.env.IMI_CLIENT_PORT ?? 9000), token: process.env.IMI_TOKEN, name: 'echo' });

app.on('connect', (session) => {
  session.send(session.resumed ? 'Welcome back! The app restarted; you were never disconnected.\r\n' : 'Welcome! Type something.\r\n');
});
app.on('input', (session, line) => {
  session.send(`echo: ${line}\r\n`);
});

await app.connect();
console.log(`echo app connected; ${app.sessions.size} user(s) online`);
