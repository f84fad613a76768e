/**
 * Prometheus metrics of an intermediary (prom-client), on a registry of its
 * own so several intermediaries in one process never collide.
 *
 * The hot path pays nothing for most of them: gauges and counters read
 * {@link Intermediary.stats} once per scrape, in prom-client `collect()`
 * callbacks. Only the round-trip latency listens per message (an `input`
 * and an `appOutput` listener: a map look-up and a clock read each, and a
 * bucket increment; no allocation per message), and a few rare events
 * (sessions closing, apps leaving, resyncs) feed labelled counters and a
 * histogram.
 *
 * @module
 */
import { createRequire } from 'node:module';
import type { Counter, Histogram, Metric, Registry } from 'prom-client';
import type { AppInfo, Session } from '../hooks.js';
import type { IntermediaryApi, IntermediaryStats } from '../api.js';
import type { ClusterHolderStats } from '../cluster/holder.js';

let promClient: typeof import('prom-client') | undefined;

/**
 * prom-client, required when the first metrics are made: the intermediary's
 * modules import this one, and an imi-server without an admin port never
 * loads prom-client (about 100 ms of every start on a 2 GHz Xeon, an
 * upgrade's successor included).
 */
function prom(): typeof import('prom-client') {
  return (promClient ??= createRequire(import.meta.url)('prom-client') as typeof import('prom-client'));
}

/**
 * Loads prom-client now: an upgrade's successor with an admin port does it before the old process freezes, so that
 * making its metrics after the freeze does not load it while users wait.
 *
 * @throws whatever requiring prom-client throws (the package missing from the install)
 */
export function preloadMetrics(): void {
  prom();
}

/** The `imi_cluster_*` counters of a cluster holder: metric name, help, and the {@link ClusterHolderStats} field it reads. */
const CLUSTER_HOLDER_COUNTERS: ReadonlyArray<readonly [string, string, keyof ClusterHolderStats]> = [
  ['imi_cluster_events_published_total', 'Cluster holder: user events (connect, input, disconnect, telnet, gmcp) added to their partition stream', 'events'],
  ['imi_cluster_event_batches_total', 'Cluster holder: script calls that carried events to Redis', 'batches'],
  ['imi_cluster_frames_read_total', 'Cluster holder: frames read from its output stream and the broadcast stream and relayed to users', 'frames'],
  ['imi_cluster_output_reads_total', 'Cluster holder: XREADs of the output and broadcast streams that returned entries', 'outputReads'],
  ['imi_cluster_duplicates_skipped_total', 'Cluster holder: lines sent again that Redis already had (skipped, not doubled)', 'duplicatesSkipped'],
  ['imi_cluster_redis_down_total', 'Cluster holder: times Redis became unreachable', 'redisDown'],
  ['imi_cluster_redis_errors_total', 'Cluster holder: Redis commands that failed', 'redisErrors'],
];

/** Upper bounds (seconds) of the `imi_round_trip_seconds` buckets. */
export const ROUND_TRIP_BUCKETS_SECONDS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Upper bounds (seconds) of the `imi_resync_duration_seconds` buckets. */
export const RESYNC_BUCKETS_SECONDS: readonly number[] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
/** Reasons an admitted user's connection ends, reported at 0 before the first one happens (refused users never were sessions). */
const SESSION_CLOSE_REASONS = ['closed', 'kicked', 'timeout', 'error', 'slow', 'shutdown'];
/** Reasons an app connection ends, reported at 0 before the first one happens. */
const APP_DISCONNECT_REASONS = ['closed', 'error', 'timeout', 'replaced'];

/** Options of {@link IntermediaryMetrics}. */
export interface IntermediaryMetricsOptions {
  /** Also collect prom-client's default Node.js metrics (`process_*`, `nodejs_*`: heap, event-loop lag, GC, handles). Default true. */
  defaultMetrics?: boolean;
}

/** One sample of a metric, in prom-client's exposition shape. */
interface Sample {
  labels: Record<string, string | number>;
  value: number;
  metricName: string;
}

/**
 * A histogram with fixed buckets that records without allocating (a typed
 * array of counts), exposed to prom-client through its metric contract
 * (`get()` returning the samples). prom-client's own `observe()` hashes
 * labels and allocates a closure per call: fine for rare events, not per
 * message.
 */
class FastHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly bounds: Float64Array;
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    bounds: readonly number[],
  ) {
    this.bounds = Float64Array.from(bounds);
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let index = 0;
    while (index < bounds.length && value > bounds[index]!) index++;
    this.counts[index]!++;
    this.sum += value;
    this.count++;
  }

  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    const values: Sample[] = [];
    let cumulative = 0;
    const bucket = `${this.name}_bucket`;
    for (let index = 0; index < this.bounds.length; index++) {
      cumulative += this.counts[index]!;
      values.push({ labels: { le: this.bounds[index]! }, value: cumulative, metricName: bucket });
    }
    values.push({ labels: { le: '+Inf' }, value: this.count, metricName: bucket });
    values.push({ labels: {}, value: this.sum, metricName: `${this.name}_sum` });
    values.push({ labels: {}, value: this.count, metricName: `${this.name}_count` });
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

