// The PostgreSQL schema, created and migrated by the tool itself. Each entry
// of MIGRATIONS runs once, in order, in one transaction; concurrent daemons
// starting together serialize on an advisory lock.
import type { Pool } from 'pg';

const LOCK_KEY = 0x6e6978636173; // "nixcas"

const MIGRATIONS: string[] = [
  `CREATE TABLE blobs (
     digest   bytea  PRIMARY KEY,          -- BLAKE3, 32 bytes
     object   text   NOT NULL,             -- S3 key below the prefix: packs/… or blobs/…
     "offset" bigint NOT NULL,
     length   bigint NOT NULL
   );
   CREATE INDEX blobs_object ON blobs (object);
   CREATE TABLE directories (
     digest bytea PRIMARY KEY,             -- BLAKE3 of the canonical encoding
     data   bytea NOT NULL                 -- that encoding
   );
   CREATE TABLE pathinfos (
     digest bytea PRIMARY KEY,             -- the store path's 20-byte digest
     data   bytea NOT NULL                 -- tvix.store.v1.PathInfo
   );`,
  // Garbage collection (src/gc/scaleout-gc.ts, src/scaleout/pg-gc.ts): when
  // rows were written (rows older than this migration get its time), pins,
  // and the fence PathInfo Puts check in the transaction that stores them.
  `ALTER TABLE pathinfos ADD COLUMN pushed_at timestamptz NOT NULL DEFAULT now();
   ALTER TABLE directories ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
   ALTER TABLE blobs ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
   CREATE TABLE gc_pins (
     name  text   PRIMARY KEY,
     paths text[] NOT NULL                 -- absolute store paths
   );
   CREATE TABLE gc_state (
     id    integer PRIMARY KEY CHECK (id = 1),
     epoch bigint  NOT NULL,               -- bumped before a collector deletes
     phase text    NOT NULL                -- idle | marking | deleting
   );
   INSERT INTO gc_state VALUES (1, 0, 'idle');
   CREATE TABLE gc_journal (
     digest bytea PRIMARY KEY              -- PathInfos stored while a collector marked
   );`,
  // Retention and pack rewriting (src/scaleout/pg-reads.ts, pack-rewrite.ts):
  // when each PathInfo was last read (NULL: never), and packs whose live
  // blobs a collector moved to a new pack, deleted once retired for --grace.
  `ALTER TABLE pathinfos ADD COLUMN read_at timestamptz;
   CREATE TABLE gc_retired (
     object     text        PRIMARY KEY,   -- S3 key below the prefix (packs/…)
     retired_at timestamptz NOT NULL DEFAULT now()
   );`,
  // PathInfos recent collections deleted (pg-gc-fence.ts): a PathInfo Put
  // referring to one that is still gone is refused. Kept as on disk: the
  // last 16 collections, at most a day.
  `CREATE TABLE gc_deleted (
     digest     bytea       PRIMARY KEY,   -- the store path's 20-byte digest
     epoch      bigint      NOT NULL,      -- gc_state.epoch of the collection
     deleted_at timestamptz NOT NULL DEFAULT now()
   );
   CREATE INDEX gc_deleted_epoch ON gc_deleted (epoch);`,
  // Compressed blobs (blob-codec.ts): how each blob's bytes are stored.
  // NULL: raw, as every row before; length stays the raw size. The store's
  // own settings: its default compression (COMPRESSION_SETTING).
  `ALTER TABLE blobs ADD COLUMN codec text;            -- NULL | zstd | zstd-frames
   ALTER TABLE blobs ADD COLUMN stored bigint;         -- bytes in the object when compressed
   ALTER TABLE blobs ADD COLUMN frames bytea;          -- zstd-frames: per frame its stored size and check
   CREATE TABLE store_settings (
     name  text PRIMARY KEY,
     value text NOT NULL
   );`,
  // Delta uploads (pg-hook-index.ts): which large blob each hook was seen
  // in, by the hook's first 16 bytes; hints only, the newest kept.
  `CREATE TABLE IF NOT EXISTS delta_hooks (
     hook     bytea       PRIMARY KEY,
     blob     bytea       NOT NULL,
     added_at timestamptz NOT NULL DEFAULT now()
   );
   CREATE INDEX IF NOT EXISTS delta_hooks_added ON delta_hooks (added_at);`,
];

/** The schema version that brought compressed blobs. */
const COMPRESSION_VERSION = 5;
/**
 * New blobs are compressed by default only in stores created compressed:
 * daemons of an older nix-castore still running on a migrated store would
 * read compressed rows as raw bytes. Such a store turns it on with
 * `compression=zstd` in the address once every daemon is upgraded.
 */
export const COMPRESSION_SETTING = 'compression';

export const SCHEMA_VERSION = MIGRATIONS.length;

export async function migrate(pool: Pool): Promise<void> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    await c.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEY]);
    await c.query('CREATE TABLE IF NOT EXISTS nix_castore_schema (version integer NOT NULL)');
    const r = await c.query<{ version: number }>('SELECT version FROM nix_castore_schema');
    const current = r.rows[0]?.version ?? 0;
    if (current > MIGRATIONS.length) {
      throw new Error(`the database has schema version ${current}, newer than this nix-castore knows (${MIGRATIONS.length}); upgrade nix-castore`);
    }
    for (let v = current; v < MIGRATIONS.length; v++) await c.query(MIGRATIONS[v]);
    if (current < COMPRESSION_VERSION) {
      await c.query('INSERT INTO store_settings VALUES ($1, $2)', [COMPRESSION_SETTING, current === 0 ? 'zstd' : 'none']);
    }
    if (r.rows.length === 0) await c.query('INSERT INTO nix_castore_schema VALUES ($1)', [MIGRATIONS.length]);
    else await c.query('UPDATE nix_castore_schema SET version = $1', [MIGRATIONS.length]);
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    c.release();
  }
}
