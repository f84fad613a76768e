// imi-server under the V8 profiler, for `bench/handover.mjs --profile DIR`:
// node refuses --cpu-prof in NODE_OPTIONS, and a successor is started with
// the script only, so this wrapper (which the old process runs again as its
// successor: it is process.argv[1]) profiles from inside with node:inspector
// and writes DIR/imi-<pid>.cpuprofile when the process exits.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

const dir = process.env.IMI_BENCH_PROFILE_DIR;
const session = new Session();
session.connect();
session.post('Profiler.enable');
session.post('Profiler.setSamplingInterval', { interval: 250 });
session.post('Profiler.start');
// An in-thread inspector session answers synchronously, so this works in 'exit'.
process.on('exit', () => session.post('Profiler.stop', (error, result) => error || writeFileSync(join(dir, `imi-${process.pid}.cpuprofile`), JSON.stringify(result.profile))));
await import(process.env.IMI_BENCH_CLI);
