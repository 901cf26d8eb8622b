// The writing side of the binary cache, for plain `nix copy --to http://…`:
//
//   PUT  /nix-cache-info                   accepted, ignored (ours is served)
//   PUT  /nar/<52-char file hash>.nar[.xz|.zst|.bz2]
//                                          decompressed, parsed and ingested as
//                                          it streams; kept as a staged NAR
//   PUT  /<32-char store hash>.narinfo     checked against the staged NAR, the
//                                          store and the trusted keys; then
//                                          the PathInfo is published
//   PUT  /<hash>.ls, /log/<name>,          accepted and dropped, so Nix never
//        /debuginfo/<build id>             fails on them
//
// Realisations (ca-derivations) are kept: http-realisations.ts.
//
// Nix sends the NAR before its narinfo; between the two only the staged
// record exists, and nothing is visible to readers.
import type { Store } from '../store/store.js';
import { NarError } from '../nix/nar.js';
import { NarInfoError, parseNarInfo, type NarInfo } from '../nix/narinfo.js';
import * as nixbase32 from '../nix/nixbase32.js';
import { hashPart, absolute } from '../nix/store-path.js';
import { formatNix32 } from '../nix/hash.js';
import type { PublicKey } from '../nix/signature.js';
import { CompressionError, compressionOfExtension } from '../nix/compression-names.js';
import { CastoreError } from '../castore/errors.js';
import { Limiter } from '../util/limiter.js';
import type { NarStaging, StagedNar } from '../cache/staging.js';
import { receiveNar, TooLargeError } from '../cache/receive-nar.js';
import { alreadyPresent, checkContent, checkReferences, checkSignatures, pathInfoOf, PublishError } from '../cache/publish.js';
import { HttpError, sendText, type Exchange, type Route } from './http-exchange.js';
import { NARINFO_PATH_RE, NAR_PATH_RE, STORE_HASH_RE } from './http-get.js';
import { growOr503, holdFor } from './http-budget.js';
import { declaredLength, drain, readBody } from './http-body.js';
import { storageFull, storageFullError } from './http-storage-full.js';

export interface UploadOptions {
  staging: NarStaging;
  /** When set, a narinfo needs a valid signature by one of these. */
  trustedKeys?: readonly PublicKey[];
  /** Largest NAR (uncompressed) accepted; default 64 GiB. */
  maxNarSize?: number;
  /** NAR uploads ingested at once (others wait). */
  jobs?: number;
  log?: (line: string) => void;
}

const FILE_HASH_RE = new RegExp(`^[${nixbase32.ALPHABET}]{52}$`);
const MAX_NARINFO_BYTES = 1 << 20;
const DEFAULT_MAX_NAR = 64 * 2 ** 30;
/** nginx's status for a request whose client closed the connection before the answer. */
const CLIENT_GONE = 499;
/** Staged NARs no narinfo claimed within this long are forgotten. */
export const STAGED_TTL_MS = 24 * 3600 * 1000;

/** What one NAR upload holds while it is ingested: the store writer's bytes, the body's chunk and decompression in flight. */
const INGEST_BYTES = (heldPerWriter = 4 << 20) => heldPerWriter + (1 << 20);

