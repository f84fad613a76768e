// Profiles the processes under test with `node --cpu-prof` and lists where
// their CPU time goes.
//
//   node bench/profile.mjs                        imi under closed-loop load at 100 and 1000 conns
//   node bench/profile.mjs --target baseline-relay --conns 1000
//   node bench/profile.mjs --scenario resync --users 10000   an app connecting to 10,000 live users
//
// Writes .bench-results/profiles/<time>/*.cpuprofile (open them in Chrome
// DevTools or speedscope) and summary.md, which is also printed.
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { analyzeProfile, profileMarkdown } from './lib/cpuprofile.mjs';
import { holdUsers, runLoadgen, startTarget } from './lib/targets.mjs';
import { benchDir, parseFlags, root, sleep, spawnNode } from './lib/util.mjs';

const flags = parseFlags(process.argv.slice(2));
const scenario = flags.scenario ?? 'load';
const target = flags.target ?? 'imi';
const connsList = String(flags.conns ?? '100,1000').split(',').map(Number);
const durationMs = Number(flags.durationMs ?? 5000);
const top = Number(flags.top ?? 25);
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const baseDir = flags.out ? String(flags.out) : join(root, '.bench-results', 'profiles', stamp);

const sections = [`# CPU profiles (${stamp})`, ''];

function summarize(dir, label) {
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort()) {
    const analysis = analyzeProfile(join(dir, file));
    sections.push(profileMarkdown(`${label}: ${file}`, analysis, { top }));
  }
}

if (scenario === 'load') {
  for (const conns of connsList) {
    const dir = join(baseDir, `${target}-${conns}`);
    mkdirSync(dir, { recursive: true });
    process.stderr.write(`profiling ${target} at ${conns} conns for ${durationMs} ms\n`);
    const t = await startTarget(target, { profileDir: dir });
    let result;
    try {
      result = await runLoadgen({ port: t.port, conns, mode: 'closed', warmupMs: 1000, durationMs, pids: t.pids });
    } finally {
      await t.stop();
    }
    sections.push(`## ${target}, ${conns} conns: ${result.throughput.toFixed(0)} round trips/s, p50 ${result.latencyMs.p50.toFixed(3)} ms, CPU ${JSON.stringify(Object.fromEntries(Object.entries(result.cpu).map(([k, v]) => [k, Math.round(v)])))}`, '');
    summarize(dir, `${target} ${conns} conns`);
  }
} else if (scenario === 'resync') {
  const users = Number(flags.users ?? 10_000);
  const dir = join(baseDir, `resync-${users}`);
  mkdirSync(dir, { recursive: true });
  const nodeArgs = ['--expose-gc', '--cpu-prof', '--cpu-prof-dir', dir];
  const server = spawnNode(`${benchDir}servers/imi-wrapper.mjs`, ['--max-connections', '1000000'], { nodeArgs, name: 'imi-wrapper' });
  const ready = await server.waitEvent('ready');
  const { loadgen } = await holdUsers(ready.port, users);
  await sleep(500);
  const app = spawnNode(`${benchDir}servers/imi-app.mjs`, ['--port', String(ready.appPort)], { nodeArgs, name: 'imi-app' });
  const synced = await app.waitEvent('synced', 60_000);
  const serverSynced = await server.waitEvent('synced', 60_000);
  sections.push(`## resync of ${users} users: app connect → synced ${(synced.at - synced.t0).toFixed(1)} ms; intermediary ${serverSynced.durationMs.toFixed(1)} ms`, '');
  await app.stop('SIGTERM');
  loadgen.command('close');
  await loadgen.exited;
  await server.stop('SIGTERM');
  summarize(dir, `resync ${users}`);
} else {
  throw new Error(`unknown scenario ${scenario}`);
}

const text = sections.join('\n');
writeFileSync(join(baseDir, 'summary.md'), text);
process.stdout.write(text + '\n');
process.stderr.write(`profiles in ${baseDir}\n`);
