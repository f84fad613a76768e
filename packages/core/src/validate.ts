/**
 * Validators: any parsed JSON value in, a typed message or a
 * {@link ProtocolError} out. They never throw, whatever they are given, so a
 * receiver can validate untrusted input without a try/catch.
 *
 * @module
 */
import { ProtocolError, isImiErrorCode } from './errors.js';
import { MAX_KNOWN_IN_HELLO, MAX_KNOWN_ID_LENGTH, type AppMessage, type IntermediaryMessage, type JsonObject } from './protocol.js';

type Obj = Record<string, unknown>;

function isObject(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isStringArray(value: unknown): value is string[] {
  if (!Array.isArray(value)) return false;
  for (const item of value) if (typeof item !== 'string') return false;
  return true;
}

function bad(message: string, txnId: string | undefined): ProtocolError {
  return new ProtocolError('IMI_BAD_MESSAGE', message, txnId === undefined ? {} : { txnId });
}

function field(param: string, name: string, expected: string): string {
  return `${param}: data.${name} must be ${expected}`;
}

/** The `param` values an app may send, as a set for O(1) lookups. */
export const APP_PARAMS: ReadonlySet<string> = new Set([
  'hello',
  'output',
  'disconnect',
  'broadcast',
  'state',
  'ack',
  'pong',
  'null',
  'telnet',
  'gmcp',
  'mssp',
]);

/** The `param` values the intermediary may send. */
export const INTERMEDIARY_PARAMS: ReadonlySet<string> = new Set([
  'connect',
  'input',
  'disconnect',
  'synced',
  'ping',
  'error',
  'shutdown',
  'telnet',
  'gmcp',
]);

/**
 * A GMCP package name as the app may send it: 1 to 128 characters, no
 * whitespace or control characters (a space would end the name on the wire).
 */
const GMCP_PACKAGE = /^[^\s\x00-\x1f\x7f]{1,128}$/;

/**
 * Reads `txn_id` leniently: a number (some legacy apps count their
 * transactions) is turned into its decimal string so ids compare as strings,
 * and `null` is removed (taken as absent).
 */
function readTxnId(message: Obj): string | undefined | ProtocolError {
  const txnId = message['txn_id'];
  if (txnId === undefined) return undefined;
  if (txnId === null) {
    delete message['txn_id'];
    return undefined;
  }
  if (typeof txnId === 'string') return txnId;
  if (typeof txnId === 'number' && Number.isFinite(txnId)) {
    const asString = String(txnId);
    message['txn_id'] = asString;
    return asString;
  }
  return bad('txn_id must be a string', undefined);
}

/**
 * Checks a parsed JSON value against the app → intermediary message types.
 *
 * Unknown extra fields are kept and ignored (the protocol lets receivers
 * ignore what they don't know). The returned message is the same object,
 * not a copy: validation allocates nothing on the success path. Legacy
 * leniencies are normalised in place so the result matches its type: a
 * numeric `txn_id` becomes a string, and an optional field sent as `null`
 * (`txn_id`, `dep_txns`, `updates`, `ack`, `done`, `output`'s `data.prompt`, `disconnect`'s `data.value`, `telnet`'s `data.echo`) is
 * removed.
 *
 * @param value - anything `JSON.parse` can return (or anything at all)
 * @returns the typed message, or a {@link ProtocolError} with
 *   `IMI_BAD_MESSAGE` (wrong shape, the message names the field) or
 *   `IMI_UNKNOWN_PARAM`
 */
export function validateAppMessage(value: unknown): AppMessage | ProtocolError {
  const result = checkAppMessage(value);
  // Which message was wrong: a bad `hello` is refused where another bad first frame is not (see ProtocolError.param).
  if (result instanceof ProtocolError && isObject(value) && typeof value['param'] === 'string' && APP_PARAMS.has(value['param'])) result.param = value['param'];
  return result;
}

function checkAppMessage(value: unknown): AppMessage | ProtocolError {
  if (!isObject(value)) {
    return bad(`a message must be a JSON object, got ${describe(value)}`, undefined);
  }
  const txnId = readTxnId(value);
  if (txnId instanceof ProtocolError) return txnId;
  const param = value['param'];
  if (typeof param !== 'string') return bad('missing "param" (a string)', txnId);
  if (!APP_PARAMS.has(param)) {
    return new ProtocolError('IMI_UNKNOWN_PARAM', `unknown param ${JSON.stringify(param.slice(0, 64))}`, txnId === undefined ? {} : { txnId });
  }
  const envelopeError = checkAppEnvelope(value, txnId);
  if (envelopeError) return envelopeError;

  const data = value['data'];
  if (param === 'null') return value as unknown as AppMessage;
  if (param === 'hello' && data === undefined) {
    value['data'] = {};
    return value as unknown as AppMessage;
  }
  if (!isObject(data)) return bad(`${param}: "data" must be an object`, txnId);

  switch (param) {
    case 'hello': {
      if (data['protocol'] !== undefined && !isNonNegativeInteger(data['protocol'])) return bad(field(param, 'protocol', 'an integer'), txnId);
      if (data['token'] !== undefined && typeof data['token'] !== 'string') return bad(field(param, 'token', 'a string'), txnId);
      if (data['acks'] !== undefined && typeof data['acks'] !== 'boolean') return bad(field(param, 'acks', 'a boolean'), txnId);
      if (data['name'] !== undefined && typeof data['name'] !== 'string') return bad(field(param, 'name', 'a string'), txnId);
      // Bounded: each id named costs the intermediary a lookup and maybe a `disconnect` frame.
      const known = data['known'];
      if (known !== undefined && !(isStringArray(known) && known.length <= MAX_KNOWN_IN_HELLO && known.every((id) => id.length <= MAX_KNOWN_ID_LENGTH))) {
        return bad(field(param, 'known', `an array of at most ${MAX_KNOWN_IN_HELLO} session ids (strings of at most ${MAX_KNOWN_ID_LENGTH} characters)`), txnId);
      }
      break;
    }
    case 'output': {
      if (typeof data['id'] !== 'string') return bad(field(param, 'id', 'a string'), txnId);
      if (typeof data['value'] !== 'string') return bad(field(param, 'value', 'a string'), txnId);
      if (data['prompt'] === null) delete data['prompt'];
      else if (data['prompt'] !== undefined && typeof data['prompt'] !== 'boolean') return bad(field(param, 'prompt', 'a boolean'), txnId);
      break;
    }
    case 'disconnect': {
      // Without an id this is the Perl client's acknowledgement of a user's
      // disconnect ({"success":1}): valid, and ignored by the intermediary.
      if (data['id'] === undefined) break;
      if (typeof data['id'] !== 'string') return bad(field(param, 'id', 'a string'), txnId);
      if (data['value'] === null) delete data['value'];
      else if (data['value'] !== undefined && typeof data['value'] !== 'string') return bad(field(param, 'value', 'a string'), txnId);
      break;
    }
    case 'broadcast': {
      if (typeof data['value'] !== 'string') return bad(field(param, 'value', 'a string'), txnId);
      if (data['except'] !== undefined && !isStringArray(data['except'])) return bad(field(param, 'except', 'an array of strings'), txnId);
      break;
    }
    case 'state': {
      if (typeof data['id'] !== 'string') return bad(field(param, 'id', 'a string'), txnId);
      break;
    }
    case 'ack': {
      if (!isNonNegativeInteger(data['seq'])) return bad(field(param, 'seq', 'a non-negative integer'), txnId);
      break;
    }
    case 'pong': {
      if (data['ts'] !== undefined && typeof data['ts'] !== 'number') return bad(field(param, 'ts', 'a number'), txnId);
      break;
    }
    case 'telnet': {
      if (typeof data['id'] !== 'string') return bad(field(param, 'id', 'a string'), txnId);
      if (data['echo'] === null) delete data['echo'];
      else if (data['echo'] !== undefined && typeof data['echo'] !== 'boolean') return bad(field(param, 'echo', 'a boolean'), txnId);
      break;
    }
    case 'gmcp': {
      if (typeof data['id'] !== 'string') return bad(field(param, 'id', 'a string'), txnId);
      if (typeof data['package'] !== 'string' || !GMCP_PACKAGE.test(data['package'])) {
        return bad(field(param, 'package', 'a GMCP package name (1-128 characters, no spaces)'), txnId);
      }
      if (data['protocol'] === null) delete data['protocol'];
      else if (data['protocol'] !== undefined && data['protocol'] !== 'gmcp' && data['protocol'] !== 'msdp') return bad(field(param, 'protocol', '"gmcp" or "msdp"'), txnId);
      break;
    }
    case 'mssp': {
      const problem = checkMsspVariables(data['variables']);
      if (problem !== undefined) return bad(`${param}: data.variables${problem}`, txnId);
      break;
    }
  }
  return value as unknown as AppMessage;
}

/** Most variables in one `mssp` message. */
const MAX_MSSP_VARIABLES = 256;
/** An MSSP name or text value: no control characters (bytes 1 and 2 are MSSP_VAR and MSSP_VAL on the wire). */
const MSSP_TEXT = /^[^\x00-\x1f\x7f]*$/;

/** Why `variables` is not a valid MSSP set (the rest of the message after `data.variables`), or undefined. */
function checkMsspVariables(variables: unknown): string | undefined {
  const shape = ' must be an object of MSSP variables: names to text, numbers or arrays of them';
  if (!isObject(variables)) return shape;
  const names = Object.keys(variables);
  if (names.length > MAX_MSSP_VARIABLES) return ` must have at most ${MAX_MSSP_VARIABLES} variables`;
  const isValue = (entry: unknown): boolean => (typeof entry === 'string' && MSSP_TEXT.test(entry)) || (typeof entry === 'number' && Number.isFinite(entry));
  for (const name of names) {
    const where = `[${JSON.stringify(name.slice(0, 32))}]`;
    if (name.length === 0 || name.length > 64 || !MSSP_TEXT.test(name)) return `${where}: a variable name must be 1-64 characters, no control characters`;
    const entry = variables[name];
    if (!(isValue(entry) || (Array.isArray(entry) && entry.every(isValue)))) return `${where} must be text (no control characters), a finite number, or an array of them`;
  }
  return undefined;
}

/** Checks the optional envelope fields; one sent as `null` is removed (taken as absent). */
function checkAppEnvelope(message: Obj, txnId: string | undefined): ProtocolError | undefined {
  const depTxns = message['dep_txns'];
  if (depTxns === null) delete message['dep_txns'];
  else if (depTxns !== undefined && !isStringArray(depTxns)) return bad('dep_txns must be an array of strings', txnId);
  const updates = message['updates'];
  if (updates === null) delete message['updates'];
  else if (updates !== undefined && !isObject(updates)) return bad('updates must be an object', txnId);
  const ack = message['ack'];
  if (ack === null) delete message['ack'];
  else if (ack !== undefined && !isNonNegativeInteger(ack)) return bad('ack must be a non-negative integer', txnId);
  const done = message['done'];
  if (done === null) delete message['done'];
  else if (done !== undefined && !isNonNegativeInteger(done)) return bad('done must be a non-negative integer', txnId);
  return undefined;
}

/**
 * Checks a parsed JSON value against the intermediary → app message types
 * (used by `@imi/client`). Never throws.
 *
 * @param value - anything `JSON.parse` can return
 * @returns the typed message or a {@link ProtocolError}
 */
export function validateIntermediaryMessage(value: unknown): IntermediaryMessage | ProtocolError {
  return checkIntermediaryMessage(value, false);
}

/** What a `disconnect` from the original Perl intermediary, which gives no reason, is taken to mean. */
export const LEGACY_DISCONNECT_REASON = 'closed';

/**
 * {@link validateIntermediaryMessage}, also accepting what the original Perl
 * IO::Multiplex::Intermediary sends: a `connect` with only `data.id`, and a
 * `disconnect` without `data.reason`. What it leaves out is filled in, in
 * place (only then: an imi message is returned as is): `transport` becomes
 * `"tcp"` (the original only had TCP), `state` `{}`, a disconnect's
 * `reason` {@link LEGACY_DISCONNECT_REASON}; `remote`, `connectedAt` and
 * `resumed` stay absent. `@imi/client` uses it, so an app runs against
 * either intermediary. Never throws.
 *
 * @param value - anything `JSON.parse` can return
 * @returns the typed message or a {@link ProtocolError}
 */
export function validateLegacyIntermediaryMessage(value: unknown): IntermediaryMessage | ProtocolError {
  return checkIntermediaryMessage(value, true);
}

function checkIntermediaryMessage(value: unknown, legacy: boolean): IntermediaryMessage | ProtocolError {
  if (!isObject(value)) return bad(`a message must be a JSON object, got ${describe(value)}`, undefined);
  const txnIdRaw = value['txn_id'];
  const txnId = typeof txnIdRaw === 'string' ? txnIdRaw : undefined;
  const param = value['param'];
  if (typeof param !== 'string') return bad('missing "param" (a string)', txnId);
  if (!INTERMEDIARY_PARAMS.has(param)) {
    return new ProtocolError('IMI_UNKNOWN_PARAM', `unknown param ${JSON.stringify(param.slice(0, 64))}`, txnId === undefined ? {} : { txnId });
  }
  if (txnId === undefined) return bad('txn_id must be a string', undefined);
  if (value['seq'] !== undefined && !isNonNegativeInteger(value['seq'])) return bad('seq must be a non-negative integer', txnId);
  if (value['redelivered'] !== undefined && typeof value['redelivered'] !== 'boolean') return bad('redelivered must be a boolean', txnId);
  const data = value['data'];
  if (!isObject(data)) return bad(`${param}: "data" must be an object`, txnId);
  switch (param) {
    case 'connect': {
      if (typeof data['id'] !== 'string') return bad(field(param, 'id', 'a string'), txnId);
      // The original sends nothing but the id; what it never knew stays absent.
      const lenient = legacy && data['connectedAt'] === undefined;
      if (lenient) {
        if (data['transport'] === undefined) data['transport'] = 'tcp';
        if (data['state'] === undefined) data['state'] = {};
      }
      if (typeof data['transport'] !== 'string') return bad(field(param, 'transport', 'a string'), txnId);
      const remote = data['remote'];
      if (!(lenient && remote === undefined) && (!isObject(remote) || typeof remote['address'] !== 'string' || typeof remote['port'] !== 'number')) {
        return bad(field(param, 'remote', 'an object {address: string, port: number}'), txnId);
      }
      if (!lenient && typeof data['connectedAt'] !== 'number') return bad(field(param, 'connectedAt', 'a number'), txnId);
      if (!(lenient && data['resumed'] === undefined) && typeof data['resumed'] !== 'boolean') return bad(field(param, 'resumed', 'a boolean'), txnId);
      if (!isObject(data['state'])) return bad(field(param, 'state', 'an object'), txnId);
      if (data['telnet'] !== undefined && !isObject(data['telnet'])) return bad(field(param, 'telnet', 'an object'), txnId);
      break;
    }
    case 'input': {
      if (typeof data['id'] !== 'string') return bad(field(param, 'id', 'a string'), txnId);
      if (typeof data['value'] !== 'string') return bad(field(param, 'value', 'a string'), txnId);
      if (data['prompt'] === null) delete data['prompt'];
      else if (data['prompt'] !== undefined && typeof data['prompt'] !== 'boolean') return bad(field(param, 'prompt', 'a boolean'), txnId);
      break;
    }
    case 'disconnect': {
      if (typeof data['id'] !== 'string') return bad(field(param, 'id', 'a string'), txnId);
      if (legacy && data['reason'] === undefined) data['reason'] = LEGACY_DISCONNECT_REASON;
      if (typeof data['reason'] !== 'string') return bad(field(param, 'reason', 'a string'), txnId);
      break;
    }
    case 'synced': {
      if (!isNonNegativeInteger(data['count'])) return bad(field(param, 'count', 'a non-negative integer'), txnId);
      if (data['known'] !== undefined && typeof data['known'] !== 'boolean') return bad(field(param, 'known', 'a boolean'), txnId);
      if (data['maxFrameBytes'] !== undefined && !isNonNegativeInteger(data['maxFrameBytes'])) return bad(field(param, 'maxFrameBytes', 'a non-negative integer'), txnId);
      if (data['eventAcks'] !== undefined && typeof data['eventAcks'] !== 'boolean') return bad(field(param, 'eventAcks', 'a boolean'), txnId);
      break;
    }
    case 'ping': {
      if (typeof data['ts'] !== 'number') return bad(field(param, 'ts', 'a number'), txnId);
      break;
    }
    case 'error': {
      if (!isImiErrorCode(data['code'])) return bad(field(param, 'code', 'an IMI_* code'), txnId);
      if (typeof data['message'] !== 'string') return bad(field(param, 'message', 'a string'), txnId);
      if (data['txn_id'] !== undefined && typeof data['txn_id'] !== 'string') return bad(field(param, 'txn_id', 'a string'), txnId);
      break;
    }
    case 'shutdown': {
      if (typeof data['reason'] !== 'string') return bad(field(param, 'reason', 'a string'), txnId);
      break;
    }
    case 'telnet': {
      if (typeof data['id'] !== 'string') return bad(field(param, 'id', 'a string'), txnId);
      if (!isObject(data['telnet'])) return bad(field(param, 'telnet', 'an object'), txnId);
      break;
    }
    case 'gmcp': {
      if (typeof data['id'] !== 'string') return bad(field(param, 'id', 'a string'), txnId);
      if (typeof data['package'] !== 'string') return bad(field(param, 'package', 'a string'), txnId);
      break;
    }
  }
  return value as unknown as IntermediaryMessage;
}

/** Whether a value is a JSON object usable as `state` or `updates`. */
export function isJsonObject(value: unknown): value is JsonObject {
  return isObject(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}
