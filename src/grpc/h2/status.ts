// How a gRPC call over HTTP/2 ends: the grpc-status trailer, or what the
// HTTP status, a stream reset or a lost connection stand for (gRPC's
// PROTOCOL-HTTP2.md and http-grpc-status-mapping.md).
import type { IncomingHttpHeaders } from 'node:http2';
import { constants } from 'node:http2';
import { status, statusName } from '../status-codes.js';
import type { StatusObject } from '../status.js';

/**
 * A failed call, shaped like grpc-js's ServiceError (`code` + `details`) so
 * that `fromServiceError` in ../status.ts turns it into a CastoreError.
 */
export class GrpcError extends Error {
  override name = 'GrpcError';
  constructor(
    readonly code: number,
    readonly details: string,
  ) {
    super(`${code} ${statusName(code) ?? 'UNKNOWN'}: ${details}`);
  }
}

/** `application/grpc`, optionally followed by `+proto`, `;charset=…` etc. */
export function isGrpcContentType(ct: string | undefined): boolean {
  return ct !== undefined && ct.startsWith('application/grpc') && (ct.length === 16 || ct[16] === '+' || ct[16] === ';');
}

/** The code for a response without grpc-status, by its HTTP status. */
export function codeForHttpStatus(httpStatus: number | undefined): status {
  switch (httpStatus) {
    case 400:
      return status.INTERNAL;
    case 401:
      return status.UNAUTHENTICATED;
    case 403:
      return status.PERMISSION_DENIED;
    case 404:
      return status.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return status.UNAVAILABLE;
    default:
      return status.UNKNOWN;
  }
}

/** The grpc-status in trailers (or the headers of a trailers-only response); -1 when absent. */
export function grpcStatusIn(h: IncomingHttpHeaders | undefined): number {
  const v = h?.['grpc-status'];
  if (v === undefined) return -1;
  const code = Number(v);
  return Number.isInteger(code) && code >= 0 && code <= 16 ? code : status.UNKNOWN;
}

export function grpcMessageIn(h: IncomingHttpHeaders | undefined): string {
  const v = h?.['grpc-message'];
  return typeof v === 'string' ? decodeGrpcMessage(v) : '';
}

/** grpc-message is percent-encoded UTF-8; malformed escapes are kept as they are. */
export function decodeGrpcMessage(v: string): string {
  if (!v.includes('%')) return v;
  try {
    return decodeURIComponent(v);
  } catch {
    const bytes: number[] = [];
    for (let i = 0; i < v.length; i++) {
      const hex = v[i] === '%' ? v.slice(i + 1, i + 3) : '';
      if (/^[0-9a-fA-F]{2}$/.test(hex)) {
        bytes.push(parseInt(hex, 16));
        i += 2;
      } else bytes.push(v.charCodeAt(i) & 0xff);
    }
    return Buffer.from(bytes).toString('utf8');
  }
}

const RST_NAMES = [
  'NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT', 'STREAM_CLOSED',
  'FRAME_SIZE_ERROR', 'REFUSED_STREAM', 'CANCEL', 'COMPRESSION_ERROR', 'CONNECT_ERROR', 'ENHANCE_YOUR_CALM',
  'INADEQUATE_SECURITY', 'HTTP_1_1_REQUIRED',
];

/** Node's errors for a session that is gone or going; the call never reached a server that answers. */
const SESSION_ERRORS = new Set(['ERR_HTTP2_GOAWAY_SESSION', 'ERR_HTTP2_INVALID_SESSION', 'ERR_HTTP2_SESSION_ERROR', 'ERR_SOCKET_CLOSED']);

function isConnectionError(err: Error): boolean {
  const e = err as NodeJS.ErrnoException;
  return typeof e.syscall === 'string' || (e.code !== undefined && SESSION_ERRORS.has(e.code));
}

/**
 * The status of a stream that closed before the server sent one.
 * Connection trouble (refused, socket gone, GOAWAY, REFUSED_STREAM) is
 * UNAVAILABLE, so callers retry; any other reset is INTERNAL.
 */
export function failureStatus(err: Error | undefined, rstCode: number | undefined, sessionGone: boolean): StatusObject {
  if (rstCode === constants.NGHTTP2_REFUSED_STREAM) {
    return { code: status.UNAVAILABLE, details: 'the server refused the stream (REFUSED_STREAM) without processing it' };
  }
  // Streams still waiting for the connection fail with ERR_HTTP2_STREAM_CANCEL caused by the socket error.
  const cause = err !== undefined && (err as NodeJS.ErrnoException).code === 'ERR_HTTP2_STREAM_CANCEL' && err.cause instanceof Error ? err.cause : err;
  if (cause !== undefined && isConnectionError(cause)) return { code: status.UNAVAILABLE, details: cause.message };
  if (sessionGone) return { code: status.UNAVAILABLE, details: cause ? cause.message : 'connection lost' };
  if (rstCode) return { code: status.INTERNAL, details: `stream reset by the server with ${RST_NAMES[rstCode] ?? `code ${rstCode}`}` };
  return { code: status.INTERNAL, details: cause ? cause.message : 'the stream ended without a gRPC status' };
}
