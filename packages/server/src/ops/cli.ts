/**
 * The `imi-server` command: runs an {@link Intermediary} from flags, a
 * config file and the environment, logs with pino, and stops gracefully on
 * SIGTERM / SIGINT.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import pino, { type Logger } from 'pino';
import { createRequire } from 'node:module';
import type PinoPretty from 'pino-pretty';
import { ImiError } from '@imi/core';
import { runAdminCommand } from './admin-client.js';
import { setUpUpgrades, type UpgradeSettings } from '../handover/setup.js';
import type { ClusterHolder } from '../cluster/holder.js';
import { clusterFromFlags, CLUSTER_FLAGS, CLUSTER_USAGE, type ClusterHolderOptions } from '../cluster/holder-flags.js';
import { Intermediary } from '../intermediary.js';
import { DEFAULT_OPTIONS, type IntermediaryOptions } from '../options.js';
import { resolveOptions } from '../resolve-options.js';
import { runSupervisor, superviseSettings, SUPERVISE_FLAGS, SUPERVISE_KEYS, type SuperviseSettings } from '../supervisor/run.js';
import { runSupervisedWorker, supervisedMode } from '../supervisor/worker.js';
import type { ListenerOptions, TransportAddress } from '../users/transport.js';

/** Options that only the CLI has (not part of {@link IntermediaryOptions}). */
const CLI_ONLY = {
  config: { type: 'string' },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
  'pid-file': { type: 'string' },
  'upgrade-timeout-ms': { type: 'string' },
  ...SUPERVISE_FLAGS,
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} as const;

/** Options whose value is text (every other one is a number). */
const TEXT_OPTIONS = new Set(['host', 'clientHost', 'appPolicy', 'whileAppDown', 'appDownNotice', 'shutdownNotice', 'lineTooLongNotice', 'queueFullNotice', 'refusedNotice', 'rateLimitNotice', 'token', 'banner', 'adminHost', 'adminToken', 'msspName']);
/** Options whose value is true or false. */
const BOOLEAN_OPTIONS = new Set(['limitLoopback', 'proxyProtocol']);
/** Options whose value is a list, comma-separated on the command line. */
const LIST_OPTIONS = new Set(['proxyTrustedAddresses']);
/** Options whose value is JSON. */
const JSON_OPTIONS = new Set(['listeners']);

/** Flags that add a listener (the CLI's shorthand for `listeners` entries). */
const LISTENER_FLAGS = {
  'telnet-port': { type: 'string' },
  'telnet-tls-port': { type: 'string' },
  'telnet-mccp2': { type: 'string' },
  'telnet-mssp': { type: 'string' },
  'telnet-msdp': { type: 'string' },
  'tls-port': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'ws-port': { type: 'string' },
  'web-port': { type: 'string' },
  'ws-allowed-origins': { type: 'string' },
  'ssh-port': { type: 'string' },
  'ssh-host-key': { type: 'string' },
  'ssh-authorized-keys': { type: 'string' },
} as const;
/** Options that also accept `false` (silence). */
const SILENCEABLE = new Set(['appDownNotice', 'shutdownNotice', 'lineTooLongNotice', 'queueFullNotice', 'refusedNotice', 'rateLimitNotice']);

const OPTION_NAMES = [...Object.keys(DEFAULT_OPTIONS), 'token', 'banner', 'idleTimeoutMs', 'adminPort', 'adminToken'];

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => '-' + letter.toLowerCase());
}

