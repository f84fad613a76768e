import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  APP_PARAMS,
  ERROR_CODES,
  INTERMEDIARY_PARAMS,
  ProtocolError,
  isJsonObject,
  validateAppMessage,
  validateIntermediaryMessage,
  type AppMessage,
  type IntermediaryMessage,
} from '@imi/core';
import { appMessage, roundTrip } from './arbitraries.js';

const RUNS = { numRuns: 1000 };

type Json = Record<string, unknown>;

/** A deep copy, so a validator's in-place normalisation cannot touch the table's objects. */
const copy = <T>(value: T): T => structuredClone(value);

function expectMessage<T>(result: T | ProtocolError): T {
  if (result instanceof ProtocolError) throw new Error(`expected a message, got ${result.code}: ${result.message}`);
  return result;
}

function expectError(result: unknown, code: string, mentions?: string): ProtocolError {
  expect(result).toBeInstanceOf(ProtocolError);
  const error = result as ProtocolError;
  expect(error.code).toBe(code);
  if (mentions !== undefined) expect(error.message).toContain(mentions);
  return error;
}

// ---------------------------------------------------------------------------
// Independent statements of the message types, to check what validators let through.

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNat = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isStrings = (v: unknown): boolean => Array.isArray(v) && v.every((s) => typeof s === 'string');
const optional = (v: unknown, check: (v: unknown) => boolean): boolean => v === undefined || check(v);
const isString = (v: unknown): boolean => typeof v === 'string';

/** Whether a value has the shape of {@link AppMessage} (every optional field absent or of its type). */
function conformsToAppMessage(m: unknown): boolean {
  if (!isObj(m)) return false;
  if (!optional(m['txn_id'], isString) || !optional(m['dep_txns'], isStrings) || !optional(m['updates'], isObj) || !optional(m['ack'], isNat) || !optional(m['done'], isNat)) {
    return false;
  }
  const d = m['data'];
  switch (m['param']) {
    case 'null':
      return true;
    case 'hello':
      return isObj(d) && optional(d['protocol'], isNat) && optional(d['token'], isString) && optional(d['acks'], (v) => typeof v === 'boolean') && optional(d['name'], isString);
    case 'output':
      return isObj(d) && isString(d['id']) && isString(d['value']) && optional(d['prompt'], (v) => typeof v === 'boolean');
    case 'disconnect':
      return isObj(d) && (d['id'] === undefined || (isString(d['id']) && optional(d['value'], isString)));
    case 'broadcast':
      return isObj(d) && isString(d['value']) && optional(d['except'], isStrings);
    case 'state':
      return isObj(d) && isString(d['id']);
    case 'ack':
      return isObj(d) && isNat(d['seq']);
    case 'pong':
      return isObj(d) && optional(d['ts'], (v) => typeof v === 'number');
    case 'telnet':
      return isObj(d) && isString(d['id']) && optional(d['echo'], (v) => typeof v === 'boolean');
    case 'gmcp':
      return (
        isObj(d) &&
        isString(d['id']) &&
        isString(d['package']) &&
        /^[^\s\x00-\x1f\x7f]{1,128}$/.test(d['package'] as string) &&
        optional(d['protocol'], (v) => v === 'gmcp' || v === 'msdp')
      );
    case 'mssp': {
      const text = (v: unknown): boolean => (typeof v === 'string' && !/[\x00-\x1f\x7f]/.test(v)) || (typeof v === 'number' && Number.isFinite(v));
      const variables = isObj(d) ? d['variables'] : undefined;
      return isObj(variables) && Object.entries(variables).every(([name, v]) => name.length >= 1 && name.length <= 64 && text(name) && (text(v) || (Array.isArray(v) && v.every(text))));
    }
    default:
      return false;
  }
}

