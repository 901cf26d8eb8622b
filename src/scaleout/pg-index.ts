// One connection pool per PostgreSQL URL and process, shared by the blob
// index, directory and PathInfo services opened on it, and released when
// the last of them closes. The driver is loaded on first use (see s3-objects.ts).
import type pg from 'pg';
import { migrate } from './schema.js';
import { CastoreError, storageError } from '../castore/errors.js';

export interface PgIndex {
  /** Runs a query once the schema is ready; failures become storage errors. */
  query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
  /** Runs `fn` in one transaction on one connection (committed if it returns, rolled back if it throws). */
  transaction<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T>;
  release(): Promise<void>;
}

interface Shared {
  pool: Promise<pg.Pool>;
  ready: Promise<void>;
  users: number;
}

const shared = new Map<string, Shared>();
const POOL_SIZE = 16;

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}

/** SQLSTATEs that say the server is not there for now: connection exceptions (08…), shutting down or starting up (57P01-57P03), too many connections (53300). */
const TRANSIENT_SQLSTATE = /^(08...|57P0[123]|53300)$/;
/** What the driver and the socket say when the connection is refused, lost or never made. */
const TRANSIENT_NET = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);
const TRANSIENT_MESSAGE = /^Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/;

/**
 * A failed query as our error: PostgreSQL unreachable, restarting or lost
 * mid-query is transient (UNAVAILABLE, HTTP 503; clients retry), as an
 * unreachable S3 is; anything else is a storage error.
 */
function pgFailure(url: string, err: unknown): CastoreError {
  const e = err as { code?: unknown; message?: string };
  const message = e?.message ?? String(err);
  if ((typeof e?.code === 'string' && (TRANSIENT_SQLSTATE.test(e.code) || TRANSIENT_NET.has(e.code))) || TRANSIENT_MESSAGE.test(message)) {
    return new CastoreError('unavailable', `PostgreSQL at ${redact(url)} is unavailable: ${message}`, { cause: err });
  }
  return storageError(`PostgreSQL: ${message}`, err);
}

export function openPgIndex(url: string): PgIndex {
  let s = shared.get(url);
  if (!s) {
    const pool = import('pg').then(({ default: driver }) => {
      const p = new driver.Pool({ connectionString: url, max: POOL_SIZE, connectionTimeoutMillis: 10_000 });
      // An idle client losing its server must not crash the process.
      p.on('error', () => {});
      return p;
    });
    const ready = pool.then(migrate).catch((err: Error) => {
      throw new CastoreError('unavailable', `PostgreSQL at ${redact(url)}: ${err.message}`, { cause: err });
    });
    ready.catch(() => {});
    s = { pool, ready, users: 0 };
    shared.set(url, s);
  }
  const entry = s;
  entry.users++;
  let released = false;
  return {
    async query<R extends pg.QueryResultRow>(text: string, values?: unknown[]) {
      await entry.ready;
      try {
        return await (await entry.pool).query<R>(text, values);
      } catch (err) {
        throw pgFailure(url, err);
      }
    },
    async transaction<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
      await entry.ready;
      let c: pg.PoolClient;
      try {
        c = await (await entry.pool).connect();
      } catch (err) {
        throw pgFailure(url, err);
      }
      try {
        await c.query('BEGIN');
        const out = await fn(c);
        await c.query('COMMIT');
        return out;
      } catch (err) {
        await c.query('ROLLBACK').catch(() => {});
        if (err instanceof CastoreError) throw err;
        throw pgFailure(url, err);
      } finally {
        c.release();
      }
    },
    async release() {
      if (released) return;
      released = true;
      if (--entry.users > 0) return;
      shared.delete(url);
      await (await entry.pool).end();
    },
  };
}
