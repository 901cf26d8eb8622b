// The copy pipeline: closure metadata in, every path's blobs, directories
// and PathInfo out. Paths already in the store are skipped after batched
// lookups; the rest are ingested in parallel (bounded), verified against
// the closure's NAR hash and size, and each PathInfo is published only once
// the PathInfos of all its references exist. A path that fails takes every
// path referring to it (directly or not) down with it; the others go on.
import type { Store } from '../store/store.js';
import type { Closure, ClosureEntry } from '../closure/closure.js';
import { topoOrder } from '../closure/closure.js';
import { absolute, basename } from '../nix/store-path.js';
import { formatNix32 } from '../nix/hash.js';
import { fingerprint, sign, type SecretKey } from '../nix/signature.js';
import type { PathInfo } from '../store/messages.js';
import type { SizeFormula } from '../castore/directory.js';
import { putClosure } from '../castore/directory-service.js';
import { ingestPath } from './ingest.js';
import { BlobUploader, type Uploads } from './blob-uploader.js';
import { WorkerUploads } from './worker-uploads.js';
import { HashThread } from './hash-thread.js';
import { inlineHashing, type NarHashing } from './nar-digest.js';
import { Limiter } from '../util/limiter.js';
import { quietRetries, withRetry, DEFAULT_RETRY, type RetryPolicy } from './retry.js';
import { pathInfoFor } from './pathinfo-for.js';
import { isKind } from '../castore/errors.js';

export interface CopyOptions {
  store: Store;
  closure: Closure;
  /** Store paths ingested at once. */
  jobs: number;
  formula: SizeFormula;
  signingKey?: SecretKey;
  retry?: RetryPolicy;
  /** Where the local files live (tests may point elsewhere); default: the store path itself. */
  localPath?: (entry: ClosureEntry) => string;
  events?: CopyEvents;
  /** Upload blobs from a thread of their own (remote stores only); default: when there is enough to copy. */
  uploadThread?: boolean;
  /** Compute the NARs' SHA-256 on a thread of their own; default: for local stores when there is enough to copy (see makeHashing). */
  hashThread?: boolean;
  /** Hashing to use instead (tests); the caller closes it. */
  narHashing?: NarHashing;
}

export interface CopyEvents {
  start?(total: number, toCopy: number, bytesToRead: number): void;
  pathDone?(path: string, outcome: 'uploaded' | 'skipped' | 'failed', detail: { bytesRead: number; reason?: string }): void;
  bytesRead?(n: number): void;
  log?(msg: string): void;
}

export interface CopyReport {
  uploaded: string[];
  skipped: string[];
  /** Of `skipped`, those whose PathInfo this run signed (signingKey; the store had no signature by that key). */
  signed: string[];
  /** `missingContent`: refused for content the store lacks (internal, for another round). */
  failed: { path: string; reason: string; missingContent?: boolean }[];
  bytesRead: number;
  /** NAR bytes whose SHA-256 was computed on the hashing thread. */
  narBytesHashedOffThread: number;
  bytesSent: number;
  blobsSent: number;
  /** Of blobsSent, those sent as deltas, and the bytes they took from blobs the store had (not in bytesSent). */
  blobsAsDeltas: number;
  bytesReused: number;
  /** Of blobsSent, those the store read from their files itself (a daemon on this machine), and their bytes (not in bytesSent). */
  blobsReadByStore: number;
  bytesReadByStore: number;
  blobsSkipped: number;
  seconds: number;
  /** Peak resident set size of this process so far. */
  peakRssMiB: number;
  /** CPU time of this process (all its threads) so far, in seconds. */
  cpuSeconds: { user: number; system: number };
}

const LOOKUP_CONCURRENCY = 32;
/** Many small blobs cost a Stat and a Put round trip each: keep plenty in flight. */
const BLOB_CONCURRENCY = 256;
/** NAR bytes to copy from which a thread of its own pays (starting one costs ~50 ms): a remote store's uploads, a local store's NAR hashing. */
const UPLOAD_THREAD_FROM = 16 << 20;

/** Rounds of a copy when PathInfo Puts fail for missing content (a garbage collector ran meanwhile). */
const ROUNDS = 4;

/**
 * Copies the closure. A PathInfo Put refused with FAILED_PRECONDITION means
 * content the copy found present was collected before the PathInfo came
 * (see the README's "Garbage collection"): the copy then runs again, asking
 * afresh what the store has, for what is not published yet.
 */
