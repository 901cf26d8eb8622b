// One HTTP/2 connection per address, shared by everyone using that address
// and closed with the last user (like ../channel.ts does for grpc-js).
// Connections are opened on demand: when the server goes away (close,
// error, GOAWAY), the next call simply dials again.
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { MethodDefinition } from '@grpc/grpc-js';
import { status } from '../status-codes.js';
import { parseGrpcAddr, type GrpcTarget } from '../address.js';
import { AUTH_TOKEN_FILE_ENV, PING_MS, clientAuthToken } from '../client-settings.js';
import { GrpcError } from './status.js';

/** Receive window per stream and per connection; 64 KiB ones stall big Reads (see channel.ts). */
const WINDOW_BYTES = 32 * 1024 * 1024;
const WAIT_CONNECT_MS = 10_000;
// While calls are in flight the server is PINGed every PING_MS; a PING not
// answered by the next one ends the session (its calls fail UNAVAILABLE,
// and are retried on a new one): a stopped daemon, or a listener that is
// not one, would otherwise hold a copy for ever.
const USER_AGENT = 'nix-castore/0.1.0 (node:http2)';

/** A method with its request headers built once, rather than per call. */
export interface H2Method<Req, Res> {
  readonly headers: http2.OutgoingHttpHeaders;
  readonly serialize: (req: Req) => Buffer;
  readonly deserialize: (bytes: Buffer) => Res;
  /**
   * A request serialized as parts, written as they are: a request that is
   * mostly bytes fields goes out without copying them into a message
   * buffer. Undefined serializes it whole.
   */
  readonly split?: (req: Req) => Uint8Array[] | undefined;
  /**
   * Responses are BlobChunks whose data may reach the reader in pieces,
   * as views of the network reads they arrive in (each piece a BlobChunk
   * of its own), instead of being copied together into a buffer per
   * message first.
   */
  readonly dataPieces?: boolean;
}

/** Errors of `session.request()` that only mean "this session is done": dial again. */
const STALE_SESSION = new Set(['ERR_HTTP2_GOAWAY_SESSION', 'ERR_HTTP2_INVALID_SESSION']);
/** A client has the odd stream ids below 2^31; a session that used them up is replaced. */
const STREAMS_PER_SESSION = 2 ** 30 - 1;

export class H2Connection {
  private session: http2.ClientHttp2Session | undefined;
  /** Calls in flight: the connection keeps the process alive only while there are some. */
  private active = 0;
  private streamsLeft = 0;
  private closed = false;
  /** What the last failed dial said, for wait-connect's message. */
  private lastError = 'timed out';
  /** `:authority`: tvix clients use `localhost` for unix sockets; servers must not care. */
  private readonly authority: string;

  constructor(
    private readonly addr: string,
    private readonly target: GrpcTarget,
    private readonly token: string | undefined,
  ) {
    this.authority = target.target.startsWith('unix:') ? 'localhost' : target.target;
  }

  method<Req, Res>(m: MethodDefinition<Req, Res>): H2Method<Req, Res> {
    const headers: http2.OutgoingHttpHeaders = {
      ':method': 'POST',
      ':path': m.path,
      ':authority': this.authority,
      'content-type': 'application/grpc',
      te: 'trailers',
      'user-agent': USER_AGENT,
    };
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    return { headers, serialize: m.requestSerialize, deserialize: m.responseDeserialize };
  }

