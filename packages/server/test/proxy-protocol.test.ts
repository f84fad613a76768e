// The PROXY protocol (v1 text, v2 binary) on the stream listeners, over real
// sockets on 127.0.0.1: the test plays the proxy (HAProxy, nginx stream, an
// NLB) and writes the header itself, built with proxy-protocol-js or written
// by hand from the spec (https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt).
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Command,
  INETProtocol,
  IPv4Address,
  IPv4ProxyAddress,
  IPv6Address,
  IPv6ProxyAddress,
  Peer,
  TransportProtocol,
  V1ProxyProtocol,
  V2ProxyProtocol,
} from 'proxy-protocol-js';
import type { ImiError } from '@imi/core';
import { Intermediary } from '@imi/server';
import { RawApp, RawUser, sleep, testScope, waitFor, type Frame } from './harness.js';
import { TelnetPeer, makeCertificate } from './transport-harness.js';
import { commandsAvailable, startServer, stopAll } from './process-harness.js';

const scope = testScope();
afterAll(stopAll);

/** A v1 header from the library's builder. */
function v1(address: string, port: number): string {
  const family = address.includes(':') ? INETProtocol.TCP6 : INETProtocol.TCP4;
  return new V1ProxyProtocol(family, new Peer(address, port), new Peer(family === INETProtocol.TCP6 ? '::1' : '127.0.0.1', 6715)).build();
}

/** A v2 PROXY/STREAM header for an IPv4 client, from the library's builder. */
function v2(octets: [number, number, number, number], port: number): Buffer {
  const address = new IPv4ProxyAddress(IPv4Address.createFrom(octets), port, IPv4Address.createFrom([127, 0, 0, 1]), 6715);
  return Buffer.from(new V2ProxyProtocol(Command.PROXY, TransportProtocol.STREAM, address).build());
}

/**
 * Spec 2.2, written by hand: the 12-byte signature, 0x21 (version 2,
 * PROXY), 0x11 (AF_INET, STREAM), length 12, then source 192.0.2.10,
 * destination 10.0.0.1, source port 8080, destination port 23.
 */
const HAND_V2 = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
  0x21, 0x11, 0x00, 0x0c,
  192, 0, 2, 10,
  10, 0, 0, 1,
  0x1f, 0x90,
  0x00, 0x17,
]);

/** Spec 2.1's example line, written by hand. */
const HAND_V1 = 'PROXY TCP4 198.51.100.22 203.0.113.1 35646 80\r\n';

const proxies: net.Server[] = [];
afterAll(() => {
  for (const server of proxies) server.close();
});

/**
 * A minimal proxy in front of a listener, like HAProxy with `send-proxy`:
 * it waits for the client's first bytes, then opens the upstream connection
 * and writes the header and those bytes in one write (one segment), then
 * relays both ways.
 */
async function tcpProxy(target: number, header: string | Buffer): Promise<{ port: number }> {
  const server = net.createServer((client) => {
    client.on('error', () => {});
    client.once('data', (first: Buffer) => {
      client.pause();
      const upstream = net.connect({ port: target, host: '127.0.0.1' }, () => {
        upstream.write(Buffer.concat([Buffer.from(header), first]));
        client.pipe(upstream);
        upstream.pipe(client);
      });
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
    });
  });
  proxies.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as net.AddressInfo).port };
}

/** The app's `connect` frame of the n-th new user (from 0). */
async function nthConnect(app: RawApp, n: number): Promise<Frame> {
  await app.nextUserId(n);
  return app.of('connect').filter((frame) => frame.data['resumed'] === false)[n]!;
}

/** An app with its resync done, and an intermediary whose users port wants PROXY headers. */
async function proxied(options: ConstructorParameters<typeof Intermediary>[0] = {}): Promise<{ imi: Intermediary; port: number; app: RawApp }> {
  const { imi, ports } = await scope.start({ proxyProtocol: true, ...options });
  const app = await scope.app(ports.clientPort, { name: 'proxy' });
  await app.synced();
  return { imi, port: ports.externalPort, app };
}

