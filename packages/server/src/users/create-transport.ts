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
  if (options.kind === 'ws') {
    const { WsTransport } = await import('./ws-transport.js');
    return new WsTransport(options, context);
  }
  if (options.kind === 'ssh') {
    const { SshTransport } = await import('./ssh-transport.js');
    return new SshTransport(options, context);
  }
  const { SocketTransport } = await import('./socket-transport.js');
  return new SocketTransport(options, context);
}
