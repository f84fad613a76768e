// Quick throughput check of the FrameDecoder (the full benchmark lives in bench/).
import { FrameDecoder, validateAppMessage, encodeFrame } from '@imi/core';

function run(frameBytes, totalMiB = 64) {
  const filler = 'x'.repeat(Math.max(0, frameBytes - 60));
  const frame = encodeFrame({ param: 'output', data: { id: '0b6f3f7e-aaaa', value: filler } });
  const perChunk = Math.max(1, Math.floor(65536 / frame.length));
  const chunk = Buffer.from(frame.repeat(perChunk));
  const chunks = Math.ceil((totalMiB * 1024 * 1024) / chunk.length);
  let messages = 0;
  const decoder = new FrameDecoder({ validate: validateAppMessage }, { onMessage: () => messages++, onError: (e) => { throw e; } });
  const samples = [];
  for (let rep = 0; rep < 5; rep++) {
    const t0 = process.hrtime.bigint();
    for (let c = 0; c < chunks; c++) decoder.write(chunk);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    samples.push(s);
  }
  samples.sort((a, b) => a - b);
  const med = samples[2];
  const bytes = chunks * chunk.length;
  console.log(`${frame.length} B frames: ${(bytes / med / 1e6).toFixed(0)} MB/s, ${((chunks * perChunk) / med / 1e3).toFixed(0)}k frames/s (median of 5)`);
}
run(64);
run(1024);