/** Whether a value has the shape of {@link IntermediaryMessage}. */
function conformsToIntermediaryMessage(m: unknown): boolean {
  if (!isObj(m) || !isString(m['txn_id']) || !optional(m['seq'], isNat) || !optional(m['redelivered'], (v) => typeof v === 'boolean')) return false;
  const d = m['data'];
  if (!isObj(d)) return false;
  switch (m['param']) {
    case 'connect': {
      const r = d['remote'];
      return (
        isString(d['id']) &&
        isString(d['transport']) &&
        isObj(r) &&
        isString(r['address']) &&
        typeof r['port'] === 'number' &&
        typeof d['connectedAt'] === 'number' &&
        typeof d['resumed'] === 'boolean' &&
        isObj(d['state']) &&
        optional(d['telnet'], isObj)
      );
    }
    case 'input':
      return isString(d['id']) && isString(d['value']);
    case 'disconnect':
      return isString(d['id']) && isString(d['reason']);
    case 'synced':
      return isNat(d['count']) && optional(d['eventAcks'], (v) => typeof v === 'boolean');
    case 'ping':
      return typeof d['ts'] === 'number';
    case 'error':
      return (ERROR_CODES as readonly unknown[]).includes(d['code']) && isString(d['message']) && optional(d['txn_id'], isString);
    case 'shutdown':
      return isString(d['reason']);
    case 'telnet':
      return isString(d['id']) && isObj(d['telnet']);
    case 'gmcp':
      return isString(d['id']) && isString(d['package']);
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------
// App → intermediary

const validApp: Record<string, Json> = {
  'hello, every field': { param: 'hello', data: { protocol: 1, token: 's3cret', acks: true, name: 'my-mud' } },
  'hello, empty data': { param: 'hello', data: {} },
  output: { param: 'output', data: { id: 'u1', value: 'Hello é€😀\r\n' } },
  'output marked as a prompt': { param: 'output', data: { id: 'u1', value: 'HP 10> ', prompt: true } },
  'output not a prompt': { param: 'output', data: { id: 'u1', value: 'x', prompt: false } },
  'disconnect (kick)': { param: 'disconnect', data: { id: 'u1' } },
  'disconnect with a last text': { param: 'disconnect', data: { id: 'u1', value: 'Bye!\r\n' } },
  'legacy disconnect ack (no id)': { param: 'disconnect', data: { success: 1 } },
  broadcast: { param: 'broadcast', data: { value: 'all' } },
  'broadcast with except': { param: 'broadcast', data: { value: 'all', except: ['u1', 'u2'] } },
  state: { param: 'state', data: { id: 'u1' }, updates: { room: 'hall', hp: 10, bag: ['a'], gone: null } },
  ack: { param: 'ack', data: { seq: 0 } },
  'ack at the largest safe integer': { param: 'ack', data: { seq: Number.MAX_SAFE_INTEGER } },
  pong: { param: 'pong', data: { ts: 1700000000000 } },
  'pong without ts': { param: 'pong', data: {} },
  'legacy null': { param: 'null' },
  'null with data': { param: 'null', data: { anything: [1, 'x'] } },
  'every envelope field': {
    param: 'output',
    data: { id: 'u1', value: 'x' },
    txn_id: 'a-txn',
    dep_txns: ['t1', 't2'],
    updates: { k: 'v' },
    ack: 7,
    done: 9,
  },
  'a lone per-event ack': { param: 'null', done: 43 },
  'unknown extra fields': { param: 'output', data: { id: 'u1', value: 'x', colour: 'red' }, future: { a: 1 } },
  'telnet echo off': { param: 'telnet', data: { id: 'u1', echo: false } },
  'telnet echo on': { param: 'telnet', data: { id: 'u1', echo: true } },
  'telnet without a change': { param: 'telnet', data: { id: 'u1' } },
  gmcp: { param: 'gmcp', data: { id: 'u1', package: 'Char.Vitals', value: { hp: 10, maxhp: 20 } } },
  'gmcp without value': { param: 'gmcp', data: { id: 'u1', package: 'Core.Ping' } },
  'gmcp with a string value': { param: 'gmcp', data: { id: 'u1', package: 'Comm.Channel.Text', value: 'hé 😀' } },
  'gmcp sent as MSDP': { param: 'gmcp', data: { id: 'u1', package: 'HEALTH', value: '10', protocol: 'msdp' } },
  'gmcp sent as GMCP only': { param: 'gmcp', data: { id: 'u1', package: 'Char.Vitals', value: { hp: 1 }, protocol: 'gmcp' } },
  mssp: { param: 'mssp', data: { variables: { GENRE: 'Fantasy', 'CRAWL DELAY': -1, PORT: [4000, '4443'], CODEBASE: [], 'HIRING BUILDERS': 0 } } },
  'mssp with no variables': { param: 'mssp', data: { variables: {} } },
};

/** For each message kind: a valid base, and per field the wrong values (`undefined` = missing). */
const appFieldCases: Array<{ base: Json; field: string; where: 'data' | 'envelope'; wrong: unknown[] }> = [
  { base: validApp['hello, every field']!, field: 'protocol', where: 'data', wrong: ['1', 1.5, -1, true, {}, [], null] },
  { base: validApp['hello, every field']!, field: 'token', where: 'data', wrong: [1, true, {}, [], null] },
  { base: validApp['hello, every field']!, field: 'acks', where: 'data', wrong: ['true', 1, {}, [], null] },
  { base: validApp['hello, every field']!, field: 'name', where: 'data', wrong: [1, false, {}, [], null] },
  { base: validApp['output']!, field: 'id', where: 'data', wrong: [undefined, 1, true, null, {}, []] },
  { base: validApp['output']!, field: 'value', where: 'data', wrong: [undefined, 1, false, null, {}, ['x']] },
  { base: validApp['output marked as a prompt']!, field: 'prompt', where: 'data', wrong: ['true', 1, 0, {}, []] },
  { base: validApp['disconnect with a last text']!, field: 'id', where: 'data', wrong: [1, true, null, {}, []] },
  { base: validApp['disconnect with a last text']!, field: 'value', where: 'data', wrong: [1, true, {}, ['x']] },
  { base: validApp['broadcast with except']!, field: 'value', where: 'data', wrong: [undefined, 1, null, {}, []] },
  { base: validApp['broadcast with except']!, field: 'except', where: 'data', wrong: ['u1', [1], ['u1', 2], [null], {}, null, 5] },
  { base: validApp['state']!, field: 'id', where: 'data', wrong: [undefined, 1, null, {}, []] },
  { base: validApp['ack']!, field: 'seq', where: 'data', wrong: [undefined, -1, 1.5, '1', null, true, {}, Number.MAX_SAFE_INTEGER + 1] },
  { base: validApp['pong']!, field: 'ts', where: 'data', wrong: ['1', true, null, {}, []] },
  { base: validApp['telnet echo off']!, field: 'id', where: 'data', wrong: [undefined, 1, null, {}, []] },
  { base: validApp['telnet echo off']!, field: 'echo', where: 'data', wrong: ['false', 0, 1, {}, []] },
  { base: validApp['gmcp']!, field: 'id', where: 'data', wrong: [undefined, 1, null, {}, []] },
  {
    base: validApp['gmcp']!,
    field: 'package',
    where: 'data',
    wrong: [undefined, '', 'Char Vitals', 'Char.Vitals\n', '\u0000', 'x'.repeat(129), 1, null, {}, ['Char.Vitals']],
  },
  { base: validApp['gmcp sent as MSDP']!, field: 'protocol', where: 'data', wrong: ['MSDP', 'telnet', '', 1, true, {}, []] },
  {
    base: validApp['mssp']!,
    field: 'variables',
    where: 'data',
    wrong: [
      undefined,
      null,
      'GENRE',
      [['GENRE', 'Fantasy']],
      { GENRE: { a: 1 } },
      { GENRE: true },
      { GENRE: null },
      { GENRE: [['nested']] },
      { GENRE: [true] },
      { GENRE: Number.NaN },
      { GENRE: 'a\u0001b' },
      { GENRE: 'line\r\n' },
      { '': 'x' },
      { 'A\u0002': 'x' },
      { ['N'.repeat(65)]: 'x' },
      Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`V${i}`, i])),
    ],
  },
  { base: validApp['every envelope field']!, field: 'txn_id', where: 'envelope', wrong: [true, {}, [], ['a']] },
  { base: validApp['every envelope field']!, field: 'dep_txns', where: 'envelope', wrong: ['t1', [1], ['t1', {}], {}, 5, true] },
  { base: validApp['every envelope field']!, field: 'updates', where: 'envelope', wrong: ['x', [], [{ a: 1 }], 5, true] },
  { base: validApp['every envelope field']!, field: 'ack', where: 'envelope', wrong: [-1, 1.5, '7', true, {}, []] },
  { base: validApp['every envelope field']!, field: 'done', where: 'envelope', wrong: [-1, 1.5, '7', true, {}, []] },
];

