// Connection and input-rate limits: each has a default, an option, an
// IMI_LIMIT report and a counter; each test here fails without the limit.
import { describe, expect, it } from 'vitest';
import { RawUser, testScope, waitFor } from './harness.js';

const scope = testScope();

async function refusedLine(port: number): Promise<{ text: string; closed: boolean }> {
  const user = await RawUser.connect(port);
  await user.waitClosed(5000);
  return { text: user.received, closed: user.closed };
}

describe('connection limits', () => {
  it('maxConnections refuses the user past the limit with a one-line reason, and lets one in when a seat frees up', async () => {
    const { imi, ports } = await scope.start({ maxConnections: 3 });
    const users = [];
    for (let i = 0; i < 3; i++) users.push(await scope.user(ports.externalPort));
    await waitFor(() => imi.stats().sessions === 3);
    const refused = await refusedLine(ports.externalPort);
    expect(refused.text).toMatch(/^\*\*\* Connection refused: the server is full\. Try again later\. \*\*\*\r\n$/);
    expect(imi.stats().sessions).toBe(3);
    expect(imi.stats().refused.maxConnections).toBe(1);
    expect(imi.stats().limits['maxConnections']).toBe(1);
    expect(imi.stats().errors.IMI_LIMIT).toBeGreaterThanOrEqual(1);
    users[0]!.socket.destroy();
    await waitFor(() => imi.stats().sessions === 2);
    // The seat frees once the socket is gone, not when the session ends.
    await waitFor(() => imi.stats().seats === 2);
    const again = await scope.user(ports.externalPort);
    await waitFor(() => imi.stats().sessions === 3);
    expect(again.closed).toBe(false);
  });

  it('maxConnectionsPerIp refuses the extra connections of one address (loopback counted with limitLoopback)', async () => {
    const { imi, ports } = await scope.start({ maxConnectionsPerIp: 2, limitLoopback: true });
    await scope.user(ports.externalPort);
    await scope.user(ports.externalPort);
    await waitFor(() => imi.stats().sessions === 2);
    const refused = await refusedLine(ports.externalPort);
    expect(refused.text).toContain('too many connections from your address');
    expect(imi.stats().refused.maxConnectionsPerIp).toBe(1);
  });

  it('loopback users are exempt from the per-address limits by default', async () => {
    const { imi, ports } = await scope.start({ maxConnectionsPerIp: 2 });
    for (let i = 0; i < 5; i++) await scope.user(ports.externalPort);
    await waitFor(() => imi.stats().sessions === 5);
    expect(imi.stats().refused.maxConnectionsPerIp).toBe(0);
  });

  it('connectRatePerIp refuses an address that connects faster than the rate', async () => {
    const { imi, ports } = await scope.start({ connectRatePerIp: 2, limitLoopback: true });
    const attempts = await Promise.all(Array.from({ length: 10 }, () => RawUser.connect(ports.externalPort)));
    await waitFor(() => imi.stats().refused.connectRatePerIp > 0 && imi.stats().sessions + imi.stats().refused.connectRatePerIp === 10);
    // A burst of twice the rate is let in; the rest is refused.
    expect(imi.stats().sessions).toBeLessThanOrEqual(4);
    expect(imi.stats().sessions).toBeGreaterThanOrEqual(2);
    await waitFor(() => attempts.filter((user) => user.closed).length === imi.stats().refused.connectRatePerIp);
    const refused = attempts.filter((user) => user.closed);
    for (const user of refused) expect(user.received).toContain('connecting too fast');
    for (const user of attempts) user.socket.destroy();
  });

  it('refusedNotice: false closes without a word', async () => {
    const { ports } = await scope.start({ maxConnections: 1, refusedNotice: false });
    await scope.user(ports.externalPort);
    const refused = await refusedLine(ports.externalPort);
    expect(refused.text).toBe('');
  });
});

describe('input rate per session', () => {
  it('delays lines past the burst (in order, none lost) and pauses reading meanwhile', async () => {
    const { imi, ports } = await scope.start({ inputRatePerSession: 20, inputBurstPerSession: 5, maxDelayedLinesPerSession: 50, limitLoopback: true });
    const app = await scope.app(ports.clientPort, { name: 'rate' });
    await app.synced();
    const user = await scope.user(ports.externalPort);
    await app.nextUserId();
    const lines = Array.from({ length: 15 }, (_, i) => `line ${i}`);
    user.write(lines.join('\n') + '\n');
    // The burst goes at once, the rest at 20 lines a second.
    await app.waitForParam('input', 5);
    const soon = app.of('input').length;
    expect(soon).toBeLessThan(15);
    const inputs = await app.waitForParam('input', 15, 5000);
    expect(inputs.map((f) => f.data['value'])).toEqual(lines);
    expect(imi.stats().dropped.rateLimited).toBe(0);
  });

  it('drops lines past maxDelayedLinesPerSession, tells the user once, and counts them', async () => {
    const { imi, ports } = await scope.start({ inputRatePerSession: 50, inputBurstPerSession: 2, maxDelayedLinesPerSession: 3, limitLoopback: true });
    const app = await scope.app(ports.clientPort, { name: 'rate' });
    await app.synced();
    const user = await scope.user(ports.externalPort);
    await app.nextUserId();
    // One chunk of 20 lines: 2 go at once, 3 wait, 15 are dropped.
    user.write(Array.from({ length: 20 }, (_, i) => `l${i}`).join('\n') + '\n');
    await app.waitForParam('input', 5);
    await user.waitFor('typing too fast');
    await waitFor(() => imi.stats().dropped.rateLimited === 15);
    expect(app.of('input').map((f) => f.data['value'])).toEqual(['l0', 'l1', 'l2', 'l3', 'l4']);
    expect(user.received.split('typing too fast').length - 1).toBe(1);
    expect(imi.stats().limits['inputRatePerSession']).toBeGreaterThanOrEqual(1);
  });

  it('loopback users are not rate limited by default', async () => {
    const { imi, ports } = await scope.start({ inputRatePerSession: 1, inputBurstPerSession: 1 });
    const app = await scope.app(ports.clientPort, { name: 'rate' });
    await app.synced();
    const user = await scope.user(ports.externalPort);
    await app.nextUserId();
    user.write(Array.from({ length: 30 }, (_, i) => `l${i}`).join('\n') + '\n');
    await app.waitForParam('input', 30);
    expect(imi.stats().dropped.rateLimited).toBe(0);
  });
});
