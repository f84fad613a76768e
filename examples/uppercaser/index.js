// @ts-check
// UpperCaser, the example of the Perl distribution IO::Multiplex::Intermediary,
// on @imi/client. The original wrapped the client's build_response:
//
//     around build_response => sub { my $orig = shift; my $self = shift; return uc($self->$orig(@_)) };
//
// Here buildResponse is a tapable hook: a tap gets the reply built so far
// (undefined at first), the session and the line, and returns the reply.
// Whatever string comes out of the last tap is sent to the user, in the same
// write as the input's ack, so a crash never loses or doubles a reply.
//
// Run the intermediary first (`npx imi-server`), then `node index.js`.
import { Client } from '@imi/client';

const app = new Client({ port: Number(process.env.IMI_CLIENT_PORT ?? 9000), token: process.env.IMI_TOKEN, name: 'uppercaser' });

app.on('connect', (session) => {
  if (!session.resumed) session.send('Type something: it comes back upper-cased.\r\n');
});

// The original's base build_response echoed the line: start from it if no
// earlier tap built a reply, and upper-case it.
app.hooks.buildResponse.tap('UpperCaser', (reply, _session, line) => (reply ?? line + '\r\n').toUpperCase());

for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM'])) {
  process.once(signal, () => void app.close().then(() => process.exit(0)));
}

await app.connect();
console.log(`uppercaser connected; ${app.sessions.size} user(s) online`);
