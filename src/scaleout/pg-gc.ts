// What a garbage collector of a scale-out store asks PostgreSQL: one
// session of its own, holding the per-store advisory lock for the whole
// collection (a killed collector's session ends, and its lock with it).
import type pg from 'pg';
import { openPgIndex } from './pg-index.js';
import { deleteLocked, digestArrayLookup, keyLookup, lockByDigests } from './pg-digests.js';
import { LOCATION_COLUMNS, locationOf, type Location, type LocationRow } from './blob-codec.js';
import { PathInfoCodec, type PathInfo } from '../store/messages.js';
import type { DigestLookup } from '../util/spilling-digest-set.js';
import { DELETED_KEEP_COLLECTIONS, DELETED_KEEP_MS } from '../castore/disk/gc-fence.js';

/** The collectors' advisory lock: ('nixc', 'gc'), apart from the schema's. */
export const GC_LOCK = [0x6e697863, 0x6763] as const;
const PAGE = 1000;
const BATCH = 1000;
/** Bytes per object (as stored) of the blob rows the digests in $1 (bytea[]) name. */
export const BYTES_BY_OBJECT_SQL = `SELECT b.object, sum(coalesce(b.stored, b.length)) AS bytes FROM ${digestArrayLookup(1, 'blobs', 'b', 'b.object, b.stored, b.length')} GROUP BY b.object`;
/** Locks the rows of the sorted digests in $1, in that order (a delete's first statement). */
export const LOCK_ROWS_SQL = { pathinfos: lockByDigests(1, 'pathinfos'), directories: lockByDigests(1, 'directories'), blobs: lockByDigests(1, 'blobs') };
/** Deletes the locked PathInfo rows of the digests in $1 and records them in gc_deleted (deletePathInfos). */
export const DELETE_PATHINFOS_SQL = `WITH gone AS (${deleteLocked(1, 'pathinfos', 'digest')})
  INSERT INTO gc_deleted (digest, epoch) SELECT digest, (SELECT epoch FROM gc_state WHERE id = 1) FROM gone
  ON CONFLICT (digest) DO UPDATE SET epoch = EXCLUDED.epoch, deleted_at = now()`;
/** Deletes the locked rows of the digests in $1 (deleteRows). */
export const DELETE_ROWS_SQL = { directories: deleteLocked(1, 'directories'), blobs: deleteLocked(1, 'blobs') };
/** Of the objects in $1, those some blob row names (one probe of blobs_object each). */
export const OBJECTS_NAMED_SQL = `SELECT k.o AS object FROM ${keyLookup('unnest($1::text[]) AS k(o)', 'blobs', 'b', '1', 'b.object = k.o')}`;
/** For each object in $1 some blob row names, the bytes its rows cover (an aggregate per object over its own rows, found by blobs_object). */
export const LIVE_BYTES_SQL = `SELECT k.o AS object, l.live FROM unnest($1::text[]) AS k(o)
  CROSS JOIN LATERAL (SELECT sum(coalesce(b.stored, b.length)) AS live FROM blobs b WHERE b.object = k.o) AS l WHERE l.live IS NOT NULL`;
/** Points the rows ($2 sorted digests, $3 their old objects, $4 new offsets), locked by LOCK_ROWS_SQL.blobs, at object $1; each found by its key, updated by tuple id. */
export const MOVE_PACKED_SQL = `UPDATE blobs b SET object = $1, "offset" = u.o
  FROM (SELECT r.ctid AS c, k.o FROM ${keyLookup('unnest($2::bytea[], $3::text[], $4::bigint[]) AS k(d, f, o)', 'blobs', 'r', 'r.ctid', 'r.digest = k.d AND r.object = k.f')}) AS u
  WHERE b.ctid = u.c`;

/** Whether a collector holds the lock (a phase left by a killed one is stale). */
export const GC_LOCK_HELD = `EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = ${GC_LOCK[0]} AND objid = ${GC_LOCK[1]} AND objsubid = 2 AND granted)`;

