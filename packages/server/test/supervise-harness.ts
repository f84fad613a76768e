// For the --supervise tests, on the upgrade harness (its Server, which reads
// the ports its worker prints; its App reader started on SUPERVISE_APP, the
// supervise-app fixture on @imi/client; its cleanUp): helpers to find the
// worker and to check what users received against what they typed.
import { fileURLToPath } from 'node:url';
import type { Server, User } from './upgrade-harness.js';

export const SUPERVISE_APP = fileURLToPath(new URL('./fixtures/supervise-app.mjs', import.meta.url));
export const CRASH_WORKER = fileURLToPath(new URL('./fixtures/crash-worker.mjs', import.meta.url));
export const CRASH_NOTICE = '[the server is restarting after a fault: hold on, you are still connected; a line typed just now may need typing again]';

/** The worker's pid, as its admin API says (the supervisor's pid is in the pid file). */
export async function workerPid(server: Server): Promise<number> {
  const pid = (await server.stats()).process.pid;
  server.pids.add(pid);
  return pid;
}

/** Every worker the supervisor said it started (from its stdout). */
export function startedWorkers(server: Server): number[] {
  const pids = [...server.out.matchAll(/supervisor: worker (\d+) started/g)].map((match) => Number(match[1]));
  for (const pid of pids) server.pids.add(pid);
  return pids;
}

/** How many times `text` occurs in what the user received. */
export function count(user: User, text: string): number {
  return user.text.split(text).length - 1;
}

/**
 * What was lost, checked against the guarantee: the replies are the typed
 * lines, in order, each once; the lines without a reply form at most
 * `outages` runs (what the dead worker had read and not answered when it
 * died, one run per crash); the last line typed is answered; and nothing
 * arrived but replies and `notices`.
 *
 * @returns how many lines were lost
 */
export function checkAccounted(user: User, outages: number, notices: string[]): number {
  const replies = user.replies();
  let at = 0;
  const missing: number[] = [];
  for (const [i, line] of user.sent.entries()) {
    if (replies[at] === line) at++;
    else missing.push(i);
  }
  if (at !== replies.length) throw new Error(`${user.name}: reply ${JSON.stringify(replies[at])} is not a typed line in order (replies ${replies.join(',')}; sent ${user.sent.join(',')})`);
  const runs = missing.filter((index, k) => k === 0 || missing[k - 1] !== index - 1).length;
  if (runs > outages) throw new Error(`${user.name}: ${runs} runs of lost lines for ${outages} crashes: lost ${missing.map((i) => user.sent[i]).join(',')}`);
  if (missing.includes(user.sent.length - 1)) throw new Error(`${user.name}: the last line typed was not answered`);
  const others = user.lines().filter((line) => !line.endsWith('!'));
  const expected = notices.flatMap((notice) => notice.split(/\r?\n/).filter((line) => line.length > 0));
  if (JSON.stringify(others) !== JSON.stringify(expected)) throw new Error(`${user.name}: unexpected lines ${JSON.stringify(others)} (expected ${JSON.stringify(expected)})`);
  return missing.length;
}