function withField(base: Json, where: 'data' | 'envelope', field: string, value: unknown): Json {
  const message = copy(base);
  const target = where === 'data' ? (message['data'] as Json) : message;
  if (value === undefined) delete target[field];
  else target[field] = value;
  return message;
}

describe('validateAppMessage', () => {
  for (const [name, message] of Object.entries(validApp)) {
    it(`accepts ${name}, returning the same object unchanged`, () => {
      const input = copy(message);
      const result = expectMessage(validateAppMessage(input));
      expect(result).toBe(input);
      expect(result).toEqual(message);
      expect(conformsToAppMessage(result)).toBe(true);
    });
  }

  it('names the param of the message at fault (a bad hello is told from another bad frame), and only a known one', () => {
    const badHello = validateAppMessage({ param: 'hello', data: { acks: 'yes' } });
    expect(badHello).toBeInstanceOf(ProtocolError);
    expect((badHello as ProtocolError).param).toBe('hello');
    expect((badHello as ProtocolError).oversized).toBe(false);
    expect((validateAppMessage({ param: 'hello', data: {}, ack: 'x' }) as ProtocolError).param).toBe('hello');
    expect((validateAppMessage({ param: 'output', data: { id: 5 } }) as ProtocolError).param).toBe('output');
    expect((validateAppMessage({ param: 'nonsense' }) as ProtocolError).param).toBeUndefined();
    expect((validateAppMessage([1]) as ProtocolError).param).toBeUndefined();
  });

  it('accepts hello without data, giving it an empty data', () => {
    expect(expectMessage(validateAppMessage({ param: 'hello' }))).toEqual({ param: 'hello', data: {} });
  });

  it('accepts the Perl client answer {"param":"disconnect","data":{"success":1}}: a disconnect without id', () => {
    const result = expectMessage(validateAppMessage(JSON.parse('{"param":"disconnect","data":{"success":1}}')));
    expect(result.param).toBe('disconnect');
    expect(result.data).toEqual({ success: 1 });
    expect(result.param === 'disconnect' && result.data.id).toBeUndefined();
  });

  it('accepts the Perl client no-op {"param":"null"}', () => {
    expect(expectMessage(validateAppMessage(JSON.parse('{"param":"null"}')))).toEqual({ param: 'null' });
  });

  it('turns a numeric txn_id into its decimal string', () => {
    const result = expectMessage(validateAppMessage(JSON.parse('{"param":"output","data":{"id":"u1","value":"x"},"txn_id":42}')));
    expect(result.txn_id).toBe('42');
    expect(expectMessage(validateAppMessage({ param: 'null', txn_id: 1.5 })).txn_id).toBe('1.5');
    expect(expectMessage(validateAppMessage({ param: 'null', txn_id: 0 })).txn_id).toBe('0');
  });

  it('takes output data.prompt sent as null as absent (not a prompt)', () => {
    const result = expectMessage(validateAppMessage({ param: 'output', data: { id: 'u1', value: 'x', prompt: null } }));
    expect(result).toEqual({ param: 'output', data: { id: 'u1', value: 'x' } });
  });

  it('takes telnet data.echo sent as null as absent', () => {
    const result = expectMessage(validateAppMessage({ param: 'telnet', data: { id: 'u1', echo: null } }));
    expect(result).toEqual({ param: 'telnet', data: { id: 'u1' } });
  });

  it('rejects a non-finite numeric txn_id', () => {
    expectError(validateAppMessage({ param: 'null', txn_id: Number.POSITIVE_INFINITY }), 'IMI_BAD_MESSAGE', 'txn_id');
    expectError(validateAppMessage({ param: 'null', txn_id: Number.NaN }), 'IMI_BAD_MESSAGE', 'txn_id');
  });

  it('takes an optional field sent as null as absent, and removes it so the result matches its type', () => {
    const input = {
      param: 'disconnect',
      data: { id: 'u1', value: null },
      txn_id: null,
      dep_txns: null,
      updates: null,
      ack: null,
      done: null,
    };
    const result = expectMessage(validateAppMessage(input));
    expect(result).toEqual({ param: 'disconnect', data: { id: 'u1' } });
    expect(Object.keys(result)).toEqual(['param', 'data']);
    expect(Object.keys(input.data)).toEqual(['id']);
    expect(conformsToAppMessage(result)).toBe(true);
  });

  for (const { base, field, where, wrong } of appFieldCases) {
    const name = where === 'data' ? `${String(base['param'])} data.${field}` : `the envelope field ${field}`;
    it(`rejects a wrong ${name} with IMI_BAD_MESSAGE naming the field`, () => {
      for (const value of wrong) {
        const message = withField(base, where, field, value);
        expectError(validateAppMessage(message), 'IMI_BAD_MESSAGE', where === 'data' ? `data.${field}` : field);
      }
    });
  }

  it('rejects a data that is not an object, naming "data"', () => {
    for (const param of ['hello', 'output', 'disconnect', 'broadcast', 'state', 'ack', 'pong']) {
      for (const data of ['x', 1, true, [], null, ...(param === 'hello' ? [] : [undefined])]) {
        const message: Json = { param };
        if (data !== undefined) message['data'] = data;
        expectError(validateAppMessage(message), 'IMI_BAD_MESSAGE', `${param}: "data"`);
      }
    }
  });

  it('rejects a missing or non-string param with IMI_BAD_MESSAGE naming "param"', () => {
    for (const message of [{}, { data: {} }, { param: 1 }, { param: null }, { param: ['output'] }, { param: { x: 1 } }, { param: true }]) {
      expectError(validateAppMessage(message), 'IMI_BAD_MESSAGE', 'param');
    }
  });

  it('rejects an unknown param with IMI_UNKNOWN_PARAM, quoting it (cut to 64 characters)', () => {
    expectError(validateAppMessage({ param: 'frobnicate', data: {} }), 'IMI_UNKNOWN_PARAM', '"frobnicate"');
    for (const param of ['connect', 'input', 'synced', 'ping', 'error', 'shutdown', 'Output', ' output', '', '__proto__', 'toString']) {
      expectError(validateAppMessage({ param, data: {} }), 'IMI_UNKNOWN_PARAM');
    }
    const long = validateAppMessage({ param: 'p'.repeat(10_000) });
    expect(expectError(long, 'IMI_UNKNOWN_PARAM').message.length).toBeLessThan(100);
  });

  it('puts the txn_id of the faulty message on the error, as a string', () => {
    expect(expectError(validateAppMessage({ param: 'nope', txn_id: 't-9' }), 'IMI_UNKNOWN_PARAM').txnId).toBe('t-9');
    expect(expectError(validateAppMessage({ param: 'output', txn_id: 7, data: {} }), 'IMI_BAD_MESSAGE').txnId).toBe('7');
    expect(expectError(validateAppMessage({ param: 'output', data: {} }), 'IMI_BAD_MESSAGE').txnId).toBeUndefined();
  });

  it('rejects garbage of every JSON type with IMI_BAD_MESSAGE', () => {
    for (const value of [null, 0, -1.5, 1e308, '', 'output', '{"param":"null"}', true, false, [], [{ param: 'null' }], [[[]]], undefined]) {
      expectError(validateAppMessage(value), 'IMI_BAD_MESSAGE', 'must be a JSON object');
    }
  });

  it('accepts every generated valid message as is', () => {
    fc.assert(
      fc.property(appMessage, (m) => {
        const input = roundTrip(m);
        const result = expectMessage(validateAppMessage(input));
        expect(result).toBe(input);
        expect(result).toEqual(roundTrip(m));
        expect(conformsToAppMessage(result)).toBe(true);
      }),
      RUNS,
    );
  });

  const garbage = fc.oneof(fc.anything(), fc.jsonValue());
  it('never throws on anything: the result is a ProtocolError or a message of the right shape', () => {
    fc.assert(
      fc.property(garbage, (value) => {
        const result = validateAppMessage(value);
        if (result instanceof ProtocolError) {
          expect(['IMI_BAD_MESSAGE', 'IMI_UNKNOWN_PARAM']).toContain(result.code);
        } else {
          expect(conformsToAppMessage(result)).toBe(true);
        }
      }),
      RUNS,
    );
  });

  /** Objects that look like messages, with fields of any JSON type: they reach every branch. */
  const nearMessage = fc.record(
    {
      param: fc.oneof(fc.constantFrom(...APP_PARAMS, ...INTERMEDIARY_PARAMS), fc.jsonValue({ maxDepth: 1 })),
      data: fc.oneof(
        fc.dictionary(fc.constantFrom('id', 'value', 'protocol', 'token', 'acks', 'name', 'except', 'seq', 'ts', 'success'), fc.jsonValue({ maxDepth: 2 })),
        fc.jsonValue({ maxDepth: 2 }),
      ),
      txn_id: fc.jsonValue({ maxDepth: 1 }),
      dep_txns: fc.oneof(fc.array(fc.string()), fc.jsonValue({ maxDepth: 1 })),
      updates: fc.jsonValue({ maxDepth: 2 }),
      ack: fc.oneof(fc.nat(), fc.jsonValue({ maxDepth: 1 })),
    },
    { requiredKeys: [] },
  );
  it('on message-like objects with fields of any type, returns a ProtocolError or a message of the right shape', () => {
    fc.assert(
      fc.property(nearMessage, (value) => {
        const result = validateAppMessage(value);
        if (result instanceof ProtocolError) {
          expect(['IMI_BAD_MESSAGE', 'IMI_UNKNOWN_PARAM']).toContain(result.code);
          if (result.code === 'IMI_UNKNOWN_PARAM') expect(APP_PARAMS.has(String(value.param))).toBe(false);
        } else {
          expect(conformsToAppMessage(result)).toBe(true);
        }
      }),
      RUNS,
    );
  });
});

