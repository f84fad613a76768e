// GET /metrics scraped over real HTTP while real users and apps (raw
// sockets) make traffic, hit limits, crash and get redeliveries.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Intermediary, IntermediaryMetrics, ROUND_TRIP_BUCKETS_SECONDS } from '@imi/server';
import { parseMetrics, scrape, sumOf, valueOf } from './admin-harness.js';
import { sleep, testScope, waitFor, withAppAndUser, type Frame } from './harness.js';

const scope = testScope();
const TOKEN = 'metrics-token';
const root = new URL('../../../', import.meta.url);

/** The metric families a scrape declares (`# TYPE name kind`), present even before their first sample. */
function families(text: string): Map<string, string> {
  return new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((match) => [match[1]!, match[2]!]));
}

/** An acking app that answers every input with an output (and the ack). */
function echo(app: { output(id: string, value: string, extra?: Record<string, unknown>): void }) {
  return (frame: Frame): undefined => {
    if (frame.param === 'input') app.output(frame.data['id'] as string, `echo: ${String(frame.data['value'])}\r\n`, { ack: frame.seq });
    return undefined;
  };
}

describe('GET /metrics', () => {
  it('counts traffic: inputs, outputs, sessions by transport, round trips, and agrees with stats()', async () => {
    const { imi, ports } = await scope.start({ adminPort: 0, adminToken: TOKEN });
    expect(ports.adminPort).toBeGreaterThan(0);
    let app!: Awaited<ReturnType<typeof scope.app>>;
    app = await scope.app(ports.clientPort, { hello: { acks: true, name: 'echo' }, respond: (frame) => echo(app)(frame) });
    await app.synced();
    const before = await scrape(ports.adminPort!, TOKEN);
    expect(valueOf(before, 'imi_input_lines_total')).toBe(0);
    expect(valueOf(before, 'imi_app_connected')).toBe(1);
    expect(valueOf(before, 'imi_round_trip_seconds_count')).toBe(0);

    const user = await scope.user(ports.externalPort);
    await app.nextUserId();
    for (const line of ['look', 'north', 'say héllo']) {
      user.send(line);
      await user.waitFor(`echo: ${line}\r\n`);
    }
    await app.barrier();
    const after = await scrape(ports.adminPort!, TOKEN);
    expect(valueOf(after, 'imi_input_lines_total')).toBe(3);
    expect(valueOf(after, 'imi_input_bytes_total')).toBe(Buffer.byteLength('looknorthsay héllo'));
    expect(valueOf(after, 'imi_output_writes_total')).toBe(3);
    expect(valueOf(after, 'imi_output_bytes_total')).toBe(Buffer.byteLength('echo: look\r\necho: north\r\necho: say héllo\r\n'));
    expect(valueOf(after, 'imi_sessions', { transport: 'tcp' })).toBe(1);
    expect(valueOf(after, 'imi_sessions_opened_total')).toBe(1);
    expect(valueOf(after, 'imi_app_connects_total')).toBe(1);
    expect(valueOf(after, 'imi_unacked_inputs')).toBe(0);
    // One round trip per line, each observed once, in cumulative buckets.
    expect(valueOf(after, 'imi_round_trip_seconds_count')).toBe(3);
    expect(valueOf(after, 'imi_round_trip_seconds_bucket', { le: '+Inf' })).toBe(3);
    const buckets = ROUND_TRIP_BUCKETS_SECONDS.map((bound) => valueOf(after, 'imi_round_trip_seconds_bucket', { le: String(bound) })!);
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]!).toBeGreaterThanOrEqual(buckets[i - 1]!);
    expect(valueOf(after, 'imi_round_trip_seconds_sum')!).toBeGreaterThan(0);

    // The same numbers as stats().
    const stats = imi.stats();
    expect(valueOf(after, 'imi_input_lines_total')).toBe(stats.inputLines);
    expect(valueOf(after, 'imi_output_bytes_total')).toBe(stats.outputBytes);
    expect(valueOf(after, 'imi_sessions', { transport: 'tcp' })).toBe(stats.sessionsByTransport['tcp']);
    expect(valueOf(after, 'imi_errors_total', { code: 'IMI_UNKNOWN_PARAM' })).toBe(stats.errors.IMI_UNKNOWN_PARAM); // the barrier's

    user.close();
    await waitFor(() => imi.stats().sessions === 0);
    const gone = await scrape(ports.adminPort!, TOKEN);
    expect(valueOf(gone, 'imi_sessions', { transport: 'tcp' })).toBe(0);
    expect(valueOf(gone, 'imi_sessions_closed_total', { reason: 'closed' })).toBe(1);
  });

  // The app waits 100 ms and the sum must show at least 80 ms: Node's timers
  // run on the loop's cached millisecond clock and may fire up to 1 ms early
  // by performance.now(), so waiting exactly 80 ms could measure 79.6 ms.
  it('measures the round trip from the line to the app output: an app that waits 100 ms is never in a bucket under 50 ms', async () => {
    const { ports } = await scope.start({ adminPort: 0, adminToken: TOKEN });
    let app!: Awaited<ReturnType<typeof scope.app>>;
    app = await scope.app(ports.clientPort, {
      hello: { acks: true },
      respond: (frame) => {
        if (frame.param === 'input') setTimeout(() => app.output(frame.data['id'] as string, 'late\r\n', { ack: frame.seq }), 100);
        return undefined;
      },
    });
    await app.synced();
    const user = await scope.user(ports.externalPort);
    await app.nextUserId();
    user.send('x');
    await user.waitFor('late\r\n');
    const samples = await scrape(ports.adminPort!, TOKEN);
    expect(valueOf(samples, 'imi_round_trip_seconds_count')).toBe(1);
    expect(valueOf(samples, 'imi_round_trip_seconds_bucket', { le: '0.05' })).toBe(0);
    expect(valueOf(samples, 'imi_round_trip_seconds_bucket', { le: '+Inf' })).toBe(1);
    expect(valueOf(samples, 'imi_round_trip_seconds_sum')!).toBeGreaterThanOrEqual(0.08);
  });

  it('counts limit hits by limit and errors by code', async () => {
    const { imi, ports, user } = await withAppAndUser(scope, { adminPort: 0, adminToken: TOKEN, maxLineBytes: 16 });
    const before = await scrape(ports.adminPort!, TOKEN);
    expect(valueOf(before, 'imi_limit_hits_total', { limit: 'maxLineBytes' })).toBeUndefined();
    expect(valueOf(before, 'imi_errors_total', { code: 'IMI_LIMIT' })).toBe(0);
    user.send('x'.repeat(100));
    user.send('y'.repeat(100));
    await waitFor(() => imi.stats().limits['maxLineBytes'] === 2, 5000, 'two maxLineBytes hits');
    const after = await scrape(ports.adminPort!, TOKEN);
    expect(valueOf(after, 'imi_limit_hits_total', { limit: 'maxLineBytes' })).toBe(2);
    expect(valueOf(after, 'imi_errors_total', { code: 'IMI_LIMIT' })).toBe(2);
  });

  it('follows an app crash: app_connected drops, input queues, the new app gets redeliveries, resyncs are timed', async () => {
    const { imi, ports } = await scope.start({ adminPort: 0, adminToken: TOKEN });
    const first = await scope.app(ports.clientPort, { acks: true, name: 'first' });
    await first.synced();
    const user = await scope.user(ports.externalPort);
    await first.nextUserId();
    user.send('never acked');
    await first.waitForParam('input');
    first.destroy(); // a crash: no ack ever comes
    await waitFor(() => !imi.appConnected);
    user.send('typed while down');
    await waitFor(() => imi.stats().queuedLines === 1);

    const down = await scrape(ports.adminPort!, TOKEN);
    expect(valueOf(down, 'imi_app_connected')).toBe(0);
    expect(sumOf(down, 'imi_app_disconnects_total')).toBe(1);
    expect(valueOf(down, 'imi_queued_input_lines')).toBe(1);
    expect(valueOf(down, 'imi_queued_input_bytes')).toBe(Buffer.byteLength('typed while down'));
    expect(valueOf(down, 'imi_unacked_inputs')).toBe(1);
    expect(valueOf(down, 'imi_redelivered_inputs_total')).toBe(0);
    expect(valueOf(down, 'imi_resync_duration_seconds_count')).toBe(1);

    const second = await scope.app(ports.clientPort, { acks: true, name: 'second' });
    await second.synced();
    await second.waitForParam('input', 2);
    const up = await scrape(ports.adminPort!, TOKEN);
    expect(valueOf(up, 'imi_app_connected')).toBe(1);
    expect(valueOf(up, 'imi_app_connects_total')).toBe(2);
    expect(valueOf(up, 'imi_redelivered_inputs_total')).toBe(1);
    expect(valueOf(up, 'imi_queued_input_lines')).toBe(0);
    expect(valueOf(up, 'imi_unacked_inputs')).toBe(2);
    expect(valueOf(up, 'imi_resync_duration_seconds_count')).toBe(2);
    // The line the crashed app never answered is not a round trip of the new one.
    second.output(second.of('input')[0]!.data['id'] as string, 'hi\r\n', { ack: second.of('input')[1]!.seq });
    await user.waitFor('hi\r\n');
    const answered = await scrape(ports.adminPort!, TOKEN);
    expect(valueOf(answered, 'imi_unacked_inputs')).toBe(0);
    expect(valueOf(answered, 'imi_round_trip_seconds_count')).toBe(0);
  });

  it('counts replacements and app disconnects by reason', async () => {
    const { imi, ports } = await scope.start({ adminPort: 0, adminToken: TOKEN, appPolicy: 'replace' });
    const first = await scope.app(ports.clientPort, { name: 'v1' });
    await first.synced();
    const second = await scope.app(ports.clientPort, { name: 'v2' });
    await second.synced();
    await first.waitForError('IMI_REPLACED');
    await waitFor(() => imi.stats().appReplacements === 1);
    const samples = await scrape(ports.adminPort!, TOKEN);
    expect(valueOf(samples, 'imi_app_replacements_total')).toBe(1);
    expect(valueOf(samples, 'imi_app_disconnects_total', { reason: 'replaced' })).toBe(1);
    expect(valueOf(samples, 'imi_app_disconnects_total', { reason: 'closed' })).toBe(0);
    expect(valueOf(samples, 'imi_errors_total', { code: 'IMI_REPLACED' })).toBe(1);
  });

  it('counts input dropped by reason (queue overflow while the app is down)', async () => {
    const { imi, ports } = await scope.start({ adminPort: 0, adminToken: TOKEN, maxQueuedLinesPerSession: 2, appDownNotice: false });
    const user = await scope.user(ports.externalPort);
    await waitFor(() => imi.stats().sessions === 1);
    for (let i = 0; i < 5; i++) user.send(`line ${i}`);
    await waitFor(() => imi.stats().inputLines === 5);
    const samples = await scrape(ports.adminPort!, TOKEN);
    expect(valueOf(samples, 'imi_dropped_inputs_total', { reason: 'queueFull' })).toBe(3);
    expect(valueOf(samples, 'imi_dropped_inputs_total', { reason: 'userGone' })).toBe(0);
    expect(valueOf(samples, 'imi_queued_input_lines')).toBe(2);
    expect(valueOf(samples, 'imi_limit_hits_total', { limit: 'maxQueuedLinesPerSession' })).toBeGreaterThanOrEqual(1);
    user.close();
    await waitFor(() => imi.stats().sessions === 0);
    const gone = await scrape(ports.adminPort!, TOKEN);
    expect(valueOf(gone, 'imi_dropped_inputs_total', { reason: 'userGone' })).toBe(2);
    expect(valueOf(gone, 'imi_queued_input_lines')).toBe(0);
  });

  it("has Node's default metrics (heap, event-loop lag) next to imi's", async () => {
    const { ports } = await scope.start({ adminPort: 0, adminToken: TOKEN });
    const samples = await scrape(ports.adminPort!, TOKEN);
    expect(valueOf(samples, 'nodejs_heap_size_used_bytes')!).toBeGreaterThan(0);
    expect(valueOf(samples, 'nodejs_eventloop_lag_seconds')).toBeDefined();
    expect(valueOf(samples, 'process_cpu_user_seconds_total')).toBeDefined();
  });

  it('keeps two intermediaries in one process apart (a registry each)', async () => {
    const a = await scope.start({ adminPort: 0, adminToken: TOKEN });
    const b = await scope.start({ adminPort: 0, adminToken: TOKEN });
    const user = await scope.user(a.ports.externalPort);
    user.send('only on a');
    await waitFor(() => a.imi.stats().inputLines === 1);
    expect(valueOf(await scrape(a.ports.adminPort!, TOKEN), 'imi_input_lines_total')).toBe(1);
    expect(valueOf(await scrape(b.ports.adminPort!, TOKEN), 'imi_input_lines_total')).toBe(0);
  });

  it('IntermediaryMetrics works without the admin listener, and detach() stops the per-message listeners', async () => {
    const imi = new Intermediary({ externalPort: 0, clientPort: 0, host: '127.0.0.1' });
    const metrics = new IntermediaryMetrics(imi, { defaultMetrics: false });
    expect(imi.listenerCount('input')).toBe(1);
    expect(imi.listenerCount('appOutput')).toBe(1);
    const samples = parseMetrics(await metrics.render());
    expect(valueOf(samples, 'imi_app_connected')).toBe(0);
    expect(samples.some((sample) => sample.name.startsWith('nodejs_'))).toBe(false);
    expect(metrics.contentType).toContain('text/plain');
    metrics.detach();
    expect(imi.listenerCount('input')).toBe(0);
    expect(imi.listenerCount('appOutput')).toBe(0);
    expect(imi.metrics).toBeUndefined();
    await imi.close();
  });

  it('a scrape during traffic never blocks it (the user keeps getting answers between scrapes)', async () => {
    const { ports } = await scope.start({ adminPort: 0, adminToken: TOKEN });
    let app!: Awaited<ReturnType<typeof scope.app>>;
    app = await scope.app(ports.clientPort, { hello: { acks: true }, respond: (frame) => echo(app)(frame) });
    await app.synced();
    const user = await scope.user(ports.externalPort);
    await app.nextUserId();
    for (let i = 0; i < 5; i++) {
      user.send(`n${i}`);
      const [samples] = await Promise.all([scrape(ports.adminPort!, TOKEN), user.waitFor(`echo: n${i}\r\n`)]);
      expect(valueOf(samples, 'imi_input_lines_total')!).toBeGreaterThanOrEqual(i);
      await sleep(1);
    }
  });

  it('every metric docs/operations.md lists and the Grafana dashboard queries exists, with the documented type', async () => {
    const { ports } = await scope.start({ adminPort: 0, adminToken: TOKEN });
    const answer = await fetch(`http://127.0.0.1:${ports.adminPort!}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const declared = families(await answer.text());

    const operations = readFileSync(new URL('docs/operations.md', root), 'utf8');
    const documented = [...operations.matchAll(/^\| `((?:imi|nodejs|process)_\w+)` \| (gauge|counter|histogram) \|/gm)].map((match) => ({ name: match[1]!, type: match[2]! }));
    expect(documented.length).toBeGreaterThan(20);
    for (const { name, type } of documented) expect(declared.get(name), `${name} (documented as a ${type})`).toBe(type);
    // …and every imi_* metric is documented.
    for (const name of declared.keys()) if (name.startsWith('imi_')) expect(documented.map((metric) => metric.name), `${name} is not in docs/operations.md`).toContain(name);

    const dashboard = readFileSync(new URL('examples/grafana/imi-dashboard.json', root), 'utf8');
    JSON.parse(dashboard);
    const queried = new Set([...dashboard.matchAll(/\b((?:imi|nodejs|process)_[a-z0-9_]+)/g)].map((match) => match[1]!.replace(/_(bucket|sum|count)$/, '')));
    expect(queried.size).toBeGreaterThan(20);
    for (const name of queried) expect(declared.has(name), `the dashboard queries ${name}`).toBe(true);
  });
});
