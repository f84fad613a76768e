// imi-server with --admin-port, and `imi-server status` / `imi-server top`
// querying it: real child processes (the built dist/cli.js), real sockets.
import { describe, expect, it } from 'vitest';
import { request, scrape, valueOf } from './admin-harness.js';
import { waitFor } from './harness.js';
import { LISTENING, app as connectApp, run, tempFile, user as connectUser, type Cli } from './cli-harness.js';

const ADMIN = /^imi-server admin: port (\d+) \(host (\S+)\): http:\/\/\S+\/metrics$/m;
const TOKEN = 'status-token';

/** Starts imi-server with an admin port; resolves once it printed both lines. */
async function serve(args: string[] = [], env: Record<string, string> = {}): Promise<Cli & { externalPort: number; clientPort: number; adminPort: number }> {
  const cli = run(['--external-port', '0', '--client-port', '0', '--host', '127.0.0.1', '--admin-port', '0', '--log-level', 'warn', ...args], env);
  let exitedEarly = false;
  void cli.exited.then(() => (exitedEarly = true));
  await waitFor(() => (LISTENING.test(cli.stdout()) && ADMIN.test(cli.stdout())) || exitedEarly, 10_000, () => `the listening lines (stdout ${JSON.stringify(cli.stdout())}, stderr ${JSON.stringify(cli.stderr())})`);
  const listening = LISTENING.exec(cli.stdout());
  const admin = ADMIN.exec(cli.stdout());
  if (!listening || !admin) throw new Error(`imi-server exited: ${cli.stderr()}`);
  return { ...cli, externalPort: Number(listening[1]), clientPort: Number(listening[3]), adminPort: Number(admin[1]) };
}

/** Runs a short command to its end. */
async function complete(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cli = run(args, env);
  const { code } = await cli.exited;
  return { code, stdout: cli.stdout(), stderr: cli.stderr() };
}

describe('imi-server --admin-port', () => {
  it('keeps the listening line as it was, adds an admin line, and serves /metrics with the token', async () => {
    const server = await serve(['--admin-token', TOKEN]);
    const lines = server.stdout().trim().split('\n');
    expect(lines[0]).toMatch(LISTENING);
    expect(lines[1]).toMatch(ADMIN);
    expect((await request(server.adminPort, '/metrics')).status).toBe(401);
    const user = await connectUser(server.externalPort);
    user.send('hello');
    // The server is another process: scrape until the line is counted (or give up after 5 s).
    let samples = await scrape(server.adminPort, TOKEN);
    for (const started = Date.now(); valueOf(samples, 'imi_input_lines_total') !== 1 && Date.now() - started < 5000; ) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      samples = await scrape(server.adminPort, TOKEN);
    }
    expect(valueOf(samples, 'imi_input_lines_total')).toBe(1);
    expect(valueOf(samples, 'imi_sessions', { transport: 'tcp' })).toBe(1);
  });

  it('takes the admin token from IMI_ADMIN_TOKEN, and stops with exit 0 on SIGTERM', async () => {
    const server = await serve([], { IMI_ADMIN_TOKEN: TOKEN });
    expect((await request(server.adminPort, '/stats', { token: TOKEN })).status).toBe(200);
    server.child.kill('SIGTERM');
    expect(await server.exited).toEqual({ code: 0, signal: null });
  });

  it('refuses to open the admin API to the network without a token (exit 2, IMI_CONFIG message)', async () => {
    const result = await complete(['--external-port', '0', '--client-port', '0', '--admin-port', '0', '--admin-host', '0.0.0.0']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/adminHost 0\.0\.0\.0 is not a loopback address: set adminToken/);
  });
});

