// CastoreError kinds ↔ gRPC status codes (wire.md §6).
import type { ServiceError } from '@grpc/grpc-js';
import { status, statusName } from './status-codes.js';
import { CastoreError, type ErrorKind } from '../castore/errors.js';
import { ProtoDecodeError } from '../proto/reader.js';

const TO_STATUS: Record<ErrorKind, status> = {
  invalid: status.INVALID_ARGUMENT,
  'not-found': status.NOT_FOUND,
  precondition: status.FAILED_PRECONDITION,
  storage: status.DATA_LOSS,
  unavailable: status.UNAVAILABLE,
  'too-large': status.RESOURCE_EXHAUSTED,
  unauthenticated: status.UNAUTHENTICATED,
  'read-only': status.PERMISSION_DENIED,
  internal: status.INTERNAL,
};

const FROM_STATUS = new Map<number, ErrorKind>([
  [status.INVALID_ARGUMENT, 'invalid'],
  [status.NOT_FOUND, 'not-found'],
  [status.FAILED_PRECONDITION, 'precondition'],
  [status.DATA_LOSS, 'storage'],
  [status.UNAVAILABLE, 'unavailable'],
  [status.DEADLINE_EXCEEDED, 'unavailable'],
  [status.RESOURCE_EXHAUSTED, 'too-large'],
  [status.UNAUTHENTICATED, 'unauthenticated'],
  [status.PERMISSION_DENIED, 'read-only'],
]);

export interface StatusObject {
  code: number;
  details: string;
}

/** What a server handler sends for an error thrown by a service. */
export function toStatus(err: unknown): StatusObject {
  if (err instanceof CastoreError) return { code: TO_STATUS[err.kind], details: err.message };
  if (err instanceof ProtoDecodeError) return { code: status.INVALID_ARGUMENT, details: err.message };
  return { code: status.INTERNAL, details: (err as Error)?.message ?? String(err) };
}

export function isServiceError(err: unknown): err is ServiceError {
  return typeof err === 'object' && err !== null && typeof (err as ServiceError).code === 'number' && 'details' in err;
}

/** What a gRPC client backend throws for a failed call. */
export function fromServiceError(err: unknown, what: string): CastoreError {
  if (!isServiceError(err)) return new CastoreError('internal', `${what}: ${(err as Error)?.message ?? err}`, { cause: err });
  const kind = FROM_STATUS.get(err.code) ?? 'internal';
  return new CastoreError(kind, `${what}: ${statusName(err.code) ?? err.code}: ${err.details}`, { cause: err });
}
