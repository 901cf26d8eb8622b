// Delta uploads' hook index (castore/delta/hook-index.ts) in a scale-out
// store's PostgreSQL: kept across restarts and shared by every daemon on
// the store. Hints only (see HookHints): the newest MAX_HOOKS rows are
// kept, older ones pruned now and then.
import type { HookHints } from '../castore/delta/hook-index.js';
import { HOOK_KEY_LEN, MAX_HOOKS } from '../castore/delta/hook-index.js';
import { openPgIndex, type PgIndex } from './pg-index.js';

/** Rows added between prunings. */
const PRUNE_EVERY = 4096;

export class PgHookIndex implements HookHints {
  private added = 0;

  constructor(
    private readonly pg: PgIndex,
    private readonly keep = MAX_HOOKS,
  ) {}

  static open(indexUrl: string): PgHookIndex {
    return new PgHookIndex(openPgIndex(indexUrl));
  }

  async lookup(hooks: Uint8Array[]): Promise<(Buffer | undefined)[]> {
    if (hooks.length === 0) return [];
    const keys = hooks.map(keyOf);
    const r = await this.pg.query<{ hook: Buffer; blob: Buffer }>('SELECT hook, blob FROM delta_hooks WHERE hook = ANY($1::bytea[])', [keys]);
    const found = new Map(r.rows.map((row) => [row.hook.toString('latin1'), row.blob]));
    return keys.map((k) => found.get(k.toString('latin1')));
  }

  async add(blob: Uint8Array, hooks: Uint8Array[]): Promise<void> {
    // One row per key: an upsert may not touch a row twice in one statement.
    const keys = [...new Map(hooks.map(keyOf).map((k) => [k.toString('latin1'), k])).values()];
    if (keys.length === 0) return;
    await this.pg.query(
      `INSERT INTO delta_hooks (hook, blob) SELECT unnest($1::bytea[]), $2
       ON CONFLICT (hook) DO UPDATE SET blob = EXCLUDED.blob, added_at = now()`,
      [keys, Buffer.from(blob)],
    );
    this.added += keys.length;
    if (this.added >= PRUNE_EVERY) {
      this.added = 0;
      await this.pg.query(
        'DELETE FROM delta_hooks WHERE added_at < (SELECT added_at FROM delta_hooks ORDER BY added_at DESC OFFSET $1 LIMIT 1)',
        [this.keep],
      );
    }
  }

  close(): Promise<void> {
    return this.pg.release();
  }
}

function keyOf(hook: Uint8Array): Buffer {
  return Buffer.from(hook.buffer, hook.byteOffset, HOOK_KEY_LEN);
}
