/**
 * Two connected in-process ends that behave, for the protocol's code, like
 * a TCP connection on loopback: `write`, `data`, `drain`, `pause`/`resume`,
 * `end`, `destroy`, `close`. Cluster mode links a worker's `Client` to its
 * gateway this way: same process, so the bytes need not cross the kernel
 * (a loopback TCP write costs the sender the receiver's side of the stack
 * too), while the `Client` stays the unchanged protocol speaker.
 *
 * What one end writes arrives at the other as one `data` event once the
 * writer's code has run (`process.nextTick`: everything written in one go
 * is one event, never delivered inside the writer's call stack). Bytes wait while the reader is
 * paused; `write` returns false past {@link MEMORY_SOCKET_HIGH_WATER_BYTES}
 * waiting, and `drain` follows once they are handed over. Nothing is bounded
 * beyond what the writers bound themselves (as with a socket's write queue).
 *
 * {@link MemorySocket.writeMessage} hands a protocol message over as the
 * object itself, in order with the bytes: a reader that listens for
 * `message` gets it without the JSON encoding and decoding a line costs
 * (the cluster gateway to its `Client`); a reader that does not gets its
 * frame as bytes, so nothing is lost either way.
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import { encodeFrame } from './frame-codec.js';

/** A message queued by {@link MemorySocket.writeMessage}, told apart from bytes in the queue. */
class QueuedMessage {
  constructor(
    readonly message: object,
    readonly weight: number,
  ) {}
}

/** Bytes waiting for the reader past which `write` returns false (16 KiB, as a socket's `writableHighWaterMark`). */
export const MEMORY_SOCKET_HIGH_WATER_BYTES = 16 * 1024;

/** One end of {@link memorySocketPair}: the part of `net.Socket` the protocol code uses. */
export class MemorySocket extends EventEmitter {
  /** The other end (set by {@link memorySocketPair}). */
  peer!: MemorySocket;
  /** Whether `destroy()` ran (or the other end was destroyed). */
  destroyed = false;
  /** Whether writes are still taken. */
  writable = true;
  /** Always 'memory': there is no address. */
  readonly remoteAddress = 'memory';
  /** Always 0: there is no port. */
  readonly remotePort = 0;
  private incoming: Array<string | Uint8Array | QueuedMessage> = [];
  private incomingBytes = 0;
  private deliveryScheduled = false;
  private paused = false;
  private ending = false;
  private needDrain = false;

  /** Bytes this end wrote that the other end has not read yet (strings count their UTF-16 length). */
  get writableLength(): number {
    return this.peer.incomingBytes;
  }

  /**
   * Queues bytes for the other end.
   *
   * @param data - a string (UTF-8 on the way) or bytes
   * @returns false when more than {@link MEMORY_SOCKET_HIGH_WATER_BYTES} wait: `drain` follows
   */
  write(data: string | Uint8Array): boolean {
    if (this.destroyed || this.ending) return false;
    const peer = this.peer;
    peer.incoming.push(data);
    peer.incomingBytes += data.length;
    peer.scheduleDelivery();
    if (peer.incomingBytes > MEMORY_SOCKET_HIGH_WATER_BYTES) {
      this.needDrain = true;
      return false;
    }
    return true;
  }

  /**
   * Queues one protocol message for the other end, in order with the bytes
   * written: emitted there as a `message` event (the object itself, not a
   * copy: the writer must not touch it afterwards), or as its frame's bytes
   * in a `data` event when nobody listens for `message`.
   *
   * @param message - the message (a JSON-encodable object)
   * @param weight - what it counts for in {@link writableLength} and the high-water mark: about its frame's length
   * @returns false when more than {@link MEMORY_SOCKET_HIGH_WATER_BYTES} wait: `drain` follows
   */
  writeMessage(message: object, weight: number): boolean {
    if (this.destroyed || this.ending) return false;
    const peer = this.peer;
    peer.incoming.push(new QueuedMessage(message, weight));
    peer.incomingBytes += weight;
    peer.scheduleDelivery();
    if (peer.incomingBytes > MEMORY_SOCKET_HIGH_WATER_BYTES) {
      this.needDrain = true;
      return false;
    }
    return true;
  }

