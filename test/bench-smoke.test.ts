// Keeps the benchmark harness from rotting silently: the load generator runs
// for about a second against baseline-direct and must have made round trips
// with correct replies, and the report renders. No timing is asserted: the
// numbers belong to `pnpm bench`, run by hand.
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const children: ChildProcess[] = [];

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/** Runs `node <script> ...args` and resolves with the first stdout JSON line whose event is `event`. */
function firstEvent(child: ChildProcess, event: string, timeoutMs: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before ${event}; stderr: ${stderr}`));
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!line.startsWith('{')) return;
      const message = JSON.parse(line) as Record<string, unknown>;
      if (message['event'] === event) {
        clearTimeout(timer);
        resolve(message);
      }
    });
  });
}

function node(script: string, args: string[]): ChildProcess {
  const child = spawn(process.execPath, [`${root}${script}`, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  return child;
}

describe('the benchmark harness', () => {
  it('the load generator makes checked round trips against baseline-direct (closed and open loop)', async () => {
    const server = node('bench/servers/direct.mjs', []);
    const ready = await firstEvent(server, 'ready', 10_000);
    const pids = `direct=${server.pid}`;

    const closed = node('bench/loadgen.mjs', ['--port', String(ready['port']), '--conns', '4', '--mode', 'closed', '--warmup-ms', '200', '--duration-ms', '1000', '--pids', pids]);
    const result = await firstEvent(closed, 'result', 20_000);
    expect(result['connected']).toBe(4);
    expect(result['roundTrips']).toBeGreaterThan(0);
    expect(result['errors']).toBe(0);
    expect(result['disconnects']).toBe(0);
    const detail = result['detail'] as Record<string, number>;
    expect(detail['mismatches']).toBe(0);
    expect(detail['unexpected']).toBe(0);
    const latency = result['latencyMs'] as Record<string, number>;
    for (const key of ['p50', 'p90', 'p99', 'max']) expect(latency[key]).toBeGreaterThan(0);
    expect(Object.keys(result['cpu'] as object).sort()).toEqual(['direct', 'loadgen']);

    const open = node('bench/loadgen.mjs', ['--port', String(ready['port']), '--conns', '2', '--mode', 'open', '--rate', '200', '--warmup-ms', '100', '--duration-ms', '500']);
    const openResult = await firstEvent(open, 'result', 20_000);
    expect(openResult['errors']).toBe(0);
    expect(openResult['sentInWindow']).toBeGreaterThan(0);
    expect(openResult['roundTrips']).toBe(openResult['sentInWindow']);
  });

  it('a wrong reply is counted as an error, not as a round trip', async () => {
    // A server that answers in lower case: every reply is wrong.
    const server = spawn(
      process.execPath,
      [
        '-e',
        `const net = require('node:net');
         const s = net.createServer((c) => { let b = ''; c.setEncoding('utf8'); c.on('data', (d) => { b += d; let i; while ((i = b.indexOf('\\n')) !== -1) { const l = b.slice(0, i); b = b.slice(i + 1); c.write(l.toLowerCase() + '\\r\\n'); } }); });
         s.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ event: 'ready', port: s.address().port })));`,
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    children.push(server);
    const ready = await firstEvent(server, 'ready', 10_000);
    const loadgen = node('bench/loadgen.mjs', ['--port', String(ready['port']), '--conns', '2', '--warmup-ms', '100', '--duration-ms', '300']);
    const result = await firstEvent(loadgen, 'result', 20_000);
    expect(result['roundTrips']).toBe(0);
    expect(result['errors']).toBeGreaterThan(0);
  });

  it('renders the report and the chart from results', async () => {
    // @ts-ignore -- plain .mjs scripts: untyped, or typed from their JS under allowJs (tsconfig.test.json)
    const { renderMarkdown, summarize } = (await import('../bench/lib/report.mjs')) as { renderMarkdown: (r: unknown, o: unknown) => string; summarize: (r: unknown) => unknown };
    // @ts-ignore -- as above
    const { renderChart } = (await import('../bench/lib/chart.mjs')) as { renderChart: (r: unknown) => string };
    const run = (target: string, conns: number, throughput: number) => ({
      target,
      conns,
      rep: 0,
      throughput,
      latencyMs: { p50: 1, p90: 2, p99: 3, max: 4 },
      errors: 0,
      disconnects: 0,
      cpu: { loadgen: 50, server: 40 },
      machine: { otherCpuPercent: 1 },
    });
    const results: Record<string, unknown> = {
      startedAt: new Date().toISOString(),
      durationSeconds: 1,
      config: { quick: true, reps: 1, warmupMs: 1, durationMs: 1, openFraction: 0.5 },
      machine: { cpuModel: 'test', cores: 2, memoryGiB: 1, os: 'test', node: 'v20', loadAvgAtStart: [0, 0, 0], loadAvgAtEnd: [0, 0, 0], openFilesLimit: 1 },
      closed: ['baseline-direct', 'baseline-relay', 'imi'].flatMap((t, i) => [run(t, 1, 1000 - i), run(t, 100, 2000 - i)]),
      open: [],
      memory: [],
      resync: [],
      errors: [],
    };
    results['summary'] = summarize(results);
    const markdown = renderMarkdown(results, { chart: 'x.svg', json: 'x.json' });
    expect(markdown).toContain('| 100 | **imi** |');
    expect(markdown).toContain('imi throughput ≥ 1.2 × baseline-relay at 100 conns');
    expect(renderChart(results)).toMatch(/^<svg[\s\S]*<\/svg>\n$/);
  });
});