function usage(): string {
  const lines = [
    'Usage: imi-server [options]',
    '       imi-server status [--admin-port N ...]   a summary from the admin API (imi-server status --help)',
    '       imi-server top [--admin-port N ...]      the same, live',
    '       imi-server upgrade [--admin-port N ...]  hand every user over to the imi-server on disk now (also: SIGUSR2)',
    '',
    'Holds users\' connections (TCP lines) and relays them to one app over a JSON protocol,',
    'so the app can crash, restart or be redeployed without dropping anyone.',
    '',
    'Options (every option of the config file has a flag; flags beat the file):',
    '  --config <file.json>        options in camelCase, e.g. {"heartbeatTimeoutMs": 20000}',
    '  --token <secret>            apps must send it in hello (or set IMI_TOKEN)',
    '  --admin-token <secret>      the admin API wants it as a bearer token (or set IMI_ADMIN_TOKEN; default: the token)',
    '  --log-level <level>         fatal, error, warn, info (default), debug, trace, silent',
    '  --log-format <json|pretty>  log lines as JSON, or readable (default: pretty on a terminal, else json)',
    '  --pid-file <file>           write the pid there; each upgrade rewrites it with the new pid',
    '  --upgrade-timeout-ms <ms>   how long an upgrade waits for its successor to be ready (default 10000)',
    '  --supervise                 run under a supervisor that keeps TCP and telnet users connected through a crash',
    '                              and restarts the intermediary (docs/operations.md#crash-survival)',
    '  --max-restarts <n>          with --supervise: crashes allowed within --restart-window-ms before giving up (default 5)',
    '  --restart-window-ms <ms>    with --supervise: the window crashes are counted in (default 60000)',
    '  --restart-delay-ms <ms>     with --supervise: wait before the first restart, doubled per crash in the window, at most 5000 (default 100)',
    '  --crash-notice <text|false> with --supervise: told to every held user when the intermediary dies',
    '',
    'More listeners for users, on --host (docs/transports.md; the config file takes any number as "listeners"):',
    '  --telnet-port <port>        telnet: NAWS, TTYPE/MTTS, ECHO, SGA, GMCP for MUD clients',
    '  --telnet-mccp2 <true|false> offer MCCP2 (compressed output) on the telnet listeners (default false)',
    '  --telnet-mssp <true|false>  answer MUD listing crawlers with MSSP on the telnet listeners (default true; --mssp-name)',
    '  --telnet-msdp <true|false>  offer MSDP, relayed like GMCP, on the telnet listeners (default true)',
    '  --ws-port <port>            WebSocket: one message is one line',
    '  --web-port <port>           the browser client page at / and its WebSocket at /ws',
    '  --ws-allowed-origins <list> origins whose pages may connect to --ws-port/--web-port, comma-separated: https://a.example,self,* (default: self with the page, * without)',
    '  --tls-port <port>           plain lines over TLS (needs --tls-cert and --tls-key)',
    '  --telnet-tls-port <port>    telnet over TLS (needs --tls-cert and --tls-key)',
    '  --ssh-port <port>           SSH: `ssh -p <port> name@host`, any name, no password (the app does the login)',
    '  --ssh-host-key <file>       the SSH host key, made on first start (default ./imi-ssh-host-key)',
    '  --ssh-authorized-keys <file> only these public keys may log in over SSH (OpenSSH authorized_keys format)',
    '  --tls-cert <file>           PEM certificate (chain) for the TLS listeners',
    '  --tls-key <file>            PEM private key for the TLS listeners',
    '  --listeners <json>          listeners as JSON, e.g. \'[{"kind":"telnet","port":4000}]\'',
    ...CLUSTER_USAGE,
    '  --proxy-protocol <true|false> PROXY protocol v1/v2 on the users port and the telnet/tls listeners above',
    '                              (from --proxy-trusted-addresses, e.g. 10.0.0.0/8,::1; docs/transports.md)',
    '',
    '  -h, --help                  this text',
    '  -v, --version               the version',
  ];
  for (const name of OPTION_NAMES) {
    if (name === 'token' || name === 'adminToken' || name === 'listeners') continue;
    const fallback = (DEFAULT_OPTIONS as unknown as Record<string, unknown>)[name];
    const shown = fallback === undefined ? 'off' : JSON.stringify(fallback);
    lines.push(`  --${kebab(name).padEnd(26)} default ${shown.length > 40 ? shown.slice(0, 37) + '..."' : shown}`);
  }
  lines.push('', 'Docs: docs/operations.md (configuration reference), docs/protocol.md.');
  return lines.join('\n');
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function parseValue(name: string, raw: string): string | number | boolean {
  if (SILENCEABLE.has(name) && raw === 'false') return false;
  if (JSON_OPTIONS.has(name)) {
    try {
      return JSON.parse(raw) as string;
    } catch (error) {
      throw new ImiError('IMI_CONFIG', `--${kebab(name)} must be JSON: ${(error as Error).message}`);
    }
  }
  if (LIST_OPTIONS.has(name)) return raw.split(',').map((item) => item.trim()).filter((item) => item !== '') as unknown as string;
  if (BOOLEAN_OPTIONS.has(name)) {
    if (raw === 'true' || raw === 'false') return raw === 'true';
    throw new ImiError('IMI_CONFIG', `--${kebab(name)} must be true or false, got ${JSON.stringify(raw)}`);
  }
  if (TEXT_OPTIONS.has(name)) return raw.replace(/\\r/g, '\r').replace(/\\n/g, '\n');
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value)) throw new ImiError('IMI_CONFIG', `--${kebab(name)} must be a number, got ${JSON.stringify(raw)}`);
  return value;
}

