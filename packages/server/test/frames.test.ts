// The frames built from string templates must be byte for byte what
// encodeFrame() gives for the same message (apps may compare or hash them),
// and the objects handed over in process (inputMessage, disconnectMessage)
// encode to those same frames.
import { describe, expect, it } from 'vitest';
import { connectFrame, disconnectMessage, eventFrame, inputFrame, inputMessage } from '../src/app/frames.js';
import { encodeFrame } from '@imi/core';

const txnOf = (frame: string): string => (JSON.parse(frame) as { txn_id: string }).txn_id;

describe('template frames', () => {
  const users = [
    { id: '5f0c2a4e-8d1e-4c3b-9a77-000000000001', transport: 'tcp', remote: { address: '::ffff:10.0.0.7', port: 50112 }, connectedAt: 1795600000000 },
    { id: 'restored "id" \\ é', transport: 'telnet', remote: { address: '', port: 0, proxied: true }, connectedAt: 0 },
  ];
  const states = [{}, { name: 'bob', hp: [1, 2, { x: 'é\n"' }] }];
  const telnets = [undefined, { naws: { width: 80, height: 24 }, echo: false }];

  it('connectFrame equals eventFrame("connect", …) for every shape', () => {
    for (const user of users)
      for (const state of states)
        for (const telnet of telnets)
          for (const resumed of [false, true])
            for (const seq of [0, 7]) {
              const built = connectFrame(user, resumed, state, telnet === undefined ? undefined : JSON.stringify(telnet), seq);
              const data: Record<string, unknown> = { id: user.id, transport: user.transport, remote: user.remote, connectedAt: user.connectedAt, resumed, state };
              if (telnet !== undefined) data['telnet'] = telnet;
              const message: Record<string, unknown> = { param: 'connect', data, txn_id: txnOf(built) };
              if (seq !== 0) message['seq'] = seq;
              expect(built).toBe(encodeFrame(message));
              // and the object path gives the same shape
              const viaEvent = eventFrame('connect', data, seq);
              expect(viaEvent.replace(txnOf(viaEvent), txnOf(built))).toBe(built);
            }
  });

  it('inputFrame equals encodeFrame of the input message', () => {
    for (const [seq, redelivered] of [[0, false], [3, false], [3, true]] as const) {
      const built = inputFrame(users[0]!.id, 'say "hi" \\ é\u2028', 'a3b1c2d3-0000-4000-8000-000010000000', seq, redelivered);
      const message: Record<string, unknown> = { param: 'input', data: { id: users[0]!.id, value: 'say "hi" \\ é\u2028' }, txn_id: 'a3b1c2d3-0000-4000-8000-000010000000' };
      if (seq !== 0) message['seq'] = seq;
      if (redelivered) message['redelivered'] = true;
      expect(built).toBe(encodeFrame(message));
    }
  });

  it('inputMessage and disconnectMessage encode to the frames inputFrame and eventFrame give', () => {
    for (const [seq, redelivered] of [[0, false], [3, false], [3, true]] as const) {
      const value = 'say "hi" \\ é\u2028';
      const txn = 'a3b1c2d3-0000-4000-8000-000010000000';
      expect(encodeFrame(inputMessage(users[0]!.id, value, txn, seq, redelivered))).toBe(inputFrame(users[0]!.id, value, txn, seq, redelivered));
      const gone = disconnectMessage(users[0]!.id, 'closed', seq);
      const viaEvent = eventFrame('disconnect', { id: users[0]!.id, reason: 'closed' }, seq);
      expect(encodeFrame(gone)).toBe(viaEvent.replace(txnOf(viaEvent), (gone as { txn_id: string }).txn_id));
    }
  });
});
