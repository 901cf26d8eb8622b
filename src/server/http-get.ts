// The reading side of the binary cache (store.md §5–7):
//
//   GET        /nix-cache-info
//   GET, HEAD  /<32-char store hash>.narinfo
//   GET, HEAD  /nar/<32-char store hash>-<52-char nixbase32 NAR sha256>.nar[.zst|.xz]
//
// NARs are rendered from the castore as they are sent, compressed on the
// way when the URL asks for it (the narinfo names the daemon's choice;
// every form stays available). Uncompressed they have Content-Length =
// NarSize; compressed their length is known only at the end (chunked).
import type { Store } from '../store/store.js';
import { renderStatedNar } from '../store/render-nar.js';
import { ChunkPool } from '../nix/nar.js';
import { MissingNarInfoError, narInfoOf, nixPathInfo, type NixPathInfo } from '../store/nix-view.js';
import { renderNarInfo } from '../nix/narinfo.js';
import * as nixbase32 from '../nix/nixbase32.js';
import type { NarInfoSigner } from './narinfo-signer.js';
import { STORE_DIR, hashPart } from '../nix/store-path.js';
import { compressionOfExtension, compressorBytes, LEVELS, type ServedCompression } from '../nix/compression-names.js';
import { HttpError, sendText, write, type Exchange, type Route } from './http-exchange.js';
import { holdFor, narResponseBytes, NAR_RENDER_BYTES } from './http-budget.js';
import { isKind } from '../castore/errors.js';

export interface GetOptions {
  /** Signs narinfos, only after checking the content renders the NAR claimed. */
  signer?: NarInfoSigner;
  priority: number;
  /** What narinfos point at. */
  compression: ServedCompression;
  compressionLevel?: number;
  /** The store hash an uploaded file (by its SHA-256) became, if any. */
  aliasOf?: (fileSha256: Uint8Array) => Promise<string | undefined>;
}

const HASH_CHARS = `[${nixbase32.ALPHABET}]`;
export const STORE_HASH_RE = new RegExp(`^${HASH_CHARS}{32}$`);
const FILE_HASH_RE = new RegExp(`^${HASH_CHARS}{52}$`);
const NAR_NAME_RE = new RegExp(`^(${HASH_CHARS}{32})-(${HASH_CHARS}{52})$`);

export const NARINFO_PATH_RE = /^\/([^/]*)\.narinfo$/;
/** `nar/<name>.nar` with an optional compression extension. */
export const NAR_PATH_RE = /^\/nar\/([^/]*)\.nar(\.[a-z0-9]+)?$/;

