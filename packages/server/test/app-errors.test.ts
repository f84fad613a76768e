// An app that errs in a loop: error frames and log lines are rate-limited
// (a burst, a rate, then one summary per code per interval), every error is
// still counted exactly, and the valid frames between the bad ones are served
// as they come: the app is not dropped as hung, users get every reply.
// Real sockets on 127.0.0.1; round-trip times are printed, never asserted
// beyond a loose sanity bound (this machine is shared and noisy).
import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import pino from 'pino';
import { DEFAULT_ERROR_FRAME_BURST, DEFAULT_MAX_ERROR_FRAMES_PER_SECOND, type Intermediary } from '@imi/server';
import { sleep, testScope, waitFor, type Frame, type RawApp } from './harness.js';

const scope = testScope();

/** A pino logger whose lines are kept as objects. */
function memoryLogger(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

const SUMMARY = /^(\d+) more (IMI_[A-Z_]+) errors? (?:was|were) suppressed in the last \d+\.\d s$/;

/** Error frames that are summaries, and those that are single reports. */
function splitErrors(app: RawApp, code: string): { single: Frame[]; summaries: Frame[] } {
  const errors = app.errors(code);
  return { single: errors.filter((frame) => frame.data['suppressed'] === undefined), summaries: errors.filter((frame) => frame.data['suppressed'] !== undefined) };
}

function suppressedIn(frames: Frame[]): number {
  return frames.reduce((sum, frame) => sum + (frame.data['suppressed'] as number), 0);
}

async function metric(imi: Intermediary, adminPort: number, line: string): Promise<number> {
  void imi;
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const found = text.split('\n').find((l) => l.startsWith(line + ' '));
  if (found === undefined) throw new Error(`no ${line} in /metrics`);
  return Number(found.slice(line.length + 1));
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

describe('an app that errs in a loop', () => {
  it('gets a bounded number of error frames and summaries; every bad frame is counted; users get every reply', async () => {
    const { logger, lines } = memoryLogger();
    const { imi, ports } = await scope.start({ logger, adminPort: 0, heartbeatIntervalMs: 200, heartbeatTimeoutMs: 1000 });
    let app!: RawApp;
    app = await scope.app(ports.clientPort, {
      hello: { name: 'spewer' },
      respond: (frame) => (frame.param === 'input' ? { param: 'output', data: { id: frame.data['id'], value: `echo:${String(frame.data['value'])}\r\n` } } : undefined),
    });
    await app.synced();
    const probe = await scope.user(ports.externalPort);
    const probeId = await app.nextUserId();

    // ~1 MB/s of garbage: every millisecond 1 KiB of invalid JSON lines, a
    // stray log line, an unknown param, with a valid frame in between.
    const badJson = '{"param": nope}\n'.repeat(60); // 60 IMI_BAD_FRAME
    const strayLine = 'DEBUG: tick "done" in 3 ms\n'; // 1 IMI_BAD_FRAME (one run of text)
    const unknownParam = '{"param":"nope","data":{}}\n'; // 1 IMI_UNKNOWN_PARAM
    const valid = JSON.stringify({ param: 'null' }) + '\n';
    const chunk = badJson + valid + strayLine + unknownParam;
    let chunks = 0;
    let bytes = 0;
    const spew = setInterval(() => {
      app.sendRaw(chunk);
      chunks++;
      bytes += chunk.length;
    }, 1);

    const rtts: number[] = [];
    const started = performance.now();
    try {
      for (let n = 0; performance.now() - started < 2000; n++) {
        const sent = performance.now();
        probe.send(`ping ${n}`);
        await probe.waitFor(`echo:ping ${n}\r\n`, 10_000);
        rtts.push(performance.now() - sent);
      }
    } finally {
      clearInterval(spew);
    }
    const seconds = (performance.now() - started) / 1000;
    // A valid frame after the last bad one: once it is served, every bad one was handled.
    app.output(probeId, 'the end\r\n');
    await probe.waitFor('the end\r\n', 10_000);

    const sorted = [...rtts].sort((a, b) => a - b);
    console.log(
      `app spewed ${(bytes / 1e6).toFixed(2)} MB of garbage in ${seconds.toFixed(2)} s (${(bytes / 1e6 / seconds).toFixed(2)} MB/s, ${chunks * 61} IMI_BAD_FRAME, ${chunks} IMI_UNKNOWN_PARAM); ` +
        `${rtts.length} probe round trips: median ${percentile(sorted, 50).toFixed(1)} ms, p99 ${percentile(sorted, 99).toFixed(1)} ms, max ${sorted[sorted.length - 1]!.toFixed(1)} ms`,
    );

    // The app was never dropped (not as hung, not by the heartbeat), and every reply came, in order.
    expect(app.closed).toBe(false);
    expect(imi.stats().appConnected).toBe(true);
    expect(imi.stats().appDisconnects).toBe(0);
    expect(probe.received).toBe(rtts.map((_, n) => `echo:ping ${n}\r\n`).join('') + 'the end\r\n');
    expect(chunks).toBeGreaterThan(100);

    // Every bad frame is counted exactly, in stats() and in the metric.
    const stats = imi.stats();
    expect(stats.errors.IMI_BAD_FRAME).toBe(chunks * 61);
    expect(stats.errors.IMI_UNKNOWN_PARAM).toBe(chunks);
    expect(await metric(imi, ports.adminPort!, 'imi_errors_total{code="IMI_BAD_FRAME"}')).toBe(chunks * 61);

    // Error frames: at most the burst plus the rate over the time, all codes together.
    await sleep(1300); // the last summaries
    const bad = splitErrors(app, 'IMI_BAD_FRAME');
    const unknown = splitErrors(app, 'IMI_UNKNOWN_PARAM');
    const elapsed = (performance.now() - started) / 1000;
    expect(bad.single.length + unknown.single.length).toBeLessThanOrEqual(DEFAULT_ERROR_FRAME_BURST + Math.ceil(DEFAULT_MAX_ERROR_FRAMES_PER_SECOND * elapsed));
    expect(bad.single.length).toBeGreaterThan(0);
    // Summaries: about one per code per second, each an error a legacy app understands.
    expect(bad.summaries.length).toBeGreaterThanOrEqual(1);
    expect(bad.summaries.length).toBeLessThanOrEqual(Math.ceil(elapsed) + 1);
    for (const summary of [...bad.summaries, ...unknown.summaries]) {
      const match = SUMMARY.exec(summary.data['message'] as string);
      expect(match, summary.data['message'] as string).not.toBeNull();
      expect(Number(match![1])).toBe(summary.data['suppressed']);
      expect(match![2]).toBe(summary.data['code']);
    }
    // Together they account for every error: each one sent or summarised, none twice.
    expect(bad.single.length + suppressedIn(bad.summaries)).toBe(chunks * 61);
    expect(unknown.single.length + suppressedIn(unknown.summaries)).toBe(chunks);

    // The log: per code, the burst and the rate, then summaries at the code's level that account for the rest.
    const logged = lines.filter((line) => line['code'] === 'IMI_BAD_FRAME');
    const logSummaries = logged.filter((line) => line['suppressed'] !== undefined);
    const logSingles = logged.length - logSummaries.length;
    expect(logSingles).toBeLessThanOrEqual(20 + Math.ceil(10 * elapsed));
    expect(logSingles + logSummaries.reduce((sum, line) => sum + (line['suppressed'] as number), 0)).toBe(chunks * 61);
    for (const line of logSummaries) {
      expect(line['level']).toBe(40);
      expect(line['msg']).toMatch(SUMMARY);
    }

    // Loose sanity only: valid replies were not stuck behind the garbage for seconds.
    expect(percentile(sorted, 50)).toBeLessThan(2000);
  }, 30_000);

  it('a few errors still come one by one, each with its txn_id; a summary comes only once the burst is spent', async () => {
    const { logger, lines } = memoryLogger();
    const { imi, ports } = await scope.start({ logger, maxErrorFramesPerSecond: 1, errorFrameBurst: 3, maxErrorLogLinesPerSecond: 1, errorLogBurst: 2, errorSummaryIntervalMs: 100 });
    const app = await scope.app(ports.clientPort, { name: 'careless' });
    await app.synced();
    for (let i = 0; i < 3; i++) app.send({ param: 'output', data: { id: `nobody-${i}`, value: 'x' }, txn_id: `t${i}` });
    await waitFor(() => app.errors('IMI_UNKNOWN_ID').length === 3);
    expect(app.errors('IMI_UNKNOWN_ID').map((frame) => frame.data['txn_id'])).toEqual(['t0', 't1', 't2']);
    await sleep(200);
    expect(app.errors().filter((frame) => frame.data['suppressed'] !== undefined)).toEqual([]);

    for (let i = 3; i < 10; i++) app.send({ param: 'output', data: { id: `nobody-${i}`, value: 'x' }, txn_id: `t${i}` });
    await waitFor(() => app.errors().some((frame) => frame.data['suppressed'] !== undefined));
    const errors = app.errors('IMI_UNKNOWN_ID');
    const summary = errors.find((frame) => frame.data['suppressed'] !== undefined)!;
    // The bucket refilled by at most one token meanwhile: the rest is in the summary.
    expect(errors.length - 1 + (summary.data['suppressed'] as number)).toBe(10);
    expect(summary.data['message']).toMatch(SUMMARY);
    expect(summary.data['txn_id']).toBeUndefined();

    // The log: IMI_UNKNOWN_ID is reported at debug, and so is its summary; together they tell of all ten.
    await imi.close(); // flushes a summary still pending
    const logged = lines.filter((line) => line['code'] === 'IMI_UNKNOWN_ID');
    const summaries = logged.filter((line) => line['suppressed'] !== undefined);
    expect(summaries.length).toBeGreaterThanOrEqual(1);
    for (const line of logged) expect(line['level']).toBe(20);
    expect(logged.length - summaries.length + summaries.reduce((sum, line) => sum + (line['suppressed'] as number), 0)).toBe(10);
  });

  it('rejects a burst below 1', async () => {
    await expect(scope.start({ errorFrameBurst: 0.5 })).rejects.toThrow(/errorFrameBurst must be at least 1/);
  });
});