describe('imi-server status', () => {
  it('prints a readable summary of a running server', async () => {
    const server = await serve(['--admin-token', TOKEN]);
    const app = await connectApp(server.clientPort, { name: 'mud' });
    await app.synced();
    const user = await connectUser(server.externalPort);
    await app.nextUserId();
    user.send('look');
    await app.waitForParam('input');
    const result = await complete(['status', '--admin-port', String(server.adminPort), '--admin-token', TOKEN]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`imi-server at http://127.0.0.1:${server.adminPort}: up `);
    expect(result.stdout).toContain('listening, ready');
    expect(result.stdout).toMatch(/^app {7}connected \(mud\); 1 connects, 0 disconnects, 0 replaced; last resync \d+\.\d+ ms, 0 announced$/m);
    expect(result.stdout).toMatch(/^sessions {2}1 live \(tcp 1\); 1 opened since start$/m);
    expect(result.stdout).toMatch(/^input {5}1 lines \(4 B\); queued 0 lines \(0 B\); unacked 0; redelivered 0$/m);
    expect(result.stdout).toMatch(/^errors {4}none$/m);
    expect(result.stdout).toMatch(/^process {3}pid \d+, node v\d+/m);
  });

  it('--json prints the /stats answer; the token can come from the environment or the config file', async () => {
    const server = await serve(['--admin-token', TOKEN]);
    const fromEnv = await complete(['status', '--admin-port', String(server.adminPort), '--json'], { IMI_ADMIN_TOKEN: TOKEN });
    expect(fromEnv.code).toBe(0);
    const body = JSON.parse(fromEnv.stdout) as { stats: { sessions: number; appConnected: boolean } };
    expect(body.stats).toMatchObject({ sessions: 0, appConnected: false });
    const config = tempFile('imi.json', JSON.stringify({ adminPort: server.adminPort, adminToken: TOKEN }));
    const fromConfig = await complete(['status', '--config', config]);
    expect(fromConfig.code).toBe(0);
    expect(fromConfig.stdout).toContain('not ready (no app)');
    expect(fromConfig.stdout).toMatch(/^app {7}NOT CONNECTED/m);
  });

  it('exits 1 with a clear message on a wrong token or when nothing listens, 2 without a port', async () => {
    const server = await serve(['--admin-token', TOKEN]);
    const wrong = await complete(['status', '--admin-port', String(server.adminPort), '--admin-token', 'nope']);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('imi-server status: the admin API refused the token (401)');
    const none = await complete(['status', '--admin-port', String(server.adminPort)]);
    expect(none.code).toBe(1);
    server.child.kill('SIGTERM');
    await server.exited;
    const gone = await complete(['status', '--admin-port', String(server.adminPort), '--admin-token', TOKEN]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/cannot reach the admin API at http:\/\/127\.0\.0\.1:\d+\/ \(connect ECONNREFUSED/);
    const noPort = await complete(['status']);
    expect(noPort.code).toBe(2);
    expect(noPort.stderr).toContain('status needs --admin-port');
    const help = await complete(['status', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: imi-server status');
  });
});

describe('imi-server top', () => {
  it('redraws the summary with rates and sessions, and quits on q', async () => {
    const server = await serve(['--admin-token', TOKEN]);
    const user = await connectUser(server.externalPort);
    user.send('queued while no app');
    const top = run(['top', '--admin-port', String(server.adminPort), '--admin-token', TOKEN, '--interval-ms', '200'], {}, 'pipe');
    await waitFor(() => (top.stdout().match(/q or Ctrl-C quits/g) ?? []).length >= 2, 10_000, () => `two frames (stdout ${JSON.stringify(top.stdout().slice(-500))}, stderr ${JSON.stringify(top.stderr())})`);
    expect(top.stdout()).toMatch(/lines\/s/);
    expect(top.stdout()).toMatch(/sessions \(1 of 1, deepest queues first\)/);
    expect(top.stdout()).toMatch(/^[0-9a-f-]{36} +tcp +127\.0\.0\.1:\d+ +\S+ +1 +19 B +0 +0$/m);
    top.child.stdin!.write('q');
    expect(await top.exited).toEqual({ code: 0, signal: null });
  });

  it('quits on SIGINT too, and fails at once when the token is wrong', async () => {
    const server = await serve(['--admin-token', TOKEN]);
    const top = run(['top', '--admin-port', String(server.adminPort), '--admin-token', TOKEN], {}, 'pipe');
    await waitFor(() => top.stdout().includes('q or Ctrl-C quits'), 10_000, 'a frame');
    top.child.kill('SIGINT');
    expect(await top.exited).toEqual({ code: 0, signal: null });
    const wrong = await complete(['top', '--admin-port', String(server.adminPort), '--admin-token', 'nope']);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('401');
  });
});
