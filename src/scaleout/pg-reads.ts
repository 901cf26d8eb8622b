// The scale-out store's record of reads (retention): a batch from
// store/read-recorder.ts becomes one UPDATE per 1000 paths of
// pathinfos.read_at, never earlier than what is there. Rows are locked in
// digest order, as the collector deletes them, so the two never deadlock.
import type { ReadSink } from '../store/read-recorder.js';
import type { PgIndex } from './pg-index.js';

const BATCH = 1000;

export function pgReadSink(db: PgIndex): ReadSink {
  return async (reads) => {
    const all = [...reads].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    for (let i = 0; i < all.length; i += BATCH) {
      const part = all.slice(i, i + BATCH);
      const digests = part.map(([hex]) => Buffer.from(hex, 'hex'));
      await db.transaction(async (c) => {
        await c.query('SELECT digest FROM pathinfos WHERE digest = ANY($1::bytea[]) ORDER BY digest FOR UPDATE', [digests]);
        await c.query(
          `UPDATE pathinfos p SET read_at = to_timestamp(k.t / 1000.0) FROM unnest($1::bytea[], $2::bigint[]) AS k(d, t)
            WHERE p.digest = k.d AND (p.read_at IS NULL OR p.read_at < to_timestamp(k.t / 1000.0))`,
          [digests, part.map(([, t]) => Math.floor(t))],
        );
      });
    }
  };
}