  /**
   * Stops `data` events (bytes wait).
   *
   * @returns this end
   */
  pause(): this {
    this.paused = true;
    return this;
  }

  /**
   * Resumes `data` events.
   *
   * @returns this end
   */
  resume(): this {
    this.paused = false;
    this.scheduleDelivery();
    return this;
  }

  /**
   * Hands over what was written, then closes both ends.
   *
   * @returns this end
   */
  end(): this {
    if (this.destroyed || this.ending) return this;
    this.ending = true;
    this.writable = false;
    setImmediate(() => {
      this.peer.deliver();
      this.destroy();
    });
    return this;
  }

  /**
   * Closes both ends now: what this end had not read is dropped; `close` is emitted on each (after `error` when one is given).
   *
   * @param error - why, emitted as `error` first
   * @returns this end
   */
  destroy(error?: Error): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.writable = false;
    this.incoming = [];
    this.incomingBytes = 0;
    process.nextTick(() => {
      if (error !== undefined) this.emit('error', error);
      this.emit('close', error !== undefined);
    });
    // What this end wrote reaches the other before it learns of the close, as on a socket.
    const peer = this.peer;
    if (!peer.destroyed) {
      if (!peer.paused) peer.deliver();
      peer.destroy();
    }
    return this;
  }

  /**
   * No Nagle here: does nothing.
   *
   * @param _noDelay - ignored
   * @returns this end
   */
  setNoDelay(_noDelay?: boolean): this {
    return this;
  }

  /**
   * No keep-alive here: does nothing.
   *
   * @param _enable - ignored
   * @param _initialDelay - ignored
   * @returns this end
   */
  setKeepAlive(_enable?: boolean, _initialDelay?: number): this {
    return this;
  }

  private scheduleDelivery(): void {
    if (this.deliveryScheduled || this.incoming.length === 0) return;
    this.deliveryScheduled = true;
    process.nextTick(() => {
      this.deliveryScheduled = false;
      this.deliver();
    });
  }

  /** Emits what waits as one `data` event (a Buffer, as a socket without an encoding). */
  private deliver(): void {
    if (this.paused || this.destroyed || this.incoming.length === 0) return;
    const parts = this.incoming;
    this.incoming = [];
    this.incomingBytes = 0;
    const objects = this.listenerCount('message') > 0;
    let bytes: Array<string | Uint8Array> = [];
    for (const part of parts) {
      if (!(part instanceof QueuedMessage)) bytes.push(part);
      else if (!objects) bytes.push(encodeFrame(part.message));
      else {
        // Bytes written before the message reach the reader before it.
        if (bytes.length > 0) this.emitBytes(bytes);
        bytes = [];
        // A listener that destroyed or paused this end stops the rest, as it would stop bytes.
        if (this.destroyed) return;
        this.emit('message', part.message);
      }
    }
    if (bytes.length > 0) this.emitBytes(bytes);
    const writer = this.peer;
    if (writer.needDrain && !writer.destroyed) {
      writer.needDrain = false;
      writer.emit('drain');
    }
  }

  private emitBytes(parts: Array<string | Uint8Array>): void {
    const chunk = parts.every((part) => typeof part === 'string') ? Buffer.from(parts.join('')) : Buffer.concat(parts.map((part) => (typeof part === 'string' ? Buffer.from(part) : part)));
    this.emit('data', chunk);
  }
}

/**
 * Two connected ends. The first emits `connect` on the next tick (as a
 * socket that `net.connect` made would), so it can be handed to code that
 * waits for it.
 *
 * @returns the connecting end and the accepting end
 */
export function memorySocketPair(): [MemorySocket, MemorySocket] {
  const a = new MemorySocket();
  const b = new MemorySocket();
  a.peer = b;
  b.peer = a;
  process.nextTick(() => {
    if (!a.destroyed) a.emit('connect');
  });
  return [a, b];
}