export function putRoutes(store: Store, opts: UploadOptions): Route[] {
  const trusted = opts.trustedKeys ?? [];
  const maxNarSize = opts.maxNarSize ?? DEFAULT_MAX_NAR;
  const ingests = new Limiter(opts.jobs ?? 8);
  opts.staging.expire(STAGED_TTL_MS).then(
    (n) => n > 0 && opts.log?.(`nix-castore http: forgot ${n} staged NAR(s) no narinfo claimed within a day`),
    (err: Error) => opts.log?.(`nix-castore http: cannot expire staged NARs: ${err.message}`),
  );

  async function putNar(x: Exchange, name: string, ext: string): Promise<void> {
    if (!FILE_HASH_RE.test(name)) throw new HttpError(400, 'a NAR is uploaded as nar/<52-character nixbase32 SHA-256 of the file>.nar[.xz|.zst|.bz2]');
    const compression = compressionOfExtension(ext);
    if (compression === undefined) throw new HttpError(415, `NARs compressed as .nar${ext} are not accepted: use xz, zstd, bzip2 or none`);
    // Compressed NARs can grow a lot; the NAR size is bounded separately.
    declaredLength(x, maxNarSize, 'a NAR file');
    const received = await ingests.run(async () => {
      const held = holdFor(x, INGEST_BYTES(store.blobs.heldPerWriter));
      try {
        // What the upload comes to hold beyond that (its directories, a decompressor's window) is counted as it grows: 503 past the budget.
        return await receiveNar(x.req, compression, store, { maxNarSize, maxFileSize: maxNarSize, hold: (n) => growOr503(x, held, n) });
      } catch (err) {
        if (err instanceof HttpError) throw err; // the budget's 503
        // What the bytes were, before how the connection ended: a refused body is destroyed, so it looks cut short too.
        if (err instanceof NarError || err instanceof CompressionError) throw new HttpError(400, `malformed NAR upload: ${err.message}`);
        if (err instanceof TooLargeError) throw new HttpError(413, err.message);
        if (err instanceof CastoreError && err.kind === 'invalid') throw new HttpError(400, `the NAR cannot be stored: ${err.message}`);
        if (storageFull(err)) throw storageFullError(err);
        if (x.req.readableAborted || x.req.socket.destroyed) throw new HttpError(400, `the upload was cut short: ${(err as Error).message}`);
        throw err;
      } finally {
        held?.release();
      }
    });
    if (nixbase32.encode(received.fileSha256) !== name) {
      throw new HttpError(400, `the file uploaded as nar/${name}.nar${ext} hashes to ${nixbase32.encode(received.fileSha256)}: not stored`);
    }
    await opts.staging.put({ narSha256: received.narSha256, narSize: received.narSize, root: received.root, stagedAt: Date.now(), fileSha256: received.fileSha256 });
    x.note = `NAR ${received.narSize} bytes, ${received.storedBytes} of ${received.fileBytes} file bytes new`;
    sendText(x, 200, 'text/plain; charset=utf-8', 'received\n');
  }

  async function putNarInfo(x: Exchange, name: string): Promise<void> {
    if (!STORE_HASH_RE.test(name)) throw new HttpError(400, 'a narinfo is named by the 32-character nixbase32 hash of its store path');
    const text = (await readBody(x, MAX_NARINFO_BYTES, 'a narinfo')).toString('utf8');
    try {
      const ni = (() => {
        try {
          return parseNarInfo(text);
        } catch (err) {
          if (err instanceof NarInfoError) throw new HttpError(400, `malformed narinfo: ${err.message}`);
          throw err;
        }
      })();
      if (hashPart(ni.storePath) !== name) throw new HttpError(400, `the narinfo at ${name}.narinfo is for ${absolute(ni.storePath)}`);
      checkSignatures(ni, trusted);
      if (await alreadyPresent(store, ni)) {
        // Another upload (another compression, another client) published it first:
        // this client's narinfo names its own file, which it will ask for.
        await aliasUploadedFile(ni, name);
        const staged = await opts.staging.get(ni.narHash);
        const file = fileHashOf(ni);
        if (staged && file && staged.fileSha256.equals(file)) await opts.staging.delete(ni.narHash); // its own upload, now claimed
        x.note = 'already present';
        return sendText(x, 200, 'text/plain; charset=utf-8', 'already present\n');
      }
      const staged = (await opts.staging.get(ni.narHash)) ?? (await sameFileAs(ni));
      if (!staged) {
        throw new HttpError(400, `no NAR with NarHash ${formatNix32(ni.narHash)} was uploaded for ${absolute(ni.storePath)}: upload the NAR first`);
      }
      checkContent(ni, staged);
      await checkReferences(store, ni);
      // The content check walks the whole closure: it stops, publishing nothing, when the client goes away.
      const gone = new AbortController();
      const leave = () => gone.abort(new Error('client went away'));
      x.res.once('close', leave);
      try {
        await store.pathInfos.put(pathInfoOf(ni, staged), gone.signal);
      } catch (err) {
        // Nobody to answer; the access log and metrics say 499, not a server error.
        if (gone.signal.aborted) throw new HttpError(CLIENT_GONE, 'the client went away before the path was published: nothing was published');
        throw err;
      } finally {
        x.res.off('close', leave);
      }
      await opts.staging.putAlias(staged.fileSha256, name);
      await aliasUploadedFile(ni, name); // a concurrent upload of the same NAR may have replaced the staged record
      await opts.staging.delete(ni.narHash);
      x.note = `published ${absolute(ni.storePath)}`;
      sendText(x, 200, 'text/plain; charset=utf-8', 'published\n');
    } catch (err) {
      if (err instanceof PublishError) throw new HttpError(err.status, err.message);
      if (err instanceof CastoreError && (err.kind === 'invalid' || err.kind === 'precondition')) {
        throw new HttpError(400, `the path cannot be published: ${err.message}`);
      }
      throw err;
    }
  }

  /**
   * Serves the file the narinfo names (nar/<file hash>.nar…) as this path's
   * NAR, unless that name already serves one: what it serves is the path's
   * own NAR, whose NarHash the client's narinfo states (checked equal).
   */
  async function aliasUploadedFile(ni: NarInfo, name: string): Promise<void> {
    const file = fileHashOf(ni);
    if (file && (await opts.staging.getAlias(file)) === undefined) await opts.staging.putAlias(file, name);
  }

  /**
   * The content of a path published before from the same uploaded file
   * (byte-identical NARs of two paths): Nix saw the file present and did
   * not send it again.
   */
  async function sameFileAs(ni: NarInfo): Promise<StagedNar | undefined> {
    const fileSha256 = fileHashOf(ni);
    if (!fileSha256) return undefined;
    const other = await opts.staging.getAlias(fileSha256);
    const info = other === undefined ? undefined : await store.pathInfos.get(nixbase32.decode(other));
    if (!info?.node || !info.narinfo) return undefined;
    return { root: info.node, narSha256: Buffer.from(info.narinfo.narSha256), narSize: info.narinfo.narSize, fileSha256: Buffer.from(fileSha256), stagedAt: 0 };
  }

  const ok = (x: Exchange) => sendText(x, 200, 'text/plain; charset=utf-8', 'accepted\n');
  return uploadRoutes({ ok, putNar, putNarInfo });
}

