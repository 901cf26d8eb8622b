// A Nix HTTP binary cache served straight from the store (store.md §5–7):
//
//   GET        /nix-cache-info
//   GET, HEAD  /<32-char store hash>.narinfo
//   GET, HEAD  /nar/<32-char store hash>-<52-char nixbase32 NAR sha256>.nar
//
// Nothing else is served: the request target is matched as raw text
// against exactly these shapes (no decoding, no normalisation, no file
// system behind it), so there is no path to traverse. NARs are rendered
// from the castore as they are sent, uncompressed, with Content-Length =
// NarSize. narinfos are signed on the fly when a key is given.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Store } from '../store/store.js';
import { renderNar } from '../store/render-nar.js';
import { MissingNarInfoError, narInfoOf, nixPathInfo, type NixPathInfo } from '../store/nix-view.js';
import { CastoreError } from '../castore/errors.js';
import { renderNarInfo } from '../nix/narinfo.js';
import * as nixbase32 from '../nix/nixbase32.js';
import type { SecretKey } from '../nix/signature.js';
import { STORE_DIR, hashPart } from '../nix/store-path.js';
import { authorizes } from './access.js';
import { NarInfoSigner } from './narinfo-signer.js';
import { DEFAULT_CONNECTION_LIMITS, limitHttpConnections, type ConnectionLimits } from './connection-limits.js';

export const DEFAULT_PRIORITY = 30;

/** Bytes queued on a NAR response before waiting for 'drain' (per connection). */
const WRITE_BUFFER_BYTES = 4 * 1024 * 1024;

export interface HttpCacheOptions {
  /** Signs every narinfo with this key (next to the stored signatures). */
  signingKey?: SecretKey;
  /** `Priority` in nix-cache-info (lower is preferred by Nix). */
  priority?: number;
  /** Receives one access-log line per request; default: stderr. */
  log?: (line: string) => void;
  /**
   * Every request must carry `Authorization: Bearer <token>` (or Basic auth
   * with the token as password, as Nix sends from netrc), else 401.
   */
  authToken?: string;
  /** Record checked signatures in the store (default true; off for a read-only daemon). */
  persistSignatures?: boolean;
  /** Connection limits and timeouts (connection-limits.ts). */
  limits?: ConnectionLimits;
}

export interface HttpListenAddr {
  host: string;
  port: number;
}

const HASH_CHARS = `[${nixbase32.ALPHABET}]`;
const STORE_HASH_RE = new RegExp(`^${HASH_CHARS}{32}$`);
const NAR_NAME_RE = new RegExp(`^(${HASH_CHARS}{32})-(${HASH_CHARS}{52})$`);

const NARINFO_PATH_RE = /^\/([^/]*)\.narinfo$/;
const NAR_PATH_RE = /^\/nar\/([^/]*)\.nar$/;

/**
 * `host:port`, `[v6]:port`, or just `port` / `:port` (then the loopback
 * address 127.0.0.1). Port 0 picks a free port.
 */
export function parseHttpAddr(s: string): HttpListenAddr {
  const bare = /^:?(\d+)$/.exec(s);
  const m = bare ? null : /^(\[[0-9a-fA-F:.]+\]|[^:[\]/]+):(\d+)$/.exec(s);
  if (!bare && !m) throw new Error(`HTTP address ${JSON.stringify(s)}: expected host:port, [v6]:port or a port number`);
  const port = Number(bare ? bare[1] : m![2]);
  if (!Number.isSafeInteger(port) || port > 65535) throw new Error(`HTTP address ${JSON.stringify(s)}: port out of range`);
  const host = bare ? '127.0.0.1' : m![1].replace(/^\[(.*)\]$/, '$1');
  return { host, port };
}