/** How the CLI writes its log: pino's JSON lines, or pino-pretty's readable ones. */
type LogFormat = 'json' | 'pretty';
const LOG_FORMATS: readonly LogFormat[] = ['json', 'pretty'];

/**
 * A logger on stderr. `pretty` formats in the main thread and writes
 * synchronously (`sync: true`), not through `pino.transport` (a worker
 * thread): the CLI ends with `process.exit()` after a graceful stop, or at
 * once on a second signal or a fatal error, and a line still queued for a
 * worker then is lost. A terminal reader's log is small (reports are
 * rate-limited), so formatting it in the main thread costs nothing that
 * matters; JSON, the machine format, stays pino's own fast path.
 */
function createLogger(level: string, format: LogFormat): Logger {
  if (format === 'json') return pino({ level, base: { pid: process.pid } }, pino.destination(2));
  // Loaded only for this format: JSON (what a service manager collects) is
  // the default off a terminal, and every start (an upgrade's successor, a
  // supervised worker's restart) pays for what it loads.
  const pretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
  const stream = pretty({
    destination: 2,
    sync: true,
    colorize: process.stderr.isTTY === true && process.env['NO_COLOR'] === undefined,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
  });
  return pino({ level }, stream);
}

/**
 * Parses the command line into intermediary options.
 *
 * @param argv - arguments after the program name
 * @param env - the environment (for `IMI_TOKEN`)
 * @returns the options, or a request for help/version
 * @throws ImiError `IMI_CONFIG` on an unknown flag or a bad value
 */
