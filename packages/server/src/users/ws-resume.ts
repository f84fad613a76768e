/**
 * Resume tokens for WebSocket users who speak the `imi.v1` subprotocol: the
 * token registry, the control messages of a resume, and the close codes a
 * refused resume ends with. No `ws` import here: the handover code reads
 * these without loading the WebSocket library.
 *
 * A token is 256 random bits (base64url, 43 characters), given to the
 * client once in a `session` control message. The intermediary keeps only
 * its SHA-256: a leaked memory dump, snapshot or log holds nothing a client
 * could present. A token is single-use: a resume consumes it and the
 * client gets a new one in the same breath.
 *
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import type { ImiError } from '@imi/core';

/** The subprotocol a client offers next to `imi.v1` to say "I am resuming": its first message is then a `resume` control message. */
export const WS_RESUME_PROTOCOL = 'imi.resume';
/** How long a resuming client may take to send its `resume` message, in ms. */
export const WS_RESUME_HELLO_MS = 10_000;

/**
 * Close codes of a WebSocket connection whose resume was refused (private
 * range 4000-4999). The page starts a new session after the first three and
 * retries with the same token after {@link WS_CLOSE_CODES.retry}.
 */
export const WS_CLOSE_CODES = {
  /** The token is unknown, expired or already used. */
  badToken: 4001,
  /** Output the client missed is no longer kept: the session ended. */
  outputLost: 4002,
  /** The first message was not a valid `resume` message, or did not come in time. */
  badResume: 4003,
  /** Not now (an upgrade is under way, or the connect rate): try again with the same token. */
  retry: 4013,
} as const;

/** The length of a token: 32 bytes in base64url. */
const TOKEN_LENGTH = 43;
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/** The SHA-256 of a token, hex: what is stored. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** What a parked or live session must offer the registry. */
export interface TokenHolder {
  /** The transport name (`ws`, `ws+tls`): a token is good only on a listener of the same kind. */
  readonly transport: string;
}

/**
 * The live resume tokens of one intermediary, by hash. A token maps to its
 * session whether the session's connection is up (a client that noticed a
 * dead link before the server did takes over) or parked.
 */
export class ResumeTokens<T extends TokenHolder = TokenHolder> {
  private readonly byHash = new Map<string, T>();

  /** How many tokens are live. */
  get size(): number {
    return this.byHash.size;
  }

  /**
   * Makes a new token for `holder`, forgetting its previous one.
   *
   * @returns the token (to send to the client once) and its hash (to keep)
   */
  issue(holder: T, previousHash?: string): { token: string; hash: string } {
    if (previousHash !== undefined) this.revoke(previousHash, holder);
    const token = randomBytes(32).toString('base64url');
    const hash = hashToken(token);
    this.byHash.set(hash, holder);
    return { token, hash };
  }

  /** Puts back a hash kept in a snapshot (a handover). */
  restore(hash: string, holder: T): void {
    this.byHash.set(hash, holder);
  }

  /** Forgets a hash (when it still belongs to `holder`, if given). */
  revoke(hash: string, holder?: T): void {
    if (holder === undefined || this.byHash.get(hash) === holder) this.byHash.delete(hash);
  }

  /**
   * Consumes a token presented by a client on a `transport` listener.
   *
   * @returns its session, or undefined when it is malformed, unknown (never
   *   issued, expired, already used) or from another kind of listener (then
   *   it stays good)
   */
  take(token: string, transport: string): { holder: T; hash: string } | undefined {
    if (token.length !== TOKEN_LENGTH || !TOKEN_PATTERN.test(token)) return undefined;
    const hash = hashToken(token);
    const holder = this.byHash.get(hash);
    if (holder === undefined || holder.transport !== transport) return undefined;
    this.byHash.delete(hash);
    return { holder, hash };
  }
}

/** A client's `resume` message: `{"type":"resume","token":"…","received":N}`. */
export interface ResumeRequest {
  /** The token it was last given. */
  token: string;
  /** How many output (text) messages of this session it has received in all. */
  received: number;
}

/** Reads a `resume` message (at most a few hundred bytes); undefined when it is anything else. */
export function readResumeRequest(data: Buffer): ResumeRequest | undefined {
  if (data.length > 512) return undefined;
  let message: unknown;
  try {
    message = JSON.parse(data.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof message !== 'object' || message === null) return undefined;
  const { type, token, received } = message as Record<string, unknown>;
  if (type !== 'resume' || typeof token !== 'string' || typeof received !== 'number' || !Number.isSafeInteger(received) || received < 0) return undefined;
  return { token, received };
}

/** What the WebSocket transports and restored channels need for resumes. */
export interface WsResumeSettings {
  /** The registry shared by every WebSocket listener of the intermediary. */
  tokens: ResumeTokens;
  /** {@link IntermediaryOptions.wsResumeWindowMs}; 0: no resume. */
  windowMs: number;
  /** {@link IntermediaryOptions.wsResumeBufferBytes}. */
  bufferBytes: number;
  /** Whether resumes must wait (an upgrade is under way): they get {@link WS_CLOSE_CODES.retry}. */
  busy(): boolean;
  /** Whether a resuming connection from `address` passes `connectRatePerIp` (it takes a token from the bucket). */
  admitResume(address: string): boolean;
  /** Counts and logs (rate-limited per code) a refused resume or an overflow. */
  report(error: ImiError): void;
}

/** The output of a session not yet acknowledged by its client, for a replay after a resume. Bounded in bytes. */
export class OutputLog {
  /** Text messages sent in the session so far (over every connection). */
  sent = 0;
  private readonly entries: string[] = [];
  private bytes = 0;
  /** Index (in the session's output) of `entries[0]`. */
  private head = 0;

  /** @param maxBytes - the bound ({@link IntermediaryOptions.wsResumeBufferBytes}) */
  constructor(private readonly maxBytes: number) {}

  /** The index of the oldest kept message. */
  get first(): number {
    return this.head;
  }

  /**
   * Keeps one message, dropping the oldest past the bound.
   *
   * @returns false when a message had to be dropped
   */
  push(text: string): boolean {
    this.sent++;
    this.entries.push(text);
    this.bytes += Buffer.byteLength(text);
    let kept = true;
    while (this.bytes > this.maxBytes && this.entries.length > 0) {
      this.bytes -= Buffer.byteLength(this.entries.shift()!);
      this.head++;
      kept = false;
    }
    return kept;
  }

  /** The client has the first `received` messages: forget them. */
  ack(received: number): void {
    while (this.head < received && this.entries.length > 0) {
      this.bytes -= Buffer.byteLength(this.entries.shift()!);
      this.head++;
    }
  }

  /** The messages from index `from` on (undefined when some are gone). */
  since(from: number): string[] | undefined {
    if (from < this.head || from > this.sent) return undefined;
    return this.entries.slice(from - this.head);
  }

  /** Everything kept (for a snapshot). */
  all(): string[] {
    return [...this.entries];
  }

  /**
   * Renumbers the log so that the client's count `received` is its start:
   * what is kept follows it. After a crash of the intermediary the restored
   * log starts empty with no count of its own (what the dead process had
   * sent was not journaled), so the client's count is taken as the truth and
   * everything kept since the restart is unseen by it.
   */
  rebase(received: number): void {
    this.head = received;
    this.sent = received + this.entries.length;
  }

  /** Puts back a snapshot's log. */
  load(sent: number, entries: readonly string[]): void {
    this.sent = sent;
    this.entries.push(...entries);
    this.head = sent - entries.length;
    for (const entry of entries) this.bytes += Buffer.byteLength(entry);
  }
}
