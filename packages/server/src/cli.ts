#!/usr/bin/env node
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
import { ImiError } from '@imi/core';
import { Intermediary } from './intermediary.js';
import { DEFAULT_OPTIONS, type IntermediaryOptions } from './options.js';

/** Options that only the CLI has (not part of {@link IntermediaryOptions}). */
const CLI_ONLY = {
  config: { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} as const;

/** Options whose value is text (every other one is a number). */
const TEXT_OPTIONS = new Set(['host', 'clientHost', 'appPolicy', 'whileAppDown', 'appDownNotice', 'shutdownNotice', 'lineTooLongNotice', 'queueFullNotice', 'refusedNotice', 'rateLimitNotice', 'token', 'banner']);
/** Options whose value is true or false. */
const BOOLEAN_OPTIONS = new Set(['limitLoopback']);
/** Options that also accept `false` (silence). */
const SILENCEABLE = new Set(['appDownNotice', 'shutdownNotice', 'lineTooLongNotice', 'queueFullNotice', 'refusedNotice', 'rateLimitNotice']);

const OPTION_NAMES = [...Object.keys(DEFAULT_OPTIONS), 'token', 'banner', 'idleTimeoutMs'];

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => '-' + letter.toLowerCase());
}

function usage(): string {
  const lines = [
    'Usage: imi-server [options]',
    '',
    'Holds users\' connections (TCP lines) and relays them to one app over a JSON protocol,',
    'so the app can crash, restart or be redeployed without dropping anyone.',
    '',
    'Options (every option of the config file has a flag; flags beat the file):',
    '  --config <file.json>        options in camelCase, e.g. {"heartbeatTimeoutMs": 20000}',
    '  --token <secret>            apps must send it in hello (or set IMI_TOKEN)',
    '  --log-level <level>         fatal, error, warn, info (default), debug, trace, silent',
    '  -h, --help                  this text',
    '  -v, --version               the version',
  ];
  for (const name of OPTION_NAMES) {
    if (name === 'token') continue;
    const fallback = (DEFAULT_OPTIONS as unknown as Record<string, unknown>)[name];
    const shown = fallback === undefined ? 'off' : JSON.stringify(fallback);
    lines.push(`  --${kebab(name).padEnd(26)} default ${shown.length > 40 ? shown.slice(0, 37) + '..."' : shown}`);
  }
  lines.push('', 'Docs: docs/operations.md (configuration reference), docs/protocol.md.');
  return lines.join('\n');
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function parseValue(name: string, raw: string): string | number | boolean {
  if (SILENCEABLE.has(name) && raw === 'false') return false;
  if (BOOLEAN_OPTIONS.has(name)) {
    if (raw === 'true' || raw === 'false') return raw === 'true';
    throw new ImiError('IMI_CONFIG', `--${kebab(name)} must be true or false, got ${JSON.stringify(raw)}`);
  }
  if (TEXT_OPTIONS.has(name)) return raw.replace(/\\r/g, '\r').replace(/\\n/g, '\n');
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value)) throw new ImiError('IMI_CONFIG', `--${kebab(name)} must be a number, got ${JSON.stringify(raw)}`);
  return value;
}

/** A logger: JSON lines on stderr, or short readable lines when stderr is a terminal. */
function createLogger(level: string): Logger {
  if (!process.stderr.isTTY) return pino({ level, base: { pid: process.pid } }, pino.destination(2));
  const names: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO ', 40: 'WARN ', 50: 'ERROR', 60: 'FATAL' };
  return pino(
    { level },
    {
      write(line: string) {
        const { level: n, time, msg, pid: _pid, hostname: _host, ...rest } = JSON.parse(line) as Record<string, unknown>;
        const extra = Object.entries(rest)
          .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
          .join(' ');
        const when = new Date(Number(time)).toISOString().slice(11, 23);
        process.stderr.write(`${when} ${names[Number(n)] ?? n} ${String(msg ?? '')}${extra ? '  ' + extra : ''}\n`);
      },
    },
  );
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
): { kind: 'run'; options: IntermediaryOptions; logLevel: string } | { kind: 'help' } | { kind: 'version' } {
  const flagSpec: Record<string, { type: 'string' | 'boolean'; short?: string }> = { ...CLI_ONLY };
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
      if (!OPTION_NAMES.includes(key) && key !== 'logLevel') throw new ImiError('IMI_CONFIG', `unknown option ${JSON.stringify(key)} in ${configPath}`);
    }
  }
  if (env['IMI_TOKEN'] !== undefined && env['IMI_TOKEN'] !== '') options['token'] = env['IMI_TOKEN'];
  for (const name of OPTION_NAMES) {
    const raw = values[kebab(name)];
    if (typeof raw === 'string') options[name] = parseValue(name, raw);
  }
  const logLevel = (values['log-level'] as string | undefined) ?? (options['logLevel'] as string | undefined) ?? 'info';
  delete options['logLevel'];
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) throw new ImiError('IMI_CONFIG', `--log-level must be one of fatal, error, warn, info, debug, trace, silent; got ${logLevel}`);
  return { kind: 'run', options: options as IntermediaryOptions, logLevel };
}

async function main(): Promise<void> {
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
  const logger = createLogger(command.logLevel);
  let intermediary: Intermediary;
  try {
    intermediary = new Intermediary({ ...command.options, logger });
  } catch (error) {
    process.stderr.write(`imi-server: ${(error as Error).message}\n`);
    process.exit(2);
  }
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting at once');
      process.exit(1);
    }
    stopping = true;
    intermediary.close(signal).then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'error while closing');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    const ports = await intermediary.listen();
    const { host, clientHost } = intermediary.options;
    process.stdout.write(`imi-server listening: users on port ${ports.externalPort} (host ${host}), app on port ${ports.clientPort} (host ${clientHost})\n`);
  } catch (error) {
    logger.fatal({ err: error }, 'cannot listen');
    process.stderr.write(`imi-server: cannot listen: ${(error as Error).message}\n`);
    process.exit(1);
  }
}

await main();
