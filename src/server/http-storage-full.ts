// A store whose disk is full answers 507 Insufficient Storage, whichever
// upload (or part of one) met it: Nix shows the message, and the operator
// sees the status in the log and metrics.
import { HttpError } from './http-exchange.js';

const FULL = new Set(['ENOSPC', 'EDQUOT']);

/** Whether `err`, or an error it wraps, is the file system saying it is full. */
export function storageFull(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (FULL.has((e as NodeJS.ErrnoException).code ?? '')) return true;
  }
  return false;
}

export function storageFullError(err: unknown): HttpError {
  return new HttpError(507, `the cache's storage is full, nothing was stored: ${(err as Error).message}`);
}
