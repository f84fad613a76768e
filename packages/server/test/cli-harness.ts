// Shared by the CLI tests: runs the built dist/cli.js as a child process,
// keeps its output, and cleans up children, sockets and temp files after
// each test.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';
import { RawApp, RawUser } from './harness.js';

export const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
export const LISTENING = /^imi-server listening: users on port (\d+) \(host (\S+)\), app on port (\d+) \(host (\S+)\)$/m;

/** A running (or finished) imi-server command. */
export interface Cli {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or the signal that ended it). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children: ChildProcess[] = [];
const sockets: Array<RawUser | RawApp> = [];
const tempDirs: string[] = [];

afterEach(() => {
  for (const s of sockets.splice(0)) s.socket.destroy();
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/**
 * Runs `imi-server args`. The tokens of the test's own environment are not
 * passed on unless `env` sets them, so a developer's IMI_TOKEN cannot change
 * a test.
 */
export function run(args: string[], env: Record<string, string> = {}, stdin: 'ignore' | 'pipe' = 'ignore'): Cli {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const name of ['IMI_TOKEN', 'IMI_ADMIN_TOKEN']) if (!(name in env)) delete childEnv[name];
  const child = spawn(process.execPath, [CLI, ...args], { env: childEnv, stdio: [stdin, 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (out += text));
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (err += text));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** A raw user, destroyed after the test. */
export async function user(port: number): Promise<RawUser> {
  const u = await RawUser.connect(port);
  sockets.push(u);
  return u;
}

/** A raw app, destroyed after the test. */
export async function app(port: number, hello?: Record<string, unknown>): Promise<RawApp> {
  const a = await RawApp.connect(port, hello);
  sockets.push(a);
  return a;
}

/** Writes a file in a temp directory removed after the test. */
export function tempFile(name: string, content: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'imi-cli-'));
  tempDirs.push(dir);
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}
