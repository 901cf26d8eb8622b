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
 * it answers by `i`, a small integer. PostgreSQL estimates such a series at
 * 1,000 rows and joins it on the primary key.
 */
export function digestRows(n: number, alias = 'k'): string {
  return `(SELECT substring($${n}::bytea FROM g * ${B3_LEN} + 1 FOR ${B3_LEN}) AS d, g AS i FROM generate_series(0, length($${n}::bytea) / ${B3_LEN} - 1) AS g) AS ${alias}`;
}