/** Reported errors of the intermediary, as they were emitted. */
function collectErrors(imi: Intermediary): ImiError[] {
  const errors: ImiError[] = [];
  imi.on('error', (error) => errors.push(error));
  return errors;
}

describe('PROXY protocol: the user is who the header says', () => {
  it('v1 from the builder: the app sees the header address in connect.remote, and lines flow', async () => {
    const { port, app } = await proxied();
    const user = await scope.user(port);
    user.write(v1('203.0.113.7', 40001));
    const connect = await nthConnect(app, 0);
    expect(connect.data['remote']).toEqual({ address: '203.0.113.7', port: 40001 });
    user.send('look');
    const input = await app.waitForFrame((frame) => frame.param === 'input');
    expect(input.data['value']).toBe('look');
  });

  it('v1 over IPv6 from the builder, and the hand-written v1 line of the spec', async () => {
    const { port, app } = await proxied();
    const six = await scope.user(port);
    six.write(v1('2001:db8::42', 50000));
    expect((await nthConnect(app, 0)).data['remote']).toEqual({ address: '2001:db8::42', port: 50000 });
    const hand = await scope.user(port);
    hand.write(HAND_V1);
    expect((await nthConnect(app, 1)).data['remote']).toEqual({ address: '198.51.100.22', port: 35646 });
  });

  it('v2 from the builder (IPv4 and IPv6) and the hand-written v2 bytes of the spec', async () => {
    const { port, app } = await proxied();
    const four = await scope.user(port);
    four.write(v2([198, 51, 100, 9], 61000));
    expect((await nthConnect(app, 0)).data['remote']).toEqual({ address: '198.51.100.9', port: 61000 });

    const six = await scope.user(port);
    const source = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x05];
    const address = new IPv6ProxyAddress(IPv6Address.createFrom(source), 4242, IPv6Address.createFrom([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]), 6715);
    six.write(Buffer.from(new V2ProxyProtocol(Command.PROXY, TransportProtocol.STREAM, address).build()));
    expect((await nthConnect(app, 1)).data['remote']).toEqual({ address: '2001:db8::5', port: 4242 });

    const hand = await scope.user(port);
    hand.write(HAND_V2);
    expect((await nthConnect(app, 2)).data['remote']).toEqual({ address: '192.0.2.10', port: 8080 });
  });

  it('v2 with TLVs after the addresses (what an NLB sends): the TLVs are skipped, the user data after them is kept', async () => {
    const { port, app } = await proxied();
    const user = await scope.user(port);
    // PP2_TYPE_AWS (0xEA), subtype VPC endpoint id: type, 2-byte length, value.
    const value = Buffer.concat([Buffer.from([0x01]), Buffer.from('vpce-08d2bf15fac5001c9', 'latin1')]);
    const tlv = Buffer.concat([Buffer.from([0xea, 0, value.length]), value]);
    const header = Buffer.from(HAND_V2);
    header.writeUInt16BE(12 + tlv.length, 14);
    user.write(Buffer.concat([header, tlv, Buffer.from('north\r\n')]));
    expect((await nthConnect(app, 0)).data['remote']).toEqual({ address: '192.0.2.10', port: 8080 });
    expect((await app.waitForFrame((frame) => frame.param === 'input')).data['value']).toBe('north');
  });

  it('PROXY UNKNOWN (v1) and LOCAL (v2), the proxy\'s own health checks: the connection\'s own address is used', async () => {
    const { port, app } = await proxied();
    const unknown = await scope.user(port);
    unknown.write('PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n');
    expect((await nthConnect(app, 0)).data['remote']).toEqual({ address: '127.0.0.1', port: unknown.socket.localPort });
    const local = await scope.user(port);
    const header = Buffer.from(HAND_V2);
    header[12] = 0x20; // version 2, LOCAL: the addresses must be ignored (spec 2.2)
    local.write(header);
    expect((await nthConnect(app, 1)).data['remote']).toEqual({ address: '127.0.0.1', port: local.socket.localPort });
  });

  it('a header split across TCP segments (v1 and v2), one byte per write', async () => {
    const { port, app } = await proxied();
    const text = await scope.user(port);
    for (const byte of Buffer.from(v1('203.0.113.50', 1234))) {
      text.write(Buffer.from([byte]));
      await sleep(2);
    }
    expect((await nthConnect(app, 0)).data['remote']).toEqual({ address: '203.0.113.50', port: 1234 });
    const binary = await scope.user(port);
    for (const byte of HAND_V2) {
      binary.write(Buffer.from([byte]));
      await sleep(2);
    }
    expect((await nthConnect(app, 1)).data['remote']).toEqual({ address: '192.0.2.10', port: 8080 });
  });

  it('user data in the same segment as the header is not lost (v1 and v2)', async () => {
    const { port, app } = await proxied();
    const text = await scope.user(port);
    text.write(v1('203.0.113.60', 1000) + 'first line\r\nsecond line\r\n');
    const id = (await nthConnect(app, 0)).data['id'];
    const binary = await scope.user(port);
    binary.write(Buffer.concat([v2([203, 0, 113, 61], 1001), Buffer.from('third line\r\n')]));
    const id2 = (await nthConnect(app, 1)).data['id'];
    await app.waitForParam('input', 3);
    const inputs = app.of('input').map((frame) => [frame.data['id'], frame.data['value']]);
    expect(inputs).toEqual(expect.arrayContaining([[id, 'first line'], [id, 'second line'], [id2, 'third line']]));
    expect(inputs.filter(([who]) => who === id).map(([, value]) => value)).toEqual(['first line', 'second line']);
  });

  it('nothing is written to the user before the header (the banner waits for it)', async () => {
    const { port, app } = await proxied({ banner: 'Welcome!\r\n' });
    const user = await scope.user(port);
    await sleep(150);
    expect(user.bytes.length).toBe(0);
    user.write(v1('203.0.113.70', 2000));
    await user.waitFor('Welcome!');
    expect((await nthConnect(app, 0)).data['remote']).toEqual({ address: '203.0.113.70', port: 2000 });
  });
});

