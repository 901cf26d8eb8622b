// Server-side request decoding. A request that is not valid protobuf for its
// message type is the client's fault, so the daemon answers it with
// INVALID_ARGUMENT. grpc-js answers INTERNAL ("Error deserializing request")
// when a requestDeserialize throws — and so does tonic for prost decode
// errors — so the daemon's deserializers never throw: they hand the handler
// a MalformedRequest, which the handler wrappers in handlers.ts turn into
// INVALID_ARGUMENT (before anything is read or stored).
import { type MethodDefinition, type ServiceDefinition } from '@grpc/grpc-js';
import { toStatus, type StatusObject } from '../grpc/status.js';
import { invalid, type CastoreError } from '../castore/errors.js';

export class MalformedRequest {
  constructor(readonly error: Error) {}
}

/** `def` with request deserializers that return a MalformedRequest instead of throwing. */
export function tolerantDecoding<S extends ServiceDefinition>(def: S): S {
  const out: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const [name, m] of Object.entries(def) as [string, MethodDefinition<unknown, unknown>][]) {
    const decode = m.requestDeserialize;
    out[name] = {
      ...m,
      requestDeserialize: (buf: Buffer) => {
        try {
          return decode(buf);
        } catch (err) {
          return new MalformedRequest(err instanceof Error ? err : new Error(String(err)));
        }
      },
    };
  }
  return out as S;
}

/** The error (kind `invalid`: INVALID_ARGUMENT) for a request that could not be decoded. */
export function malformedError(req: MalformedRequest): CastoreError {
  return invalid(`malformed request: ${req.error.message}`);
}

/** The status to answer when `req` could not be decoded; undefined for a decoded request. */
export function malformedStatus(req: unknown): StatusObject | undefined {
  return req instanceof MalformedRequest ? toStatus(malformedError(req)) : undefined;
}
