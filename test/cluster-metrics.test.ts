// The counters of cluster mode (docs/cluster.md, "Metrics"): a real
// redis-server, a real imi-server holder with its admin API, a worker
// (`new Client({ redis })`) in this process, users on sockets. The worker's
// `clusterStats` and the holder's `/metrics` and `/stats` must move with
// what happened: events published, read, acked; leases gained and given
// back; Redis errors and outages across a Redis restart.
import { afterEach, describe, expect, it } from 'vitest';
import { Client, type ClusterWorkerStats } from '@imi/client';
import { commandsAvailable } from '../packages/server/test/process-harness.js';
import { RedisProcess, User, sleep, startHolder, stopAll, waitFor } from './support/cluster-harness.js';

const PARTITIONS = 8;
const LINES_PER_USER = 5;

let app: Client | undefined;
afterEach(async () => {
  await app?.close().catch(() => {});
  app = undefined;
  stopAll();
});

async function admin(port: number, path: string): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  expect(response.status).toBe(200);
  return response.text();
}

/** The value of an unlabelled metric in Prometheus text. */
function metric(text: string, name: string): number {
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (match === null) throw new Error(`no ${name} in /metrics`);
  return Number(match[1]);
}

describe.skipIf(!commandsAvailable('redis-server'))('cluster mode metrics', () => {
  it('the worker and holder counters move with events, acks, leases and a Redis restart', async () => {
    const redis = await RedisProcess.start(true);
    const holder = await startHolder(redis.url, 'hm', 1_500, ['--admin-port', '0', '--cluster-partitions', String(PARTITIONS)]);
    const client = new Client({ redis: redis.url, name: 'metrics-echo', cluster: { workerId: 'wm', partitions: PARTITIONS, leaseTtlMs: 1_500, holderTtlMs: 1_500 } });
    app = client;
    client.on('error', () => {});
    client.on('connect', (session) => session.send(`hello ${session.id} new\r\n`));
    client.on('input', (session, line) => session.send(`${line}#wm\r\n`, { updates: { last: line } }));
    expect(client.clusterStats?.leasesGained).toBe(0);
    await client.connect();
    await waitFor(() => client.partitionsHeld.length === PARTITIONS, 20_000, () => `every partition held (${client.partitionsHeld.length})`);
    expect(client.clusterStats!.leasesGained).toBe(PARTITIONS);

    const users = await Promise.all(['u1', 'u2', 'u3'].map((name) => User.connect(name, holder)));
    await waitFor(() => users.every((user) => user.id !== ''), 20_000, () => 'every user greeted');
    for (let i = 0; i < LINES_PER_USER; i++) for (const user of users) user.sendNext();
    await waitFor(() => users.every((user) => user.complete), 20_000, () => 'every line answered');
    const lines = users.length * LINES_PER_USER;
    const events = users.length + lines; // a connect and the lines

    // Acks are committed with the replies; the last commit may still be on its way.
    await waitFor(() => client.clusterStats!.eventsAcked >= events, 10_000, () => `acks committed (${client.clusterStats!.eventsAcked})`);
    const worker: ClusterWorkerStats = client.clusterStats!;
    expect(worker.eventsRead).toBeGreaterThanOrEqual(events);
    expect(worker.framesPublished).toBeGreaterThanOrEqual(events); // a greeting and a reply each
    expect(worker.commits).toBeGreaterThan(0);
    expect(worker.commits).toBeLessThanOrEqual(worker.eventsAcked + worker.framesPublished);
    expect(worker.reads).toBeGreaterThan(0);
    expect(worker).toMatchObject({ eventsClaimed: 0, eventsRedelivered: 0, opsFenced: 0, leasesLost: 0, leasesReleased: 0, redisErrors: 0 });
    // Idle, each read waits 200 ms for entries and comes back empty.
    const idleFrom = client.clusterStats!;
    await sleep(700);
    expect(client.clusterStats!.wakeups).toBeGreaterThan(idleFrom.wakeups);
    expect(client.clusterStats!.reads - idleFrom.reads).toBeLessThanOrEqual(client.clusterStats!.wakeups - idleFrom.wakeups + 1);

    const text = await admin(holder.adminPort!, '/metrics');
    expect(metric(text, 'imi_cluster_events_published_total')).toBeGreaterThanOrEqual(events);
    expect(metric(text, 'imi_cluster_event_batches_total')).toBeGreaterThan(0);
    expect(metric(text, 'imi_cluster_event_batches_total')).toBeLessThanOrEqual(metric(text, 'imi_cluster_events_published_total'));
    expect(metric(text, 'imi_cluster_frames_read_total')).toBe(events); // a greeting and a reply each: counted per frame, however many an entry holds
    expect(metric(text, 'imi_cluster_output_reads_total')).toBeGreaterThan(0);
    expect(metric(text, 'imi_cluster_redis_down_total')).toBe(0);
    const stats = JSON.parse(await admin(holder.adminPort!, '/stats')) as { cluster: Record<string, number> };
    expect(stats.cluster['events']).toBeGreaterThanOrEqual(events);
    expect(stats.cluster['frames']).toBe(events);

    // Redis goes away and comes back: both sides count it, and lines typed after are still answered.
    await redis.stop();
    await sleep(300);
    await redis.restart();
    await waitFor(() => client.clusterStats!.redisErrors > 0, 10_000, () => 'the worker counted a Redis error');
    for (const user of users) user.sendNext();
    await waitFor(() => users.every((user) => user.complete), 30_000, () => 'lines after the restart answered');
    const after = await admin(holder.adminPort!, '/metrics');
    expect(metric(after, 'imi_cluster_redis_down_total')).toBeGreaterThan(0);
    expect(metric(after, 'imi_cluster_events_published_total')).toBeGreaterThanOrEqual(events + users.length);

    // Closing gives every lease back.
    const held = client.partitionsHeld.length;
    const before = client.clusterStats!;
    await client.close();
    app = undefined;
    await waitFor(() => client.clusterStats!.leasesReleased - before.leasesReleased === held, 10_000, () => `${held} leases given back (${client.clusterStats!.leasesReleased - before.leasesReleased})`);
    expect(client.clusterStats!.leasesLost).toBe(before.leasesLost);
  }, 90_000);
});