describe('PROXY protocol: per-address limits use the header address', () => {
  it('two clients behind the same proxy address are limited separately (maxConnectionsPerIp)', async () => {
    // Every socket comes from 127.0.0.1, which limitLoopback (off) exempts:
    // a refusal can only come from the header's address being counted.
    const { imi, port, app } = await proxied({ maxConnectionsPerIp: 1 });
    const first = await scope.user(port);
    first.write(v1('203.0.113.7', 1));
    await nthConnect(app, 0);
    const second = await scope.user(port);
    second.write(v1('203.0.113.7', 2));
    await second.waitClosed();
    expect(second.received).toContain('too many connections from your address');
    expect(imi.stats().refused.maxConnectionsPerIp).toBe(1);
    const other = await scope.user(port);
    other.write(v2([203, 0, 113, 8], 3));
    expect((await nthConnect(app, 1)).data['remote']).toEqual({ address: '203.0.113.8', port: 3 });
    expect(imi.stats().sessions).toBe(2);
    expect(first.closed).toBe(false);
  });

  it('connectRatePerIp counts the header address too', async () => {
    const { imi, port } = await proxied({ connectRatePerIp: 1 });
    // A burst of twice the rate is let in from one address; the third is refused.
    const users = [];
    for (let i = 0; i < 3; i++) {
      const user = await scope.user(port);
      user.write(v1('198.51.100.77', 100 + i));
      users.push(user);
    }
    await waitFor(() => imi.stats().refused.connectRatePerIp === 1 && imi.stats().sessions === 2);
    const fresh = await scope.user(port);
    fresh.write(v1('198.51.100.78', 200));
    await waitFor(() => imi.stats().sessions === 3);
  });
});