export type Phase = 'idle' | 'marking' | 'deleting';

export class PgGc {
  private constructor(private readonly c: pg.Client) {}

  /** Connects and takes the lock; a second collector of the same store gets an error naming the first. */
  static async open(url: string): Promise<PgGc> {
    const index = openPgIndex(url);
    try {
      await index.query('SELECT 1'); // the schema is migrated (gc tables exist)
    } finally {
      await index.release();
    }
    const { default: driver } = await import('pg');
    const c = new driver.Client({ connectionString: url, connectionTimeoutMillis: 10_000, application_name: `nix-castore gc (pid ${process.pid})` });
    c.on('error', () => {});
    await c.connect();
    try {
      const r = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [...GC_LOCK]);
      if (!r.rows[0].ok) {
        const who = await c.query<{ app: string; addr: string | null; since: Date }>(
          `SELECT a.application_name AS app, host(a.client_addr) AS addr, a.backend_start AS since FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
           WHERE l.locktype = 'advisory' AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 2 AND l.granted`,
          [...GC_LOCK],
        );
        const h = who.rows[0];
        const by = h ? ` (${h.app || 'a client'}${h.addr ? ` on ${h.addr}` : ''}, connected since ${h.since.toISOString()})` : '';
        throw new Error(`another garbage collection of this store is running${by}; wait for it to finish`);
      }
      return new PgGc(c);
    } catch (err) {
      await c.end().catch(() => {});
      throw err;
    }
  }

  /**
   * Entering `deleting` waits for PathInfo Puts in flight (they hold the row
   * FOR SHARE), bumps the epoch and forgets the deleted paths of all but the
   * last collections (as the disk store does).
   */
  async setPhase(phase: Phase): Promise<void> {
    await this.c.query('BEGIN');
    try {
      if (phase === 'marking') await this.c.query('DELETE FROM gc_journal');
      const r = await this.c.query<{ epoch: string }>(`UPDATE gc_state SET phase = $1, epoch = epoch + $2 WHERE id = 1 RETURNING epoch`, [
        phase,
        phase === 'deleting' ? 1 : 0,
      ]);
      if (phase === 'deleting') {
        await this.c.query(`DELETE FROM gc_deleted WHERE epoch <= $1::bigint - $2 OR deleted_at < now() - make_interval(secs => $3)`, [
          r.rows[0].epoch,
          DELETED_KEEP_COLLECTIONS,
          DELETED_KEEP_MS / 1000,
        ]);
      }
      await this.c.query('COMMIT');
    } catch (err) {
      await this.c.query('ROLLBACK').catch(() => {});
      throw err;
    }
  }

  async phase(): Promise<Phase> {
    return (await this.c.query<{ phase: Phase }>('SELECT phase FROM gc_state WHERE id = 1')).rows[0].phase;
  }

  /** Every PathInfo with its push and read times (keyset pages; readMs 0: never read); any failure throws. */
  async *pathInfos(): AsyncIterable<{ digest: Buffer; info: PathInfo; pushedMs: number; readMs: number }> {
    let after: Buffer = Buffer.alloc(0);
    for (;;) {
      const r = await this.c.query<{ digest: Buffer; data: Buffer; ms: string; read_ms: string }>(
        `SELECT digest, data, (extract(epoch FROM pushed_at) * 1000)::bigint AS ms, coalesce((extract(epoch FROM read_at) * 1000)::bigint, 0) AS read_ms
           FROM pathinfos WHERE digest > $1 ORDER BY digest LIMIT $2`,
        [after, PAGE],
      );
      for (const row of r.rows) yield { digest: row.digest, info: PathInfoCodec.decode(row.data), pushedMs: Number(row.ms), readMs: Number(row.read_ms) };
      if (r.rows.length < PAGE) return;
      after = r.rows[r.rows.length - 1].digest;
    }
  }

  async pathInfo(digest: Buffer): Promise<PathInfo | undefined> {
    const r = await this.c.query<{ data: Buffer }>('SELECT data FROM pathinfos WHERE digest = $1', [digest]);
    return r.rows.length ? PathInfoCodec.decode(r.rows[0].data) : undefined;
  }

  async pins(): Promise<{ name: string; paths: string[] }[]> {
    return (await this.c.query<{ name: string; paths: string[] }>('SELECT name, paths FROM gc_pins ORDER BY name')).rows;
  }

  async journal(): Promise<Buffer[]> {
    return (await this.c.query<{ digest: Buffer }>('SELECT digest FROM gc_journal')).rows.map((r) => r.digest);
  }

  /** Digests of directory rows written since `cutMs` (they survive, so what they need is marked). */
  async *youngDirectories(cutMs: number): AsyncIterable<Buffer> {
    let after: Buffer = Buffer.alloc(0);
    for (;;) {
      const r = await this.c.query<{ digest: Buffer }>(
        'SELECT digest FROM directories WHERE digest > $1 AND created_at >= to_timestamp($2 / 1000.0) ORDER BY digest LIMIT $3',
        [after, cutMs, PAGE],
      );
      for (const row of r.rows) yield row.digest;
      if (r.rows.length < PAGE) return;
      after = r.rows[r.rows.length - 1].digest;
    }
  }

  /**
   * Rows of `table` written before `cutMs` whose digest `marked` lacks, a
   * page at a time. Rows come in digest order, so the marks are asked one
   * bucket (first byte) at a time, each once.
   */
  async *unmarked(table: 'directories' | 'blobs', cutMs: number, marked: { bucket(b: number): Promise<DigestLookup> }): AsyncIterable<Buffer[]> {
    let after: Buffer = Buffer.alloc(0);
    let bucket = -1;
    let set: DigestLookup | undefined;
    for (;;) {
      const r = await this.c.query<{ digest: Buffer }>(
        `SELECT digest FROM ${table} WHERE digest > $1 AND created_at < to_timestamp($2 / 1000.0) ORDER BY digest LIMIT $3`,
        [after, cutMs, PAGE],
      );
      const out: Buffer[] = [];
      for (const { digest } of r.rows) {
        if (digest.length !== 32) continue; // not a BLAKE3 digest: not ours to judge
        if (digest[0] !== bucket) set = await marked.bucket((bucket = digest[0]));
        if (!set!.has(digest)) out.push(digest);
      }
      if (out.length > 0) yield out;
      if (r.rows.length < PAGE) return;
      after = r.rows[r.rows.length - 1].digest;
    }
  }

  /**
   * Deletes PathInfo rows and records them in gc_deleted with the current
   * epoch, in one statement: a Put that no longer sees a row sees its record.
   */
  async deletePathInfos(digests: Buffer[]): Promise<number> {
    const sorted = [...digests].sort(Buffer.compare);
    let n = 0;
    for (let i = 0; i < sorted.length; i += BATCH) n += await this.lockedChange('pathinfos', sorted.slice(i, i + BATCH), DELETE_PATHINFOS_SQL);
    return n;
  }

  /** Rows are locked in digest order, as recorded reads lock them (pg-reads.ts): no deadlock. */
  async deleteRows(table: 'directories' | 'blobs', digests: Buffer[]): Promise<number> {
    const sorted = [...digests].sort(Buffer.compare);
    let n = 0;
    for (let i = 0; i < sorted.length; i += BATCH) n += await this.lockedChange(table, sorted.slice(i, i + BATCH), DELETE_ROWS_SQL[table]);
    return n;
  }

  /** In one transaction: locks the rows of `sorted` digests in order, then runs `change` ($1: the digests found) on them (lockByDigests); its row count. */
  private async lockedChange(table: keyof typeof LOCK_ROWS_SQL, sorted: Buffer[], change: string): Promise<number> {
    await this.c.query('BEGIN');
    try {
      const locked = (await this.c.query<{ d: Buffer }>(LOCK_ROWS_SQL[table], [sorted])).rows.map((r) => r.d);
      const n = locked.length ? ((await this.c.query(change, [locked])).rowCount ?? 0) : 0;
      await this.c.query('COMMIT');
      return n;
    } catch (err) {
      await this.c.query('ROLLBACK').catch(() => {});
      throw err;
    }
  }

  /** For each of `objects` some blob row names: how many of its bytes its rows cover (compressed: as stored). */
  async liveBytes(objects: string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (let i = 0; i < objects.length; i += BATCH) {
      const r = await this.c.query<{ object: string; live: string }>(LIVE_BYTES_SQL, [objects.slice(i, i + BATCH)]);
      for (const row of r.rows) out.set(row.object, Number(row.live));
    }
    return out;
  }

  /** Bytes per object (as stored) of the blob rows `digests` name. */
  async bytesByObject(digests: Buffer[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (let i = 0; i < digests.length; i += BATCH) {
      const r = await this.c.query<{ object: string; bytes: string }>(
        BYTES_BY_OBJECT_SQL,
        [digests.slice(i, i + BATCH)],
      );
      for (const row of r.rows) out.set(row.object, (out.get(row.object) ?? 0) + Number(row.bytes));
    }
    return out;
  }

  /** The blobs an object holds, by offset, with how each is stored. */
  async records(object: string): Promise<(Location & { digest: Buffer })[]> {
    const r = await this.c.query<LocationRow & { digest: Buffer }>(`SELECT b.digest, ${LOCATION_COLUMNS} FROM blobs b WHERE b.object = $1 ORDER BY b."offset"`, [object]);
    return r.rows.map((row) => ({ digest: row.digest, ...locationOf(row) }));
  }

  /**
   * Points the rows of blobs copied into `to` at their new place and
   * retires their old packs, in one transaction: a reader sees the old row
   * or the new one, and an old pack is deleted only once retired for --grace.
   */
  async movePacked(to: string, moved: { digest: Buffer; from: string; offset: number }[], retired: string[]): Promise<number> {
    await this.c.query('BEGIN');
    try {
      // Locked in digest order, as every other writer locks rows, then moved (lockByDigests).
      const sorted = [...moved].sort((a, b) => Buffer.compare(a.digest, b.digest));
      await this.c.query(LOCK_ROWS_SQL.blobs, [sorted.map((m) => m.digest)]);
      const r = await this.c.query(MOVE_PACKED_SQL, [to, sorted.map((m) => m.digest), sorted.map((m) => m.from), sorted.map((m) => m.offset)]);
      await this.c.query('INSERT INTO gc_retired (object) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING', [retired]);
      await this.c.query('COMMIT');
      return r.rowCount ?? 0;
    } catch (err) {
      await this.c.query('ROLLBACK').catch(() => {});
      throw err;
    }
  }

  /** Packs retired by a rewrite, with when (ms). */
  async retired(): Promise<Map<string, number>> {
    const r = await this.c.query<{ object: string; ms: string }>('SELECT object, (extract(epoch FROM retired_at) * 1000)::bigint AS ms FROM gc_retired');
    return new Map(r.rows.map((row) => [row.object, Number(row.ms)]));
  }

  async forgetRetired(objects: string[]): Promise<void> {
    if (objects.length > 0) await this.c.query('DELETE FROM gc_retired WHERE object = ANY($1::text[])', [objects]);
  }

  /** Of `objects`, those some blob row still names. */
  async referenced(objects: string[]): Promise<Set<string>> {
    const out = new Set<string>();
    for (let i = 0; i < objects.length; i += BATCH) {
      const r = await this.c.query<{ object: string }>(OBJECTS_NAMED_SQL, [objects.slice(i, i + BATCH)]);
      for (const row of r.rows) out.add(row.object);
    }
    return out;
  }

  async close(): Promise<void> {
    // Ending the session releases the lock; a phase left set is stale without it.
    await this.c.query(`UPDATE gc_state SET phase = 'idle' WHERE id = 1`).catch(() => {});
    await this.c.end().catch(() => {});
  }
}
