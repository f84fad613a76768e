/**
 * Builds the built-in transports from their options. Kept apart from
 * `transport.ts` (the interfaces) so that the transports, which import those
 * interfaces, are not imported back by them.
 *
 * @module
 */
import type { ListenerOptions, Transport, TransportContext } from './transport.js';

/**
 * Makes the transport a {@link ListenerOptions} describes. The WebSocket
 * and SSH transports (and the `ws` and `ssh2` packages) are loaded only when
 * one is asked for.
 *
 * @throws ImiError `IMI_CONFIG` when a TLS file cannot be read
 */
export async function createTransport(options: ListenerOptions, context: TransportContext): Promise<Transport> {
  if (options.kind === 'ws') return new (await TRANSPORT_MODULES.ws()).WsTransport(options, context);
  if (options.kind === 'ssh') return new (await TRANSPORT_MODULES.ssh()).SshTransport(options, context);
  return new (await TRANSPORT_MODULES[options.kind]()).SocketTransport(options, context);
}

/** Each listener kind's module, imported on first use (Node caches it: whoever asks first pays). */
const TRANSPORT_MODULES = {
  ws: () => import('./ws-transport.js'),
  ssh: () => import('./ssh-transport.js'),
  tcp: () => import('./socket-transport.js'),
  telnet: () => import('./socket-transport.js'),
} as const satisfies Record<ListenerOptions['kind'], () => Promise<unknown>>;

/**
 * Loads the modules of these listeners' transports now, without making any: an upgrade's successor does it before
 * the old process freezes, so that the listeners it starts after the freeze do not load `ws` or `ssh2` while users
 * wait.
 *
 * @param kinds - the kinds of the listeners that will be made
 * @throws whatever importing a transport's module throws (a package missing from the install)
 */
export async function preloadTransports(kinds: ReadonlyArray<ListenerOptions['kind']>): Promise<void> {
  await Promise.all([...new Set(kinds)].map((kind) => TRANSPORT_MODULES[kind]()));
}
