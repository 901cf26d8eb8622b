// The scale-out store's record of reads (retention): a batch from
// store/read-recorder.ts becomes one UPDATE per 1000 paths of
// pathinfos.read_at, never earlier than what is there. Rows are locked in
// digest order, as the collector deletes them, so the two never deadlock.
import type { ReadSink } from '../store/read-recorder.js';
import type { PgIndex } from './pg-index.js';
import { keyLookup, lockByDigests } from './pg-digests.js';

const BATCH = 1000;

/** Locks the PathInfos of the sorted digests in $1 in that order (lockByDigests). */
export const LOCK_READS_SQL = lockByDigests(1, 'pathinfos');
/**
 * Then sets read_at of the PathInfos in $1 to the times in $2 (ms), never
 * earlier: rows found by probes of the primary key, updated by tuple id.
 * The lock with `= ANY($1)` and the UPDATE joined with the keys were each
 * planned as a scan of the whole table: two per batch of reads on a store
 * of many paths.
 */
export const RECORD_READS_SQL = `UPDATE pathinfos p SET read_at = to_timestamp(u.t / 1000.0)
  FROM (SELECT r.ctid AS c, k.t FROM ${keyLookup('unnest($1::bytea[], $2::bigint[]) AS k(d, t)', 'pathinfos', 'r', 'r.ctid')}) AS u
  WHERE p.ctid = u.c AND (p.read_at IS NULL OR p.read_at < to_timestamp(u.t / 1000.0))`;

export function pgReadSink(db: PgIndex): ReadSink {
  return async (reads) => {
    const all = [...reads].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    for (let i = 0; i < all.length; i += BATCH) {
      const part = all.slice(i, i + BATCH);
      const digests = part.map(([hex]) => Buffer.from(hex, 'hex'));
      await db.transaction(async (c) => {
        await c.query(LOCK_READS_SQL, [digests]);
        await c.query(RECORD_READS_SQL, [digests, part.map(([, t]) => Math.floor(t))]);
      });
    }
  };
}
