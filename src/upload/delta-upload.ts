// A large file the store lacks, sent as a delta against a similar blob the
// store has (castore/delta/): its hooks find the base (~50 KiB read per
// 2 MiB of file), then the file is chunked and only the chunks the base
// lacks are sent, beside ranges of the base. Costs a file read and CPU for
// chunking only when a base was found; the store checks the result.
import { open, type FileHandle } from 'node:fs/promises';
import { Chunker, HookFinder } from '../castore/delta/chunking.js';
import type { BlobDeltas } from '../castore/delta/delta-messages.js';
import { MAX_HOOKS_ASKED } from '../castore/delta/delta-store.js';
import { readAhead } from '../castore/disk/read-ahead.js';
import { b3String } from '../castore/digest.js';
import { CastoreError } from '../castore/errors.js';

/** A delta is sent only if the base holds at least this share of the file: else the whole file goes, without the round trips. */
const WORTH = 0.25;
/** Literal bytes per message. */
const PIECE = 1 << 20;

export interface DeltaSent {
  /** Bytes of the file sent as they are. */
  sent: number;
  /** Bytes taken from the base. */
  reused: number;
}

type Op = { offset: number; length: number } | { at: number; length: number };

/** Sends `file` (BLAKE3 `digest`, `size` bytes) as a delta; undefined when no base is worth it (send it whole). */
export async function sendDelta(deltas: BlobDeltas, digest: Buffer, size: number, file: string | Buffer): Promise<DeltaSent | undefined> {
  const h = await open(file, 'r');
  try {
    const hooks = await hooksOf(h, size, file);
    if (hooks.length === 0) return undefined;
    const found = await deltas.findBase(hooks);
    if (!found) return undefined;
    const inBase = new Map<string, number>();
    let at = 0;
    for (const c of found.chunks) {
      const key = c.digest.toString('latin1');
      if (!inBase.has(key)) inBase.set(key, at);
      at += c.length;
    }
    const chunker = new Chunker();
    for await (const piece of readAhead(h, size)) chunker.push(piece);
    const { ops, reused } = opsFor(chunker.end(), inBase);
    if (reused < size * WORTH) return undefined;
    const got = await deltas.putDelta({ digest, size, base: found.base }, literalsRead(h, ops, size));
    if (!got.equals(digest)) throw new CastoreError('internal', `blob ${b3String(digest)}: the store answered ${b3String(got)} (file changed while copying?)`);
    return { sent: size - reused, reused };
  } finally {
    await h.close();
  }
}

async function hooksOf(h: FileHandle, size: number, file: string | Buffer): Promise<Buffer[]> {
  const finder = new HookFinder(size);
  const buf = Buffer.allocUnsafe(64 << 10);
  while (finder.next() < size && finder.hooks.length < MAX_HOOKS_ASKED) {
    const at = finder.next();
    const { bytesRead } = await h.read(buf, 0, Math.min(buf.length, size - at), at);
    if (bytesRead === 0) throw new CastoreError('invalid', `${file.toString()} is shorter than the ${size} bytes hashed (changed while copying?)`);
    finder.push(buf.subarray(0, bytesRead), at);
  }
  return finder.hooks;
}

/** Runs of chunks the base has (as ranges of it, adjacent ones merged) and of chunks it lacks (as ranges of the file). */
function opsFor(chunks: { length: number; digest: Buffer }[], inBase: Map<string, number>): { ops: Op[]; reused: number } {
  const ops: Op[] = [];
  let pos = 0;
  let reused = 0;
  for (const c of chunks) {
    const from = inBase.get(c.digest.toString('latin1'));
    const last = ops[ops.length - 1];
    if (from !== undefined) {
      reused += c.length;
      if (last && 'offset' in last && last.offset + last.length === from) last.length += c.length;
      else ops.push({ offset: from, length: c.length });
    } else if (last && 'at' in last) last.length += c.length;
    else ops.push({ at: pos, length: c.length });
    pos += c.length;
  }
  return { ops, reused };
}

async function* literalsRead(h: FileHandle, ops: Op[], size: number): AsyncGenerator<{ offset: number; length: number } | { data: Uint8Array }> {
  for (const op of ops) {
    if ('offset' in op) {
      yield op;
      continue;
    }
    for (let at = op.at; at < op.at + op.length; at += PIECE) {
      const n = Math.min(PIECE, op.at + op.length - at);
      const buf = Buffer.allocUnsafe(n);
      const { bytesRead } = await h.read(buf, 0, n, at);
      if (bytesRead !== n) throw new CastoreError('invalid', `the file is shorter than the ${size} bytes hashed (changed while copying?)`);
      yield { data: buf };
    }
  }
}
