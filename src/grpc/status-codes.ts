// gRPC's status codes (wire.md §6), for the lean HTTP/2 client: importing
// them from grpc-js loaded all of grpc-js (67 modules) into the copy's
// upload thread, which needs none of it — a third of that thread's start,
// during which the daemon waits for the copy's first blobs.
// Same names and numbers as grpc-js's `status` (and gRPC's spec).
export const status = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type status = (typeof status)[keyof typeof status];

const NAMES = Object.keys(status);

/** The code's name (`NOT_FOUND`), or undefined for a code gRPC does not define. */
export function statusName(code: number): string | undefined {
  return NAMES[code];
}
