// The binary cache's own tables in the scale-out store's PostgreSQL (staged
// NARs, realisations): created on first use, apart from the store's schema,
// and tried again after a failure (the database may come up later).
import { openPgIndex, type PgIndex } from '../scaleout/pg-index.js';

const UNDEFINED_TABLE = '42P01';

export interface PgTables {
  /** Runs `text` once the tables exist; the rows. */
  q<R extends Record<string, unknown>>(text: string, values: unknown[]): Promise<R[]>;
  /** Runs a read without creating the tables (a read-only daemon's role may not): no table, no rows. */
  read<R extends Record<string, unknown>>(text: string, values: unknown[]): Promise<R[]>;
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
    async read<R extends Record<string, unknown>>(text: string, values: unknown[]): Promise<R[]> {
      try {
        return (await db.query<R>(text, values)).rows;
      } catch (err) {
        // pg-index.ts wraps the driver's error; its code is the cause's.
        if ((err as { cause?: { code?: string } }).cause?.code === UNDEFINED_TABLE) return [];
        throw err;
      }
    },
    release: () => db.release(),
  };
}
