/**
 * The admin API's HTTP plumbing: JSON answers, bounded request bodies, query
 * parameters, and the error that becomes a status code.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Largest request body the admin API reads (`POST /broadcast`, `DELETE /sessions/:id`): 64 KiB. */
export const ADMIN_MAX_BODY_BYTES = 64 * 1024;

/** A request the admin API refuses: becomes the answer's status, message (JSON) and extra headers. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Answers with `body` as JSON, never cached. */
export function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.statusCode = status;
  response.setHeader('content-type', 'application/json; charset=utf-8');
  response.setHeader('cache-control', 'no-store');
  response.setHeader('content-length', Buffer.byteLength(text));
  response.end(text);
}

/** Reads a request body, refusing (413) past {@link ADMIN_MAX_BODY_BYTES} without buffering the excess. */
export function readBody(request: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(request.headers['content-length']);
    const tooLarge = (): HttpError => new HttpError(413, `the body is over ${ADMIN_MAX_BODY_BYTES} bytes`, { connection: 'close' });
    if (Number.isFinite(declared) && declared > ADMIN_MAX_BODY_BYTES) {
      reject(tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    request.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > ADMIN_MAX_BODY_BYTES) {
        failed = true;
        chunks.length = 0;
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks));
    });
    request.on('error', (error) => {
      if (!failed) reject(error);
      failed = true;
    });
  });
}

/** Whether the request says its body is JSON. */
export function isJson(request: IncomingMessage): boolean {
  return /^application\/json\b/i.test(request.headers['content-type'] ?? '');
}

/** The body as a JSON object; 400 otherwise. */
export function parseJsonObject(body: Buffer): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'the body is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new HttpError(400, 'the body must be a JSON object');
  return parsed as Record<string, unknown>;
}

/** A non-negative integer query parameter, or `fallback` when absent; 400 otherwise. */
export function integerParam(url: URL, name: string, fallback: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new HttpError(400, `${name} must be a non-negative integer`);
  return value;
}

/** A boolean query parameter's value: present and empty, `1`, `true` or `yes`. */
export function isTrue(value: string | null): boolean {
  return value !== null && ['1', 'true', 'yes', ''].includes(value.toLowerCase());
}

/** Rounded to three decimals (the figures of /stats). */
export function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
