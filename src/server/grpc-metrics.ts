// gRPC metrics for both transports at once: grpc-js and the lean
// node:http2 path (lean-blob.ts) serve streams of the same HTTP/2 servers,
// so a call is observed once, from its headers to the stream's close, with
// the grpc-status it was answered with (from the sent trailers, or the
// headers of a trailers-only answer).
import type * as grpc from '@grpc/grpc-js';
import { constants, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { grpcDuration, grpcHandled, trackSocket } from '../metrics/metrics.js';

type ServerInternals = {
  http2Servers?: Map<import('node:http2').Http2Server, unknown>;
  handlers?: Map<string, unknown>;
};

const CODE_NAMES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];

/** One method's metric children, looked up once (labels are hashed on every plain inc/observe). */
interface PathLabels {
  service: string;
  method: string;
  duration: { observe(v: number): void };
  handled: Map<string, { inc(): void }>;
}

function pathLabels(service: string, method: string): PathLabels {
  return { service, method, duration: grpcDuration.labels(service, method), handled: new Map() };
}

/** Observes every call of `server` (call after it is bound). */
export function observeGrpc(server: grpc.Server): void {
  const internals = server as unknown as ServerInternals;
  // Labels only for methods the server has: a client cannot grow the label set.
  const known = new Map<string, PathLabels>();
  const other = pathLabels('unknown', 'unknown');
  const labelsOf = (path: string): PathLabels => {
    let l = known.get(path);
    if (l) return l;
    const m = /^\/([^/]+)\/([^/]+)$/.exec(path);
    if (!m || !internals.handlers?.has(path)) return other;
    known.set(path, (l = pathLabels(m[1], m[2])));
    return l;
  };
  for (const h of internals.http2Servers?.keys() ?? []) {
    h.on('connection', (socket: Socket) => trackSocket(socket, 'grpc'));
    h.prependListener('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
      const start = process.hrtime.bigint();
      const labels = labelsOf(String(headers[':path']));
      stream.once('close', () => {
        labels.duration.observe(Number(process.hrtime.bigint() - start) / 1e9);
        const code = codeOf(stream);
        let counter = labels.handled.get(code);
        if (!counter) labels.handled.set(code, (counter = grpcHandled.labels(labels.service, labels.method, code)));
        counter.inc();
      });
    });
  }
}

function codeOf(stream: ServerHttp2Stream): string {
  const sent = stream.sentTrailers?.['grpc-status'] ?? stream.sentHeaders?.['grpc-status'];
  if (sent === undefined) return stream.rstCode === constants.NGHTTP2_NO_ERROR ? 'UNKNOWN' : 'CANCELLED';
  return CODE_NAMES[Number(sent)] ?? 'UNKNOWN';
}