/**
 * The metrics of one intermediary, in a prom-client `Registry` of its
 * own. The admin listener (`adminPort`) creates one and serves it on
 * `GET /metrics`; create one yourself to serve the metrics elsewhere:
 *
 * ```ts
 * import { createServer } from 'node:http';
 * import { Intermediary, IntermediaryMetrics } from '@imi/server';
 *
 * const imi = new Intermediary();
 * const metrics = new IntermediaryMetrics(imi);
 * createServer(async (_req, res) => {
 *   res.setHeader('content-type', metrics.contentType);
 *   res.end(await metrics.render());
 * }).listen(9464, '127.0.0.1');
 * ```
 *
 * docs/operations.md lists every metric.
 */
export class IntermediaryMetrics {
  /** The registry (not prom-client's global one). */
  readonly registry: Registry;
  private snapshot: IntermediaryStats | undefined;
  /**
   * Per user, when their oldest unanswered line arrived (`performance.now()`,
   * -1: none). A cell per session, made on their first line and dropped when
   * they leave, so the per-message work changes a number and never the map.
   */
  private readonly pendingSince = new Map<string, { since: number }>();
  private readonly roundTrip = new FastHistogram(
    'imi_round_trip_seconds',
    "Time from a user's line (received while an app is connected) to the app's next output to that user",
    ROUND_TRIP_BUCKETS_SECONDS,
  );
  private readonly transportsSeen = new Set<string>(['tcp']);
  private readonly sessionsClosed: Counter<'reason'>;
  private readonly appDisconnects: Counter<'reason'>;
  private readonly resyncDuration: Histogram;
  private readonly detachers: (() => void)[] = [];

