/**
 * A holder's link to its own intermediary: the holder speaks the ordinary
 * app protocol (docs/protocol.md) to the intermediary, with acks on: in
 * process (`Intermediary.connectApp`, what `imi-server --redis` does) or
 * to its app port. So the intermediary's guarantees stay whole in
 * cluster mode: the holder acks a `seq` only once what it carried is in
 * Redis, and while Redis is unreachable it closes this link, the
 * intermediary is in app-down mode (users told once, input queued within
 * its bounds), and on the next link it redelivers what was not acked.
 *
 * @module
 */
import { connect as netConnect, type Socket } from 'node:net';
import { FrameDecoder, ImiError, PROTOCOL_VERSION, ProtocolError, encodeFrame, validateIntermediaryMessage, type IntermediaryMessage } from '@imi/core';

/** What the link tells its owner. */
export interface HolderLinkSink {
  /** An event from the intermediary (`connect`, `input`, `disconnect`, `telnet`, `gmcp`). */
  onEvent(message: IntermediaryMessage): void;
  /** `synced`: the resync is over; output may flow. */
  onSynced(): void;
  /** The link is gone (closed by either side). */
  onClosed(reason: ImiError): void;
  /** A protocol problem worth reporting (the link goes on). */
  onProblem(error: ImiError): void;
  /** An ack up to `seq` was handed to the socket: the intermediary will not send those events again. */
  onAckWritten(seq: number): void;
}

/** One connection to the intermediary's app port. */
export class HolderLink {
  private readonly socket: Socket;
  private ackTo = 0;
  private ackSent = 0;
  private out = '';
  private flushScheduled = false;
  private closed = false;
  /** Whether the socket asked to wait (`write` returned false). */
  waitingDrain = false;

  /**
   * @param target - the app port, or how to connect in process
   * @param target.host - its host
   * @param target.port - its port
   * @param target.connect - when given, makes the connection instead (`Intermediary.connectApp`: no loopback TCP)
   * @param hello - the `hello` data: instance id (stable for the holder's life, so the
   *   intermediary reports who left while the link was down), token
   * @param hello.instance - the instance id
   * @param hello.token - the intermediary's token, if it has one
   * @param sink - where events go
   */
  constructor(
    target: { host: string; port: number; connect?: (() => Socket) | undefined },
    hello: { instance: string; token: string | undefined },
    private readonly sink: HolderLinkSink,
  ) {
    this.socket = target.connect !== undefined ? target.connect() : netConnect({ host: target.host, port: target.port });
    this.socket.setNoDelay(true);
    const decoder = new FrameDecoder<IntermediaryMessage>(
      { validate: validateIntermediaryMessage },
      { onMessage: (message) => this.onMessage(message), onError: (error) => sink.onProblem(error) },
    );
    this.socket.on('connect', () => {
      const data: Record<string, unknown> = { protocol: PROTOCOL_VERSION, acks: true, name: 'imi-cluster-holder', instance: hello.instance };
      if (hello.token !== undefined) data['token'] = hello.token;
      this.write(encodeFrame({ param: 'hello', data }));
    });
    this.socket.on('data', (chunk: Buffer) => decoder.write(chunk));
    // In process the intermediary hands its input and disconnect events over as objects
    // (MemorySocket.writeMessage): no JSON in between, checked as a frame's would be.
    this.socket.on('message', (value: object) => {
      const message = validateIntermediaryMessage(value);
      if (message instanceof ProtocolError) sink.onProblem(message);
      else this.onMessage(message);
    });
    this.socket.on('drain', () => {
      this.waitingDrain = false;
      this.socket.emit('imi-drain');
    });
    this.socket.on('error', () => {
      // 'close' follows and reports it.
    });
    this.socket.on('close', () => {
      this.closed = true;
      sink.onClosed(new ImiError('IMI_LINK_DOWN', 'the link to the local intermediary closed'));
    });
  }

  /** Whether the link is gone. */
  get isClosed(): boolean {
    return this.closed;
  }

  private onMessage(message: IntermediaryMessage): void {
    if (this.closed) return;
    switch (message.param) {
      case 'ping':
        this.write(encodeFrame({ param: 'pong', data: { ts: message.data.ts } }));
        return;
      case 'synced':
        this.sink.onSynced();
        return;
      case 'error':
        this.sink.onProblem(new ImiError(message.data.code, `the local intermediary reports ${message.data.code}: ${message.data.message}`));
        if (message.data.code === 'IMI_AUTH' || message.data.code === 'IMI_APP_BUSY' || message.data.code === 'IMI_REPLACED') this.close();
        return;
      case 'shutdown':
        return;
      default:
        this.sink.onEvent(message);
    }
  }

  /**
   * Queues frames (each a JSON object and `\n`), written together at the end of this turn.
   *
   * @param frames - the frames
   * @returns false when the socket asked to wait: stop reading until {@link onDrain}
   */
  write(frames: string): boolean {
    if (this.closed) return true;
    this.out += frames;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return !this.waitingDrain;
  }

  /**
   * Everything up to `seq` is safely in Redis: acknowledged (cumulative) with the next write.
   *
   * @param seq - the highest `seq` done
   */
  ack(seq: number): void {
    if (seq <= this.ackTo) return;
    this.ackTo = seq;
    this.write('');
  }

  /**
   * Calls `listener` once the socket took what waits.
   *
   * @param listener - called once
   */
  onDrain(listener: () => void): void {
    if (!this.waitingDrain || this.closed) {
      listener();
      return;
    }
    this.socket.once('imi-drain', listener);
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.closed) return;
    let data = this.out;
    this.out = '';
    const acked = this.ackTo > this.ackSent;
    if (acked) {
      data += `{"param":"ack","data":{"seq":${this.ackTo}}}\n`;
      this.ackSent = this.ackTo;
    }
    if (data !== '' && !this.socket.write(data)) this.waitingDrain = true;
    if (acked) this.sink.onAckWritten(this.ackSent);
  }

  /** Closes the link (the intermediary goes to app-down mode and keeps what was not acked). */
  close(): void {
    if (this.closed) return;
    // What was read from Redis and queued goes out first: ending (not
    // destroying) lets the intermediary process it before it sees the close.
    this.flush();
    this.closed = true;
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1_000).unref();
  }
}
