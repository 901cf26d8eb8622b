// The binary cache's share of the daemon's budget of bytes held for
// clients (request-budget.ts): a NAR response holds its write buffer and
// the renderer's working set, an upload what it reads into memory. When
// the budget is spent a request is answered 503 with Retry-After before
// anything is held for it.
import type { Holding } from '../util/byte-budget.js';
import { DEFAULT_WRITE_BUFFER_BYTES, HttpError, type Exchange } from './http-exchange.js';
import { overBudget, RETRY_AFTER_S } from './request-budget.js';

/** What rendering a NAR holds besides the response's write buffer: the chunk being sent and the one read ahead. */
export const NAR_RENDER_BYTES = 2 << 20;

/** What a NAR response holds: its write buffer, the renderer's working set and its compressor's (compressorBytes). */
export function narResponseBytes(x: Exchange, compressor = 0): number {
  return (x.writeBufferBytes ?? DEFAULT_WRITE_BUFFER_BYTES) + NAR_RENDER_BYTES + compressor;
}

/** A holding of `bytes` for this exchange, or a 503 with Retry-After; undefined when the daemon has no budget. */
export function holdFor(x: Exchange, bytes: number): Holding | undefined {
  const h = x.budget?.holding();
  if (h && !h.set(bytes)) refuse(x, h);
  return h;
}

/** Grows `h` by `bytes`, or answers 503 with Retry-After. */
export function growOr503(x: Exchange, h: Holding | undefined, bytes: number): void {
  if (h && !h.grow(bytes)) {
    h.release();
    refuse(x, h);
  }
}

function refuse(x: Exchange, h: Holding): never {
  if (!x.res.headersSent) x.res.setHeader('Retry-After', String(RETRY_AFTER_S));
  throw new HttpError(503, overBudget(h).message);
}
