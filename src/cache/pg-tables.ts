// The binary cache's own tables in the scale-out store's PostgreSQL (staged
// NARs, realisations): created on first use, apart from the store's schema,
// and tried again after a failure (the database may come up later).
import { openPgIndex, type PgIndex } from '../scaleout/pg-index.js';

export interface PgTables {
  /** Runs `text` once the tables exist; the rows. */
  q<R extends Record<string, unknown>>(text: string, values: unknown[]): Promise<R[]>;
  release(): Promise<void>;
}

export function pgTables(url: string, ddl: string): PgTables {
  const db: PgIndex = openPgIndex(url);
  let ready: Promise<unknown> | undefined;
  return {
    async q<R extends Record<string, unknown>>(text: string, values: unknown[]): Promise<R[]> {
      ready ??= db.query(ddl).catch((err) => {
        ready = undefined;
        throw err;
      });
      await ready;
      return (await db.query<R>(text, values)).rows;
    },
    release: () => db.release(),
  };
}
