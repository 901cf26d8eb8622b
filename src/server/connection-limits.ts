// Connection limits for the gRPC listeners and the HTTP cache: a client
// that connects and never speaks, or stops mid-way, must not hold a
// descriptor and buffers forever, and one process must not be able to open
// connections until the daemon runs out of descriptors.
import type * as http from 'node:http';
import type * as http2 from 'node:http2';
import type { Socket } from 'node:net';
import { DEFAULT_MAX_BUFFERED_BYTES } from './request-budget.js';

export interface ConnectionLimits {
  /** Connections served at once per listener; more are closed at once. */
  maxConnections: number;
  /** A connection must complete its HTTP/2 preface and SETTINGS (or send HTTP/1.1 request headers) within this. */
  handshakeMs: number;
  /** A connection on which no bytes move either way for this long is closed (a stalled read or write included). */
  idleMs: number;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS of gRPC connections (both paths). */
  maxStreams: number;
  /** A single stream (gRPC) or response (HTTP) that waits on its client this long without progress is reset (stream-stall.ts). */
  streamStallMs: number;
  /** Bytes queued on one HTTP response before waiting for the client to read them. */
  httpWriteBufferBytes: number;
  /** The daemon-wide budget of bytes held in memory for clients (request-budget.ts). */
  maxBufferedBytes: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  maxConnections: 1024,
  handshakeMs: 10_000,
  idleMs: 300_000,
  maxStreams: 1000,
  streamStallMs: 60_000,
  httpWriteBufferBytes: 256 * 1024,
  maxBufferedBytes: DEFAULT_MAX_BUFFERED_BYTES,
};

/** Applies `limits` to grpc-js's HTTP/2 servers (already bound). */
export function limitHttp2Connections(servers: Iterable<http2.Http2Server>, limits: ConnectionLimits): void {
  for (const h of servers) {
    h.maxConnections = limits.maxConnections;
    // Node creates the session (and emits 'session') inside its own
    // 'connection' listener, which runs before ours: that pairs the raw
    // socket with its session. The socket is what must be destroyed: a
    // session that never received a preface does not close it.
    let created: http2.ServerHttp2Session | undefined;
    h.on('session', (session: http2.ServerHttp2Session) => (created = session));
    h.on('connection', (socket: Socket) => {
      const session = created;
      created = undefined;
      const handshake = setTimeout(() => socket.destroy(), limits.handshakeMs);
      socket.once('close', () => clearTimeout(handshake));
      // 'remoteSettings' comes once the client's preface and SETTINGS frame arrived.
      session?.once('remoteSettings', () => clearTimeout(handshake));
      // Idle means no call either: one the daemon takes long to answer (a
      // collection) moves no bytes meanwhile, and a client's PINGs, answered
      // inside nghttp2, do not count as activity. A call that waits on its
      // client is stream-stall.ts's to end.
      let calls = 0;
      session?.on('stream', (stream: http2.ServerHttp2Stream) => {
        calls++;
        stream.once('close', () => calls--);
      });
      socket.setTimeout(limits.idleMs, () => {
        if (calls === 0) socket.destroy();
      });
    });
  }
}

/** Applies `limits` to the HTTP/1.1 binary cache. */
export function limitHttpConnections(server: http.Server, limits: ConnectionLimits): void {
  server.maxConnections = limits.maxConnections;
  // Node checks headersTimeout only every 30 s, so the first request's
  // deadline is a timer of our own; later ones are covered by keepAliveTimeout.
  const waiting = new Map<Socket, NodeJS.Timeout>();
  server.on('connection', (socket: Socket) => {
    const t = setTimeout(() => socket.destroy(), limits.handshakeMs);
    t.unref();
    waiting.set(socket, t);
    socket.once('close', () => {
      clearTimeout(t);
      waiting.delete(socket);
    });
  });
  server.on('request', (req: http.IncomingMessage) => {
    const t = waiting.get(req.socket);
    if (t === undefined) return;
    clearTimeout(t);
    waiting.delete(req.socket);
  });
  // Socket inactivity: also ends a NAR response the client stopped reading.
  server.timeout = limits.idleMs;
  server.keepAliveTimeout = Math.min(server.keepAliveTimeout, limits.idleMs);
}