// ---------------------------------------------------------------------------
// Intermediary → app

const TXN = '2b1f4c5e-0d6a-4f43-9a55-3c8a1d3c1f00';
const validIntermediary: Record<string, Json> = {
  connect: {
    param: 'connect',
    txn_id: TXN,
    data: { id: 'u1', transport: 'telnet', remote: { address: '::ffff:127.0.0.1', port: 50123 }, connectedAt: 1700000000000, resumed: false, state: {} },
  },
  'connect, resumed with state, seq and redelivered': {
    param: 'connect',
    txn_id: TXN,
    seq: 3,
    redelivered: true,
    data: { id: 'u1', transport: 'ws', remote: { address: '10.0.0.1', port: 1 }, connectedAt: 1, resumed: true, state: { room: 'hall' } },
  },
  input: { param: 'input', txn_id: TXN, seq: 0, data: { id: 'u1', value: 'look é😀' } },
  disconnect: { param: 'disconnect', txn_id: TXN, data: { id: 'u1', reason: 'closed' } },
  synced: { param: 'synced', txn_id: TXN, data: { count: 0 } },
  'synced from a cluster gateway': { param: 'synced', txn_id: TXN, data: { count: 0, eventAcks: true } },
  ping: { param: 'ping', txn_id: TXN, data: { ts: 1700000000000 } },
  error: { param: 'error', txn_id: TXN, data: { code: 'IMI_UNKNOWN_ID', message: 'no such user', txn_id: 'app-1' } },
  'error without txn_id': { param: 'error', txn_id: TXN, data: { code: 'IMI_BAD_FRAME', message: 'not JSON' } },
  shutdown: { param: 'shutdown', txn_id: TXN, data: { reason: 'SIGTERM' } },
  'connect of a telnet user': {
    param: 'connect',
    txn_id: TXN,
    data: {
      id: 'u1',
      transport: 'telnet',
      remote: { address: '127.0.0.1', port: 2 },
      connectedAt: 1,
      resumed: false,
      state: {},
      telnet: { naws: { width: 120, height: 40 }, ttype: ['MUDLET', 'ANSI-TRUECOLOR', 'MTTS 2825'], mtts: 2825, echo: true, sga: false, gmcp: true, mccp2: false, eor: true },
    },
  },
  telnet: { param: 'telnet', txn_id: TXN, data: { id: 'u1', telnet: { naws: { width: 80, height: 24 }, echo: false, sga: false, gmcp: false, mccp2: false, eor: false } } },
  gmcp: { param: 'gmcp', txn_id: TXN, data: { id: 'u1', package: 'Core.Hello', value: { client: 'Mudlet', version: '4.17' } } },
  'gmcp without value': { param: 'gmcp', txn_id: TXN, data: { id: 'u1', package: 'Core.Ping' } },
};

