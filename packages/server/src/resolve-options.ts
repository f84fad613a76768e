/**
 * The check of the intermediary's options: fills in defaults and turns an
 * impossible value into a clear `IMI_CONFIG` error before anything listens.
 *
 * @module
 */
import { ImiError } from '@imi/core';
import { DEFAULT_OPTIONS, type IntermediaryOptions, type ResolvedOptions } from './options.js';
import { proxyTrustList } from './users/proxy-protocol.js';
import { isTransport, type ListenerOptions, type Transport } from './users/transport.js';
import { normalizeOrigin } from './users/origin.js';

const PORT_OPTIONS = ['externalPort', 'clientPort'] as const;
const POSITIVE_OPTIONS = [
  'backlog',
  'helloTimeoutMs',
  'heartbeatTimeoutMs',
  'maxLineBytes',
  'maxFrameBytes',
  'maxQueuedLinesPerSession',
  'maxQueuedBytesPerSession',
  'maxQueuedBytesTotal',
  'maxUnackedTotal',
  'maxDepTxns',
  'maxHeldMessages',
  'depWaitTimeoutMs',
  'processedTxnMemory',
  'maxOutputBufferBytes',
  'maxAppBufferBytes',
  'maxErrorFramesPerSecond',
  'errorFrameBurst',
  'maxErrorLogLinesPerSecond',
  'errorLogBurst',
  'errorSummaryIntervalMs',
  'closeTimeoutMs',
  'maxConnections',
  'maxConnectionsPerIp',
  'connectRatePerIp',
  'inputRatePerSession',
  'inputBurstPerSession',
  'maxDelayedLinesPerSession',
  'proxyHeaderTimeoutMs',
  'wsResumeBufferBytes',
] as const;
const NON_NEGATIVE_OPTIONS = ['legacyHelloWaitMs', 'heartbeatIntervalMs', 'halfCloseGraceMs', 'keepAliveMs', 'telnetProbeMs', 'wsResumeWindowMs'] as const;

function configError(message: string): ImiError {
  return new ImiError('IMI_CONFIG', message);
}

/** Whether a bind address is this host only. */
function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.') || host.startsWith('::ffff:127.');
}

function checkAdminOptions(resolved: ResolvedOptions): void {
  const { adminPort, adminHost, adminToken } = resolved;
  if (adminPort !== undefined && (!Number.isInteger(adminPort) || adminPort < 0 || adminPort > 65535)) throw configError(`adminPort must be a port number (0-65535), got ${String(adminPort)}`);
  if (typeof adminHost !== 'string' || adminHost.length === 0) throw configError(`adminHost must be an address, got ${String(adminHost)}`);
  if (adminToken !== undefined && (typeof adminToken !== 'string' || adminToken.length === 0)) throw configError('adminToken must be a non-empty string');
  if (adminPort !== undefined && adminToken === undefined && resolved.token === undefined && !isLoopbackHost(adminHost)) {
    throw configError(`adminHost ${adminHost} is not a loopback address: set adminToken (or token) so the admin API is not open to the network`);
  }
}

function isPort(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 65535;
}

function checkListener(entry: unknown, index: number): void {
  const where = `listeners[${index}]`;
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw configError(`${where} must be an object like {"kind": "telnet", "port": 4000}`);
  if (isTransport(entry as ListenerOptions | Transport)) return;
  const listener = entry as Record<string, unknown>;
  const kind = listener['kind'];
  if (kind !== 'tcp' && kind !== 'telnet' && kind !== 'ws' && kind !== 'ssh') throw configError(`${where}.kind must be "tcp", "telnet", "ws" or "ssh", got ${JSON.stringify(kind)}`);
  if (!isPort(listener['port'])) throw configError(`${where}.port must be a port number (0-65535), got ${String(listener['port'])}`);
  const host = listener['host'];
  if (host !== undefined && (typeof host !== 'string' || host.length === 0)) throw configError(`${where}.host must be an address`);
  const tlsFiles = listener['tls'];
  if (tlsFiles !== undefined) {
    const files = tlsFiles as Record<string, unknown> | null;
    if (typeof files !== 'object' || files === null || typeof files['cert'] !== 'string' || typeof files['key'] !== 'string' || files['cert'] === '' || files['key'] === '') {
      throw configError(`${where}.tls must be {"cert": "<file or PEM>", "key": "<file or PEM>"}`);
    }
  }
  const checkNumber = (name: string, allowZero: boolean): void => {
    const value = listener[name];
    if (value === undefined) return;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
      throw configError(`${where}.${name} must be ${allowZero ? 'zero or ' : ''}a positive number, got ${String(value)}`);
    }
  };
  const checkBoolean = (name: string): void => {
    if (listener[name] !== undefined && typeof listener[name] !== 'boolean') throw configError(`${where}.${name} must be true or false`);
  };
  if (kind === 'ssh') {
    // SSH brings its own encryption; a PROXY header is not read there.
    for (const name of ['tls', 'proxyProtocol']) if (listener[name] !== undefined && listener[name] !== false) throw configError(`${where}.${name} is not an option of "ssh" listeners`);
    for (const name of ['hostKeyFile', 'authorizedKeysFile']) {
      if (listener[name] !== undefined && (typeof listener[name] !== 'string' || listener[name] === '')) throw configError(`${where}.${name} must be a file path`);
    }
  } else if (kind === 'ws') {
    if (listener['proxyProtocol'] !== undefined && listener['proxyProtocol'] !== false) throw configError(`${where}.proxyProtocol is not supported on "ws" listeners yet (only "tcp" and "telnet")`);
  } else {
    checkBoolean('proxyProtocol');
  }
  if (kind === 'telnet') {
    checkBoolean('mccp2');
    checkBoolean('gmcp');
    checkNumber('negotiationMs', true);
    checkBoolean('nvtOutput');
    checkBoolean('eor');
    checkBoolean('mssp');
    checkBoolean('msdp');
  } else if (kind === 'ws') {
    const path = listener['path'];
    if (path !== undefined && (typeof path !== 'string' || !path.startsWith('/'))) throw configError(`${where}.path must start with "/", got ${JSON.stringify(path)}`);
    checkBoolean('web');
    if (listener['web'] === true && path === '/') throw configError(`${where}.path cannot be "/" with web: the page is served there`);
    checkNumber('maxPayloadBytes', false);
    checkNumber('pingIntervalMs', true);
    checkAllowedOrigins(listener['allowedOrigins'], where);
  }
}

