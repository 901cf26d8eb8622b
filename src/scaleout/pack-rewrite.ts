// Returning the space of partly dead packs: a pack whose garbage is more
// than GARBAGE_SHARE of its object has its live blobs copied — each checked
// against its digest — into a new pack (several old packs into one, up to
// PACK_TARGET), then their rows are moved to it and the old packs retired in
// one transaction (pg-gc.ts movePacked). A retired pack is deleted once
// retired for --grace (scaleout-gc.ts); a reader that still finds it gone
// looks its blob up again (s3-blob-service.ts). Objects are never
// overwritten — a key always holds the bytes first written to it — so a
// reader gets the right bytes or a clean failure, never others.
// Compressed entries move as they are stored (their codec columns stay
// with their rows), checked by decompressing them first.
// Killed anywhere: the new pack is an orphan (no rows yet; swept later) or
// the move is committed and the old packs are retired; nothing is lost.
import { randomUUID } from 'node:crypto';
import { blake3 } from '../castore/digest.js';
import { inflateWhole, storedLength, type Location } from './blob-codec.js';
import { PACK_TARGET } from './packer.js';
import type { PgGc } from './pg-gc.js';
import type { S3Objects } from './s3-objects.js';

/** The disk store's threshold too (castore/disk/pack-gc.ts): more than a quarter dead. */
export const GARBAGE_SHARE = 0.25;
/** Larger objects under packs/ are not ours to rewrite (ours stay near PACK_TARGET). */
const MAX_PACK = 4 * PACK_TARGET;

export interface PackObject {
  object: string;
  size: number;
}

export interface RewriteResult {
  rewritten: number;
  liveBytesCopied: number;
  warnings: string[];
}

/**
 * Of `objects` (old enough to judge), the packs worth rewriting: some live,
 * more than GARBAGE_SHARE dead. `dying`: bytes per object of rows about to
 * be deleted (a dry run's view).
 */
export async function packsToRewrite(gc: PgGc, objects: PackObject[], dying = new Map<string, number>()): Promise<(PackObject & { live: number })[]> {
  const packs = objects.filter((o) => o.object.startsWith('packs/') && o.size <= MAX_PACK);
  const live = await gc.liveBytes(packs.map((p) => p.object));
  return packs.flatMap((p) => {
    const l = (live.get(p.object) ?? 0) - (dying.get(p.object) ?? 0);
    return l > 0 && p.size - l > GARBAGE_SHARE * p.size ? [{ ...p, live: l }] : [];
  });
}

export async function rewritePacks(
  gc: PgGc,
  s3: S3Objects,
  packs: (PackObject & { live: number })[],
  opts: { signal?: AbortSignal; log?: (msg: string) => void } = {},
): Promise<RewriteResult> {
  const result: RewriteResult = { rewritten: 0, liveBytesCopied: 0, warnings: [] };
  let group: (PackObject & { live: number })[] = [];
  let groupBytes = 0;
  const flush = async () => {
    if (group.length > 0) await rewriteGroup(gc, s3, group, result, opts.log);
    group = [];
    groupBytes = 0;
  };
  for (const p of packs) {
    opts.signal?.throwIfAborted();
    if (groupBytes > 0 && groupBytes + p.live > PACK_TARGET) await flush();
    group.push(p);
    groupBytes += p.live;
  }
  await flush();
  return result;
}

async function rewriteGroup(gc: PgGc, s3: S3Objects, group: PackObject[], result: RewriteResult, log?: (msg: string) => void): Promise<void> {
  const parts: Buffer[] = [];
  const moved: { digest: Buffer; from: string; offset: number }[] = [];
  const retired: string[] = [];
  let offset = 0;
  for (const pack of group) {
    const records = await gc.records(pack.object);
    const bytes = await readAll(s3, pack.object, pack.size);
    const bad = await firstBad(records, bytes);
    if (bad) {
      // Not copied, not retired: fsck --verify-blobs names it.
      result.warnings.push(`${pack.object}: the blob at offset ${bad.offset} does not match its digest; the pack was left as it is (run fsck --verify-blobs)`);
      continue;
    }
    for (const r of records) {
      const n = storedLength(r);
      parts.push(bytes.subarray(r.offset, r.offset + n));
      moved.push({ digest: r.digest, from: pack.object, offset });
      offset += n;
    }
    retired.push(pack.object);
  }
  if (retired.length === 0) return;
  const to = `packs/${randomUUID()}`;
  await s3.put(to, Buffer.concat(parts, offset)); // even empty: rows of empty blobs name it
  await gc.movePacked(to, moved, retired);
  log?.(`gc: rewrote ${retired.length} packs into ${to} (${offset} live bytes)`);
  result.rewritten += retired.length;
  result.liveBytesCopied += offset;
}

/** The first record whose bytes are not in the pack or do not match its digest (compressed ones: once decompressed). */
async function firstBad(records: (Location & { digest: Buffer })[], bytes: Buffer): Promise<(Location & { digest: Buffer }) | undefined> {
  for (const r of records) {
    const stored = bytes.subarray(r.offset, r.offset + storedLength(r));
    if (r.offset + storedLength(r) > bytes.length) return r;
    if (!r.codec) {
      if (!blake3(stored).equals(r.digest)) return r;
      continue;
    }
    try {
      await inflateWhole(r.digest, r, [stored]); // checks the digest
    } catch {
      return r;
    }
  }
  return undefined;
}

async function readAll(s3: S3Objects, object: string, size: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await s3.range(object, 0, size)) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}