const intermediaryFieldCases: Array<{ base: Json; field: string; wrong: unknown[]; mentions?: string }> = [
  { base: validIntermediary['connect']!, field: 'id', wrong: [undefined, 1, null, {}] },
  { base: validIntermediary['connect']!, field: 'transport', wrong: [undefined, 1, null, []] },
  {
    base: validIntermediary['connect']!,
    field: 'remote',
    wrong: [undefined, 'x', null, [], {}, { address: '1.2.3.4' }, { port: 1 }, { address: 1, port: 1 }, { address: '1.2.3.4', port: '1' }],
  },
  { base: validIntermediary['connect']!, field: 'connectedAt', wrong: [undefined, '1', null, {}] },
  { base: validIntermediary['connect']!, field: 'resumed', wrong: [undefined, 'false', 0, null] },
  { base: validIntermediary['connect']!, field: 'state', wrong: [undefined, 'x', [], null, 1] },
  { base: validIntermediary['input']!, field: 'id', wrong: [undefined, 1, null] },
  { base: validIntermediary['input']!, field: 'value', wrong: [undefined, 1, null, ['x']] },
  { base: validIntermediary['disconnect']!, field: 'id', wrong: [undefined, 1, null] },
  { base: validIntermediary['disconnect']!, field: 'reason', wrong: [undefined, 1, null, {}] },
  { base: validIntermediary['synced']!, field: 'count', wrong: [undefined, -1, 1.5, '1', null] },
  { base: validIntermediary['synced from a cluster gateway']!, field: 'eventAcks', wrong: ['true', 1, {}, null] },
  { base: validIntermediary['ping']!, field: 'ts', wrong: [undefined, '1', null, {}] },
  { base: validIntermediary['error']!, field: 'code', wrong: [undefined, 'IMI_NOPE', 'imi_auth', 1, null, 'toString'] },
  { base: validIntermediary['error']!, field: 'message', wrong: [undefined, 1, null, {}] },
  { base: validIntermediary['error']!, field: 'txn_id', wrong: [1, null, {}] },
  { base: validIntermediary['shutdown']!, field: 'reason', wrong: [undefined, 1, null] },
  { base: validIntermediary['connect of a telnet user']!, field: 'telnet', wrong: ['x', [], null, 1] },
  { base: validIntermediary['telnet']!, field: 'id', wrong: [undefined, 1, null] },
  { base: validIntermediary['telnet']!, field: 'telnet', wrong: [undefined, 'x', [], null, 1] },
  { base: validIntermediary['gmcp']!, field: 'id', wrong: [undefined, 1, null] },
  { base: validIntermediary['gmcp']!, field: 'package', wrong: [undefined, 1, null, {}] },
];

