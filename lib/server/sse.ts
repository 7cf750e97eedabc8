// Server-sent events (text/event-stream): one event is `event: <name>`, an optional `id:`, the data
// as `data:` lines (one per line of the payload), and a blank line.
import type { ServerResponse } from 'node:http';

/** One event in the wire format. Newlines in the data become separate `data:` lines (CR, LF or CRLF). */
export function formatSseEvent(event: string, data: string, id?: string): string {
  if (/[\r\n]/.test(event) || (id !== undefined && /[\r\n]/.test(id))) throw new Error('SSE event names and ids cannot contain line breaks');
  const lines = [`event: ${event}`];
  if (id !== undefined) lines.push(`id: ${id}`);
  for (const line of data.split(/\r\n|\r|\n/)) lines.push(`data: ${line}`);
  return `${lines.join('\n')}\n\n`;
}

/** A comment line: ignored by clients, keeps proxies and idle timeouts from closing the stream. */
export const SSE_HEARTBEAT = ': ping\n\n';

/** An open event stream on a response, with a heartbeat; close() ends it. */
export class SseStream {
  readonly #response: ServerResponse;
  readonly #heartbeat: NodeJS.Timeout;
  #closed = false;
  #count = 0;

  constructor(response: ServerResponse, heartbeatMs = 15_000) {
    this.#response = response;
    response.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    response.flushHeaders();
    this.#heartbeat = setInterval(() => this.#write(SSE_HEARTBEAT), heartbeatMs);
    this.#heartbeat.unref();
    response.on('close', () => this.close());
  }

  get closed(): boolean {
    return this.#closed;
  }

  send(event: string, data: unknown): void {
    this.#write(formatSseEvent(event, JSON.stringify(data, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value)), String(++this.#count)));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#heartbeat);
    this.#response.end();
  }

  #write(text: string): void {
    if (!this.#closed) this.#response.write(text);
  }
}
