/**
 * The PROXY protocol (HAProxy's, versions 1 and 2) on the stream listeners:
 * behind HAProxy, nginx `stream` or an AWS NLB every user comes from the
 * proxy's address, and the proxy says who the real client is in a header
 * sent before anything else on the connection.
 *
 * This file only frames the header: it decides which version starts the
 * connection, finds where the header ends, and bounds it in size and time.
 * The bytes of a whole header are parsed by `proxy-protocol-js`. What
 * follows the header in the same chunk is the user's, and is put back on
 * the socket for the channel to read.
 *
 * Spec: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
 * ("the spec" below).
 *
 * @module
 */
import net, { BlockList, type Socket } from 'node:net';
import { ImiError, type RemoteAddress } from '@imi/core';
import { createRequire } from 'node:module';
import type * as ProxyProtocolJs from 'proxy-protocol-js';
import type { ProxyProtocolSettings } from './transport.js';

/**
 * `proxy-protocol-js`, loaded on the first header: most deployments never
 * enable the PROXY protocol, and every process start (an upgrade's
 * successor, a supervised worker's restart) pays for what it loads.
 */
let library: typeof ProxyProtocolJs | undefined;
function proxyProtocolJs(): typeof ProxyProtocolJs {
  library ??= createRequire(import.meta.url)('proxy-protocol-js') as typeof ProxyProtocolJs;
  return library;
}

/**
 * The longest v1 header, CRLF included: "PROXY UNKNOWN" with the longest
 * IPv6 addresses and ports (spec 2.1: "a receiver can safely use a 107-byte
 * buffer"). No CRLF within these bytes: not a v1 header.
 */
export const PROXY_V1_MAX_HEADER_BYTES = 107;

/**
 * The longest v2 header accepted, in bytes (16 fixed bytes, then addresses
 * and TLVs). The spec allows 16 + 65535; the addresses take at most 216
 * (AF_UNIX), and what proxies add as TLVs (an NLB's VPC endpoint id,
 * HAProxy's TLS details) is far below this cap. A longer one is refused
 * rather than buffered.
 */
export const PROXY_V2_MAX_HEADER_BYTES = 16 + 4096;

/** The v1 header's first bytes (spec 2.1). */
const V1_SIGNATURE = Buffer.from('PROXY ', 'latin1');
/** The v2 header's first 12 bytes (spec 2.2): chosen so that no text protocol starts with them. */
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** Bytes 1 to 16 of a v2 header: signature, version and command, family and protocol, length. */
const V2_FIXED_BYTES = 16;

/** What {@link frameProxyHeader} found in the bytes read so far. */
export type ProxyFrame =
  /** Not a whole header yet: read on. */
  | { readonly status: 'incomplete' }
  /**
   * A whole, valid header of `length` bytes. `remote` is the client's
   * address, or undefined when the header says to use the connection's own
   * (v1 `UNKNOWN`, v2 `LOCAL`, an address family that is not IP).
   */
  | { readonly status: 'done'; readonly version: 1 | 2; readonly length: number; readonly remote: RemoteAddress | undefined }
  /** Not a valid header: `reason` says why, for the log. */
  | { readonly status: 'bad'; readonly reason: string };

const INCOMPLETE: ProxyFrame = { status: 'incomplete' };

/** Whether `bytes` is `signature`, or its start when shorter. */
function startsLike(bytes: Buffer, signature: Buffer): boolean {
  const n = Math.min(bytes.length, signature.length);
  return bytes.subarray(0, n).equals(signature.subarray(0, n));
}

function validPort(port: number): boolean {
  return Number.isInteger(port) && port >= 0 && port <= 65535;
}

/**
 * Finds and checks the PROXY header at the start of `bytes` (everything
 * read from the connection so far). Garbage is refused as soon as the first
 * bytes can no longer start a header, so a user typing on the wrong port is
 * told at once, not after the timeout.
 */
export function frameProxyHeader(bytes: Buffer): ProxyFrame {
  if (bytes.length === 0) return INCOMPLETE;
  if (startsLike(bytes, V2_SIGNATURE)) return frameV2(bytes);
  if (startsLike(bytes, V1_SIGNATURE)) return frameV1(bytes);
  return { status: 'bad', reason: `the connection did not start with a PROXY header (first bytes ${JSON.stringify(bytes.subarray(0, 16).toString('latin1'))})` };
}