function parseCommandLine(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): { kind: 'run'; options: IntermediaryOptions; logLevel: string; logFormat: LogFormat; upgrades: UpgradeSettings; cluster: ClusterHolderOptions | undefined; supervise: SuperviseSettings } | { kind: 'help' } | { kind: 'version' } {
  const flagSpec: Record<string, { type: 'string' | 'boolean'; short?: string }> = { ...CLI_ONLY, ...LISTENER_FLAGS, ...CLUSTER_FLAGS };
  for (const name of OPTION_NAMES) flagSpec[kebab(name)] = { type: 'string' };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options: flagSpec, strict: true, allowPositionals: false });
  } catch (error) {
    throw new ImiError('IMI_CONFIG', `${(error as Error).message} (see imi-server --help)`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values['help']) return { kind: 'help' };
  if (values['version']) return { kind: 'version' };

  let options: Record<string, unknown> = {};
  const configPath = values['config'];
  if (typeof configPath === 'string') {
    let text: string;
    try {
      text = readFileSync(configPath, 'utf8');
    } catch (error) {
      throw new ImiError('IMI_CONFIG', `cannot read --config ${configPath}: ${(error as Error).message}`);
    }
    try {
      options = JSON.parse(text) as Record<string, unknown>;
    } catch (error) {
      throw new ImiError('IMI_CONFIG', `--config ${configPath} is not valid JSON: ${(error as Error).message}`);
    }
    if (typeof options !== 'object' || options === null || Array.isArray(options)) throw new ImiError('IMI_CONFIG', `--config ${configPath} must hold a JSON object`);
    for (const key of Object.keys(options)) {
      if (!OPTION_NAMES.includes(key) && !['logLevel', 'logFormat', 'pidFile', 'upgradeTimeoutMs', ...SUPERVISE_KEYS].includes(key)) throw new ImiError('IMI_CONFIG', `unknown option ${JSON.stringify(key)} in ${configPath}`);
    }
  }
  if (env['IMI_TOKEN'] !== undefined && env['IMI_TOKEN'] !== '') options['token'] = env['IMI_TOKEN'];
  if (env['IMI_ADMIN_TOKEN'] !== undefined && env['IMI_ADMIN_TOKEN'] !== '') options['adminToken'] = env['IMI_ADMIN_TOKEN'];
  for (const name of OPTION_NAMES) {
    const raw = values[kebab(name)];
    if (typeof raw === 'string') options[name] = parseValue(name, raw);
  }
  const fromFlags = listenersFromFlags(values, options['proxyProtocol'] === true);
  if (fromFlags.length > 0) options['listeners'] = [...((options['listeners'] as ListenerOptions[] | undefined) ?? []), ...fromFlags];
  const logLevel = (values['log-level'] as string | undefined) ?? (options['logLevel'] as string | undefined) ?? 'info';
  delete options['logLevel'];
  const upgrades = upgradeSettings(values, options);
  const supervise = superviseSettings(values, options);
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) throw new ImiError('IMI_CONFIG', `--log-level must be one of fatal, error, warn, info, debug, trace, silent; got ${logLevel}`);
  const logFormat = (values['log-format'] as string | undefined) ?? (options['logFormat'] as string | undefined) ?? (process.stderr.isTTY === true ? 'pretty' : 'json');
  delete options['logFormat'];
  if (!LOG_FORMATS.includes(logFormat as LogFormat)) throw new ImiError('IMI_CONFIG', `--log-format must be json or pretty; got ${String(logFormat)}`);
  return { kind: 'run', options: options as IntermediaryOptions, logLevel, logFormat: logFormat as LogFormat, upgrades, cluster: clusterFromFlags(values), supervise };
}

/** `--pid-file` and `--upgrade-timeout-ms` (or `pidFile`, `upgradeTimeoutMs` in the config file). */
function upgradeSettings(values: Record<string, string | boolean | undefined>, options: Record<string, unknown>): UpgradeSettings {
  const pidFile = values['pid-file'] ?? options['pidFile'];
  const timeout = values['upgrade-timeout-ms'] ?? options['upgradeTimeoutMs'];
  delete options['pidFile'];
  delete options['upgradeTimeoutMs'];
  if (pidFile !== undefined && (typeof pidFile !== 'string' || pidFile === '')) throw new ImiError('IMI_CONFIG', '--pid-file must be a file path');
  const timeoutMs = timeout === undefined ? undefined : Number(timeout);
  if (timeoutMs !== undefined && (!Number.isInteger(timeoutMs) || timeoutMs < 1)) throw new ImiError('IMI_CONFIG', `--upgrade-timeout-ms must be a positive integer, got ${JSON.stringify(timeout)}`);
  return { pidFile, timeoutMs };
}

function portFlag(values: Record<string, string | boolean | undefined>, flag: string): number | undefined {
  const raw = values[flag];
  if (typeof raw !== 'string') return undefined;
  const port = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(port) || port < 0 || port > 65535) throw new ImiError('IMI_CONFIG', `--${flag} must be a port number (0-65535), got ${JSON.stringify(raw)}`);
  return port;
}

