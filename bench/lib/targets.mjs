// Starting and stopping the systems under test, and running the loadgen
// against them.
import { benchDir, root, spawnNode } from './util.mjs';

const SERVERS = `${benchDir}servers/`;

/** The three systems of the throughput runs. */
export const TARGETS = ['baseline-direct', 'baseline-relay', 'imi'];

/**
 * Starts a target. Resolves to { name, port, pids: {name: pid}, procs, stop() }
 * once it is ready for users (for the two-process ones: once the app is
 * connected).
 *
 * @param options.profileDir - run the processes under test with --cpu-prof into this directory
 * @param options.imiServerArgs - extra imi-server CLI flags
 */
export async function startTarget(name, { profileDir, imiServerArgs = [] } = {}) {
  const nodeArgs = ['--expose-gc'];
  if (profileDir !== undefined) nodeArgs.push('--cpu-prof', '--cpu-prof-dir', profileDir);
  const procs = {};
  const stop = async () => {
    // Apps first (so the server does not log their loss as a crash), then servers.
    for (const key of Object.keys(procs).reverse()) await procs[key].stop('SIGTERM', 5_000);
  };
  try {
    if (name === 'baseline-direct') {
      procs.direct = spawnNode(`${SERVERS}direct.mjs`, [], { nodeArgs, name: 'direct' });
      const ready = await procs.direct.waitEvent('ready', 15_000);
      return { name, port: ready.port, pids: { direct: procs.direct.pid }, procs, stop };
    }
    if (name === 'baseline-relay') {
      procs.relay = spawnNode(`${SERVERS}relay.mjs`, [], { nodeArgs, name: 'relay' });
      const ready = await procs.relay.waitEvent('ready', 15_000);
      procs.app = spawnNode(`${SERVERS}relay-app.mjs`, ['--port', String(ready.appPort)], { nodeArgs, name: 'relay-app' });
      await procs.relay.waitEvent('app-connected', 15_000);
      return { name, port: ready.port, pids: { relay: procs.relay.pid, app: procs.app.pid }, procs, stop };
    }
    if (name === 'imi') {
      procs.server = spawnNode(
        `${root}packages/server/dist/cli.js`,
        ['--external-port', '0', '--client-port', '0', '--host', '127.0.0.1', '--log-level', 'warn', ...imiServerArgs],
        { nodeArgs, name: 'imi-server' },
      );
      const match = await procs.server.waitText(/users on port (\d+).*app on port (\d+)/, 15_000);
      const port = Number(match[1]);
      procs.app = spawnNode(`${SERVERS}imi-app.mjs`, ['--port', match[2]], { nodeArgs, name: 'imi-app' });
      await procs.app.waitEvent('ready', 15_000);
      return { name, port, pids: { server: procs.server.pid, app: procs.app.pid }, procs, stop };
    }
    if (name === 'imi-wrapper') {
      // In-process Intermediary (heap readable), with its app.
      procs.server = spawnNode(`${SERVERS}imi-wrapper.mjs`, ['--max-connections', '1000000'], { nodeArgs, name: 'imi-wrapper' });
      const ready = await procs.server.waitEvent('ready', 15_000);
      procs.app = spawnNode(`${SERVERS}imi-app.mjs`, ['--port', String(ready.appPort)], { nodeArgs, name: 'imi-app' });
      await procs.app.waitEvent('ready', 15_000);
      await procs.server.waitEvent('synced', 15_000);
      return { name, port: ready.port, appPort: ready.appPort, pids: { server: procs.server.pid, app: procs.app.pid }, procs, stop };
    }
  } catch (error) {
    await stop();
    throw error;
  }
  throw new Error(`unknown target ${name}`);
}

/**
 * Runs the loadgen once and resolves to its result.
 *
 * @param options - port, conns, mode, warmupMs, durationMs, rate, pids, size
 */
export async function runLoadgen({ port, conns, mode = 'closed', warmupMs = 1000, durationMs = 3000, rate, pids = {}, size = 32, timeoutMs }) {
  const args = ['--port', String(port), '--conns', String(conns), '--mode', mode, '--warmup-ms', String(warmupMs), '--duration-ms', String(durationMs), '--size', String(size)];
  if (rate !== undefined) args.push('--rate', String(rate));
  const pidList = Object.entries(pids).map(([k, v]) => `${k}=${v}`).join(',');
  if (pidList) args.push('--pids', pidList);
  const loadgen = spawnNode(`${benchDir}loadgen.mjs`, args, { name: 'loadgen' });
  try {
    const result = await loadgen.waitEvent('result', timeoutMs ?? 60_000 + warmupMs + durationMs);
    await loadgen.exited;
    return result;
  } finally {
    await loadgen.stop('SIGKILL');
  }
}

/** Starts a loadgen in hold mode and waits until its users are connected. */
export async function holdUsers(port, conns, { spread = conns > 4000 ? 8 : 1, timeoutMs = 120_000 } = {}) {
  const loadgen = spawnNode(`${benchDir}loadgen.mjs`, ['--port', String(port), '--conns', String(conns), '--mode', 'hold', '--spread', String(spread)], { name: 'loadgen' });
  const connected = await loadgen.waitEvent('connected', timeoutMs);
  return { loadgen, connected };
}

/**
 * The goals of issue #18, checked by `pnpm bench` (docs/benchmarks.md, "Goals").
 * Every one is a ratio of medians of the same run (targets interleaved), except
 * resync, which is wall time. `better` says which way is good.
 *
 * - metric `throughput`, `p50`, `cpuUs`: imi ÷ baseline-relay at `conns` (closed loop)
 * - metric `rss`: RSS per idle user, imi ÷ baseline-direct at `users`
 * - metric `resyncMs`: app `connect()` → `synced` with `users` live users
 * - metric `codec`: FrameDecoder + validateAppMessage ÷ split + JSON.parse, `frameBytes` frames
 */
export const GOALS = [
  { metric: 'throughput', conns: 1, better: 'higher', limit: 1.0 },
  { metric: 'throughput', conns: 10, better: 'higher', limit: 1.2 },
  { metric: 'throughput', conns: 100, better: 'higher', limit: 1.2 },
  { metric: 'throughput', conns: 1000, better: 'higher', limit: 1.2 },
  { metric: 'cpuUs', conns: 100, better: 'lower', limit: 0.8 },
  { metric: 'p50', conns: 1, better: 'lower', limit: 1.0 },
  { metric: 'rss', users: 10_000, better: 'lower', limit: 1.25 },
  { metric: 'resyncMs', users: 10_000, better: 'lower', limit: 100 },
  { metric: 'codec', frameBytes: 1024, better: 'higher', limit: 1.0 },
  { metric: 'codec', frameBytes: 64, better: 'higher', limit: 1.0 },
];
