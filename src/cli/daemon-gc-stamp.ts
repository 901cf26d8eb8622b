// When the daemon's schedule (--gc-interval) last collected, kept with the
// store: a daemon restarted more often than its interval (a deploy, a
// reboot, Restart=on-failure) would otherwise start the interval over each
// time and never collect. On disk a file beside the store's directories;
// scale-out a row of store_settings, shared by the store's daemons.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAddr } from '../addr/parse.js';
import type { StoreAddrs } from '../addr/open.js';
import { metadataUrl } from '../scaleout/addr.js';
import { openPgIndex } from '../scaleout/pg-index.js';
import { writeDurably } from '../util/write-durably.js';

export interface GcStamp {
  /** When the last scheduled collection (or the first schedule) started, ms since the epoch; undefined: none recorded. */
  read(): Promise<number | undefined>;
  write(ms: number): Promise<void>;
  /**
   * Records `ms` as the start of a collection if the record still says
   * `prev` (what this daemon last saw); false if another daemon of the
   * store recorded one meanwhile (scale-out: atomically, so one of the
   * daemons waking together collects).
   */
  claim(prev: number, ms: number): Promise<boolean>;
}

const SETTING = 'gc_last_run';
export const STAMP_FILE = 'gc-last-run';

function parsed(text: string | undefined): number | undefined {
  const ms = text === undefined ? NaN : Date.parse(text.trim());
  return Number.isFinite(ms) ? ms : undefined;
}

/** The stamp of the store the daemon collects (the one adminFor found a collector for). */
export function gcStampFor(addrs: StoreAddrs): GcStamp | undefined {
  const a = parseAddr(addrs.blob);
  if (a.kind === 's3') {
    const url = metadataUrl(addrs.blob);
    const withDb = async <T>(fn: (db: ReturnType<typeof openPgIndex>) => Promise<T>): Promise<T> => {
      const db = openPgIndex(url);
      try {
        return await fn(db);
      } finally {
        await db.release();
      }
    };
    return {
      read: () => withDb(async (db) => parsed((await db.query<{ value: string }>('SELECT value FROM store_settings WHERE name = $1', [SETTING])).rows[0]?.value)),
      write: (ms) =>
        withDb(async (db) => {
          await db.query('INSERT INTO store_settings VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value', [SETTING, new Date(ms).toISOString()]);
        }),
      claim: (prev, ms) =>
        withDb(async (db) => {
          const r = await db.query('UPDATE store_settings SET value = $3 WHERE name = $1 AND value = $2', [SETTING, new Date(prev).toISOString(), new Date(ms).toISOString()]);
          return r.rowCount === 1;
        }),
    };
  }
  if (a.kind !== 'file') return undefined;
  const file = join(a.root, STAMP_FILE);
  const stamp: GcStamp = {
    read: () => readFile(file, 'utf8').then(parsed, (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    }),
    write: (ms) => writeDurably(file, new Date(ms).toISOString() + '\n', 0o644),
    // One daemon per data directory: no race to guard against.
    async claim(prev, ms) {
      const now = await stamp.read();
      if (now !== undefined && now > prev) return false;
      await stamp.write(ms);
      return true;
    },
  };
  return stamp;
}