/** Spec 2.1: one US-ASCII line ended by CRLF, at most 107 bytes. */
function frameV1(bytes: Buffer): ProxyFrame {
  const end = bytes.subarray(0, PROXY_V1_MAX_HEADER_BYTES).indexOf('\r\n');
  if (end === -1) {
    if (bytes.length >= PROXY_V1_MAX_HEADER_BYTES) return { status: 'bad', reason: `a PROXY v1 header without CRLF in its first ${PROXY_V1_MAX_HEADER_BYTES} bytes` };
    // A lone LF cannot be fixed by more bytes: the line is over.
    if (bytes.includes(0x0a)) return { status: 'bad', reason: 'a PROXY v1 header ended by LF without CR' };
    return INCOMPLETE;
  }
  const length = end + 2;
  const line = bytes.toString('latin1', 0, end);
  // Spec 2.1: with UNKNOWN the receiver must ignore the rest of the line and
  // use the connection's own addresses (a proxy's health check, or a
  // protocol it does not know). The library wants the address fields, which
  // "PROXY UNKNOWN\r\n" alone does not have, so this case is ours.
  if (line === 'PROXY UNKNOWN' || line.startsWith('PROXY UNKNOWN ')) return { status: 'done', version: 1, length, remote: undefined };
  const { INETProtocol, V1ProxyProtocol } = proxyProtocolJs();
  let parsed: ProxyProtocolJs.V1ProxyProtocol;
  try {
    parsed = V1ProxyProtocol.parse(line + '\r\n');
  } catch (error) {
    return { status: 'bad', reason: `a bad PROXY v1 header ${JSON.stringify(line)}: ${(error as { message?: string }).message ?? String(error)}` };
  }
  // The library matches the shape; the addresses and ports are checked here.
  const isIp = parsed.inetProtocol === INETProtocol.TCP4 ? net.isIPv4 : net.isIPv6;
  const { source, destination } = parsed;
  if (!isIp(source.ipAddress) || !isIp(destination.ipAddress) || !validPort(source.port) || !validPort(destination.port)) {
    return { status: 'bad', reason: `a bad PROXY v1 header ${JSON.stringify(line)}: not ${parsed.inetProtocol} addresses and ports` };
  }
  return { status: 'done', version: 1, length, remote: { address: source.ipAddress, port: source.port } };
}

/** Spec 2.2: 16 fixed bytes, the 15th and 16th giving the length of what follows. */
function frameV2(bytes: Buffer): ProxyFrame {
  if (bytes.length < V2_FIXED_BYTES) return INCOMPLETE;
  const length = V2_FIXED_BYTES + bytes.readUInt16BE(14);
  if (length > PROXY_V2_MAX_HEADER_BYTES) return { status: 'bad', reason: `a PROXY v2 header of ${length} bytes, over the ${PROXY_V2_MAX_HEADER_BYTES} accepted` };
  if (bytes.length < length) return INCOMPLETE;
  const { Command, IPv4ProxyAddress, IPv6ProxyAddress, V2ProxyProtocol } = proxyProtocolJs();
  let parsed: ProxyProtocolJs.V2ProxyProtocol;
  try {
    parsed = V2ProxyProtocol.parse(bytes.subarray(0, length));
  } catch (error) {
    return { status: 'bad', reason: `a bad PROXY v2 header: ${(error as { message?: string }).message ?? String(error)}` };
  }
  // Spec 2.2: with LOCAL the receiver must ignore the addresses and use the
  // connection's own (the proxy's health checks).
  if (parsed.command === Command.LOCAL) return { status: 'done', version: 2, length, remote: undefined };
  const address = parsed.proxyAddress;
  if (address instanceof IPv4ProxyAddress) return { status: 'done', version: 2, length, remote: { address: address.sourceAddress.address.join('.'), port: address.sourcePort } };
  if (address instanceof IPv6ProxyAddress) return { status: 'done', version: 2, length, remote: { address: ipv6Text(address.sourceAddress.address), port: address.sourcePort } };
  // AF_UNSPEC or AF_UNIX: no client IP to use. The spec lets the receiver
  // accept such a connection with the real endpoint addresses.
  return { status: 'done', version: 2, length, remote: undefined };
}

