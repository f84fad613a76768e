// The codec benchmark: FrameDecoder throughput on small (64 B) and 1 KiB
// frames, fed in 64 KiB chunks (what a socket delivers under load), with
// the validator the intermediary uses (validateAppMessage), with a no-op
// validator (the decoder alone), and, for reference, the naive way
// (split on "\n" + JSON.parse per line, no validation, none of the
// decoder's guarantees).
//
// Usage: node bench/codec.mjs [--ms 800] [--reps 3] [--chunk 65536]
// Prints {"event":"result","cases":[...]}.
import { FrameDecoder, validateAppMessage } from '@imi/core';
import { emit, median, parseFlags } from './lib/util.mjs';

const flags = parseFlags(process.argv.slice(2));
const runMs = Number(flags.ms ?? 800);
const reps = Number(flags.reps ?? 3);
const chunkBytes = Number(flags.chunk ?? 65536);
const TOTAL_BYTES = 4 * 1024 * 1024;

/** An `output` frame of exactly `size` bytes (newline included), as an app sends. */
function frameOfSize(size, i) {
  const id = size >= 256 ? `5f0c2a4e-8d1e-4c3b-9a77-${String(i % 1e12).padStart(12, '0')}` : `u${i % 100000}`;
  const base = JSON.stringify({ param: 'output', data: { id, value: '' } });
  // value ends with \r\n (4 bytes escaped in JSON), like a reply.
  const room = size - 1 - base.length - 4;
  if (room < 0) throw new Error(`frame size ${size} too small`);
  const value = 'x'.repeat(room) + '\r\n';
  const text = JSON.stringify({ param: 'output', data: { id, value } }) + '\n';
  if (Buffer.byteLength(text) !== size) throw new Error(`frame is ${Buffer.byteLength(text)} bytes, wanted ${size}`);
  return text;
}

function makeStream(size) {
  const frames = [];
  let bytes = 0;
  for (let i = 0; bytes < TOTAL_BYTES; i++) {
    const frame = frameOfSize(size, i);
    frames.push(frame);
    bytes += size;
  }
  const buffer = Buffer.from(frames.join(''));
  const chunks = [];
  for (let at = 0; at < buffer.length; at += chunkBytes) chunks.push(buffer.subarray(at, Math.min(buffer.length, at + chunkBytes)));
  return { buffer, chunks, frames: frames.length };
}

function measure(chunks, framesPerPass, bytesPerPass, decoder) {
  // Warm up (JIT), then time whole passes for at least runMs.
  for (let i = 0; i < 2; i++) for (const chunk of chunks) decoder.write(chunk);
  decoder.reset();
  let passes = 0;
  const started = performance.now();
  let elapsed = 0;
  do {
    for (const chunk of chunks) decoder.write(chunk);
    passes++;
    elapsed = performance.now() - started;
  } while (elapsed < runMs);
  if (decoder.count() !== passes * framesPerPass) throw new Error(`decoded ${decoder.count()} frames, expected ${passes * framesPerPass}`);
  const seconds = elapsed / 1000;
  return { mbPerSec: (passes * bytesPerPass) / seconds / 1e6, framesPerSec: (passes * framesPerPass) / seconds };
}

/** A FrameDecoder with a counting sink. */
function frameDecoder(validate) {
  return () => {
    let count = 0;
    let errors = 0;
    const decoder = new FrameDecoder({ validate }, { onMessage: () => count++, onError: () => errors++ });
    return {
      write: (chunk) => decoder.write(chunk),
      reset: () => (count = 0),
      count: () => {
        if (errors > 0) throw new Error(`${errors} decode errors`);
        return count;
      },
    };
  };
}

/** The naive reference: a string buffer, split on "\n", JSON.parse per line. */
function naive() {
  let count = 0;
  let buffer = '';
  return {
    write: (chunk) => {
      buffer += chunk.toString('utf8');
      let start = 0;
      let newline;
      while ((newline = buffer.indexOf('\n', start)) !== -1) {
        const value = JSON.parse(buffer.slice(start, newline));
        if (value.param !== undefined) count++;
        start = newline + 1;
      }
      buffer = buffer.slice(start);
    },
    reset: () => (count = 0),
    count: () => count,
  };
}

const variants = [
  ['FrameDecoder + validateAppMessage', frameDecoder(validateAppMessage)],
  ['FrameDecoder, no-op validator', frameDecoder((value) => value)],
  ['reference: split + JSON.parse', naive],
];

// The variants are interleaved (A, B, C, A, B, C, …) so that load from
// other processes falls on all of them alike; the ratio to the reference is
// taken per repetition.
const cases = [];
const ratios = [];
for (const size of [64, 1024]) {
  const { buffer, chunks, frames } = makeStream(size);
  const runs = variants.map(() => []);
  for (let rep = 0; rep < reps; rep++) {
    variants.forEach(([, make], i) => runs[i].push(measure(chunks, frames, buffer.length, make())));
  }
  variants.forEach(([name], i) => {
    cases.push({
      frameBytes: size,
      variant: name,
      mbPerSec: median(runs[i].map((r) => r.mbPerSec)),
      framesPerSec: median(runs[i].map((r) => r.framesPerSec)),
      runs: runs[i],
    });
  });
  const perRep = runs[0].map((r, rep) => r.mbPerSec / runs[variants.length - 1][rep].mbPerSec);
  ratios.push({ frameBytes: size, ratio: median(perRep), spread: [Math.min(...perRep), Math.max(...perRep)], perRep });
}
emit('result', { chunkBytes, streamBytes: TOTAL_BYTES, runMs, reps, cases, ratios });