  /**
   * @param intermediary - the intermediary to observe (metrics count from now on; counters read from `stats()` include what happened before)
   * @param options - see {@link IntermediaryMetricsOptions}
   */
  constructor(
    private readonly intermediary: IntermediaryApi,
    options: IntermediaryMetricsOptions = {},
  ) {
    const { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } = prom();
    const registry = new Registry();
    this.registry = registry;
    const registers = [registry];
    const stats = (): IntermediaryStats => this.snapshot ?? intermediary.stats();
    const transportsSeen = this.transportsSeen;

    // ---- gauges, read from stats() at scrape time
    new Gauge({
      name: 'imi_sessions',
      help: 'Live user sessions, by transport',
      labelNames: ['transport'],
      registers,
      collect() {
        const byTransport = stats().sessionsByTransport;
        for (const transport of Object.keys(byTransport)) transportsSeen.add(transport);
        for (const transport of transportsSeen) this.set({ transport }, byTransport[transport] ?? 0);
      },
    });
    const gauge = (name: string, help: string, read: (s: IntermediaryStats) => number): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read(stats()));
        },
      });
    };
    gauge('imi_app_connected', 'Whether an app is connected and synced (1) or not (0)', (s) => (s.appConnected ? 1 : 0));
    gauge('imi_queued_input_lines', 'Lines of user input queued for the next app', (s) => s.queuedLines);
    gauge('imi_queued_input_bytes', 'Bytes of user input queued for the next app', (s) => s.queuedBytes);
    gauge('imi_unacked_inputs', 'Inputs sent to an acking app and not acked yet (including those kept for redelivery)', (s) => s.unacked);
    gauge('imi_held_app_messages', 'App messages waiting for their dep_txns', (s) => s.heldMessages);

    // ---- counters kept by the intermediary, read from stats() at scrape time
    const counter = (name: string, help: string, read: (s: IntermediaryStats) => number): void => {
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(read(stats()));
        },
      });
    };
    const labelledCounter = (name: string, help: string, label: string, read: (s: IntermediaryStats) => Record<string, number>): void => {
      new Counter({
        name,
        help,
        labelNames: [label],
        registers,
        collect() {
          this.reset();
          for (const [key, value] of Object.entries(read(stats()))) this.inc({ [label]: key }, value);
        },
      });
    };
    counter('imi_sessions_opened_total', 'User connections accepted', (s) => s.sessionsOpened);
    counter('imi_app_connects_total', 'App connections accepted (after hello)', (s) => s.appConnects);
    counter('imi_app_replacements_total', 'Apps replaced by a newer one (appPolicy "replace")', (s) => s.appReplacements);
    counter('imi_input_lines_total', 'Lines received from users', (s) => s.inputLines);
    counter('imi_input_bytes_total', 'Bytes of lines received from users (end of line excluded)', (s) => s.inputBytes);
    counter('imi_output_writes_total', 'Texts written to users', (s) => s.outputWrites);
    counter('imi_output_bytes_total', 'Bytes written to users', (s) => s.outputBytes);
    counter('imi_redelivered_inputs_total', 'Unacked inputs delivered again to a new app', (s) => s.redelivered);
    labelledCounter('imi_dropped_inputs_total', 'User inputs dropped, by reason', 'reason', (s) => s.dropped);
    labelledCounter('imi_errors_total', 'Reported errors, by IMI_* code', 'code', (s) => s.errors);
    labelledCounter('imi_limit_hits_total', 'Times a configured limit was hit, by option name', 'limit', (s) => s.limits);
    labelledCounter('imi_users_refused_total', 'Users refused by a connection limit before becoming a session, by limit', 'limit', (s) => s.refused);

    // ---- fed by rare events
    this.sessionsClosed = new Counter({ name: 'imi_sessions_closed_total', help: 'User connections ended, by reason', labelNames: ['reason'], registers });
    for (const reason of SESSION_CLOSE_REASONS) this.sessionsClosed.inc({ reason }, 0);
    this.appDisconnects = new Counter({ name: 'imi_app_disconnects_total', help: 'App connections lost, by reason', labelNames: ['reason'], registers });
    for (const reason of APP_DISCONNECT_REASONS) this.appDisconnects.inc({ reason }, 0);
    this.resyncDuration = new Histogram({
      name: 'imi_resync_duration_seconds',
      help: 'Time to resync an app (every live user announced or, named in hello.known, left out; then synced)',
      buckets: [...RESYNC_BUCKETS_SECONDS],
      registers,
    });

    // ---- per message, allocation-free
    registry.registerMetric(this.roundTrip as unknown as Metric);

    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });

    intermediary.on('input', this.onInput);
    intermediary.on('appOutput', this.onAppOutput);
    intermediary.on('sessionClose', this.onSessionClose);
    intermediary.on('appDisconnect', this.onAppDisconnect);
    intermediary.on('synced', this.onSynced);
    this.detachers.push(() => {
      intermediary.off('input', this.onInput);
      intermediary.off('appOutput', this.onAppOutput);
      intermediary.off('sessionClose', this.onSessionClose);
      intermediary.off('appDisconnect', this.onAppDisconnect);
      intermediary.off('synced', this.onSynced);
    });
  }

  /** The content type of {@link render}'s text (Prometheus text format 0.0.4). */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Every metric in the Prometheus text format, from one `stats()` snapshot. */
  render(): Promise<string> {
    this.snapshot = this.intermediary.stats();
    try {
      // Every collect() runs synchronously inside metrics(), before it returns.
      return this.registry.metrics();
    } finally {
      this.snapshot = undefined;
    }
  }

  private clusterHolder: (() => ClusterHolderStats) | undefined;

  /**
   * Adds the `imi_cluster_*` counters of this process's cluster holder
   * (`imi-server --redis`), read from `read()` at each scrape; `/stats` of
   * the admin API then has them too, as `cluster`. A second call replaces
   * the source.
   *
   * @param read - the holder's counters (`ClusterHolder.stats`)
   */
  watchClusterHolder(read: () => ClusterHolderStats): void {
    const first = this.clusterHolder === undefined;
    this.clusterHolder = read;
    if (!first) return;
    const source = (): ClusterHolderStats => this.clusterHolder!();
    const { Counter } = prom();
    for (const [name, help, field] of CLUSTER_HOLDER_COUNTERS) {
      new Counter({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.reset();
          this.inc(source()[field]);
        },
      });
    }
  }

  /** The cluster holder's counters, when {@link watchClusterHolder} was called. */
  get clusterHolderStats(): ClusterHolderStats | undefined {
    return this.clusterHolder?.();
  }

  /** Stops listening to the intermediary's events (the registry stays readable). */
  detach(): void {
    for (const detach of this.detachers.splice(0)) detach();
    this.pendingSince.clear();
  }

  private readonly onInput = (session: Session): void => {
    let cell = this.pendingSince.get(session.id);
    if (cell === undefined) {
      cell = { since: -1 };
      this.pendingSince.set(session.id, cell);
    }
    // The oldest unanswered line counts; lines typed while no app is connected measure the outage, not the app.
    if (cell.since < 0 && this.intermediary.appConnected) cell.since = performance.now();
  };

  private readonly onAppOutput = (session: Session): void => {
    const cell = this.pendingSince.get(session.id);
    if (cell === undefined || cell.since < 0) return;
    this.roundTrip.observe((performance.now() - cell.since) / 1000);
    cell.since = -1;
  };

  private readonly onSessionClose = (session: Session, reason: string): void => {
    this.pendingSince.delete(session.id);
    this.sessionsClosed.inc({ reason });
  };

  private readonly onAppDisconnect = (_app: AppInfo, reason: string): void => {
    this.appDisconnects.inc({ reason });
    // Lines the lost app never answered would measure the outage: forget them.
    if (!this.intermediary.appConnected) for (const cell of this.pendingSince.values()) cell.since = -1;
  };

  private readonly onSynced = (_app: AppInfo, _count: number, durationMs: number): void => {
    this.resyncDuration.observe(durationMs / 1000);
  };
}