function checkAllowedOrigins(value: unknown, where: string): void {
  if (value === undefined) return;
  const shape = `${where}.allowedOrigins must be a list of origins like ["https://example.com"], "self" or "*"`;
  if (!Array.isArray(value) || value.length === 0) throw configError(shape);
  for (const entry of value) {
    if (typeof entry !== 'string') throw configError(shape);
    if (entry !== '*' && entry !== 'self' && normalizeOrigin(entry) === undefined) {
      throw configError(`${where}.allowedOrigins: ${JSON.stringify(entry)} is not an origin (scheme http or https, host, optional port, no path), "self" or "*"`);
    }
  }
}

/**
 * Fills in defaults and rejects impossible values.
 *
 * @param options - what the user gave
 * @returns every option with a value
 * @throws ImiError `IMI_CONFIG` naming the option and what it accepts
 */
export function resolveOptions(options: IntermediaryOptions): ResolvedOptions {
  const defined = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
  const resolved = { ...DEFAULT_OPTIONS, ...defined } as ResolvedOptions & { logger?: unknown; plugins?: unknown };
  delete resolved.logger;
  delete resolved.plugins;
  for (const name of PORT_OPTIONS) {
    const value = resolved[name];
    if (!Number.isInteger(value) || value < 0 || value > 65535) throw configError(`${name} must be a port number (0-65535), got ${String(value)}`);
  }
  for (const name of POSITIVE_OPTIONS) {
    const value = resolved[name];
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw configError(`${name} must be a positive number, got ${String(value)}`);
  }
  for (const name of NON_NEGATIVE_OPTIONS) {
    const value = resolved[name];
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw configError(`${name} must be zero or a positive number, got ${String(value)}`);
  }
  for (const name of ['errorFrameBurst', 'errorLogBurst'] as const) {
    if (resolved[name] < 1) throw configError(`${name} must be at least 1, got ${resolved[name]}`);
  }
  if (resolved.idleTimeoutMs !== undefined && !(resolved.idleTimeoutMs > 0)) throw configError(`idleTimeoutMs must be a positive number, got ${String(resolved.idleTimeoutMs)}`);
  if (resolved.appPolicy !== 'refuse' && resolved.appPolicy !== 'replace') throw configError(`appPolicy must be "refuse" or "replace", got ${String(resolved.appPolicy)}`);
  if (resolved.whileAppDown !== 'queue' && resolved.whileAppDown !== 'drop') throw configError(`whileAppDown must be "queue" or "drop", got ${String(resolved.whileAppDown)}`);
  if (typeof resolved.limitLoopback !== 'boolean') throw configError(`limitLoopback must be true or false, got ${String(resolved.limitLoopback)}`);
  if (typeof resolved.proxyProtocol !== 'boolean') throw configError(`proxyProtocol must be true or false, got ${String(resolved.proxyProtocol)}`);
  if (!Array.isArray(resolved.proxyTrustedAddresses)) throw configError('proxyTrustedAddresses must be an array of addresses or subnets like ["10.0.0.0/8"]');
  proxyTrustList(resolved.proxyTrustedAddresses);
  if (typeof resolved.msspName !== 'string' || !/^[^\x00-\x1f\x7f]{1,64}$/.test(resolved.msspName)) throw configError(`msspName must be 1-64 characters without control characters, got ${JSON.stringify(resolved.msspName)}`);
  if (resolved.token !== undefined && (typeof resolved.token !== 'string' || resolved.token.length === 0)) throw configError('token must be a non-empty string');
  checkAdminOptions(resolved);
  if (!Array.isArray(resolved.listeners)) throw configError('listeners must be an array of listeners like {"kind": "telnet", "port": 4000}');
  resolved.listeners.forEach((entry, index) => checkListener(entry, index));
  if (resolved.heartbeatIntervalMs > 0 && resolved.heartbeatTimeoutMs <= resolved.heartbeatIntervalMs) {
    throw configError(`heartbeatTimeoutMs (${resolved.heartbeatTimeoutMs}) must be longer than heartbeatIntervalMs (${resolved.heartbeatIntervalMs})`);
  }
  return resolved;
}

