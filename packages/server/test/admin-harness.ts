// Helpers for the admin API tests: plain HTTP requests to 127.0.0.1 and a
// small parser of the Prometheus text format.
import http from 'node:http';

/** An HTTP answer, body as text. */
export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** The body parsed as JSON (throws if it is not). */
  json<T = Record<string, unknown>>(): T;
}

/** One request to `host:port` (127.0.0.1 unless given), with an optional bearer token; no keep-alive. */
export function request(
  port: number,
  path: string,
  options: { method?: string; token?: string; body?: string | Buffer; headers?: Record<string, string>; host?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { connection: 'close', ...options.headers };
    if (options.token !== undefined) headers['authorization'] = `Bearer ${options.token}`;
    // Node sends a DELETE body without a length unless told: give it one (or chunked, when asked for).
    if (options.body !== undefined && headers['transfer-encoding'] === undefined) headers['content-length'] = String(Buffer.byteLength(options.body));
    const req = http.request({ host: options.host ?? '127.0.0.1', port, path, method: options.method ?? 'GET', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: <T>() => JSON.parse(text) as T });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** One sample line of the Prometheus text format. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format (comments skipped). */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]!] = pair[2]!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The value of `name` with exactly these labels (other labels must not exist), or undefined. */
export function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = Object.entries(labels);
  const found = samples.find(
    (sample) => sample.name === name && Object.keys(sample.labels).length === wanted.length && wanted.every(([key, value]) => sample.labels[key] === value),
  );
  return found?.value;
}

/** The sum of every sample named `name`, whatever its labels. */
export function sumOf(samples: Sample[], name: string): number {
  return samples.filter((sample) => sample.name === name).reduce((total, sample) => total + sample.value, 0);
}

/** Scrapes `/metrics` (200 expected) and parses it. */
export async function scrape(port: number, token?: string): Promise<Sample[]> {
  const answer = await request(port, '/metrics', token === undefined ? {} : { token });
  if (answer.status !== 200) throw new Error(`/metrics answered ${answer.status}: ${answer.text}`);
  return parseMetrics(answer.text);
}
