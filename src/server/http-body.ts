// Reading a request's body: bounded before and while it is read.
import { HttpError, type Exchange } from './http-exchange.js';
import { growOr503, holdFor } from './http-budget.js';

/** What is dropped (listings, build logs) is read to its end; this bounds how long. */
const MAX_IGNORED_BYTES = 256 << 20;

export function declaredLength(x: Exchange, max: number, what: string): void {
  const cl = x.req.headers['content-length'];
  if (cl !== undefined && (!/^\d+$/.test(cl) || Number(cl) > max)) {
    throw new HttpError(413, `${what} of ${cl} bytes: at most ${max} accepted`);
  }
}

/** The whole body, refusing more than `max` bytes; held against the daemon's budget while it is read. */
export async function readBody(x: Exchange, max: number, what: string): Promise<Buffer> {
  declaredLength(x, max, what);
  const parts: Buffer[] = [];
  let n = 0;
  const held = holdFor(x, 0);
  try {
    for await (const chunk of x.req as AsyncIterable<Buffer>) {
      n += chunk.length;
      if (n > max) throw new HttpError(413, `${what} larger than ${max} bytes`);
      growOr503(x, held, chunk.length);
      parts.push(chunk);
    }
    return Buffer.concat(parts);
  } finally {
    held?.release();
  }
}

/** Reads a body that is not kept to its end. */
export async function drain(x: Exchange, what: string): Promise<void> {
  declaredLength(x, MAX_IGNORED_BYTES, what);
  let n = 0;
  for await (const chunk of x.req as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > MAX_IGNORED_BYTES) throw new HttpError(413, `${what} larger than ${MAX_IGNORED_BYTES} bytes`);
  }
}
