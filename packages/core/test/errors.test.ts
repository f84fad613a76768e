import { describe, expect, it } from 'vitest';
import { ERROR_CODES, ERROR_TABLE, ImiError, LimitError, ProtocolError, isImiErrorCode, type ImiErrorCode } from '@imi/core';

describe('ERROR_TABLE', () => {
  const entries = Object.entries(ERROR_TABLE);

  it('has a description and a how-to-solve for every code', () => {
    expect(entries.length).toBeGreaterThanOrEqual(9);
    for (const [code, entry] of entries) {
      expect(Object.keys(entry).sort(), code).toEqual(['description', 'howToSolve']);
      expect(typeof entry.description, code).toBe('string');
      expect(typeof entry.howToSolve, code).toBe('string');
      expect(entry.description.trim().length, code).toBeGreaterThan(10);
      expect(entry.howToSolve.trim().length, code).toBeGreaterThan(10);
    }
  });

  it('codes all start with IMI_ and are upper snake case', () => {
    for (const code of Object.keys(ERROR_TABLE)) expect(code).toMatch(/^IMI_[A-Z0-9]+(_[A-Z0-9]+)*$/);
  });

  it('has every code the protocol names', () => {
    for (const code of ['IMI_BAD_FRAME', 'IMI_BAD_MESSAGE', 'IMI_UNKNOWN_PARAM', 'IMI_UNKNOWN_ID', 'IMI_AUTH', 'IMI_APP_BUSY', 'IMI_REPLACED', 'IMI_DEP_TIMEOUT', 'IMI_LIMIT']) {
      expect(Object.hasOwn(ERROR_TABLE, code), code).toBe(true);
    }
  });

  it('ERROR_CODES lists the table keys, in table order, once each', () => {
    expect(ERROR_CODES).toEqual(Object.keys(ERROR_TABLE));
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
  });

  it('no two codes share a description', () => {
    const descriptions = entries.map(([, e]) => e.description);
    expect(new Set(descriptions).size).toBe(descriptions.length);
  });
});

describe('isImiErrorCode', () => {
  it('is true for every code of the table', () => {
    for (const code of ERROR_CODES) expect(isImiErrorCode(code)).toBe(true);
  });

  it('is false for anything else, inherited object keys included', () => {
    for (const value of ['IMI_NOPE', 'imi_auth', 'IMI_', '', 'toString', 'constructor', '__proto__', 'hasOwnProperty', 1, null, undefined, {}, ['IMI_AUTH']]) {
      expect(isImiErrorCode(value)).toBe(false);
    }
  });
});

describe('error classes', () => {
  it('ImiError carries its code, message, txn id, session id and cause, and is an Error', () => {
    const cause = new Error('socket reset');
    const error = new ImiError('IMI_AUTH', 'bad token', { cause, txnId: 't1', sessionId: 's1' });
    expect(error).toBeInstanceOf(Error);
    expect(error).toBeInstanceOf(ImiError);
    expect(error.name).toBe('ImiError');
    expect(error.code).toBe('IMI_AUTH');
    expect(error.message).toBe('bad token');
    expect(error.txnId).toBe('t1');
    expect(error.sessionId).toBe('s1');
    expect(error.cause).toBe(cause);
    expect(error.stack).toContain('bad token');
    expect(String(error)).toBe('ImiError: bad token');
  });

  it('ImiError without options has no cause, txn id or session id', () => {
    const error = new ImiError('IMI_CLOSED', 'closed');
    expect('cause' in error).toBe(false);
    expect(error.txnId).toBeUndefined();
    expect(error.sessionId).toBeUndefined();
  });

  it('a falsy cause is still kept', () => {
    expect(new ImiError('IMI_PLUGIN', 'x', { cause: 0 }).cause).toBe(0);
    expect(new ImiError('IMI_PLUGIN', 'x', { cause: null }).cause).toBeNull();
  });

  it('ProtocolError is an ImiError and an Error, with its code', () => {
    const error = new ProtocolError('IMI_BAD_FRAME', 'not valid JSON', { txnId: 'x' });
    expect(error).toBeInstanceOf(Error);
    expect(error).toBeInstanceOf(ImiError);
    expect(error).toBeInstanceOf(ProtocolError);
    expect(error.name).toBe('ProtocolError');
    expect(error.code).toBe('IMI_BAD_FRAME');
    expect(error.txnId).toBe('x');
  });

  it('LimitError is an ImiError and an Error, always IMI_LIMIT, with the limit name and value', () => {
    const error = new LimitError('maxLineBytes', 4096, 'line too long', { sessionId: 's' });
    expect(error).toBeInstanceOf(Error);
    expect(error).toBeInstanceOf(ImiError);
    expect(error).toBeInstanceOf(LimitError);
    expect(error).not.toBeInstanceOf(ProtocolError);
    expect(error.name).toBe('LimitError');
    expect(error.code).toBe('IMI_LIMIT');
    expect(error.limit).toBe('maxLineBytes');
    expect(error.value).toBe(4096);
    expect(error.sessionId).toBe('s');
  });

  it('every code can be carried by every class', () => {
    for (const code of ERROR_CODES) {
      expect(new ImiError(code, 'm').code).toBe(code);
      expect(new ProtocolError(code, 'm').code).toBe(code);
    }
  });

  it('codes type-check as ImiErrorCode', () => {
    const code: ImiErrorCode = 'IMI_LIMIT';
    // @ts-expect-error not a code
    const wrong: ImiErrorCode = 'IMI_NOPE';
    expect([code, wrong]).toHaveLength(2);
  });
});
