/**
 * Who may connect: the total and per-address connection limits and the
 * per-address connect rate, checked before a session is created so a flood
 * costs a refused socket, not a session.
 *
 * @module
 */

/** A token bucket: `ratePerSecond` tokens a second, at most `burst` saved up. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  /**
   * @param ratePerSecond - refill rate
   * @param burst - capacity (and the initial fill)
   * @param now - the clock, in ms
   */
  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  /** Takes one token if there is one. */
  take(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Milliseconds until a token is available (0 if one is now). */
  waitMs(now: number): number {
    this.refill(now);
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) / this.ratePerSecond) * 1000);
  }

  /** Whether the bucket is full (idle long enough to forget). */
  full(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.burst;
  }

  private refill(now: number): void {
    const elapsed = now - this.last;
    if (elapsed <= 0) return;
    this.last = now;
    this.tokens = Math.min(this.burst, this.tokens + (elapsed / 1000) * this.ratePerSecond);
  }
}

/** Limits enforced by {@link Admission}. */
export interface AdmissionLimits {
  /** Most users connected at once. */
  maxConnections: number;
  /** Most users connected at once from one address. */
  maxConnectionsPerIp: number;
  /** New connections a second from one address (bursts of twice that). */
  connectRatePerIp: number;
}

/** Which limit refused a connection. */
export type AdmissionRefusal = 'maxConnections' | 'maxConnectionsPerIp' | 'connectRatePerIp';

/**
 * Counts connections per address and rates new ones. Every table is keyed
 * by address and swept of idle entries, so a scan from many addresses
 * cannot grow it without bound (at most one entry per live connection plus
 * the addresses seen in the last few seconds).
 */
export class Admission {
  private total = 0;
  private readonly perIp = new Map<string, number>();
  private readonly rates = new Map<string, TokenBucket>();

  /** @param limits - the limits */
  constructor(private readonly limits: AdmissionLimits) {}

  /** Users counted now. */
  get connections(): number {
    return this.total;
  }

  /** Addresses with a rate entry (for stats and tests). */
  get trackedAddresses(): number {
    return this.rates.size;
  }

  /**
   * Admits a connection from `address`, or says which limit refused it.
   * An admitted connection must be {@link release}d when it closes.
   *
   * @param perAddress - false to apply only `maxConnections` (trusted local peers)
   */
  admit(address: string, now: number, perAddress = true): AdmissionRefusal | undefined {
    if (this.total >= this.limits.maxConnections) return 'maxConnections';
    if (!perAddress) {
      this.total++;
      return undefined;
    }
    const current = this.perIp.get(address) ?? 0;
    if (current >= this.limits.maxConnectionsPerIp) return 'maxConnectionsPerIp';
    let bucket = this.rates.get(address);
    if (bucket === undefined) {
      bucket = new TokenBucket(this.limits.connectRatePerIp, this.limits.connectRatePerIp * 2, now);
      this.rates.set(address, bucket);
    }
    if (!bucket.take(now)) return 'connectRatePerIp';
    this.total++;
    this.perIp.set(address, current + 1);
    return undefined;
  }

  /**
   * Takes one connection from `address`'s `connectRatePerIp` bucket without
   * counting a connection (a WebSocket resume: a connection, not a new session).
   *
   * @returns false when the rate is exceeded
   */
  admitRate(address: string, now: number): boolean {
    let bucket = this.rates.get(address);
    if (bucket === undefined) {
      bucket = new TokenBucket(this.limits.connectRatePerIp, this.limits.connectRatePerIp * 2, now);
      this.rates.set(address, bucket);
    }
    return bucket.take(now);
  }

  /**
   * Counts a connection that must not be refused (a session handed over
   * from another process): it holds its place until {@link release}d.
   */
  admitAnyway(address: string, perAddress = true): void {
    this.total++;
    if (perAddress) this.perIp.set(address, (this.perIp.get(address) ?? 0) + 1);
  }

  /** Forgets an admitted connection (`perAddress` as given to {@link admit}). */
  release(address: string, perAddress = true): void {
    this.total--;
    if (!perAddress) return;
    const current = this.perIp.get(address) ?? 0;
    if (current <= 1) this.perIp.delete(address);
    else this.perIp.set(address, current - 1);
  }

  /** Drops rate entries of addresses that have been quiet long enough to be full again. */
  sweep(now: number): void {
    for (const [address, bucket] of this.rates) {
      if (bucket.full(now)) this.rates.delete(address);
    }
  }
}

/** Whether an address is this host (IPv4 127/8, IPv6 ::1, or IPv4-mapped loopback): such users are trusted unless `limitLoopback`. */
export function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}
