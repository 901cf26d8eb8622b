// Many digests as one query parameter: their 32 bytes end to end in one
// bytea, which node-postgres sends as binary. A `bytea[]` parameter went as
// text — each digest a hex string, joined into an array literal that
// PostgreSQL parsed back — and rows that named their digest came back as
// hex to parse again: garbage and CPU on both sides for every key of a
// lookup (a NAR rendering looks up tens of thousands).
import { B3_LEN } from '../castore/digest.js';

/** The digests end to end, for digestRows(). Each must be B3_LEN bytes. */
export function digestsParam(digests: readonly Uint8Array[]): Buffer {
  const out = Buffer.allocUnsafe(digests.length * B3_LEN);
  digests.forEach((d, i) => {
    if (d.length !== B3_LEN) throw new RangeError(`a digest of ${d.length} bytes, not ${B3_LEN}`);
    out.set(d, i * B3_LEN);
  });
  return out;
}

/**
 * SQL for the relation `alias(d, i)` of the digests in parameter `$n`
 * (digestsParam's) and their positions from 0, so a row can say which key
 * it answers by `i`, a small integer. To find rows of a table by these
 * digests, use digestLookup: a plain join may scan the whole table.
 */
export function digestRows(n: number, alias = 'k'): string {
  return `(SELECT substring($${n}::bytea FROM g * ${B3_LEN} + 1 FOR ${B3_LEN}) AS d, g AS i FROM generate_series(0, length($${n}::bytea) / ${B3_LEN} - 1) AS g) AS ${alias}`;
}

/**
 * SQL after FROM: each key of `keys` (a FROM item naming its key `k.d`, or
 * another column given by `on`) with its row of `table` as `alias`
 * (`columns`, qualified by `alias`), found by a probe of an index; keys
 * without a row have none. A plain join let the planner prefer a hash join
 * over a scan of the whole table: its costs price ~500 index probes above
 * one scan of a 50,000-row table, analyzed or not. That was 36 ms per
 * lookup in a 48,000-blob store, 7.3 s of PostgreSQL's CPU for one NAR
 * rendering of the bench closure. LIMIT 1 keeps the subquery from being
 * turned into that join (and stops at the first row where a key is not
 * unique, as an EXISTS would).
 */
export function keyLookup(keys: string, table: string, alias: string, columns: string, on = `${alias}.digest = k.d`, lock = false): string {
  return `${keys} CROSS JOIN LATERAL (SELECT ${columns} FROM ${table} ${alias} WHERE ${on} LIMIT 1${lock ? ' FOR UPDATE' : ''}) AS ${alias}`;
}

/** keyLookup of the digests in parameter `$n` (digestsParam's), as `k(d, i)`. */
export function digestLookup(n: number, table: string, alias: string, columns: string): string {
  return keyLookup(digestRows(n), table, alias, columns);
}

/** The digests in parameter `$n`, a `bytea[]`, as the FROM item `k(d)`. */
const arrayKeys = (n: number): string => `unnest($${n}::bytea[]) AS k(d)`;

/** keyLookup of the digests in parameter `$n` given as a `bytea[]`, as `k(d)`. */
export function digestArrayLookup(n: number, table: string, alias: string, columns: string): string {
  return keyLookup(arrayKeys(n), table, alias, columns);
}

/**
 * SQL locking the rows of `table` whose digest is in `$n`, a `bytea[]`
 * sorted ascending, FOR UPDATE in that order (a nested loop over the keys,
 * as any lateral probe), so the collector's deletes and the recorded reads
 * never deadlock; returns their digests (`d`). A transaction locks first,
 * then changes the rows in a statement of its own (deleteLocked, updates
 * by `ctid`): its snapshot then sees the rows' latest versions, which
 * nobody can change until it ends. In one statement, a row another
 * transaction updated after the snapshot was locked in its new version
 * but named by its old tuple id, and so silently not deleted (a race test
 * of deletes against recorded reads lost half of them).
 */
export function lockByDigests(n: number, table: string): string {
  return `SELECT k.d FROM ${keyLookup(arrayKeys(n), table, 'r', '1', undefined, true)}`;
}

/**
 * SQL deleting the rows of `table` whose digest is in `$n` and which this
 * transaction has locked (lockByDigests). `DELETE … WHERE digest IN
 * (SELECT … = ANY($1) ORDER BY digest FOR UPDATE)` was planned as a scan
 * of the whole table for the subquery and another for the join: two scans
 * per batch of 1,000, quadratic in a large store's collection. Here each
 * key probes the primary key and the rows found are deleted by tuple id.
 */
export function deleteLocked(n: number, table: string, returning = ''): string {
  return `DELETE FROM ${table} WHERE ctid = ANY(ARRAY(SELECT r.ctid FROM ${digestArrayLookup(n, table, 'r', 'r.ctid')}))${returning ? ` RETURNING ${returning}` : ''}`;
}