/** The listeners the shorthand flags ask for, in a fixed order. */
function listenersFromFlags(values: Record<string, string | boolean | undefined>, proxyProtocol: boolean): ListenerOptions[] {
  const listeners: ListenerOptions[] = [];
  const telnetFlag = (name: string): { [key: string]: boolean } => {
    const flag = values[`telnet-${name}`];
    if (flag !== undefined && flag !== 'true' && flag !== 'false') throw new ImiError('IMI_CONFIG', `--telnet-${name} must be true or false, got ${JSON.stringify(flag)}`);
    return flag === undefined ? {} : { [name]: flag === 'true' };
  };
  // MSSP and MSDP are on by default: only an explicit flag is passed on.
  const telnet = { mccp2: values['telnet-mccp2'] === 'true', ...telnetFlag('mccp2'), ...telnetFlag('mssp'), ...telnetFlag('msdp') };
  const cert = values['tls-cert'];
  const key = values['tls-key'];
  const tlsPort = portFlag(values, 'tls-port');
  const telnetTlsPort = portFlag(values, 'telnet-tls-port');
  const wantsTls = tlsPort !== undefined || telnetTlsPort !== undefined;
  if (wantsTls && (typeof cert !== 'string' || typeof key !== 'string')) throw new ImiError('IMI_CONFIG', '--tls-port and --telnet-tls-port need --tls-cert <file> and --tls-key <file>');
  if (!wantsTls && (cert !== undefined || key !== undefined)) throw new ImiError('IMI_CONFIG', '--tls-cert and --tls-key are for --tls-port or --telnet-tls-port; give one of them');
  const tls = typeof cert === 'string' && typeof key === 'string' ? { cert, key } : undefined;
  const telnetPort = portFlag(values, 'telnet-port');
  // --proxy-protocol covers every stream listener the flags add (not ws: not supported there).
  const proxy = proxyProtocol ? { proxyProtocol } : {};
  if (telnetPort !== undefined) listeners.push({ kind: 'telnet', port: telnetPort, ...telnet, ...proxy });
  if (telnetTlsPort !== undefined) listeners.push({ kind: 'telnet', port: telnetTlsPort, ...telnet, tls: tls!, ...proxy });
  if (tlsPort !== undefined) listeners.push({ kind: 'tcp', port: tlsPort, tls: tls!, ...proxy });
  const wsPort = portFlag(values, 'ws-port');
  const webPort = portFlag(values, 'web-port');
  const originsFlag = values['ws-allowed-origins'];
  if (typeof originsFlag === 'string' && wsPort === undefined && webPort === undefined) throw new ImiError('IMI_CONFIG', '--ws-allowed-origins is for --ws-port or --web-port; give one of them');
  const origins = typeof originsFlag === 'string' ? { allowedOrigins: originsFlag.split(',').map((origin) => origin.trim()) } : {};
  if (wsPort !== undefined) listeners.push({ kind: 'ws', port: wsPort, ...origins });
  if (webPort !== undefined) listeners.push({ kind: 'ws', port: webPort, web: true, path: '/ws', ...origins });
  const sshPort = portFlag(values, 'ssh-port');
  const hostKey = values['ssh-host-key'];
  const authorizedKeys = values['ssh-authorized-keys'];
  if (sshPort === undefined && (hostKey !== undefined || authorizedKeys !== undefined)) throw new ImiError('IMI_CONFIG', '--ssh-host-key and --ssh-authorized-keys are for --ssh-port; give it');
  if (sshPort !== undefined) {
    listeners.push({ kind: 'ssh', port: sshPort, ...(typeof hostKey === 'string' ? { hostKeyFile: hostKey } : {}), ...(typeof authorizedKeys === 'string' ? { authorizedKeysFile: authorizedKeys } : {}) });
  }
  return listeners;
}

/** `, telnet on port 4000 (host ::)`: how the listening line names a listener. */
function describeListener(listener: TransportAddress): string {
  const details = [`host ${listener.host}`];
  if (listener.path !== undefined) details.push(`path ${listener.path}`);
  if (listener.web === true) details.push('web page /');
  return `, ${listener.transport} on port ${listener.port} (${details.join(', ')})`;
}

