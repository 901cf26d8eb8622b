// Realisations (realisations.ts) in the scale-out store's PostgreSQL, shared
// by all its daemons. The table is created on first use, apart from the
// store's own schema, as the staged NARs' are.
import { pgTables, type PgTables } from './pg-tables.js';
import type { RealisationStore } from './realisations.js';

const TABLE = `
  CREATE TABLE IF NOT EXISTS nix_castore_realisations (
    name text PRIMARY KEY,
    data text NOT NULL
  );`;

export class PgRealisations implements RealisationStore {
  private readonly db: PgTables;

  constructor(url: string) {
    this.db = pgTables(url, TABLE);
  }


  async put(key: string, json: string): Promise<void> {
    await this.db.q('INSERT INTO nix_castore_realisations (name, data) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET data = EXCLUDED.data', [key, json]);
  }

  async get(key: string): Promise<string | undefined> {
    const rows = await this.db.read<{ data: string }>('SELECT data FROM nix_castore_realisations WHERE name = $1', [key]);
    return rows[0]?.data;
  }

  close(): Promise<void> {
    return this.db.release();
  }
}