export async function copyClosure(opts: CopyOptions): Promise<CopyReport> {
  const t0 = Date.now();
  const report = await copyRound(opts);
  for (let round = 2; round <= ROUNDS && report.failed.some((f) => f.missingContent); round++) {
    opts.events?.log?.(`${report.failed.filter((f) => f.missingContent).length} paths lost content to a garbage collection while they were copied; copying again (round ${round}/${ROUNDS})`);
    const again = await copyRound(opts);
    const before = new Set(report.skipped);
    report.uploaded.push(...again.uploaded);
    report.skipped.push(...again.skipped.filter((p) => !before.has(p) && !report.uploaded.includes(p)));
    report.signed.push(...again.signed.filter((p) => !report.signed.includes(p)));
    report.failed = again.failed;
    report.bytesRead += again.bytesRead;
    report.narBytesHashedOffThread += again.narBytesHashedOffThread;
    report.bytesSent += again.bytesSent;
    report.blobsSent += again.blobsSent;
    report.blobsAsDeltas += again.blobsAsDeltas;
    report.bytesReused += again.bytesReused;
    report.blobsReadByStore += again.blobsReadByStore;
    report.bytesReadByStore += again.bytesReadByStore;
    report.blobsSkipped += again.blobsSkipped;
    report.peakRssMiB = again.peakRssMiB;
  }
  report.seconds = (Date.now() - t0) / 1000;
  for (const f of report.failed) delete f.missingContent;
  return report;
}

async function copyRound(opts: CopyOptions): Promise<CopyReport> {
  const t0 = Date.now();
  const { store, closure } = opts;
  const retry = opts.retry ?? DEFAULT_RETRY;
  const log = quietRetries(opts.events?.log ?? (() => {}));
  const ordered = topoOrder(closure);

  // 1. Which paths does the store have already?
  const present = new Set<string>();
  /** Present paths with no signature by signingKey: signed below. */
  const unsigned: { e: ClosureEntry; info: PathInfo }[] = [];
  const lookups = new Limiter(LOOKUP_CONCURRENCY);
  await Promise.all(
    ordered.map((e) =>
      lookups.run(async () => {
        const info = await withRetry(`PathInfo Get ${absolute(e.path)}`, () => store.pathInfos.get(e.path.digest), retry, log);
        if (!info) return;
        present.add(basename(e.path));
        if (opts.signingKey && !info.narinfo?.signatures.some((s) => s.name === opts.signingKey!.name)) unsigned.push({ e, info });
      }),
    ),
  );
  const todo = ordered.filter((e) => !present.has(basename(e.path)));
  opts.events?.start?.(ordered.length, todo.length, todo.reduce((s, e) => s + (e.narSize ?? 0), 0));
  const report: CopyReport = { uploaded: [], skipped: [], signed: [], failed: [], bytesRead: 0, narBytesHashedOffThread: 0, bytesSent: 0, blobsSent: 0, blobsAsDeltas: 0, bytesReused: 0, blobsReadByStore: 0, bytesReadByStore: 0, blobsSkipped: 0, seconds: 0, peakRssMiB: 0, cpuSeconds: { user: 0, system: 0 } };
  for (const e of ordered) {
    if (present.has(basename(e.path))) {
      report.skipped.push(absolute(e.path));
      opts.events?.pathDone?.(absolute(e.path), 'skipped', { bytesRead: 0 });
    }
  }

  // A key given now signs what the store had unsigned, as it would have signed the upload.
  for (const { e, info } of unsigned) {
    const signed = signedPathInfo(e, info, opts.signingKey!);
    if (typeof signed === 'string') {
      log(`${absolute(e.path)}: not signed: ${signed}`);
      continue;
    }
    try {
      await withRetry(`PathInfo Put ${absolute(e.path)}`, () => store.pathInfos.put(signed), retry, log);
      report.signed.push(absolute(e.path));
    } catch (err) {
      log(`${absolute(e.path)}: not signed: ${(err as Error).message}`);
    }
  }

  // 2. Ingest, verify, publish.
  const uploader = makeUploads(opts, todo, retry, log);
  const hashing = opts.narHashing ?? makeHashing(opts, todo);
  try {
    await ingestAll();
  } finally {
    report.narBytesHashedOffThread = hashing.bytesOffThread;
    if (hashing !== opts.narHashing) await hashing.close();
    await uploader.close();
  }

  const usage = process.resourceUsage();
  Object.assign(report, {
    bytesSent: uploader.stats.bytesSent,
    blobsSent: uploader.stats.blobsSent,
    blobsAsDeltas: uploader.stats.blobsAsDeltas,
    bytesReused: uploader.stats.bytesReused,
    blobsReadByStore: uploader.stats.blobsReadByStore,
    bytesReadByStore: uploader.stats.bytesReadByStore,
    blobsSkipped: uploader.stats.blobsSkipped,
    seconds: (Date.now() - t0) / 1000,
    peakRssMiB: Math.round(usage.maxRSS / 1024),
    cpuSeconds: { user: usage.userCPUTime / 1e6, system: usage.systemCPUTime / 1e6 },
  });
  return report;

  async function ingestAll(): Promise<void> {
    const ingests = new Limiter(opts.jobs);
    /** Resolves true once the path's PathInfo is in the store. */
    const published = new Map<string, Promise<boolean>>();
    for (const e of ordered) if (present.has(basename(e.path))) published.set(basename(e.path), Promise.resolve(true));

    const lost = new Set<string>();
    const fail = (e: ClosureEntry, reason: string, missingContent?: boolean): false => {
      if (missingContent) lost.add(basename(e.path));
      report.failed.push({ path: absolute(e.path), reason, ...(missingContent ? { missingContent } : {}) });
      opts.events?.pathDone?.(absolute(e.path), 'failed', { bytesRead: 0, reason });
      return false;
    };

    for (const e of todo) {
      const key = basename(e.path);
      const ingested = ingests.run(async () => {
        const local = opts.localPath?.(e) ?? absolute(e.path);
        const r = await ingestPath(local, Buffer.from(key), { formula: opts.formula, blobs: uploader, narHashing: hashing });
        report.bytesRead += r.bytesRead;
        opts.events?.bytesRead?.(r.bytesRead);
        return r;
      });
      ingested.catch(() => {}); // handled below
      const done = (async (): Promise<boolean> => {
        let r;
        try {
          r = await ingested;
        } catch (err) {
          return fail(e, `ingesting failed: ${(err as Error).message}`);
        }
        if (e.narHash && !Buffer.from(e.narHash).equals(r.narSha256)) {
          return fail(e, `NAR hash mismatch: closure says ${formatNix32(e.narHash)}, the files give ${formatNix32(r.narSha256)}`);
        }
        if (e.narSize !== undefined && e.narSize !== r.narSize) {
          return fail(e, `NAR size mismatch: closure says ${e.narSize}, the files give ${r.narSize}`);
        }
        try {
          if (r.directories.length > 0) {
            await withRetry(`Directory Put ${absolute(e.path)}`, () => putClosure(store.directories, r.directories), retry, log);
          }
        } catch (err) {
          return fail(e, `uploading directories failed: ${(err as Error).message}`);
        }
        // Publish only after every reference is published.
        for (const ref of e.references) {
          const refKey = basename(ref);
          if (refKey === key) continue;
          const ok = await published.get(refKey);
          if (!ok) return fail(e, `not published because its reference ${absolute(ref)} failed`, lost.has(refKey));
        }
        try {
          const info = pathInfoFor(e, r.root, r.narSha256, r.narSize, opts.signingKey);
          await withRetry(`PathInfo Put ${absolute(e.path)}`, () => store.pathInfos.put(info), retry, log);
        } catch (err) {
          return fail(e, `publishing the PathInfo failed: ${(err as Error).message}`, isKind(err, 'precondition'));
        }
        report.uploaded.push(absolute(e.path));
        opts.events?.pathDone?.(absolute(e.path), 'uploaded', { bytesRead: r.bytesRead });
        return true;
      })();
      published.set(key, done);
    }
    await Promise.all(published.values());
  }
}