describe('PROXY protocol: refusals', () => {
  it('a garbage header: refused at once, with the reason reported as IMI_BAD_PROXY_HEADER and counted; the app never hears of it', async () => {
    const { imi, port, app } = await proxied();
    const errors = collectErrors(imi);
    const user = await scope.user(port);
    user.send('hello there');
    await user.waitClosed(1000);
    expect(user.bytes.length).toBe(0);
    expect(imi.stats().errors.IMI_BAD_PROXY_HEADER).toBe(1);
    expect(errors.map((error) => error.code)).toEqual(['IMI_BAD_PROXY_HEADER']);
    expect(errors[0]!.message).toMatch(/did not start with a PROXY header .*hello there/);
    // Bad v1 fields, a v2 header longer than the cap, an unknown v2 version: each refused with its reason.
    for (const bad of [Buffer.from('PROXY TCP4 999.0.0.1 10.0.0.1 1 2\r\n'), Buffer.from('PROXY TCP4 10.0.0.1 10.0.0.2 70000 2\r\n'), Buffer.from('PROXY TCP5 a b 1 2\r\n'), Buffer.concat([HAND_V2.subarray(0, 14), Buffer.from([0xff, 0xff])]), Buffer.concat([HAND_V2.subarray(0, 12), Buffer.from([0x31]), HAND_V2.subarray(13)])]) {
      const peer = await scope.user(port);
      peer.write(bad);
      await peer.waitClosed(1000);
    }
    expect(imi.stats().errors.IMI_BAD_PROXY_HEADER).toBe(6);
    expect(errors[1]!.message).toMatch(/not TCP4 addresses and ports/);
    expect(errors[2]!.message).toMatch(/not TCP4 addresses and ports/);
    expect(errors[4]!.message).toMatch(/over the 4112 accepted/);
    expect(errors[5]!.message).toMatch(/PROXY v2 header: given protocol version is invalid/);
    await app.barrier();
    expect(app.of('connect')).toHaveLength(0);
    expect(imi.stats().sessions).toBe(0);
    // And the listener keeps serving.
    const good = await scope.user(port);
    good.write(HAND_V1);
    expect((await nthConnect(app, 0)).data['remote']).toEqual({ address: '198.51.100.22', port: 35646 });
  });

  it('a v1 line longer than 107 bytes without CRLF is refused without waiting for more', async () => {
    const { imi, port } = await proxied();
    const user = await scope.user(port);
    user.write('PROXY TCP6 ' + '1'.repeat(120));
    await user.waitClosed(1000);
    expect(imi.stats().errors.IMI_BAD_PROXY_HEADER).toBe(1);
  });

  it('a header that never completes: closed after proxyHeaderTimeoutMs, reported', async () => {
    const { imi, port } = await proxied({ proxyHeaderTimeoutMs: 300 });
    const errors = collectErrors(imi);
    const user = await scope.user(port);
    const started = Date.now();
    user.write('PROXY TCP4 203.0.113.');
    await user.waitClosed(3000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(errors.map((error) => error.code)).toEqual(['IMI_BAD_PROXY_HEADER']);
    expect(errors[0]!.message).toMatch(/no complete PROXY header within proxyHeaderTimeoutMs \(300 ms\); 21 bytes came/);
    // Silence from the first byte is bounded the same way.
    const silent = await scope.user(port);
    await silent.waitClosed(3000);
    expect(imi.stats().errors.IMI_BAD_PROXY_HEADER).toBe(2);
  });

  it('a source outside proxyTrustedAddresses is refused unread, reported as IMI_PROXY_UNTRUSTED and counted', async () => {
    const { imi, port, app } = await proxied({ proxyTrustedAddresses: ['10.0.0.0/8', 'fd00::/8'] });
    const errors = collectErrors(imi);
    const user = await scope.user(port);
    user.write(v1('203.0.113.7', 1));
    await user.waitClosed(1000);
    expect(user.bytes.length).toBe(0);
    expect(imi.stats().errors.IMI_PROXY_UNTRUSTED).toBe(1);
    expect(errors[0]!.code).toBe('IMI_PROXY_UNTRUSTED');
    expect(errors[0]!.message).toMatch(/from 127\.0\.0\.1 .*not in proxyTrustedAddresses/);
    await app.barrier();
    expect(app.of('connect')).toHaveLength(0);
  });

  it('a TCP connect that closes before its first byte (a port check) is not reported', async () => {
    const { imi, port } = await proxied();
    const user = await scope.user(port);
    user.socket.end();
    await user.waitClosed(1000);
    await sleep(50);
    expect(imi.stats().errors.IMI_BAD_PROXY_HEADER).toBe(0);
  });

  it('close() does not wait for connections still sending their header', async () => {
    const imi = new Intermediary({ externalPort: 0, clientPort: 0, host: '127.0.0.1', proxyProtocol: true, proxyHeaderTimeoutMs: 60_000 });
    const ports = await imi.listen();
    const user = await RawUser.connect(ports.externalPort);
    user.write('PROXY TCP4 ');
    await sleep(50);
    const started = Date.now();
    await imi.close();
    expect(Date.now() - started).toBeLessThan(2000);
    await user.waitClosed(1000);
  });
});

describe('PROXY protocol: listeners', () => {
  it('a listener without proxyProtocol takes "PROXY TCP4 …" as what the user typed', async () => {
    const { ports } = await scope.start({ listeners: [{ kind: 'tcp', port: 0, proxyProtocol: true }] });
    const app = await scope.app(ports.clientPort, { name: 'plain' });
    await app.synced();
    const user = await scope.user(ports.externalPort);
    user.write(HAND_V1);
    const connect = await nthConnect(app, 0);
    expect(connect.data['remote']).toEqual({ address: '127.0.0.1', port: user.socket.localPort });
    const input = await app.waitForFrame((frame) => frame.param === 'input');
    expect(input.data['value']).toBe('PROXY TCP4 198.51.100.22 203.0.113.1 35646 80');
    // The extra listener, with it on, reads the same line as a header.
    const behind = await scope.user(ports.listeners[1]!.port);
    behind.write(HAND_V1);
    expect((await nthConnect(app, 1)).data['remote']).toEqual({ address: '198.51.100.22', port: 35646 });
  });

  it('telnet: the header comes before any negotiation; the app sees the header address and the negotiated client', async () => {
    const { ports } = await scope.start({ listeners: [{ kind: 'telnet', port: 0, proxyProtocol: true }] });
    const app = await scope.app(ports.clientPort, { name: 'telnet' });
    await app.synced();
    const peer = await TelnetPeer.connect(ports.listeners[1]!.port, { size: [100, 30] });
    await sleep(100);
    expect(peer.wireBytes).toBe(0);
    peer.write(v2([192, 0, 2, 33], 5555));
    const connect = await nthConnect(app, 0);
    expect(connect.data['transport']).toBe('telnet');
    expect(connect.data['remote']).toEqual({ address: '192.0.2.33', port: 5555 });
    expect(connect.data['telnet']).toMatchObject({ naws: { width: 100, height: 30 } });
    peer.send('say hi');
    expect((await app.waitForFrame((frame) => frame.param === 'input')).data['value']).toBe('say hi');
    peer.socket.destroy();
  });

  describe.skipIf(!commandsAvailable('openssl'))('TLS', () => {
    let certificate: ReturnType<typeof makeCertificate>;
    beforeAll(() => {
      certificate = makeCertificate();
    });
    afterAll(() => certificate.remove());

    it('tls and telnet+tls behind a proxy: the header comes before the handshake (as HAProxy sends it), in the same write as the ClientHello', async () => {
      const tlsFiles = { cert: certificate.cert, key: certificate.key };
      const { imi, ports } = await scope.start({
        listeners: [
          { kind: 'tcp', port: 0, tls: tlsFiles, proxyProtocol: true },
          { kind: 'telnet', port: 0, tls: tlsFiles, proxyProtocol: true, negotiationMs: 0 },
        ],
      });
      const app = await scope.app(ports.clientPort, { name: 'tls' });
      await app.synced();
      const secures: tls.TLSSocket[] = [];
      for (const [index, header] of [[1, v1('203.0.113.90', 9090)], [2, HAND_V2]] as const) {
        const proxy = await tcpProxy(ports.listeners[index]!.port, header);
        const secure = tls.connect({ port: proxy.port, host: '127.0.0.1', ca: certificate.cert, servername: 'localhost' });
        secures.push(secure);
        await once(secure, 'secureConnect');
        secure.write('over tls\r\n');
      }
      const first = await nthConnect(app, 0);
      const second = await nthConnect(app, 1);
      expect([first.data['transport'], first.data['remote']]).toEqual(['tls', { address: '203.0.113.90', port: 9090 }]);
      expect([second.data['transport'], second.data['remote']]).toEqual(['telnet+tls', { address: '192.0.2.10', port: 8080 }]);
      await app.waitForParam('input', 2);
      expect(app.of('input').map((frame) => frame.data['value'])).toEqual(['over tls', 'over tls']);
      expect(imi.stats().errors.IMI_BAD_PROXY_HEADER).toBe(0);
      for (const socket of secures) socket.destroy();
    });
  });

  it('refuses impossible settings with IMI_CONFIG', () => {
    expect(() => new Intermediary({ proxyTrustedAddresses: ['10.0.0.0/33'] })).toThrow(/proxyTrustedAddresses: "10\.0\.0\.0\/33" is not an IP address or a subnet/);
    expect(() => new Intermediary({ proxyTrustedAddresses: ['proxy.example'] })).toThrow(/IP address or a subnet/);
    expect(() => new Intermediary({ proxyHeaderTimeoutMs: 0 })).toThrow(/proxyHeaderTimeoutMs must be a positive number/);
    expect(() => new Intermediary({ listeners: [{ kind: 'ws', port: 0, proxyProtocol: true } as never] })).toThrow(/proxyProtocol is not supported on "ws" listeners/);
    expect(() => new Intermediary({ listeners: [{ kind: 'telnet', port: 0, proxyProtocol: 'yes' as never }] })).toThrow(/listeners\[0\]\.proxyProtocol must be true or false/);
  });
});

describe('PROXY protocol: imi-server flags', () => {
  it('--proxy-protocol true with --proxy-trusted-addresses covers the users port and the --telnet-port listener', async () => {
    const server = await startServer(['--proxy-protocol', 'true', '--proxy-trusted-addresses', '10.0.0.0/8, 127.0.0.1', '--telnet-port', '0']);
    const app = await RawApp.connect(server.clientPort, { hello: { name: 'cli' } });
    try {
      await app.synced();
      const user = await RawUser.connect(server.externalPort);
      user.write(v1('203.0.113.11', 1111));
      expect((await nthConnect(app, 0)).data['remote']).toEqual({ address: '203.0.113.11', port: 1111 });
      const peer = await TelnetPeer.connect(server.listeners[0]!.port);
      peer.write(v2([203, 0, 113, 12], 1212));
      expect((await nthConnect(app, 1)).data['remote']).toEqual({ address: '203.0.113.12', port: 1212 });
      user.socket.destroy();
      peer.socket.destroy();
    } finally {
      app.destroy();
    }
  });
});
