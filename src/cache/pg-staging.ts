// Staged NARs (staging.ts) in the scale-out store's PostgreSQL, so that any
// daemon behind a load balancer accepts the narinfo of a NAR another one
// received, and a restart loses nothing. Its two tables are created on
// first use, apart from the store's own schema.
import { pgTables, type PgTables } from './pg-tables.js';
import { decodeStaged, encodeStaged, type NarStaging, type StagedNar } from './staging.js';

const TABLES = `
  CREATE TABLE IF NOT EXISTS nix_castore_staged_nars (
    nar_sha256 bytea PRIMARY KEY,
    data       text NOT NULL,
    staged_at  timestamptz NOT NULL DEFAULT now()
  );
  CREATE TABLE IF NOT EXISTS nix_castore_nar_aliases (
    file_sha256 bytea PRIMARY KEY,
    store_hash  text NOT NULL
  );`;

export class PgStaging implements NarStaging {
  private readonly db: PgTables;

  constructor(url: string) {
    this.db = pgTables(url, TABLES);
  }


  async put(s: StagedNar): Promise<void> {
    await this.db.q(
      'INSERT INTO nix_castore_staged_nars (nar_sha256, data) VALUES ($1, $2) ON CONFLICT (nar_sha256) DO UPDATE SET data = EXCLUDED.data, staged_at = now()',
      [s.narSha256, encodeStaged(s)],
    );
  }

  async get(h: Uint8Array): Promise<StagedNar | undefined> {
    const rows = await this.db.q<{ data: string }>('SELECT data FROM nix_castore_staged_nars WHERE nar_sha256 = $1', [Buffer.from(h)]);
    return rows.length ? decodeStaged(rows[0].data) : undefined;
  }

  async delete(h: Uint8Array): Promise<void> {
    await this.db.q('DELETE FROM nix_castore_staged_nars WHERE nar_sha256 = $1', [Buffer.from(h)]);
  }

  async expire(maxAgeMs: number): Promise<number> {
    const rows = await this.db.q<{ n: string }>(
      "WITH d AS (DELETE FROM nix_castore_staged_nars WHERE staged_at < now() - $1 * interval '1 millisecond' RETURNING 1) SELECT count(*) AS n FROM d",
      [maxAgeMs],
    );
    return Number(rows[0].n);
  }

  async putAlias(f: Uint8Array, storeHash: string): Promise<void> {
    await this.db.q(
      'INSERT INTO nix_castore_nar_aliases (file_sha256, store_hash) VALUES ($1, $2) ON CONFLICT (file_sha256) DO UPDATE SET store_hash = EXCLUDED.store_hash',
      [Buffer.from(f), storeHash],
    );
  }

  async getAlias(f: Uint8Array): Promise<string | undefined> {
    const rows = await this.db.q<{ store_hash: string }>('SELECT store_hash FROM nix_castore_nar_aliases WHERE file_sha256 = $1', [Buffer.from(f)]);
    return rows[0]?.store_hash;
  }

  close(): Promise<void> {
    return this.db.release();
  }
}