describe('validateIntermediaryMessage', () => {
  for (const [name, message] of Object.entries(validIntermediary)) {
    it(`accepts ${name}, returning the same object unchanged`, () => {
      const input = copy(message);
      const result = expectMessage(validateIntermediaryMessage(input));
      expect(result).toBe(input);
      expect(result).toEqual(message);
      expect(conformsToIntermediaryMessage(result)).toBe(true);
    });
  }

  it('accepts every error code of the table', () => {
    for (const code of ERROR_CODES) {
      expectMessage(validateIntermediaryMessage({ param: 'error', txn_id: TXN, data: { code, message: 'm' } }));
    }
  });

  for (const { base, field, wrong } of intermediaryFieldCases) {
    it(`rejects a wrong ${String(base['param'])} data.${field} with IMI_BAD_MESSAGE naming the field`, () => {
      for (const value of wrong) {
        const error = expectError(validateIntermediaryMessage(withField(base, 'data', field, value)), 'IMI_BAD_MESSAGE', `data.${field}`);
        expect(error.txnId).toBe(TXN);
      }
    });
  }

  it('requires a string txn_id on every message', () => {
    for (const txnId of [undefined, 42, null, {}, []]) {
      for (const base of Object.values(validIntermediary)) {
        expectError(validateIntermediaryMessage(withField(base, 'envelope', 'txn_id', txnId)), 'IMI_BAD_MESSAGE', 'txn_id');
      }
    }
  });

  it('rejects a wrong seq or redelivered, naming the field', () => {
    for (const seq of [-1, 1.5, '1', null, true]) {
      expectError(validateIntermediaryMessage(withField(validIntermediary['input']!, 'envelope', 'seq', seq)), 'IMI_BAD_MESSAGE', 'seq');
    }
    for (const redelivered of ['true', 1, null]) {
      expectError(validateIntermediaryMessage(withField(validIntermediary['input']!, 'envelope', 'redelivered', redelivered)), 'IMI_BAD_MESSAGE', 'redelivered');
    }
  });

  it('rejects a data that is not an object', () => {
    for (const base of Object.values(validIntermediary)) {
      for (const data of [undefined, null, 'x', 1, []]) {
        expectError(validateIntermediaryMessage(withField(base, 'envelope', 'data', data)), 'IMI_BAD_MESSAGE', '"data"');
      }
    }
  });

  it('rejects a missing param with IMI_BAD_MESSAGE and an unknown one with IMI_UNKNOWN_PARAM', () => {
    expectError(validateIntermediaryMessage({ txn_id: TXN, data: {} }), 'IMI_BAD_MESSAGE', 'param');
    expectError(validateIntermediaryMessage({ param: 7, txn_id: TXN, data: {} }), 'IMI_BAD_MESSAGE', 'param');
    for (const param of ['output', 'hello', 'broadcast', 'ack', 'pong', 'null', 'state', 'nope']) {
      const error = expectError(validateIntermediaryMessage({ param, txn_id: TXN, data: {} }), 'IMI_UNKNOWN_PARAM', JSON.stringify(param));
      expect(error.txnId).toBe(TXN);
    }
  });

  it('rejects garbage of every JSON type with IMI_BAD_MESSAGE', () => {
    for (const value of [null, 0, 'connect', true, [], [validIntermediary['input']], undefined]) {
      expectError(validateIntermediaryMessage(value), 'IMI_BAD_MESSAGE', 'must be a JSON object');
    }
  });

  it('never throws on anything: the result is a ProtocolError or a message of the right shape', () => {
    fc.assert(
      fc.property(fc.oneof(fc.anything(), fc.jsonValue()), (value) => {
        const result = validateIntermediaryMessage(value);
        if (result instanceof ProtocolError) expect(['IMI_BAD_MESSAGE', 'IMI_UNKNOWN_PARAM']).toContain(result.code);
        else expect(conformsToIntermediaryMessage(result)).toBe(true);
      }),
      RUNS,
    );
  });

  const nearMessage = fc.record(
    {
      param: fc.oneof(fc.constantFrom(...INTERMEDIARY_PARAMS, ...APP_PARAMS), fc.jsonValue({ maxDepth: 1 })),
      txn_id: fc.oneof(fc.uuid(), fc.jsonValue({ maxDepth: 1 })),
      seq: fc.oneof(fc.nat(), fc.jsonValue({ maxDepth: 1 })),
      redelivered: fc.oneof(fc.boolean(), fc.jsonValue({ maxDepth: 1 })),
      data: fc.oneof(
        fc.dictionary(
          fc.constantFrom('id', 'transport', 'remote', 'connectedAt', 'resumed', 'state', 'value', 'reason', 'count', 'ts', 'code', 'message', 'txn_id'),
          fc.oneof(fc.constantFrom(...ERROR_CODES), fc.record({ address: fc.jsonValue({ maxDepth: 0 }), port: fc.jsonValue({ maxDepth: 0 }) }), fc.jsonValue({ maxDepth: 2 })),
        ),
        fc.jsonValue({ maxDepth: 2 }),
      ),
    },
    { requiredKeys: [] },
  );
  it('on message-like objects with fields of any type, returns a ProtocolError or a message of the right shape', () => {
    fc.assert(
      fc.property(nearMessage, (value) => {
        const result = validateIntermediaryMessage(value);
        if (result instanceof ProtocolError) expect(['IMI_BAD_MESSAGE', 'IMI_UNKNOWN_PARAM']).toContain(result.code);
        else expect(conformsToIntermediaryMessage(result)).toBe(true);
      }),
      RUNS,
    );
  });
});

describe('param sets and isJsonObject', () => {
  it('list exactly the params of each direction', () => {
    expect([...APP_PARAMS].sort()).toEqual(['ack', 'broadcast', 'disconnect', 'gmcp', 'hello', 'mssp', 'null', 'output', 'pong', 'state', 'telnet']);
    expect([...INTERMEDIARY_PARAMS].sort()).toEqual(['connect', 'disconnect', 'error', 'gmcp', 'input', 'ping', 'shutdown', 'synced', 'telnet']);
  });

  it('isJsonObject is true only for non-null, non-array objects', () => {
    expect(isJsonObject({})).toBe(true);
    expect(isJsonObject({ a: [1] })).toBe(true);
    for (const value of [null, undefined, [], [{}], 'x', 1, true]) expect(isJsonObject(value)).toBe(false);
  });
});

// Compile-time check: a validated message narrows on `param`.
function narrow(m: AppMessage | IntermediaryMessage): string {
  return m.param === 'output' ? m.data.value : m.param;
}
void narrow;