function urlHost(host: string): string {
  if (host === '::' || host === '0.0.0.0') return 'localhost';
  return host.includes(':') ? `[${host}]` : host;
}

async function main(): Promise<void> {
  const subcommand = process.argv[2];
  if (subcommand === 'status' || subcommand === 'top' || subcommand === 'upgrade') {
    process.exitCode = await runAdminCommand(subcommand, process.argv.slice(3));
    return;
  }
  let command: ReturnType<typeof parseCommandLine>;
  try {
    command = parseCommandLine(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`imi-server: ${(error as Error).message}\n`);
    process.exit(2);
  }
  if (command.kind === 'help') {
    process.stdout.write(usage() + '\n');
    return;
  }
  if (command.kind === 'version') {
    process.stdout.write(version() + '\n');
    return;
  }
  const logger = createLogger(command.logLevel, command.logFormat);
  const worker = supervisedMode();
  if (command.supervise.enabled && worker === undefined) {
    try {
      const resolved = resolveOptions(command.options);
      runSupervisor(command.supervise, { shutdownNotice: resolved.shutdownNotice, maxConnections: resolved.maxConnections, wsResumeWindowMs: resolved.wsResumeWindowMs }, command.upgrades.pidFile, command.upgrades.timeoutMs, logger);
    } catch (error) {
      process.stderr.write(`imi-server: ${(error as Error).message}\n`);
      process.exit(2);
    }
    return;
  }
  let intermediary: Intermediary;
  try {
    intermediary = new Intermediary({ ...command.options, logger });
  } catch (error) {
    process.stderr.write(`imi-server: ${(error as Error).message}\n`);
    process.exit(2);
  }
  let holder: ClusterHolder | undefined;
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting at once');
      process.exit(1);
    }
    stopping = true;
    // The holder relays the users' departures to Redis, then stops.
    intermediary.close(signal).then(
      () => (holder === undefined ? process.exit(0) : holder.stop().then(() => process.exit(0))),
      (error: unknown) => {
        logger.error({ err: error }, 'error while closing');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    // A supervised worker neither writes the pid file (the supervisor's) nor upgrades itself.
    const ports = worker === undefined ? await setUpUpgrades(intermediary, logger, command.upgrades) : await runSupervisedWorker(intermediary, logger, worker);
    const { host, clientHost } = intermediary.options;
    const others = ports.listeners.slice(1);
    process.stdout.write(`imi-server listening: users on port ${ports.externalPort} (host ${host}), app on port ${ports.clientPort} (host ${clientHost})${others.map(describeListener).join('')}\n`);
    for (const web of others.filter((listener) => listener.web === true)) {
      process.stdout.write(`imi-server web client: ${web.transport === 'ws+tls' ? 'https' : 'http'}://${urlHost(web.host)}:${web.port}/\n`);
    }
    if (command.cluster !== undefined) {
      // Loaded only in cluster mode: ioredis is a tenth of imi-server's start-up (and of an upgrade's successor's boot).
      const { ClusterHolder } = await import('../cluster/holder.js');
      holder = new ClusterHolder(command.cluster, { host: clientHost, port: ports.clientPort, token: intermediary.options.token, connect: () => intermediary.connectApp() }, logger);
      const started = holder;
      intermediary.metrics?.watchClusterHolder(() => started.stats());
      await holder.start();
      process.stdout.write(`imi-server cluster holder ${holder.options.holderId} on ${command.cluster.redis} (${holder.options.partitions} partitions)\n`);
    }
    if (ports.adminPort !== undefined) {
      const { adminHost } = intermediary.options;
      process.stdout.write(`imi-server admin: port ${ports.adminPort} (host ${adminHost}): http://${adminHost.includes(':') ? `[${adminHost}]` : adminHost}:${ports.adminPort}/metrics\n`);
    }
  } catch (error) {
    logger.fatal({ err: error }, 'cannot listen');
    process.stderr.write(`imi-server: cannot listen: ${(error as Error).message}\n`);
    process.exit(1);
  }
}

await main();