/** What a read-only daemon answers uploads with: the routes, all refused (403) before they run. */
export function refusedPutRoutes(): Route[] {
  const never = () => {
    throw new HttpError(403, 'the daemon is read-only: it takes no uploads');
  };
  return uploadRoutes({ ok: never, putNar: never, putNarInfo: never });
}

function uploadRoutes(h: {
  ok: (x: Exchange) => void;
  putNar: (x: Exchange, name: string, ext: string) => Promise<void>;
  putNarInfo: (x: Exchange, name: string) => Promise<void>;
}): Route[] {
  const { ok, putNar, putNarInfo } = h;
  return [
    { methods: ['PUT'], writes: true, path: /^\/nix-cache-info$/, handle: async (x) => (await drain(x, 'nix-cache-info'), ok(x)) },
    { methods: ['PUT'], writes: true, path: NAR_PATH_RE, handle: (x, m) => putNar(x, m[1], m[2] ?? '') },
    { methods: ['PUT'], writes: true, path: NARINFO_PATH_RE, handle: (x, m) => putNarInfo(x, m[1]) },
    { methods: ['PUT'], writes: true, path: /^\/[^/]+\.ls$/, handle: async (x) => (await drain(x, 'a listing'), ok(x)) },
    { methods: ['PUT'], writes: true, path: /^\/log\/[^/]+$/, handle: async (x) => (await drain(x, 'a build log'), ok(x)) },
    // Not kept either, so that `nix copy` succeeds: ?index-debug-info=true's index of debug files.
    { methods: ['PUT'], writes: true, path: /^\/debuginfo\/[^/]+$/, handle: async (x) => (await drain(x, 'a debug info index entry'), ok(x)) },
  ];
}

/** The SHA-256 of the uploaded file a narinfo's URL names (nar/<52 nixbase32>.nar[.ext]). */
function fileHashOf(ni: NarInfo): Buffer | undefined {
  const m = /^nar\/([0-9a-df-np-sv-z]{52})\.nar(\.[a-z0-9]+)?$/.exec(ni.url);
  return m ? Buffer.from(nixbase32.decode(m[1])) : undefined;
}
