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
import type pg from 'pg';
import { CastoreError } from '../castore/errors.js';
import type { PgIndex } from './pg-index.js';
import { GC_LOCK_HELD } from './pg-gc.js';

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
export async function fencedSave(c: pg.PoolClient, digest: Buffer, epochAtCheck: string | undefined): Promise<void> {
  const r = await c.query<{ epoch: string; phase: string }>(`SELECT epoch, CASE WHEN ${GC_LOCK_HELD} THEN phase ELSE 'idle' END AS phase FROM gc_state WHERE id = 1 FOR SHARE`);
  const row = r.rows[0];
  if (!row) return;
  if (row.phase === 'deleting' || (epochAtCheck !== undefined && row.epoch !== epochAtCheck)) {
    throw new CastoreError('precondition', RETRY);
  }
  if (row.phase === 'marking') await c.query('INSERT INTO gc_journal (digest) VALUES ($1) ON CONFLICT DO NOTHING', [digest]);
}
