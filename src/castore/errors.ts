// Errors the services raise. Each kind maps to one gRPC status code (see
// src/server/status.ts), and gRPC clients map status codes back, so every
// backend fails the same way in the conformance suites.

export type ErrorKind =
  | 'invalid' // bad request: INVALID_ARGUMENT
  | 'not-found' // NOT_FOUND
  | 'precondition' // refers to something missing: FAILED_PRECONDITION
  | 'storage' // backend trouble: DATA_LOSS
  | 'unavailable' // transient: UNAVAILABLE
  | 'too-large' // RESOURCE_EXHAUSTED
  | 'unauthenticated' // UNAUTHENTICATED
  | 'read-only' // PERMISSION_DENIED
  | 'internal'; // anything else

export class CastoreError extends Error {
  override name = 'CastoreError';
  constructor(
    readonly kind: ErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const invalid = (msg: string): CastoreError => new CastoreError('invalid', msg);
export const storageError = (msg: string, cause?: unknown): CastoreError =>
  new CastoreError('storage', `storage error: ${msg}`, { cause });

export function isKind(err: unknown, kind: ErrorKind): boolean {
  return err instanceof CastoreError && err.kind === kind;
}