/** `http://host:port` for a bound server (IPv6 hosts in brackets). */
export function httpUrl(addr: AddressInfo | HttpListenAddr): string {
  const host = 'address' in addr ? addr.address : addr.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}`;
}

/** Log-safe rendering of a request target: printable ASCII only, bounded length. */
function showTarget(target: string): string {
  const clean = target.replace(/[^\x21-\x7e]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return clean.length > 200 ? `${clean.slice(0, 200)}…` : clean;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface Exchange {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  head: boolean;
  /** Body bytes actually handed to the socket. */
  bytes: number;
  note?: string;
}

export function createHttpCacheHandler(store: Store, opts: HttpCacheOptions = {}): http.RequestListener {
  const priority = opts.priority ?? DEFAULT_PRIORITY;
  const log = opts.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const signer = opts.signingKey && new NarInfoSigner(store, opts.signingKey, { persist: opts.persistSignatures ?? true, log });
  const cacheInfo = `StoreDir: ${STORE_DIR}\nWantMassQuery: 1\nPriority: ${priority}\n`;

  function sendText(x: Exchange, status: number, contentType: string, text: string): void {
    const body = Buffer.from(text, 'utf8');
    x.res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': body.length });
    if (x.head) x.res.end();
    else {
      x.bytes += body.length;
      x.res.end(body);
    }
  }

  /** The PathInfo for a store hash, or a 404. */
  async function find(storeHash: string): Promise<NixPathInfo> {
    const digest = nixbase32.decode(storeHash);
    const info = await store.pathInfos.get(digest);
    if (!info) throw new HttpError(404, `${storeHash} is not in the store`);
    let p: NixPathInfo;
    try {
      p = nixPathInfo(info);
    } catch (err) {
      if (err instanceof MissingNarInfoError) throw new HttpError(404, `${storeHash}: ${err.message}`);
      throw err;
    }
    if (hashPart(p.storePath) !== storeHash) throw new HttpError(404, `${storeHash} is not in the store`);
    return p;
  }

  async function serveNarInfo(x: Exchange, name: string): Promise<void> {
    if (!STORE_HASH_RE.test(name)) throw new HttpError(400, 'a narinfo is named by the 32-character nixbase32 hash of its store path');
    const p = await find(name);
    const own = signer && (await signer.signatureFor(p));
    if (signer && !own) throw new HttpError(404, `${name}: its content does not render the NAR its PathInfo claims, so it is not served`);
    sendText(x, 200, 'text/x-nix-narinfo', renderNarInfo(narInfoOf(p, own)));
  }

  async function serveNar(x: Exchange, name: string): Promise<void> {
    const m = NAR_NAME_RE.exec(name);
    if (!m) throw new HttpError(400, 'a NAR is named nar/<32-character store hash>-<52-character nixbase32 NAR sha256>.nar');
    const p = await find(m[1]);
    if (nixbase32.encode(p.narSha256) !== m[2]) throw new HttpError(404, `the NAR of ${m[1]} has another hash now`);
    const node = p.info.node!;
    const headers = { 'Content-Type': 'application/x-nix-nar', 'Content-Length': p.narSize };
    if (x.head) {
      x.res.writeHead(200, headers);
      x.res.end();
      return;
    }
    const nar = renderNar(node, store);
    // Pull the first piece before committing to a 200, so a missing root
    // (or first blob) is a clean error rather than a truncated NAR.
    let first: IteratorResult<Uint8Array>;
    try {
      first = await nar.next();
    } catch (err) {
      throw new HttpError(500, `rendering the NAR failed: ${(err as Error).message}`);
    }
    x.res.writeHead(200, headers);
    let sent = 0;
    try {
      for (let r = first; !r.done; r = await nar.next()) {
        const chunk = r.value;
        if (sent + chunk.length > p.narSize) throw new Error(`the NAR is longer than its NarSize ${p.narSize}`);
        sent += chunk.length;
        if (!(await write(x, chunk))) {
          x.note = 'client went away';
          return;
        }
      }
      if (sent !== p.narSize) throw new Error(`the NAR is ${sent} bytes, its NarSize says ${p.narSize}`);
      x.res.end();
    } catch (err) {
      // Headers are out: all we can do is cut the response short, which the
      // client sees as a truncated transfer (and Nix would also catch by hash).
      x.note = `aborted: ${(err as Error).message}`;
      x.res.destroy();
    } finally {
      await nar.return(undefined).catch(() => {});
    }
  }

  /** Writes with backpressure; false when the connection is gone. */
  function write(x: Exchange, chunk: Uint8Array): Promise<boolean> | boolean {
    if (x.res.destroyed) return false;
    x.bytes += chunk.length;
    // A 1 MiB chunk always exceeds the socket's 16 KiB high-water mark;
    // waiting for 'drain' after each would leave the socket idle between
    // chunks, so keep up to WRITE_BUFFER_BYTES queued instead.
    if (x.res.write(chunk) || x.res.writableLength < WRITE_BUFFER_BYTES) return true;
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        x.res.off('drain', onDrain);
        x.res.off('close', onClose);
        resolve(ok);
      };
      const onDrain = () => done(true);
      const onClose = () => done(false);
      x.res.on('drain', onDrain);
      x.res.on('close', onClose);
    });
  }

  async function route(x: Exchange): Promise<void> {
    if (opts.authToken !== undefined && !authorizes(x.req.headers.authorization, opts.authToken, true)) {
      x.res.setHeader('WWW-Authenticate', 'Bearer realm="nix-castore", Basic realm="nix-castore"');
      throw new HttpError(401, 'this cache needs an Authorization: Bearer <token> header');
    }
    const method = x.req.method ?? '';
    if (method !== 'GET' && method !== 'HEAD') {
      x.res.setHeader('Allow', 'GET, HEAD');
      throw new HttpError(405, `method ${method} is not allowed; this cache serves GET and HEAD`);
    }
    const target = x.req.url ?? '';
    const q = target.indexOf('?');
    const path = q < 0 ? target : target.slice(0, q);
    if (path === '/nix-cache-info') return sendText(x, 200, 'text/x-nix-cache-info', cacheInfo);
    let m = NARINFO_PATH_RE.exec(path);
    if (m) return serveNarInfo(x, m[1]);
    m = NAR_PATH_RE.exec(path);
    if (m) return serveNar(x, m[1]);
    throw new HttpError(404, 'not found');
  }

  return (req, res) => {
    const start = process.hrtime.bigint();
    const x: Exchange = { req, res, head: req.method === 'HEAD', bytes: 0 };
    res.on('close', () => {
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      const aborted = !res.writableFinished && !x.note ? ' (connection closed early)' : '';
      log(
        `nix-castore http: ${req.method} ${showTarget(req.url ?? '')} ${res.statusCode} ${x.bytes} ${ms.toFixed(1)}ms` +
          (x.note ? ` (${x.note})` : aborted),
      );
    });
    route(x).catch((err: unknown) => {
      let status = 500;
      let message = err instanceof Error ? err.message : String(err);
      if (err instanceof HttpError) status = err.status;
      else if (err instanceof CastoreError && err.kind === 'unavailable') status = 503;
      else message = `internal error: ${message}`;
      if (status >= 500) x.note = message;
      if (res.headersSent) {
        res.destroy();
        return;
      }
      sendText(x, status, 'text/plain; charset=utf-8', `${message}\n`);
    });
  };
}

export interface RunningHttpCache {
  server: http.Server;
  /** `http://host:port` as bound (the real port when 0 was asked for). */
  url: string;
  close(): Promise<void>;
}

export async function startHttpCache(store: Store, addr: HttpListenAddr, opts: HttpCacheOptions = {}): Promise<RunningHttpCache> {
  const server = http.createServer({ keepAliveTimeout: 30_000 }, createHttpCacheHandler(store, opts));
  limitHttpConnections(server, opts.limits ?? DEFAULT_CONNECTION_LIMITS);
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(new Error(`cannot serve HTTP on ${httpUrl(addr)}: ${err.message}`));
    server.once('error', onError);
    server.listen({ host: addr.host, port: addr.port }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  let closed: Promise<void> | undefined;
  return {
    server,
    url: httpUrl(server.address() as AddressInfo),
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}