export function getRoutes(store: Store, opts: GetOptions): Route[] {
  const cacheInfo = `StoreDir: ${STORE_DIR}\nWantMassQuery: 1\nPriority: ${opts.priority}\n`;

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
    const own = opts.signer && (await opts.signer.signatureFor(p));
    if (opts.signer && !own) throw new HttpError(404, `${name}: its content does not render the NAR its PathInfo claims, so it is not served`);
    sendText(x, 200, 'text/x-nix-narinfo', renderNarInfo(narInfoOf(p, own, opts.compression)));
  }

  async function serveNar(x: Exchange, name: string, ext: string): Promise<void> {
    let compression = compressionOfExtension(ext);
    let p: NixPathInfo;
    if (FILE_HASH_RE.test(name)) {
      // Nix's own naming, by the hash of the file it uploaded: Nix keeps
      // that narinfo in its local cache and asks for it later. Before the
      // upload `nix copy` asks too, and must hear 404 to send it.
      const storeHash = await opts.aliasOf?.(nixbase32.decode(name));
      if (storeHash === undefined) throw new HttpError(404, `nar/${name}: no NAR was uploaded under this name`);
      p = await find(storeHash);
      // There is no bzip2 encoder here; Nix (2.4 on) decodes what it
      // downloads by its content (libarchive), whatever its narinfo says.
      if (compression === 'bzip2') compression = 'zstd';
    } else {
      const m = NAR_NAME_RE.exec(name);
      if (!m) throw new HttpError(400, 'a NAR is named nar/<32-character store hash>-<52-character nixbase32 NAR sha256>.nar[.zst|.xz]');
      p = await find(m[1]);
      if (nixbase32.encode(p.narSha256) !== m[2]) throw new HttpError(404, `the NAR of ${m[1]} has another hash now`);
    }
    if (compression === undefined || compression === 'bzip2') throw new HttpError(404, `NARs are served as .nar, .nar.zst and .nar.xz, not .nar${ext}`);
    const headers: Record<string, string | number> = { 'Content-Type': 'application/x-nix-nar' };
    if (compression === 'none') headers['Content-Length'] = p.narSize;
    if (x.head) {
      x.res.writeHead(200, headers);
      x.res.end();
      return;
    }
    const held = holdFor(x, narResponseBytes(x, compression === 'none' ? 0 : compressorBytes(compression, levelOf(compression))));
    try {
      await sendNar(x, p, compression);
    } finally {
      held?.release();
    }
  }

  async function sendNar(x: Exchange, p: NixPathInfo, compression: 'none' | 'zstd' | 'xz'): Promise<void> {
    const node = p.info.node!;
    const headers: Record<string, string | number> = { 'Content-Type': 'application/x-nix-nar' };
    if (compression === 'none') headers['Content-Length'] = p.narSize;
    // Rendering stops when the client goes away, and at the NarSize stated.
    const gone = new AbortController();
    x.res.once('close', () => gone.abort(new Error('client went away')));
    // Reads ahead beyond the working set narResponseBytes holds come out of the daemon's budget too.
    const readAhead = x.budget?.holding();
    // The NAR's chunks (the store's read buffers, the writer's) are reused once used: uncompressed once the socket has
    // them, for zstd once copied into a frame; xz's stream may hold its input longer.
    const pool = compression === 'xz' ? undefined : new ChunkPool();
    const nar = renderStatedNar(node, p.narSize, store, gone.signal, readAhead && { holding: readAhead, free: NAR_RENDER_BYTES }, pool);
    // Pull the first piece before committing to a 200, so a missing root
    // (or first blob) is a clean error rather than a truncated NAR.
    let first: IteratorResult<Uint8Array>;
    try {
      first = await nar.next();
    } catch (err) {
      // The store's backend out of reach (S3, PostgreSQL) is transient: 503, as for narinfos.
      throw new HttpError(isKind(err, 'unavailable') ? 503 : 500, `rendering the NAR failed: ${(err as Error).message}`);
    }
    const body = compression === 'none' ? withFirst(first, nar) : await compressed(withFirst(first, nar), compression, pool && ((chunk) => pool.give(chunk)));
    x.res.writeHead(200, headers);
    try {
      for await (const chunk of body) {
        if (!(await write(x, chunk, compression === 'none' ? () => pool!.give(chunk) : undefined))) {
          x.note = 'client went away';
          return;
        }
      }
      x.res.end();
    } catch (err) {
      // Headers are out: all we can do is cut the response short, which the
      // client sees as a truncated transfer (and Nix would also catch by hash).
      x.note = `aborted: ${(err as Error).message}`;
      x.res.destroy();
    } finally {
      await body.return(undefined).catch(() => {});
      await nar.return(undefined).catch(() => {});
      readAhead?.release();
    }
  }

  async function compressed(src: AsyncGenerator<Uint8Array>, kind: 'zstd' | 'xz', consumed?: (chunk: Uint8Array) => void): Promise<AsyncGenerator<Uint8Array>> {
    const { compress } = await import('../nix/compression.js');
    return compress(src, kind, levelOf(kind), consumed);
  }

  /** The configured level for the daemon's own compression, the default level for the others. */
  function levelOf(kind: 'zstd' | 'xz'): number {
    return kind === opts.compression ? (opts.compressionLevel ?? LEVELS[kind].default) : LEVELS[kind].default;
  }

  return [
    { methods: ['GET', 'HEAD'], path: /^\/nix-cache-info$/, handle: (x) => sendText(x, 200, 'text/x-nix-cache-info', cacheInfo) },
    { methods: ['GET', 'HEAD'], path: NARINFO_PATH_RE, handle: (x, m) => serveNarInfo(x, m[1]) },
    { methods: ['GET', 'HEAD'], path: NAR_PATH_RE, handle: (x, m) => serveNar(x, m[1], m[2] ?? '') },
  ];
}

async function* withFirst(first: IteratorResult<Uint8Array>, rest: AsyncGenerator<Uint8Array>): AsyncGenerator<Uint8Array> {
  if (first.done) return;
  yield first.value;
  yield* rest;
}
