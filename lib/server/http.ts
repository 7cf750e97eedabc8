// Small node:http helpers for the server: bounded body reading, JSON replies, and errors that carry
// their HTTP status and become `{ "error": { "status", "code", "message", "type", "param" } }`
// replies (the OpenAI error shape plus the status, so OpenAI SDKs read code, param and message).
import type { IncomingMessage, ServerResponse } from 'node:http';

import { isStepVideoError } from '../errors.js';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
    /** The request field or query parameter at fault (OpenAI's `param`). */
    readonly param?: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** Bytes drained (and thrown away) from a body that is already too large before the connection is cut. */
const MAX_DRAIN_BYTES = 16 * 1024 * 1024;

/**
 * The request body, at most `limit` bytes: a larger one (declared or sent) is a 413. The rest of an
 * oversized body is drained (up to 16 MiB) so the client reads the reply instead of a reset.
 */
export function readBody(request: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const tooLarge = () => new HttpError(413, 'body_too_large', `request body larger than ${limit} bytes`);
    const declared = Number(request.headers['content-length']);
    const chunks: Buffer[] = [];
    let received = 0;
    let over = Number.isFinite(declared) && declared > limit;
    request.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > limit) over = true;
      if (!over) chunks.push(chunk);
      else if (received > limit + MAX_DRAIN_BYTES) request.destroy();
    });
    request.on('end', () => (over ? reject(tooLarge()) : resolve(Buffer.concat(chunks))));
    request.on('close', () => {
      if (over) reject(tooLarge());
      else if (!request.complete) reject(new HttpError(400, 'body_incomplete', 'the request body ended early'));
    });
    request.on('error', (error) => reject(new HttpError(400, 'body_error', `cannot read the request body: ${error.message}`)));
  });
}

/** The body parsed as a JSON object (400 for anything else). */
export async function readJsonObject(request: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  return parseJsonObject(await readBody(request, limit));
}

export function parseJsonObject(body: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new HttpError(400, 'bad_json', `the body is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new HttpError(400, 'bad_request', 'the body must be a JSON object');
  return value as Record<string, unknown>;
}

export function sendJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value))}\n`;
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  response.end(text);
}

/** HTTP status of a library error: user mistakes are 4xx, exhausted memory 507, the rest 500. */
export function statusOfError(error: unknown): number {
  if (error instanceof HttpError) return error.status;
  if (!isStepVideoError(error)) return 500;
  switch (error.code) {
    case 'ERR_ARGUMENT':
    case 'ERR_SHAPE':
    case 'ERR_DTYPE':
    case 'ERR_NOT_FINITE':
    case 'ERR_WEIGHTS_FORMAT':
    case 'ERR_USAGE':
      return 400;
    case 'ERR_ABORTED':
      return 499;
    case 'ERR_OOM':
    case 'ERR_CUDA_OOM':
      return 507;
    default:
      return 500;
  }
}

export interface ErrorBody {
  error: { status: number; code: string; message: string; type: 'invalid_request_error' | 'server_error'; param: string | null };
}

/** OpenAI's `type`: the API answers every client mistake with invalid_request_error, its own faults with server_error. */
export const errorType = (status: number): ErrorBody['error']['type'] => (status >= 500 ? 'server_error' : 'invalid_request_error');

export function errorBody(error: unknown): ErrorBody {
  const status = statusOfError(error);
  const code = error instanceof HttpError ? error.code : isStepVideoError(error) ? error.code : 'internal';
  const message = error instanceof Error ? error.message : String(error);
  const param = error instanceof HttpError && error.param !== undefined ? error.param : null;
  return { error: { status, code, message, type: errorType(status), param } };
}

export function sendError(response: ServerResponse, error: unknown): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  const headers = error instanceof HttpError ? error.headers : {};
  sendJson(response, statusOfError(error), errorBody(error), { ...headers, ...(statusOfError(error) === 413 ? { connection: 'close' } : {}) });
}
