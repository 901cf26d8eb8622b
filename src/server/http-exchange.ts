// One request of the HTTP binary cache as the route handlers see it, and
// what they share: errors with a status, text answers, backpressured writes.
import type * as http from 'node:http';
import type { ByteBudget } from '../util/byte-budget.js';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface Exchange {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  head: boolean;
  /** Body bytes actually handed to the socket. */
  bytes: number;
  /** Said in the access-log line after the status. */
  note?: string;
  /** The metrics' route label. */
  route: string;
  /** Bytes queued on the response before waiting for 'drain' (default 256 KiB). */
  writeBufferBytes?: number;
  /** A write that waits this long for the client to read is given up: the connection is closed. */
  stallMs?: number;
  /** The daemon's budget of bytes held for clients (request-budget.ts). */
  budget?: ByteBudget;
}

export const DEFAULT_WRITE_BUFFER_BYTES = 256 * 1024;

export function sendText(x: Exchange, status: number, contentType: string, text: string): void {
  const body = Buffer.from(text, 'utf8');
  x.res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': body.length });
  if (x.head) x.res.end();
  else {
    x.bytes += body.length;
    x.res.end(body);
  }
}

/**
 * Writes with backpressure; false when the connection is gone. `written`:
 * called once the socket has the bytes, never if the write fails (the
 * caller must not reuse their memory then).
 */
export function write(x: Exchange, chunk: Uint8Array, written?: () => void): Promise<boolean> | boolean {
  if (x.res.destroyed) return false;
  x.bytes += chunk.length;
  // A 1 MiB chunk always exceeds the socket's 16 KiB high-water mark;
  // waiting for 'drain' after each would leave the socket idle between
  // chunks, so keep up to writeBufferBytes queued instead.
  const more = written ? x.res.write(chunk, (err) => void (err ? undefined : written())) : x.res.write(chunk);
  if (more || x.res.writableLength < (x.writeBufferBytes ?? DEFAULT_WRITE_BUFFER_BYTES)) return true;
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(stalled);
      x.res.off('drain', onDrain);
      x.res.off('close', onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    // A client that stopped reading: its queued bytes are freed with the connection.
    const stalled = x.stallMs === undefined ? undefined : setTimeout(() => (x.res.destroy(), done(false)), x.stallMs);
    x.res.on('drain', onDrain);
    x.res.on('close', onClose);
  });
}

/** Log-safe rendering of a request target: printable ASCII only, bounded length. */
export function showTarget(target: string): string {
  const clean = target.replace(/[^\x21-\x7e]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return clean.length > 200 ? `${clean.slice(0, 200)}…` : clean;
}

/**
 * One kind of request: the methods it answers and the request path (raw
 * text, query cut off) it matches. The cache answers the first route whose
 * path matches; a matching path with another method gets 405.
 */
export interface Route {
  methods: readonly string[];
  path: RegExp;
  /** Changes the store: needs the write token, refused by a read-only daemon. */
  writes?: boolean;
  handle(x: Exchange, m: RegExpExecArray): Promise<void> | void;
}
