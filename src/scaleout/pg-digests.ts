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
 * SQL after FROM: each digest of parameter `$n` as `k(d, i)` with its row
 * of `table` as `alias` (`columns`, in the table's names, qualified by
 * `alias`), found by a probe of the primary key; absent digests have no
 * row. A plain join let the planner, which estimates the series at 1,000
 * rows, prefer a hash join over a scan of the whole table: 36 ms per
 * lookup in a 48,000-blob store, 7.3 s of PostgreSQL's CPU for one NAR
 * rendering of the bench closure. LIMIT 1 keeps the subquery from being
 * turned into that join (a digest is the table's primary key, so it
 * changes nothing else).
 */
export function digestLookup(n: number, table: string, alias: string, columns: string): string {
  return `${digestRows(n)} CROSS JOIN LATERAL (SELECT ${columns} FROM ${table} ${alias} WHERE ${alias}.digest = k.d LIMIT 1) AS ${alias}`;
}
