// How PathInfo Puts and a garbage collector of one scale-out store stay out
// of each other's way, through the gc_state row (any number of daemons):
//
// A Put reads the epoch before it checks its content; a Put that starts
// while a collector deletes waits for it to finish. It then stores its PathInfo
// in a transaction that first takes gc_state FOR SHARE: if the epoch moved
// (a collector entered its delete phase since the check) the Put fails with
// FAILED_PRECONDITION and its retry uploads what is missing; if a collector
// is marking, the path goes into gc_journal in the same transaction. The
// collector enters `deleting` with an UPDATE of that row, which waits for
// every such transaction in flight, then reads the journal and spares what
// it names. So no PathInfo is stored whose content a collection removed.
//
// Nor one whose reference a collection deleted (its uploader found it
// present before): the collector records each PathInfo it deletes in
// gc_deleted in the very statement that deletes it, and the Put's
// transaction, after taking gc_state FOR SHARE, refuses a reference that
// gc_deleted names and pathinfos lacks. Under READ COMMITTED both orders
// hold: a deletion committed before that statement is seen by it (its
// collector was past `deleting`, or dead, when the row lock was granted);
// one after it cannot happen before the Put commits, as entering
// `deleting` waits for the row lock — and a Put stored while the collector
// marked is journalled, so its references are spared. Records are kept for
// the last 16 collections and at most a day, as on disk (gc-fence.ts).
import type pg from 'pg';
import { CastoreError } from '../castore/errors.js';
import type { PathInfo } from '../store/messages.js';
import { collectedReferenceError, foreignReferences } from '../store/collected-reference.js';
import type { PgIndex } from './pg-index.js';
import { GC_LOCK_HELD } from './pg-gc.js';
import { digestArrayLookup } from './pg-digests.js';

/**
 * Of the references in $1, one a collection deleted (in gc_deleted) that no
 * PathInfo row holds again, if any. Each key probes both primary keys: with
 * `= ANY` and `NOT EXISTS`, a path of ~1,000 references was planned as a
 * scan of gc_deleted and a hash of every PathInfo, on each of its Puts.
 */
export const COLLECTED_REFERENCE_SQL = `SELECT k.d AS digest FROM ${digestArrayLookup(1, 'gc_deleted', 'g', '1')}
  LEFT JOIN LATERAL (SELECT 1 AS held FROM pathinfos p WHERE p.digest = k.d LIMIT 1) AS p ON true
  WHERE p.held IS NULL LIMIT 1`;

const RETRY = 'a garbage collection is deleting from this store; upload the path again (copy and the post-build hook retry by themselves)';

/** How long a Put waits for a collector's delete phase before giving up (UNAVAILABLE, retried). */
const PUT_WAIT_MS = 10 * 60_000;

/** The epoch a Put's content check runs under; waits while a live collector deletes. */
export async function fenceEpoch(db: PgIndex): Promise<string> {
  const deadline = Date.now() + PUT_WAIT_MS;
  for (let wait = 20; ; wait = Math.min(wait * 2, 1000)) {
    const r = await db.query<{ epoch: string; phase: string }>(`SELECT epoch, CASE WHEN ${GC_LOCK_HELD} THEN phase ELSE 'idle' END AS phase FROM gc_state WHERE id = 1`);
    const row = r.rows[0];
    if (!row) return '0';
    if (row.phase !== 'deleting') return row.epoch;
    if (Date.now() > deadline) throw new CastoreError('unavailable', 'a garbage collection of this store has been deleting for 10 minutes; try again later');
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

/** In the PathInfo's transaction, before it is stored. */
export async function fencedSave(c: pg.PoolClient, digest: Buffer, info: PathInfo, epochAtCheck: string | undefined): Promise<void> {
  const r = await c.query<{ epoch: string; phase: string }>(`SELECT epoch, CASE WHEN ${GC_LOCK_HELD} THEN phase ELSE 'idle' END AS phase FROM gc_state WHERE id = 1 FOR SHARE`);
  const row = r.rows[0];
  if (!row) return;
  if (row.phase === 'deleting' || (epochAtCheck !== undefined && row.epoch !== epochAtCheck)) {
    throw new CastoreError('precondition', RETRY);
  }
  // A statement of its own, after the row lock: its snapshot then holds every
  // deletion of a collector past `deleting` (one statement keeps the snapshot
  // it began with, even when it waited for the lock).
  const refs = foreignReferences(info, digest);
  if (refs.length > 0) {
    const gone = await c.query<{ digest: Buffer }>(COLLECTED_REFERENCE_SQL, [refs.map((r) => Buffer.from(r))]);
    if (gone.rows.length > 0) throw collectedReferenceError(info, gone.rows[0].digest);
  }
  if (row.phase === 'marking') await c.query('INSERT INTO gc_journal (digest) VALUES ($1) ON CONFLICT DO NOTHING', [digest]);
}