  /** Opens a stream for one call; pair with `callEnded()`. */
  request(headers: http2.OutgoingHttpHeaders): http2.ClientHttp2Stream {
    if (this.closed) throw new GrpcError(status.UNAVAILABLE, `connection to ${this.addr} closed`);
    let stream: http2.ClientHttp2Stream;
    try {
      stream = this.live().request(headers);
    } catch (err) {
      if (!STALE_SESSION.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
      this.session = undefined;
      stream = this.live().request(headers);
    }
    const s = this.session!;
    if (this.active++ === 0) s.ref();
    if (--this.streamsLeft === 0) {
      s.close(); // its streams finish; the next call dials
      this.session = undefined;
    }
    return stream;
  }

  callEnded(): void {
    if (--this.active === 0) this.session?.unref();
  }

  /** Resolves once connected; rejects with `cannot connect to ADDR: …` after 10 s of failed attempts. */
  waitConnected(ms = WAIT_CONNECT_MS): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let retry: NodeJS.Timeout | undefined;
      let delay = 100;
      let off = (): void => {};
      // A referenced timer: an idle session does not keep the process alive, the wait must.
      const deadline = setTimeout(() => done(new Error(`cannot connect to ${this.addr}: ${this.lastError}`)), ms);
      const done = (err?: Error): void => {
        clearTimeout(deadline);
        clearTimeout(retry);
        off();
        if (err) reject(err);
        else resolve();
      };
      const attempt = (): void => {
        if (this.closed) return done(new Error(`cannot connect to ${this.addr}: closed`));
        const s = this.live();
        if (!s.connecting) return done();
        const up = (): void => done();
        const down = (): void => {
          off();
          retry = setTimeout(attempt, delay);
          delay = Math.min(2 * delay, 1000);
        };
        off = () => {
          s.off('connect', up);
          s.off('close', down);
        };
        s.once('connect', up);
        s.once('close', down);
      };
      attempt();
    });
  }

  close(): void {
    this.closed = true;
    this.session?.close();
    this.session = undefined;
  }

  /** The current session, dialling a new one if there is none or it is closing. */
  private live(): http2.ClientHttp2Session {
    const s = this.session;
    if (s !== undefined && !s.closed && !s.destroyed) return s;
    return (this.session = this.dial());
  }

  private dial(): http2.ClientHttp2Session {
    const s = http2.connect(`${this.target.tls ? 'https' : 'http'}://${this.authority}`, {
      createConnection: () => this.socket(),
      settings: { initialWindowSize: WINDOW_BYTES, enablePush: false },
      // Like grpc-js: Node's 10 MB default makes a busy session refuse new streams.
      maxSessionMemory: Number.MAX_SAFE_INTEGER,
    });
    const forget = (): void => {
      if (this.session === s) this.session = undefined;
    };
    s.on('error', (err: Error) => {
      this.lastError = err.message;
      forget();
    });
    s.on('goaway', forget);
    s.on('close', forget);
    s.once('connect', () => s.setLocalWindowSize(WINDOW_BYTES));
    this.watch(s);
    if (this.active === 0) s.unref();
    this.streamsLeft = STREAMS_PER_SESSION;
    return s;
  }

  /** Ends `s` once a PING sent while calls were in flight goes unanswered for PING_MS. */
  private watch(s: http2.ClientHttp2Session): void {
    let unanswered = false;
    const tick = setInterval(() => {
      if (this.active === 0 || s.destroyed) {
        unanswered = false;
        return;
      }
      if (unanswered) {
        this.lastError = `no answer from ${this.addr} in ${Math.round((2 * PING_MS) / 1000)} s (a daemon stopped, or something else listening there)`;
        s.destroy(new Error(this.lastError));
        return;
      }
      unanswered = true;
      try {
        s.ping((err) => void (err ? undefined : (unanswered = false)));
      } catch {
        // not connected yet: unanswered, as far as the next tick is concerned
      }
    }, PING_MS);
    tick.unref();
    s.once('close', () => clearInterval(tick));
  }

  private socket(): net.Socket {
    const t = this.target.target;
    if (t.startsWith('unix:')) return net.connect(t.slice('unix://'.length));
    const colon = t.lastIndexOf(':');
    const host = t.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
    const port = Number(t.slice(colon + 1));
    if (!this.target.tls) return net.connect({ host, port, noDelay: true });
    const socket = tls.connect({ host, port, servername: net.isIP(host) ? undefined : host, ALPNProtocols: ['h2'] });
    socket.setNoDelay(true);
    return socket;
  }
}

interface Entry {
  conn: H2Connection;
  users: number;
  ready: Promise<void>;
}
const connections = new Map<string, Entry>();

export interface SharedH2Connection {
  conn: H2Connection;
  /** Resolves when connected (only awaited with `?wait-connect=1`). */
  ready: Promise<void>;
  release(): void;
}

export function acquireH2Connection(addr: string): SharedH2Connection {
  const t = parseGrpcAddr(addr);
  const token = clientAuthToken();
  const key = `${t.tls ? 's' : 'p'}:${t.target}${token === undefined ? '' : ` auth:${process.env[AUTH_TOKEN_FILE_ENV]}`}`;
  let e = connections.get(key);
  if (!e) {
    const conn = new H2Connection(addr, t, token);
    const ready = t.waitConnect ? conn.waitConnected() : Promise.resolve();
    ready.catch(() => {}); // reported to whoever awaits it
    e = { conn, users: 0, ready };
    connections.set(key, e);
  }
  e.users++;
  const entry = e;
  let released = false;
  return {
    conn: entry.conn,
    ready: entry.ready,
    release() {
      if (released) return;
      released = true;
      if (--entry.users === 0) {
        connections.delete(key);
        entry.conn.close();
      }
    },
  };
}