/** An IPv6 address as Node writes it (`2001:db8::1`; `::ffff:192.0.2.1` for IPv4-mapped ones). */
function ipv6Text(bytes: readonly number[]): string {
  if (bytes.slice(0, 10).every((byte) => byte === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return `::ffff:${bytes.slice(12).join('.')}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  // The WHATWG URL parser writes IPv6 hosts in their shortest form (RFC 5952).
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

/** `::ffff:10.0.0.1` → `10.0.0.1`: the form the trust list's IPv4 subnets match. */
function plainAddress(address: string): { address: string; family: 'ipv4' | 'ipv6' } {
  if (address.startsWith('::ffff:') && net.isIPv4(address.slice(7))) return { address: address.slice(7), family: 'ipv4' };
  return { address, family: net.isIPv4(address) ? 'ipv4' : 'ipv6' };
}

/**
 * Builds the set of proxy addresses whose PROXY headers are believed: each
 * entry an IPv4 or IPv6 address, or a subnet in CIDR form (`10.0.0.0/8`,
 * `fd00::/8`). `0.0.0.0/0` and `::/0` trust every source.
 *
 * @throws ImiError `IMI_CONFIG` naming the entry that is neither
 */
export function proxyTrustList(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const bad = (): ImiError => new ImiError('IMI_CONFIG', `proxyTrustedAddresses: ${JSON.stringify(entry)} is not an IP address or a subnet like "10.0.0.0/8" or "fd00::/8"`);
    if (typeof entry !== 'string') throw bad();
    const [address = '', prefix, ...rest] = entry.split('/');
    const { address: plain, family } = plainAddress(address);
    if (rest.length > 0 || net.isIP(plain) === 0) throw bad();
    if (prefix === undefined) {
      list.addAddress(plain, family);
      continue;
    }
    const bits = Number(prefix);
    if (!/^\d{1,3}$/.test(prefix) || bits > (family === 'ipv4' ? 32 : 128)) throw bad();
    list.addSubnet(plain, bits, family);
  }
  return list;
}

/** Whether a connection from `address` may send a PROXY header. */
export function isTrustedProxy(list: BlockList, address: string): boolean {
  const plain = plainAddress(address);
  return list.check(plain.address, plain.family);
}

/**
 * Reads the PROXY header of a new connection, then hands the socket on.
 * Nothing is written to the socket meanwhile, and nothing of it reaches
 * admission or the app: a connection refused here never was a user.
 *
 * - From an address outside the trust list: closed unread (`IMI_PROXY_UNTRUSTED`).
 * - A bad, too long or incomplete header, or none within `headerTimeoutMs`: closed (`IMI_BAD_PROXY_HEADER`).
 * - A connection closed before its first byte (a TCP health check) is dropped without a report.
 *
 * @param socket - the raw TCP socket, just accepted
 * @param settings - who is trusted, how long to wait, where refusals are reported
 * @param trusted - {@link proxyTrustList} of `settings.trustedAddresses`
 * @param onHeader - called with the client's address (the socket's own for `UNKNOWN`/`LOCAL`), the socket paused with the bytes that followed the header put back on it
 * @returns a function that abandons the wait (closing the socket), for a listener that is closing
 */
export function readProxyHeader(socket: Socket, settings: ProxyProtocolSettings, trusted: BlockList, onHeader: (remote: RemoteAddress) => void): () => void {
  const own: RemoteAddress = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
  socket.on('error', () => {}); // a reset while waiting is handled by 'close'
  if (!isTrustedProxy(trusted, own.address)) {
    settings.report(new ImiError('IMI_PROXY_UNTRUSTED', `a connection from ${own.address || '?'} to a PROXY protocol listener was refused: that address is not in proxyTrustedAddresses`));
    socket.destroy();
    return () => {};
  }
  let buffered: Buffer = Buffer.alloc(0);
  let finished = false;
  const finish = (): void => {
    finished = true;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('close', onClose);
  };
  const refuse = (reason: string): void => {
    finish();
    settings.report(new ImiError('IMI_BAD_PROXY_HEADER', `a connection from ${own.address || '?'} was refused: ${reason}`));
    socket.destroy();
  };
  const onData = (chunk: Buffer): void => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    const frame = frameProxyHeader(buffered);
    if (frame.status === 'incomplete') return;
    if (frame.status === 'bad') {
      refuse(frame.reason);
      return;
    }
    finish();
    // Paused before the rest is put back, so that no byte is emitted to
    // nobody: the next reader (a channel, a TLS wrap) gets them first.
    socket.pause();
    if (buffered.length > frame.length) socket.unshift(buffered.subarray(frame.length));
    onHeader(frame.remote ?? own);
  };
  const onClose = (): void => {
    if (finished) return;
    if (buffered.length === 0) {
      finish();
      return;
    }
    refuse(`the connection closed after ${buffered.length} bytes of an incomplete PROXY header`);
  };
  const timer = setTimeout(() => refuse(`no complete PROXY header within proxyHeaderTimeoutMs (${settings.headerTimeoutMs} ms)${buffered.length > 0 ? `; ${buffered.length} bytes came` : ''}`), settings.headerTimeoutMs);
  timer.unref();
  socket.on('data', onData);
  socket.on('close', onClose);
  return () => {
    if (finished) return;
    finish();
    socket.destroy();
  };
}
