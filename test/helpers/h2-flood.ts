// Raw HTTP/2 streams against a daemon, as an attacker opens them: many
// gRPC calls on one connection, each sending exactly the given bytes and
// then idling (no END_STREAM). Each stream's answer is recorded: its
// grpc-status, or the RST_STREAM code it was reset with.
import * as http2 from 'node:http2';
import * as net from 'node:net';

export interface FloodStream {
  req: http2.ClientHttp2Stream;
  /** grpc-status of the answer, if one came. */
  status?: number;
  /** RST_STREAM code, once the stream closed. */
  rst?: number;
  closed: boolean;
}

export interface Flood {
  session: http2.ClientHttp2Session;
  streams: FloodStream[];
  /** Resolves once every stream has sent its bytes or been answered/closed. */
  settled: Promise<void>;
  close(): Promise<void>;
}

/** A gRPC frame prefix declaring `length` bytes. */
export function prefix(length: number, flag = 0): Buffer {
  const p = Buffer.alloc(5);
  p[0] = flag;
  p.writeUInt32BE(length, 1);
  return p;
}

export function connectUnix(socket: string): http2.ClientHttp2Session {
  // The attacker's own session buffers all it sends: no memory cap on it (Node's default is 10 MB).
  const session = http2.connect('http://localhost', { createConnection: () => net.connect(socket), maxSessionMemory: 1 << 20 });
  session.on('error', () => {});
  return session;
}

/** Opens `count` streams to `path` on one new connection, each writing `body` and never ending. */
export function flood(socket: string, path: string, count: number, body: Buffer[], extra: Record<string, string> = {}): Flood {
  const session = connectUnix(socket);
  const streams: FloodStream[] = [];
  const done: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...extra }, { endStream: false });
    const s: FloodStream = { req, closed: false };
    streams.push(s);
    req.on('error', () => {});
    req.on('response', (h) => h['grpc-status'] !== undefined && (s.status = Number(h['grpc-status'])));
    req.on('trailers', (t) => t['grpc-status'] !== undefined && (s.status ??= Number(t['grpc-status'])));
    req.resume();
    done.push(
      new Promise<void>((resolve) => {
        req.on('close', () => {
          s.closed = true;
          s.rst = req.rstCode;
          resolve();
        });
        req.on('response', (h) => h['grpc-status'] !== undefined && resolve());
        let left = body.length;
        for (const b of body) req.write(b, () => --left === 0 && resolve());
      }),
    );
  }
  return {
    session,
    streams,
    settled: Promise.all(done).then(() => {}),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of streams) if (!s.closed) s.req.close(http2.constants.NGHTTP2_CANCEL);
        session.close(() => resolve());
        session.destroy();
      }),
  };
}
