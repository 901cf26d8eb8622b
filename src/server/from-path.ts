// nixcastore.v1.BlobFromPathService Put: a client on this machine names a
// large file of the Nix store, and the daemon reads, hashes and stores it
// itself. Over a unix socket every byte a copy sends crosses the kernel
// twice and is framed on both sides; the daemon reading the file (from the
// page cache the client just filled) does the same verification with
// neither. It grants nothing a local user could not do: only files anyone
// may read (o+r, and o+x on every directory up to the root), only below
// the daemon's roots, only through a unix socket, only with the write token.
import { constants } from 'node:fs';
import { open, realpath, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { isBelow } from '../util/path-below.js';
import { STORE_DIR } from '../nix/store-path.js';
import { ACCEPTED, type BlobService } from '../castore/blob-service.js';
import { B3_LEN, b3String } from '../castore/digest.js';
import { CastoreError, invalid } from '../castore/errors.js';
import { isProbe, type PutFromPathRequest, type PutFromPathResponse } from '../castore/from-path-messages.js';
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import { unaryHandler } from './handlers.js';
import { READ_CHUNK, ReadBuffers, readAhead } from '../castore/disk/read-ahead.js';
import { blobsFromPath, blobsWritten } from '../metrics/metrics.js';
import type { Holding } from '../util/byte-budget.js';
import { overBudget } from './request-budget.js';

/** What readAhead() has in memory at most: the chunk being written and the one being read. */
const READ_AHEAD_BYTES = 2 * READ_CHUNK;

/**
 * Buffers the daemon reads local files into, each given back once the
 * store's writer has let go of it: a fresh 1 MiB per chunk cost a page
 * fault per 4 KiB (~70,000 for a copy of the benchmark closure's large
 * files), which on a VM costs about as much as reading the bytes.
 */
const readBuffers = new ReadBuffers(8);

/** Longest path accepted (Linux's PATH_MAX). */
export const MAX_PATH_BYTES = 4096;

/** The Nix store directory, as Nix itself finds it. */
export function nixStoreDir(): string {
  return process.env.NIX_STORE_DIR || STORE_DIR;
}

/**
 * The roots that exist, as given (what clients' paths start with) and as
 * they are on disk (what a resolved path is checked against).
 */
export async function resolveRoots(roots: string[]): Promise<string[]> {
  const out = new Set<string>();
  for (const r of roots) {
    try {
      const real = await realpath(r);
      out.add(r.length > 1 ? r.replace(/\/+$/, '') : r).add(real);
    } catch {
      // not on this machine: nothing is read below it
    }
  }
  return [...out];
}

/** grpc-js's side of the service: calls the plain path does not speak are told not to ask (the probe) or to send the bytes. */
export function fromPathDeclined(): UntypedServiceImplementation {
  return {
    Put: unaryHandler<PutFromPathRequest, PutFromPathResponse>(async (req) => {
      if (isProbe(req)) return { digest: Buffer.alloc(0), roots: [] };
      throw refused('BlobFromPathService reads files only for calls without a deadline or compression');
    }),
  };
}

const refused = (msg: string): CastoreError => new CastoreError('precondition', `${msg}; send its bytes instead`);

/**
 * Reads the file into `blobs` and resolves with its digest once durable.
 * Refuses (before reading a byte) a malformed request or a file it may not
 * read for this client, and (after) a file that is not what was announced.
 */
export async function putFromPath(blobs: BlobService, roots: string[], req: PutFromPathRequest, signal: AbortSignal, held: Holding, heldMax: number): Promise<Buffer> {
  if (req.digest.length !== B3_LEN) throw invalid(`digest must be ${B3_LEN} bytes, got ${req.digest.length}`);
  if (req.path.length === 0 || req.path.length > MAX_PATH_BYTES) throw invalid(`path must be 1 to ${MAX_PATH_BYTES} bytes, got ${req.path.length}`);
  if (req.path[0] !== 0x2f || req.path.includes(0)) throw invalid('path must be absolute and hold no NUL byte');
  const shown = Buffer.from(req.path).toString();
  let real: Buffer;
  try {
    real = await realpath(Buffer.from(req.path), { encoding: 'buffer' });
  } catch (err) {
    throw refused(`${shown}: ${(err as Error).message}`);
  }
  const root = roots.find((r) => isBelow(real, r));
  if (root === undefined) throw refused(`${shown} is not below ${roots.join(', ') || 'any directory this daemon reads from'}`);
  await checkTraversable(real, shown);
  const h = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW).catch((err: Error) => {
    throw refused(`${shown}: ${err.message}`);
  });
  // The reads in flight are this call's memory beside what the writer holds: both count against the daemon's budget.
  const reading = Math.min(READ_AHEAD_BYTES, req.size);
  if (!held.set(reading)) {
    await h.close();
    throw overBudget(held);
  }
  const w = blobs.put();
  try {
    const st = await h.stat();
    if (!st.isFile()) throw refused(`${shown} is not a regular file`);
    if ((st.mode & 0o004) === 0) throw refused(`${shown} is not readable by everyone`);
    if (st.size !== req.size) throw invalid(`${shown} holds ${st.size} bytes, not ${req.size} as announced`);
    let written = 0;
    for await (const chunk of readAhead(h, req.size, readBuffers, true)) {
      signal.throwIfAborted();
      written += chunk.length;
      // The store's writer may hold what it was given until the end: counted against the daemon's budget, as for a Put.
      if (held.bytes < reading + heldMax && !held.set(reading + Math.min(written, heldMax))) throw overBudget(held);
      const accepted = w.write(chunk, () => readBuffers.give(chunk));
      if (accepted !== ACCEPTED) await accepted;
    }
    if (written !== req.size) throw invalid(`${shown} changed while it was read (${written} bytes, not ${req.size})`);
    const got = await w.close(signal);
    if (!got.equals(req.digest)) throw invalid(`${shown} holds blob ${b3String(got)}, not ${b3String(req.digest)} as announced`);
    blobsWritten.inc();
    blobsFromPath.inc();
    return got;
  } catch (err) {
    await w.abort().catch(() => {});
    throw err;
  } finally {
    await h.close();
  }
}

/**
 * Every directory from the file's up to / must be o+x: else a local user
 * could not reach the file. Not only up to the --local-files root: a root
 * inside a directory others may not enter holds nothing they could read.
 */
async function checkTraversable(real: Buffer, shown: string): Promise<void> {
  for (let dir = dirname(real.toString('latin1')); ; dir = dirname(dir)) {
    const st = await stat(Buffer.from(dir, 'latin1')).catch((err: Error) => {
      throw refused(`${shown}: ${err.message}`);
    });
    if ((st.mode & 0o001) === 0) throw refused(`${shown}: ${Buffer.from(dir, 'latin1').toString()} is not searchable by everyone`);
    if (dir === '/') return;
  }
}