/**
 * Into a local store the main thread does everything but the libuv pool's
 * writes, and the second core idles: the NAR SHA-256 moves to a thread.
 * A remote store's uploads have a thread already, and its daemon wants the
 * other core (measured: README, Benchmarks).
 */
function makeHashing(opts: CopyOptions, todo: ClosureEntry[]): NarHashing {
  const local = opts.store.blobs.offThreadAddr === undefined;
  return (opts.hashThread ?? (local && bigCopy(todo))) ? new HashThread() : inlineHashing;
}

/** Enough to copy that a thread pays for its start (~50 ms); unknown sizes (legacy closure files) count as large. */
function bigCopy(todo: ClosureEntry[]): boolean {
  return todo.some((e) => e.narSize === undefined) || todo.reduce((s, e) => s + (e.narSize ?? 0), 0) >= UPLOAD_THREAD_FROM;
}

function makeUploads(opts: CopyOptions, todo: ClosureEntry[], retry: RetryPolicy, log: (msg: string) => void): Uploads {
  const addr = opts.store.blobs.offThreadAddr;
  if (addr !== undefined && (opts.uploadThread ?? bigCopy(todo))) {
    const uploads = new WorkerUploads({ addr, concurrency: BLOB_CONCURRENCY, retry }, log);
    uploads.start();
    return uploads;
  }
  return new BlobUploader(opts.store.blobs, BLOB_CONCURRENCY, retry, log);
}

/**
 * `info` (what the store has for `e`) with a signature by `key` added, or
 * why not: a signature vouches for Nix's NAR hash and size, so the store's
 * must be those Nix has for the path.
 */
function signedPathInfo(e: ClosureEntry, info: PathInfo, key: SecretKey): PathInfo | string {
  const ni = info.narinfo;
  if (!ni) return 'the store has no NAR hash for it';
  if (e.narHash && !Buffer.from(e.narHash).equals(Buffer.from(ni.narSha256))) return `the store's NAR hash is not Nix's (${formatNix32(ni.narSha256)} against ${formatNix32(e.narHash)})`;
  if (e.narSize !== undefined && e.narSize !== ni.narSize) return `the store's NAR size ${ni.narSize} is not Nix's ${e.narSize}`;
  if (!e.narHash || e.narSize === undefined) return 'Nix did not say its NAR hash and size (a closure file without them)';
  const sig = sign(fingerprint(e.path, ni.narSha256, ni.narSize, e.references), key);
  return { ...info, narinfo: { ...ni, signatures: [...ni.signatures, sig] } };
}
