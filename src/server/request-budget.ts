// The daemon's one budget for bytes it holds in memory on behalf of
// clients: request messages being reassembled or queued, the bytes a
// Put's store writer keeps before writing them out, Directory Put streams,
// narinfo uploads and NAR responses. Without it, 400 streams that each
// send all but the last byte of a 4 MiB message hold 1.6 GiB.
// Beyond it a request fails at once (RESOURCE_EXHAUSTED, HTTP 503) and
// frees what it held; nothing waits for room, so nothing grows.
import { CastoreError } from '../castore/errors.js';
import { ByteBudget, type Holding } from '../util/byte-budget.js';
import { bufferRefusals, observeBufferedBytes } from '../metrics/metrics.js';

export const DEFAULT_MAX_BUFFERED_BYTES = 256 * 1024 * 1024;

/** Seconds an HTTP client is told to wait (Retry-After) when the budget is spent. */
export const RETRY_AFTER_S = 5;

/** A daemon's budget; the metrics report it. */
export function requestBudget(limit = DEFAULT_MAX_BUFFERED_BYTES): ByteBudget {
  const budget = new ByteBudget(limit);
  observeBufferedBytes(() => budget.inUse, limit);
  return budget;
}

/** The error (RESOURCE_EXHAUSTED) for a request refused because the budget is spent. */
export function overBudget(h: Pick<Holding, 'limit'>): CastoreError {
  bufferRefusals.inc();
  return new CastoreError(
    'too-large',
    `the daemon holds its limit of ${h.limit} bytes of unfinished requests (--max-buffered-bytes); retry later`,
  );
}
